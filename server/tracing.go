package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// TracingFromEnv starts OpenTelemetry tracing when the standard variables ask for it
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; OTEL_SDK_DISABLED=true
// turns it off): spans go by OTLP — gRPC when OTEL_EXPORTER_OTLP_PROTOCOL (or its _TRACES_ form)
// is "grpc", else HTTP/protobuf — configured by the exporters from the other OTEL_* variables.
// It reports whether tracing is on, and returns the function that flushes and stops it.
func TracingFromEnv(ctx context.Context) (on bool, shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") ||
		os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return false, noop, nil
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	switch protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return false, noop, errors.New("OTEL_EXPORTER_OTLP_PROTOCOL " + protocol + ": want grpc or http/protobuf")
	}
	if err != nil {
		return false, noop, err
	}
	res := resource.Default() // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES included
	if os.Getenv("OTEL_SERVICE_NAME") == "" {
		if named, err := resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", "plumb"))); err == nil {
			res = named
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return true, tp.Shutdown, nil
}

// traceHTTP wraps the HTTP front end in a span per request when tracing is on.
func (s *Server) traceHTTP(h http.Handler) http.Handler {
	if !s.cfg.Tracing {
		return h
	}
	return otelhttp.NewHandler(h, "plumb.http", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return r.Method + " " + r.URL.Path
	}))
}

// grpcTracing is the gRPC server's span-per-call handler when tracing is on.
func (s *Server) grpcTracing() []grpc.ServerOption {
	if !s.cfg.Tracing {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler())}
}

// evaluated adds to the call's span, when it records, the GenAI semantic convention's
// evaluation event for a scored answer: plumb's confidence, its action as the label, and
// plumb's own fields under plumb.*.
func evaluated(ctx context.Context, r *plumbv1.ScoreResponse) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent("gen_ai.evaluation.result", trace.WithAttributes(
		attribute.String("gen_ai.evaluation.name", "plumb.confidence"),
		attribute.Float64("gen_ai.evaluation.score.value", r.GetConfidence()),
		attribute.String("gen_ai.evaluation.score.label", strings.TrimPrefix(r.GetAction().String(), "ACTION_")),
		attribute.String("plumb.profile", r.GetProfile().GetName()),
		attribute.Int64("plumb.profile.version", r.GetProfile().GetVersion()),
		attribute.Int("plumb.set.size", len(r.GetPredictionSet().GetAnswers())),
		attribute.Bool("plumb.sycophancy.flagged", r.GetSycophancy().GetFlagged()),
	))
}
