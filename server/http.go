package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	connectcors "connectrpc.com/cors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/cors"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/proto/plumb/bench/v1/benchv1connect"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/proto/plumb/v1/plumbv1connect"
	"github.com/plumbhq/plumb/service"
	"github.com/plumbhq/plumb/web"
)

// plumb's HTTP front end, for browsers, curl and anything without gRPC: the same two services
// through connect-go, which speaks the Connect protocol (JSON or binary bodies, unary calls as
// plain POSTs), gRPC-Web and gRPC, on a port of its own (--http-addr), so that grpc-go keeps the
// gRPC port to itself. Calls pass the same checks as on gRPC, in the same order — logging and
// metrics, auth (token and role), rate limit, recovery — and the same limits: the message size,
// connections, concurrent streams, and a send deadline on streams. Errors are Connect errors
// with the same code, message and google.rpc.BadRequest detail as gRPC's.
//
// Beside the API: /healthz (200 while the process answers), /readyz (200 while the health
// services say SERVING), /badge.js (the <plumb-badge> web component) and / (a demo page).

// HTTPHandler returns the HTTP front end's handler.
func (s *Server) HTTPHandler() http.Handler {
	opts := []connect.HandlerOption{
		connect.WithInterceptors(s.httpInterceptor()),
		connect.WithReadMaxBytes(s.cfg.MaxMessageBytes),
		connect.WithSendMaxBytes(s.cfg.MaxMessageBytes),
		connect.WithRecover(func(ctx context.Context, spec connect.Spec, _ http.Header, p any) error {
			s.cfg.Logger.ErrorContext(ctx, "panic in handler", "procedure", spec.Procedure, "panic", fmt.Sprint(p))
			return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error: %v", p))
		}),
	}
	api := connectAPI{s}
	mux := http.NewServeMux()
	mux.Handle(plumbv1connect.NewConfidenceServiceHandler(api, opts...))
	mux.Handle(plumbv1connect.NewProfileServiceHandler(api, opts...))
	if s.cfg.Baseline {
		mux.Handle(benchv1connect.NewBaselineServiceHandler(baselineHTTP{}, opts...))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.serving.Load() {
			http.Error(w, "not serving: the store cannot be reached and no profile is cached, or shutting down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /badge.js", web.Badge())
	mux.Handle("GET /example-request.json", web.ExampleRequest())
	mux.Handle("GET /{$}", web.Demo())
	var h http.Handler = mux
	if len(s.cfg.CORSOrigins) > 0 {
		h = cors.New(cors.Options{
			AllowedOrigins: s.cfg.CORSOrigins,
			AllowedMethods: connectcors.AllowedMethods(),
			AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization"),
			ExposedHeaders: connectcors.ExposedHeaders(),
			MaxAge:         7200,
		}).Handler(h)
	}
	return sendDeadline(h, s.cfg.SendTimeout)
}

// ServeHTTP serves the HTTP front end on lis until ctx is done, then drains for up to
// ShutdownGrace. Connections are capped like gRPC's; HTTP/2 (h2c, or over TLS) carries streams.
func (s *Server) ServeHTTP(ctx context.Context, lis net.Listener) error {
	hs := &http.Server{
		Handler:           s.HTTPHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    headerListSize,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          int(s.cfg.MaxStreams),
			MaxReceiveBufferPerStream:     StreamWindow,
			MaxReceiveBufferPerConnection: ConnWindow,
		},
	}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	hs.Protocols.SetHTTP2(true)
	if s.cfg.HTTPTLS != nil {
		hs.TLSConfig = s.cfg.HTTPTLS.Clone()
	}
	lis = newListener(lis, s.cfg.MaxConnections)
	errc := make(chan error, 1)
	go func() {
		if hs.TLSConfig != nil {
			errc <- hs.ServeTLS(lis, "", "")
		} else {
			errc <- hs.Serve(lis)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// sendDeadline gives every write of a response a deadline of d from its start, so that a stream
// whose caller stops reading ends after d (the HTTP form of --send-timeout).
func sendDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}, r)
	})
}

type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Flush() {
	w.rc.SetWriteDeadline(time.Now().Add(w.d))
	w.rc.Flush()
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// httpCalls counts the HTTP front end's calls, as grpc-go's metrics count the gRPC ones.
type httpCalls struct {
	handled *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

// httpInterceptor checks and records every HTTP call: logging and metrics, auth, rate limit.
func (s *Server) httpInterceptor() connect.Interceptor {
	calls := httpCalls{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plumb_http_handled_total",
			Help: "Calls of the HTTP front end (Connect, gRPC-Web), by procedure and code."}, []string{"procedure", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plumb_http_handling_seconds",
			Help: "How long calls of the HTTP front end took, by procedure.", Buckets: prometheus.DefBuckets}, []string{"procedure"}),
	}
	s.reg.MustRegister(calls.handled, calls.seconds)
	return &httpInterceptor{s: s, calls: calls}
}

type httpInterceptor struct {
	s     *Server
	calls httpCalls
}

// check runs auth and the rate limit for a call of procedure with headers h.
func (i *httpInterceptor) check(procedure string, h http.Header) error {
	if len(i.s.cfg.Tokens) > 0 {
		scheme, tok, ok := strings.Cut(h.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
			return connect.NewError(connect.CodeUnauthenticated, errors.New("a bearer token is required: Authorization: Bearer TOKEN"))
		}
		if err := i.s.permit(tok, procedure); err != nil {
			return connectError(err)
		}
	}
	if i.s.limit != nil {
		if err := i.s.limit.Limit(context.Background()); err != nil {
			return connectError(err)
		}
	}
	return nil
}

// done logs and counts a finished call.
func (i *httpInterceptor) done(ctx context.Context, procedure string, began time.Time, err error) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	i.calls.handled.WithLabelValues(procedure, code).Inc()
	i.calls.seconds.WithLabelValues(procedure).Observe(time.Since(began).Seconds())
	i.s.cfg.Logger.InfoContext(ctx, "finished call", "protocol", "http", "procedure", procedure, "code", code,
		"duration", time.Since(began))
}

func (i *httpInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		began := time.Now()
		resp, err := func() (connect.AnyResponse, error) {
			if err := i.check(req.Spec().Procedure, req.Header()); err != nil {
				return nil, err
			}
			return next(ctx, req)
		}()
		i.done(ctx, req.Spec().Procedure, began, err)
		return resp, err
	}
}

func (i *httpInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *httpInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		began := time.Now()
		err := i.check(conn.Spec().Procedure, conn.RequestHeader())
		if err == nil {
			err = next(ctx, conn)
		}
		i.done(ctx, conn.Spec().Procedure, began, err)
		return err
	}
}

// connectError converts an error of the service (or a gRPC status) to a Connect error with the
// same code, message and details.
func connectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	st, _ := status.FromError(service.Status(err))
	out := connect.NewError(connect.Code(st.Code()), errors.New(st.Message()))
	for _, d := range st.Details() {
		if m, ok := d.(proto.Message); ok {
			if detail, err := connect.NewErrorDetail(m); err == nil {
				out.AddDetail(detail)
			}
		}
	}
	return out
}

// connectAPI implements both services' Connect handlers over the server's service.
type connectAPI struct{ s *Server }

var (
	_ plumbv1connect.ConfidenceServiceHandler = connectAPI{}
	_ plumbv1connect.ProfileServiceHandler    = connectAPI{}
)

func unary[Req, Resp any](ctx context.Context, req *connect.Request[Req], call func(context.Context, *Req) (*Resp, error)) (*connect.Response[Resp], error) {
	resp, err := call(ctx, req.Msg)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(resp), nil
}

func (a connectAPI) Score(ctx context.Context, req *connect.Request[plumbv1.ScoreRequest]) (*connect.Response[plumbv1.ScoreResponse], error) {
	return unary(ctx, req, a.s.score)
}

// ScoreStream answers in order, a refused request with an item error, as on gRPC. (Over HTTP
// the server's write deadline, not a queue, ends a stream whose caller stops reading.)
func (a connectAPI) ScoreStream(ctx context.Context, stream *connect.BidiStream[plumbv1.ScoreRequest, plumbv1.ScoreResponse]) error {
	for {
		r, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := a.s.score(ctx, r)
		if err != nil {
			resp = &plumbv1.ScoreResponse{Id: r.GetId(), Error: service.ItemError(err)}
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// recvOf adapts a Connect client stream to the receive function the gRPC handlers read with.
func recvOf[M any](stream *connect.ClientStream[M]) func() (*M, error) {
	return func() (*M, error) {
		if stream.Receive() {
			return stream.Msg(), nil
		}
		if err := stream.Err(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
}

func (a connectAPI) Fit(ctx context.Context, stream *connect.ClientStream[plumbv1.FitRequest]) (*connect.Response[plumbv1.FitResponse], error) {
	resp, err := configured(ctx, recvOf(stream), (*plumbv1.FitRequest).GetConfig, (*plumbv1.FitRequest).GetExample, "FitConfig", a.s.fit)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(resp), nil
}

func (a connectAPI) Evaluate(ctx context.Context, stream *connect.ClientStream[plumbv1.EvaluateRequest]) (*connect.Response[plumbv1.Report], error) {
	rep, err := configured(ctx, recvOf(stream), (*plumbv1.EvaluateRequest).GetConfig, (*plumbv1.EvaluateRequest).GetExample, "EvaluateConfig", a.s.svc.Evaluate)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(rep), nil
}

func (a connectAPI) GetProfile(ctx context.Context, req *connect.Request[plumbv1.GetProfileRequest]) (*connect.Response[plumbv1.GetProfileResponse], error) {
	return unary(ctx, req, a.s.svc.GetProfile)
}

func (a connectAPI) ListProfiles(ctx context.Context, req *connect.Request[plumbv1.ListProfilesRequest]) (*connect.Response[plumbv1.ListProfilesResponse], error) {
	return unary(ctx, req, a.s.svc.ListProfiles)
}

func (a connectAPI) ActivateProfile(ctx context.Context, req *connect.Request[plumbv1.ActivateProfileRequest]) (*connect.Response[plumbv1.ActivateProfileResponse], error) {
	return unary(ctx, req, a.s.svc.ActivateProfile)
}

func (a connectAPI) DeleteProfile(ctx context.Context, req *connect.Request[plumbv1.DeleteProfileRequest]) (*connect.Response[plumbv1.DeleteProfileResponse], error) {
	return unary(ctx, req, a.s.svc.DeleteProfile)
}

func (a connectAPI) ImportProfile(ctx context.Context, req *connect.Request[plumbv1.ImportProfileRequest]) (*connect.Response[plumbv1.ImportProfileResponse], error) {
	return unary(ctx, req, a.s.svc.ImportProfile)
}

// baselineHTTP is the no-op floor over HTTP, for bench/load.sh.
type baselineHTTP struct{}

func (baselineHTTP) Noop(context.Context, *connect.Request[plumbv1.ScoreRequest]) (*connect.Response[plumbv1.ScoreResponse], error) {
	return connect.NewResponse(&plumbv1.ScoreResponse{}), nil
}

var _ benchv1connect.BaselineServiceHandler = baselineHTTP{}
