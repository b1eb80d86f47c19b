// Package server is plumb's transports: ConfidenceService and ProfileService over gRPC
// (grpc-go, with health and reflection) and over HTTP (connect-go: Connect JSON and binary,
// gRPC-Web and gRPC; the badge and a demo page beside them), with graceful shutdown. The RPCs
// are written once (calls.go, rpcs.go) over the service layer; requests are decoded by
// api.Decode, whose caps bind while it reads; every call passes the same checks on both
// transports (checks.go: metrics and logging, bearer-token auth and roles, rate limit,
// recovery), and every error is classified once (api.FaultOf) and rendered by each transport
// as its own: a gRPC status or a Connect error, both with a google.rpc.BadRequest detail naming
// the field.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"

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
	MaxConnections int // open connections; more wait to be accepted (default 1000)
	// Open connections from one IP address; a further one is closed as it is accepted (default
	// 100; negative: no cap, for a server behind a proxy that all connections come from).
	MaxConnectionsPerAddress int
	MaxStreams               uint32        // concurrent calls on one connection (default 100)
	SendTimeout              time.Duration // how long a stream's responses may stay unread before it is ended (default 30 s)
	// Tracing: a span per call on both transports, with the evaluation event on each Score
	// (TracingFromEnv sets up the provider).
	Tracing bool
	// FeedbackRetention: outcomes fed back longer ago are deleted, hourly (0: 90 days).
	FeedbackRetention time.Duration
	// How long an HTTP request body may send nothing before its call is ended (default 30 s):
	// a body trickled a byte at a time, or a stream that sends nothing, does not hold its
	// connection past it.
	ReceiveTimeout time.Duration
}

// Flow-control windows, fixed (which turns off grpc-go's window growth by bandwidth-delay
// estimate, which lets an unread stream buffer up to 16 MiB), and keepalive.
const (
	StreamWindow = 64 << 10 // bytes of one call's unread requests the server buffers
	ConnWindow   = 1 << 20  // bytes of one connection's unread requests the server buffers
	// A client may ping at most every 15 s (plumb's client pings every 30 s); a connection
	// with no call for 2 minutes is closed (a client reconnects when it next calls); a silent
	// peer is pinged after 1 minute and dropped 20 s later.
	pingMinTime    = 15 * time.Second
	idleTimeout    = 2 * time.Minute
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
	if out.MaxConnectionsPerAddress == 0 {
		out.MaxConnectionsPerAddress = 100
	}
	if out.MaxStreams == 0 {
		out.MaxStreams = 100
	}
	if out.FeedbackRetention == 0 {
		out.FeedbackRetention = 90 * 24 * time.Hour
	}
	if out.ReceiveTimeout == 0 {
		out.ReceiveTimeout = 30 * time.Second
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
		{"--receive-timeout", out.ReceiveTimeout < 0},
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

// Server serves both services over a service.Service, on gRPC and on HTTP.
type Server struct {
	svc      *service.Service
	grpc     *grpc.Server
	health   *health.Server
	dec      *decisions
	monitors *monitorGauges
	calls    calls
	reg      *prometheus.Registry
	cfg      Config

	// lis and httpLis are the listeners being served, which can close a connection.
	lis, httpLis atomic.Pointer[listener]
	// limit is the rate limiter of --rate-limit (nil: none), one for both transports.
	limit *limiter
	// serving is what the health services say: false when the store is away with nothing
	// cached, or once shutting down.
	serving atomic.Bool

	// scoreHook runs before every Score; tests use it to inject a panic.
	scoreHook func()
}

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
		srv.limit = rate.NewLimiter(rate.Limit(cfg.RateLimit), burst)
	}
	srv.calls = newCalls(srv.reg)
	srv.dec = newDecisions(srv.reg)
	srv.monitors = newMonitorGauges(srv.reg)
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
		grpc.StatsHandler(activity{srv}),
		grpc.ChainUnaryInterceptor(srv.unaryInterceptor),
		grpc.ChainStreamInterceptor(srv.streamInterceptor),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(cfg.TLS))
	}
	opts = append(opts, srv.grpcTracing()...)
	srv.grpc = grpc.NewServer(opts...)
	for _, d := range services() {
		srv.grpc.RegisterService(d, srv)
	}
	if cfg.Baseline {
		benchv1.RegisterBaselineServiceServer(srv.grpc, baseline{})
	}
	healthpb.RegisterHealthServer(srv.grpc, srv.health)
	reflection.Register(srv.grpc)
	for _, name := range append(served, Liveness) {
		srv.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return srv, nil
}

// activity tells the gRPC listener which connections have calls in progress, so that shedding at
// the connection cap passes them over.
type activity struct{ s *Server }

func (activity) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (a activity) HandleRPC(ctx context.Context, st stats.RPCStats) {
	var delta int32
	switch st.(type) {
	case *stats.Begin:
		delta = 1
	case *stats.End:
		delta = -1
	default:
		return
	}
	p, ok := peer.FromContext(ctx)
	if l := a.s.lis.Load(); ok && l != nil && p.Addr != nil {
		l.busy(p.Addr.String(), delta)
	}
}

func (activity) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (activity) HandleConn(context.Context, stats.ConnStats) {}

// baseline does nothing with a ScoreRequest: the gRPC floor the Score throughput is measured
// against.
type baseline struct {
	benchv1.UnimplementedBaselineServiceServer
}

func (baseline) Noop(context.Context, *plumbv1.ScoreRequest) (*plumbv1.ScoreResponse, error) {
	return &plumbv1.ScoreResponse{}, nil
}

// Serve serves on lis until ctx is done, then shuts down gracefully: health NOT_SERVING, drain
// in-flight calls for up to ShutdownGrace, then stop.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	l := newListener(lis, s.cfg.MaxConnections, s.cfg.MaxConnectionsPerAddress)
	s.lis.Store(l)
	lis = l
	wctx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	go s.svc.Watch(wctx)
	go s.reportHealth(wctx)
	go s.dropOldFeedback(wctx)
	go s.watchMonitors(wctx)
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
var served = []string{"", plumbv1.ConfidenceService_ServiceDesc.ServiceName, plumbv1.ProfileService_ServiceDesc.ServiceName, plumbv1.MonitorService_ServiceDesc.ServiceName}

// healthEvery is how often the server checks that it can serve.
const healthEvery = time.Second

// dropOldFeedback deletes the outcomes older than FeedbackRetention, at start and hourly, until
// ctx is done.
func (s *Server) dropOldFeedback(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.svc.DropFeedback(ctx, s.cfg.FeedbackRetention); err != nil {
			s.cfg.Logger.Warn("deleting old feedback failed", "err", err)
		} else if n > 0 {
			s.cfg.Logger.Info("deleted old feedback", "outcomes", n, "older than", s.cfg.FeedbackRetention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

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
