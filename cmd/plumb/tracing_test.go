package main

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/client"
)

// otlpReceiver is an OTLP/HTTP trace endpoint: it keeps the spans it is sent.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	svc   []string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
		http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				o.svc = append(o.svc, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			o.spans = append(o.spans, ss.GetSpans()...)
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// evaluation returns the gen_ai.evaluation.result event of the first span named name.
func (o *otlpReceiver) evaluation(name string) map[string]*commonpb.AnyValue {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.spans {
		if s.GetName() != name {
			continue
		}
		for _, e := range s.GetEvents() {
			if e.GetName() == "gen_ai.evaluation.result" {
				attrs := map[string]*commonpb.AnyValue{}
				for _, a := range e.GetAttributes() {
					attrs[a.GetKey()] = a.GetValue()
				}
				return attrs
			}
		}
	}
	return nil
}

// TestTracesReachOTLP: a spawned `plumb serve` with OTEL_EXPORTER_OTLP_ENDPOINT set exports
// its spans by OTLP/HTTP to a receiver in the test: a span for a gRPC Score and one for an HTTP
// Score, each with the gen_ai.evaluation.result event carrying plumb.confidence, the confidence
// and the action of the response, and plumb's fields; the resource is service.name "plumb".
func TestTracesReachOTLP(t *testing.T) {
	rcv := &otlpReceiver{}
	collector := httptest.NewServer(rcv)
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	s := serve(t, "--http-addr", "127.0.0.1:0")
	c, err := client.Dial(s.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := optionsRequest(8)
	got, err := c.Score(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := protojson.Marshal(req)
	resp, err := http.Post(s.httpBase(t)+"/plumb.v1.ConfidenceService/Score", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	check := func(span string) {
		t.Helper()
		var attrs map[string]*commonpb.AnyValue
		for deadline := time.Now().Add(15 * time.Second); attrs == nil && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			attrs = rcv.evaluation(span)
		}
		if attrs == nil {
			rcv.mu.Lock()
			var names []string
			for _, s := range rcv.spans {
				names = append(names, s.GetName())
			}
			rcv.mu.Unlock()
			t.Fatalf("no span %q with a gen_ai.evaluation.result event among %v", span, names)
		}
		if attrs["gen_ai.evaluation.name"].GetStringValue() != "plumb.confidence" ||
			math.Abs(attrs["gen_ai.evaluation.score.value"].GetDoubleValue()-got.GetConfidence()) > 1e-12 ||
			attrs["gen_ai.evaluation.score.label"].GetStringValue() != strings.TrimPrefix(got.GetAction().String(), "ACTION_") ||
			attrs["plumb.profile"].GetStringValue() != got.GetProfile().GetName() ||
			attrs["plumb.set.size"].GetIntValue() != int64(len(got.GetPredictionSet().GetAnswers())) {
			t.Errorf("%s: the event says %v; want plumb.confidence %v, %v, profile %q, set size %d", span, attrs,
				got.GetConfidence(), got.GetAction(), got.GetProfile().GetName(), len(got.GetPredictionSet().GetAnswers()))
		}
	}
	check("plumb.v1.ConfidenceService/Score")
	check("POST /plumb.v1.ConfidenceService/Score")
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.svc) == 0 || rcv.svc[0] != "plumb" {
		t.Errorf("resource service.name %v, want plumb", rcv.svc)
	}
}
