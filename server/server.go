// Package server is plumb's gRPC transport: ConfidenceService and ProfileService handlers over
// the service layer (package service, which maps every error to a status with the field at
// fault), grpc health and reflection, the go-grpc-middleware v2 interceptor chain (Prometheus
// metrics → slog logging → bearer-token auth → rate limit → recovery) and graceful shutdown.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/plumbhq/plumb/calibrate"
	benchv1 "github.com/plumbhq/plumb/proto/plumb/bench/v1"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
)

// Config is the server's configuration; cmd/plumb fills it from flags. Zero values mean the
// defaults.
type Config struct {
	MaxMessageBytes int                              // largest request message (default 16 MiB)
	Tokens          []Token                          // accepted bearer tokens and their roles; none means no auth
	RateLimit       float64                          // requests per second across the server (default 0: unlimited)
	RateBurst       int                              // burst of the rate limiter (default 2× RateLimit, at least 1)
	Logger          *slog.Logger                     // default slog.Default()
	TLS             credentials.TransportCredentials // nil: plaintext
	HTTPTLS         *tls.Config                      // the HTTP front end's TLS (nil: plaintext, h2c)
	CORSOrigins     []string                         // origins browsers may call the HTTP front end from ("*": any)
	ShutdownGrace   time.Duration                    // how long GracefulStop may drain before Stop (default 10 s)
	// Baseline registers plumb.bench.v1.BaselineService, the no-op floor of bench/load.sh.
	Baseline bool

	// Limits of what callers may hold (docs/DESIGN.md "Limits"). A stream that does not read
	// holds at most a stream window of requests and a write quota of responses (64 KiB each)
	// until SendTimeout ends it; a connection at most ConnWindow of unread requests.
	MaxConnections int           // open connections; more wait to be accepted (default 1000)
	MaxStreams     uint32        // concurrent calls on one connection (default 100)
	SendTimeout    time.Duration // how long a stream's responses may stay unread before it is ended (default 30 s)
}

// Flow-control windows, fixed (which turns off grpc-go's window growth by bandwidth-delay
// estimate, which lets an unread stream buffer up to 16 MiB), and keepalive.
const (
	StreamWindow = 64 << 10 // bytes of one call's unread requests the server buffers
	ConnWindow   = 1 << 20  // bytes of one connection's unread requests the server buffers
	// A client may ping at most every 15 s (plumb's client pings every 30 s); a connection
	// idle for 15 minutes is closed; a silent peer is pinged after 1 minute and dropped 20 s
	// later.
	pingMinTime    = 15 * time.Second
	idleTimeout    = 15 * time.Minute
	pingTime       = time.Minute
	pingTimeout    = 20 * time.Second
	headerListSize = 64 << 10 // bytes of request metadata
	handshake      = 20 * time.Second
	// streamQueue is how many responses of a ScoreStream wait for the sender.
	streamQueue = 16
)

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.MaxMessageBytes == 0 {
		out.MaxMessageBytes = 16 << 20
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.ShutdownGrace == 0 {
		out.ShutdownGrace = 10 * time.Second
	}
	if out.MaxConnections == 0 {
		out.MaxConnections = 1000
	}
	if out.MaxStreams == 0 {
		out.MaxStreams = 100
	}
	if out.SendTimeout == 0 {
		out.SendTimeout = 30 * time.Second
	}
	for _, bad := range []struct {
		flag string
		bad  bool
	}{
		{"--max-message-bytes", out.MaxMessageBytes < 0},
		{"--max-connections", out.MaxConnections < 0},
		{"--send-timeout", out.SendTimeout < 0},
		{"--shutdown-grace", out.ShutdownGrace < 0},
		{"--rate-limit", out.RateLimit < 0},
	} {
		if bad.bad {
			return out, fmt.Errorf("%s: must be positive", bad.flag)
		}
	}
	for i, t := range out.Tokens {
		if t.Value == "" || t.Role != RoleScore && t.Role != RoleAdmin {
			return out, fmt.Errorf("token %d: an empty token or an unknown role", i)
		}
	}
	return out, nil
}

// Server implements both services over a service.Service.
type Server struct {
	plumbv1.UnimplementedConfidenceServiceServer
	plumbv1.UnimplementedProfileServiceServer

	svc     *service.Service
	grpc    *grpc.Server
	health  *health.Server
	metrics *grpcprom.ServerMetrics
	dec     *decisions
	reg     *prometheus.Registry
	cfg     Config

	// lis is the listener being served, which can close a connection.
	lis atomic.Pointer[listener]
	// limit is the rate limiter of --rate-limit (nil: none).
	limit *limiter
	// serving is what the health services say: false when the store is away with nothing
	// cached, or once shutting down.
	serving atomic.Bool

	// scoreHook runs before every Score; tests use it to inject a panic.
	scoreHook func()
}

var (
	_ plumbv1.ConfidenceServiceServer = (*Server)(nil)
	_ plumbv1.ProfileServiceServer    = (*Server)(nil)
)

// New builds a server over svc; the error names a bad setting. Tokens without TLS draw a
// warning in the log: anyone on the path can read them.
func New(svc *service.Service, cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(cfg.Tokens) > 0 && cfg.TLS == nil {
		cfg.Logger.Warn("bearer tokens travel in plaintext: serve with --tls-cert and --tls-key, or behind a proxy that terminates TLS on this host")
	}
	srv := &Server{svc: svc, cfg: cfg, health: health.NewServer(), reg: prometheus.NewRegistry()}
	if cfg.RateLimit > 0 {
		burst := cfg.RateBurst
		if burst <= 0 {
			burst = max(1, int(2*cfg.RateLimit))
		}
		// One limiter for gRPC and HTTP: the rate is the server's.
		srv.limit = &limiter{rate.NewLimiter(rate.Limit(cfg.RateLimit), burst)}
	}
	srv.metrics = grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	srv.reg.MustRegister(srv.metrics)
	srv.dec = newDecisions(srv.reg)
	srv.serving.Store(true)
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.ForceServerCodecV2(newCodec()),
		grpc.MaxConcurrentStreams(cfg.MaxStreams),
		grpc.InitialWindowSize(StreamWindow),
		grpc.InitialConnWindowSize(ConnWindow),
		grpc.MaxHeaderListSize(headerListSize),
		grpc.ConnectionTimeout(handshake),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: pingMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: idleTimeout, Time: pingTime, Timeout: pingTimeout}),
	}
	opts = append(opts, srv.interceptors()...)
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(cfg.TLS))
	}
	srv.grpc = grpc.NewServer(opts...)
	plumbv1.RegisterConfidenceServiceServer(srv.grpc, srv)
	plumbv1.RegisterProfileServiceServer(srv.grpc, srv)
	if cfg.Baseline {
		benchv1.RegisterBaselineServiceServer(srv.grpc, baseline{})
	}
	healthpb.RegisterHealthServer(srv.grpc, srv.health)
	reflection.Register(srv.grpc)
	srv.metrics.InitializeMetrics(srv.grpc)
	for _, name := range append(served, Liveness) {
		srv.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return srv, nil
}

// baseline does nothing with a ScoreRequest: the gRPC floor the Score throughput is measured
// against.
type baseline struct {
	benchv1.UnimplementedBaselineServiceServer
}

func (baseline) Noop(context.Context, *plumbv1.ScoreRequest) (*plumbv1.ScoreResponse, error) {
	return &plumbv1.ScoreResponse{}, nil
}

// needsToken reports whether a method needs a bearer token: all but health and reflection.
func needsToken(_ context.Context, c interceptors.CallMeta) bool {
	return !strings.HasPrefix(c.Service, "grpc.health.") && !strings.HasPrefix(c.Service, "grpc.reflection.")
}

// interceptors builds the chain in the order docs/DESIGN.md gives: metrics → logging → decode
// check (a request that did not decode is InvalidArgument) → auth (token, then role) → rate
// limit → recovery (innermost, so a handler's panic becomes codes.Internal before anything else
// sees it).
func (s *Server) interceptors() []grpc.ServerOption {
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		s.cfg.Logger.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	recoveryOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		s.cfg.Logger.ErrorContext(ctx, "panic in handler", "panic", fmt.Sprint(p))
		return status.Errorf(codes.Internal, "internal error: %v", p)
	})
	unary := []grpc.UnaryServerInterceptor{
		s.metrics.UnaryServerInterceptor(),
		logging.UnaryServerInterceptor(logger, logOpts...),
		checkDecoded,
	}
	stream := []grpc.StreamServerInterceptor{
		s.metrics.StreamServerInterceptor(),
		logging.StreamServerInterceptor(logger, logOpts...),
		checkDecodedStream,
	}
	if len(s.cfg.Tokens) > 0 {
		unary = append(unary, selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(s.authorize), selector.MatchFunc(needsToken)))
		stream = append(stream, selector.StreamServerInterceptor(auth.StreamServerInterceptor(s.authorize), selector.MatchFunc(needsToken)))
	}
	if s.limit != nil {
		unary = append(unary, ratelimit.UnaryServerInterceptor(s.limit))
		stream = append(stream, ratelimit.StreamServerInterceptor(s.limit))
	}
	unary = append(unary, recovery.UnaryServerInterceptor(recoveryOpt))
	stream = append(stream, recovery.StreamServerInterceptor(recoveryOpt))
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...)}
}

type limiter struct{ l *rate.Limiter }

func (l *limiter) Limit(context.Context) error {
	if !l.l.Allow() {
		return status.Error(codes.ResourceExhausted, "rate limit exceeded: retry later")
	}
	return nil
}

// Serve serves on lis until ctx is done, then shuts down gracefully: health NOT_SERVING, drain
// in-flight calls for up to ShutdownGrace, then stop.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	l := newListener(lis, s.cfg.MaxConnections)
	s.lis.Store(l)
	lis = l
	wctx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	go s.svc.Watch(wctx)
	go s.reportHealth(wctx)
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.Shutdown()
	if err := <-errc; !errors.Is(err, grpc.ErrServerStopped) {
		return err // nil after a graceful stop
	}
	return nil // stopped before Serve began
}

// Liveness is the health service that is SERVING as long as the process answers (until it
// shuts down): what a liveness probe should check, so that a database outage, which makes the
// other services NOT_SERVING when nothing is cached, restarts nothing.
const Liveness = "liveness"

// served are the health services that say whether the server can serve: the server as a whole
// ("") and each of its services.
var served = []string{"", plumbv1.ConfidenceService_ServiceDesc.ServiceName, plumbv1.ProfileService_ServiceDesc.ServiceName}

// healthEvery is how often the server checks that it can serve.
const healthEvery = time.Second

// reportHealth sets the health of every service, every second until ctx is done: SERVING while
// the store answers or, when it does not, while the cache holds profiles to serve.
func (s *Server) reportHealth(ctx context.Context) {
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	serving := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, healthEvery)
		now := s.svc.Serving(pctx)
		cancel()
		if now == serving || ctx.Err() != nil {
			continue
		}
		serving = now
		s.serving.Store(now)
		st := healthpb.HealthCheckResponse_SERVING
		if !now {
			st = healthpb.HealthCheckResponse_NOT_SERVING
			s.cfg.Logger.Warn("NOT_SERVING: the store cannot be reached and no profile is cached")
		} else {
			s.cfg.Logger.Info("SERVING again")
		}
		for _, name := range served {
			s.health.SetServingStatus(name, st)
		}
	}
}

// Shutdown marks every service NOT_SERVING, then stops gracefully, forcing a stop after the
// grace period.
func (s *Server) Shutdown() {
	s.serving.Store(false)
	s.health.Shutdown()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownGrace):
		s.grpc.Stop()
	}
}

// MetricsHandler serves the Prometheus metrics.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
}

// Score implements ConfidenceService.Score.
func (s *Server) Score(ctx context.Context, r *plumbv1.ScoreRequest) (*plumbv1.ScoreResponse, error) {
	resp, err := s.score(ctx, r)
	return resp, service.Status(err)
}

// score scores one request for either front end, and counts what was decided.
func (s *Server) score(ctx context.Context, r *plumbv1.ScoreRequest) (*plumbv1.ScoreResponse, error) {
	if s.scoreHook != nil {
		s.scoreHook()
	}
	resp, err := s.svc.Score(ctx, r)
	if err == nil {
		s.dec.scored(resp)
	}
	return resp, err
}

// fit fits for either front end, and counts the outcome.
func (s *Server) fit(ctx context.Context, cfg *plumbv1.FitConfig, exs iter.Seq2[*plumbv1.LabeledExample, error]) (*plumbv1.FitResponse, error) {
	began := time.Now()
	resp, err := s.svc.Fit(ctx, cfg, exs)
	s.dec.fitted(resp, status.Code(service.Status(err)), began)
	return resp, err
}

// ScoreStream implements ConfidenceService.ScoreStream: in order, ids echoed, a bad request
// answered with an ItemError while the stream goes on. Responses go out through a sender
// goroutine and a short queue; a caller that leaves them unread for SendTimeout while the
// queue is full has its stream ended (ResourceExhausted), which frees what it held.
func (s *Server) ScoreStream(stream grpc.BidiStreamingServer[plumbv1.ScoreRequest, plumbv1.ScoreResponse]) error {
	ctx := stream.Context()
	queue := make(chan *plumbv1.ScoreResponse, streamQueue)
	stop := make(chan struct{})
	sent := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				sent <- nil
				return
			case resp, ok := <-queue:
				if !ok {
					sent <- nil
					return
				}
				if err := stream.Send(resp); err != nil {
					sent <- err
					return
				}
			}
		}
	}()
	timer := time.NewTimer(s.cfg.SendTimeout)
	defer timer.Stop()
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
		}
	}
	// unread ends the stream of a caller that has left its responses unread for SendTimeout.
	// The sender may be blocked in Send, and grpc-go's trailers would wait behind the data the
	// caller does not let through: closing the caller's connection frees all of it.
	unread := func() error {
		halt()
		if p, ok := peer.FromContext(ctx); ok {
			if l := s.lis.Load(); l != nil && l.cut(p.Addr.String()) {
				s.cfg.Logger.Warn("closed a connection whose ScoreStream left responses unread", "peer", p.Addr.String(), "for", s.cfg.SendTimeout)
			}
		}
		return status.Errorf(codes.ResourceExhausted, "responses left unread for %v: read them as they come (the connection is closed)", s.cfg.SendTimeout)
	}
	// wait waits for the sender to finish, for at most SendTimeout.
	wait := func() error {
		timer.Reset(s.cfg.SendTimeout)
		select {
		case err := <-sent:
			return err
		case <-timer.C:
			return unread()
		}
	}
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			close(queue) // the sender sends what is queued, then ends
			return wait()
		}
		var resp *plumbv1.ScoreResponse
		switch {
		case status.Code(err) == codes.InvalidArgument:
			// A request that does not decode is answered like any refused one, without its id.
			resp = &plumbv1.ScoreResponse{Error: service.ItemError(err)}
		case err != nil:
			halt()
			wait()
			return err
		default:
			if resp, err = s.score(ctx, r); err != nil {
				resp = &plumbv1.ScoreResponse{Id: r.GetId(), Error: service.ItemError(err)}
			}
		}
		select {
		case queue <- resp:
			continue
		case err := <-sent:
			return err // the sender failed: the stream is broken
		default:
		}
		// The queue is full: the caller is not reading as fast as it sends.
		timer.Reset(s.cfg.SendTimeout)
		select {
		case queue <- resp:
		case err := <-sent:
			return err
		case <-timer.C:
			return unread()
		}
	}
}

// configured runs a Fit or Evaluate client stream on either front end: the config its first
// message must carry (InvalidArgument without one), then the labelled examples of the messages
// that follow, handed to run as they arrive; a second config is an error of its message.
func configured[M, C, R any](ctx context.Context, recv func() (*M, error), config func(*M) *C, example func(*M) *plumbv1.LabeledExample,
	what string, run func(context.Context, *C, iter.Seq2[*plumbv1.LabeledExample, error]) (*R, error)) (*R, error) {
	first, err := recv()
	if err != nil && err != io.EOF {
		return nil, err
	}
	var cfg *C
	if err == nil {
		cfg = config(first)
	}
	if cfg == nil {
		return nil, status.Errorf(codes.InvalidArgument, "config: the first message must be a %s", what)
	}
	exs := func(yield func(*plumbv1.LabeledExample, error) bool) {
		for i := 1; ; i++ {
			m, err := recv()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if config(m) != nil {
				yield(nil, &calibrate.Error{Kind: calibrate.InvalidInput, Field: fmt.Sprintf("messages[%d]", i), Msg: "a config after the first message; send it once, first"})
				return
			}
			if !yield(example(m), nil) {
				return
			}
		}
	}
	return run(ctx, cfg, exs)
}

// Fit implements ProfileService.Fit.
func (s *Server) Fit(stream grpc.ClientStreamingServer[plumbv1.FitRequest, plumbv1.FitResponse]) error {
	resp, err := configured(stream.Context(), stream.Recv, (*plumbv1.FitRequest).GetConfig, (*plumbv1.FitRequest).GetExample, "FitConfig", s.fit)
	if err != nil {
		return service.Status(err)
	}
	return stream.SendAndClose(resp)
}

// Evaluate implements ProfileService.Evaluate.
func (s *Server) Evaluate(stream grpc.ClientStreamingServer[plumbv1.EvaluateRequest, plumbv1.Report]) error {
	rep, err := configured(stream.Context(), stream.Recv, (*plumbv1.EvaluateRequest).GetConfig, (*plumbv1.EvaluateRequest).GetExample, "EvaluateConfig", s.svc.Evaluate)
	if err != nil {
		return service.Status(err)
	}
	return stream.SendAndClose(rep)
}

// GetProfile implements ProfileService.GetProfile.
func (s *Server) GetProfile(ctx context.Context, r *plumbv1.GetProfileRequest) (*plumbv1.GetProfileResponse, error) {
	resp, err := s.svc.GetProfile(ctx, r)
	return resp, service.Status(err)
}

// ListProfiles implements ProfileService.ListProfiles.
func (s *Server) ListProfiles(ctx context.Context, r *plumbv1.ListProfilesRequest) (*plumbv1.ListProfilesResponse, error) {
	resp, err := s.svc.ListProfiles(ctx, r)
	return resp, service.Status(err)
}

// ActivateProfile implements ProfileService.ActivateProfile.
func (s *Server) ActivateProfile(ctx context.Context, r *plumbv1.ActivateProfileRequest) (*plumbv1.ActivateProfileResponse, error) {
	resp, err := s.svc.ActivateProfile(ctx, r)
	return resp, service.Status(err)
}

// DeleteProfile implements ProfileService.DeleteProfile.
func (s *Server) DeleteProfile(ctx context.Context, r *plumbv1.DeleteProfileRequest) (*plumbv1.DeleteProfileResponse, error) {
	resp, err := s.svc.DeleteProfile(ctx, r)
	return resp, service.Status(err)
}

// ImportProfile implements ProfileService.ImportProfile.
func (s *Server) ImportProfile(ctx context.Context, r *plumbv1.ImportProfileRequest) (*plumbv1.ImportProfileResponse, error) {
	resp, err := s.svc.ImportProfile(ctx, r)
	return resp, service.Status(err)
}
