package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/plumbhq/plumb/monitor"
	"github.com/plumbhq/plumb/server"
	"github.com/plumbhq/plumb/service"
	"github.com/plumbhq/plumb/store"
)

// plumb serve: the gRPC API, and HTTP, the badge and a demo page with --http-addr.

// serveFlags are plumb serve's flags: the server's whole configuration.
type serveFlags struct {
	addr, httpAddr, metricsAddr, storePath, tokens, cert, key, clientCA, logLevel, readyFile string
	profileFiles, corsOrigins                                                                files
	pgConns, maxMsg, maxConns, perAddr                                                       int
	maxStreams                                                                               uint
	maxStreamBytes                                                                           int64
	pgConnect, pgTimeout, sendTimeout, receiveTimeout, grace, retention                      time.Duration
	receiptKey                                                                               string
	aci                                                                                      bool
	aciStep                                                                                  float64
	rateLimit                                                                                float64
	baseline, insecureNoAuth, metricsPublic                                                  bool
}

func (f *serveFlags) register(fs *flagSet) {
	fs.StringVar(&f.addr, "addr", "localhost:50051", "listen address (port 0 picks a free port); beyond loopback only with --auth-tokens or --insecure-no-auth")
	fs.StringVar(&f.storePath, "store", defaultStore(), "profile store: a bbolt file, or a postgres:// URL that several replicas share ($PLUMB_STORE)")
	fs.Var(&f.profileFiles, "profile-file", "serve this exported profile (repeatable), read-only, with no store")
	fs.IntVar(&f.pgConns, "pg-max-conns", 8, "with a postgres:// store: connections in the pool")
	fs.DurationVar(&f.pgConnect, "pg-connect-timeout", 5*time.Second, "with a postgres:// store: how long to wait for a connection to open")
	fs.DurationVar(&f.pgTimeout, "pg-timeout", 5*time.Second, "with a postgres:// store: how long one store operation may take")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address (e.g. localhost:9090); beyond loopback only with --metrics-public")
	fs.BoolVar(&f.metricsPublic, "metrics-public", false, "let --metrics-addr listen beyond loopback: anyone who reaches it reads the profile names and the decisions counted")
	fs.StringVar(&f.httpAddr, "http-addr", "", "also serve HTTP (Connect JSON/binary, gRPC-Web), the badge and a demo page on this address (e.g. localhost:8080)")
	fs.Var(&f.corsOrigins, "cors-origin", "an origin browsers may call the HTTP endpoint from (repeatable; * for any)")
	fs.StringVar(&f.tokens, "auth-tokens", "", "file of accepted bearer tokens, a line each: \"score TOKEN\" or \"admin TOKEN\"; without it every call is open, and the server listens on loopback only")
	fs.BoolVar(&f.insecureNoAuth, "insecure-no-auth", false, "listen beyond loopback without --auth-tokens: anyone who reaches the port may fit, activate and delete profiles")
	fs.StringVar(&f.cert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&f.key, "tls-key", "", "TLS key file (PEM)")
	fs.StringVar(&f.clientCA, "client-ca", "", "require client certificates signed by the CAs in this PEM file (mutual TLS; needs --tls-cert)")
	fs.Float64Var(&f.rateLimit, "rate-limit", 0, "requests per second across the server (0: unlimited)")
	fs.IntVar(&f.maxMsg, "max-message-bytes", 16<<20, "largest request message")
	fs.IntVar(&f.maxConns, "max-connections", 1000, "open connections at most; more wait to be accepted")
	fs.IntVar(&f.perAddr, "max-connections-per-address", 100, "open connections from one IP address at most; more are closed at once (0: no cap, behind a proxy)")
	fs.UintVar(&f.maxStreams, "max-streams", 100, "concurrent calls on one connection at most")
	fs.DurationVar(&f.sendTimeout, "send-timeout", 30*time.Second, "end a ScoreStream whose responses stay unread this long")
	fs.DurationVar(&f.receiveTimeout, "receive-timeout", 30*time.Second, "end an HTTP call whose request body sends nothing this long")
	fs.Int64Var(&f.maxStreamBytes, "max-stream-bytes", 1<<30, "memory one Fit or Evaluate may hold for its examples (0: no cap)")
	fs.DurationVar(&f.grace, "shutdown-grace", 10*time.Second, "how long to drain in-flight calls on SIGTERM")
	fs.StringVar(&f.receiptKey, "receipt-key-file", "", "sign a receipt into every Score response with the key in this file (≥ 32 bytes; replicas share it), and take outcomes back by receipt (MonitorService)")
	fs.BoolVar(&f.aci, "aci", false, "adaptive conformal inference: serve each profile version × segment's sets at a threshold the outcomes fed back move, so that coverage holds when the data drift (needs --receipt-key-file)")
	fs.Float64Var(&f.aciStep, "aci-step", 0.02, "with --aci: the step γ of the threshold per outcome")
	fs.DurationVar(&f.retention, "feedback-retention", 90*24*time.Hour, "delete outcomes fed back longer ago than this (checked hourly)")
	fs.BoolVar(&f.baseline, "baseline", false, "also serve plumb.bench.v1.BaselineService/Noop, the no-op floor of bench/load.sh")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info (one line per call), warn or error")
	fs.StringVar(&f.readyFile, "ready-file", "", "once serving, write the addresses served here (a line each: grpc ADDR, http URL, metrics URL), for scripts to wait on")
}

// config checks the flags and returns the server's configuration and logger.
func (f *serveFlags) config(std stdio) (server.Config, *slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return server.Config{}, nil, usageError("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	for _, c := range []struct {
		name  string
		ok    bool
		value any
	}{
		{"--max-message-bytes", f.maxMsg > 0, f.maxMsg}, {"--max-connections", f.maxConns > 0, f.maxConns},
		{"--max-connections-per-address", f.perAddr >= 0, f.perAddr},
		{"--max-streams", f.maxStreams > 0 && f.maxStreams <= 1<<20, f.maxStreams}, {"--send-timeout", f.sendTimeout > 0, f.sendTimeout},
		{"--receive-timeout", f.receiveTimeout > 0, f.receiveTimeout},
		{"--max-stream-bytes", f.maxStreamBytes >= 0, f.maxStreamBytes}, {"--shutdown-grace", f.grace >= 0, f.grace},
		{"--rate-limit", f.rateLimit >= 0, f.rateLimit}, {"--pg-max-conns", f.pgConns > 0 && f.pgConns <= 10000, f.pgConns},
		{"--pg-connect-timeout", f.pgConnect > 0, f.pgConnect}, {"--pg-timeout", f.pgTimeout > 0, f.pgTimeout},
	} {
		if !c.ok {
			return server.Config{}, nil, usageError("%s %v: out of range", c.name, c.value)
		}
	}
	logger := slog.New(slog.NewTextHandler(std.err, &slog.HandlerOptions{Level: level}))
	cfg := server.Config{MaxMessageBytes: f.maxMsg, RateLimit: f.rateLimit, ShutdownGrace: f.grace, Baseline: f.baseline, Logger: logger,
		MaxConnections: f.maxConns, MaxConnectionsPerAddress: perAddress(f.perAddr), MaxStreams: uint32(f.maxStreams), SendTimeout: f.sendTimeout,
		ReceiveTimeout: f.receiveTimeout}
	if f.tokens != "" {
		toks, warnings, err := server.ReadTokens(f.tokens)
		if err != nil {
			return cfg, nil, fmt.Errorf("--auth-tokens: %w", err)
		}
		for _, w := range warnings {
			logger.Warn(w)
		}
		cfg.Tokens = toks
	}
	if err := f.exposure(len(cfg.Tokens) > 0); err != nil {
		return cfg, nil, err
	}
	if (f.cert == "") != (f.key == "") {
		return cfg, nil, usageError("--tls-cert and --tls-key go together")
	}
	if f.clientCA != "" && f.cert == "" {
		return cfg, nil, usageError("--client-ca needs --tls-cert and --tls-key")
	}
	if f.cert != "" {
		tc, err := server.TLSConfig(f.cert, f.key, f.clientCA)
		if err != nil {
			return cfg, nil, err
		}
		cfg.TLS, cfg.HTTPTLS = credentials.NewTLS(tc), tc
	}
	for _, o := range f.corsOrigins {
		cfg.CORSOrigins = append(cfg.CORSOrigins, strings.Split(o, ",")...)
	}
	if len(cfg.CORSOrigins) > 0 && f.httpAddr == "" {
		return cfg, nil, usageError("--cors-origin needs --http-addr")
	}
	return cfg, logger, nil
}

// exposure refuses an API address beyond loopback when every call would be open: without
// tokens, the server answers Fit, Activate, Delete and Import to anyone who reaches the port,
// so it listens beyond this machine only when told so by name (--insecure-no-auth).
func (f *serveFlags) exposure(tokens bool) error {
	if f.metricsAddr != "" && !f.metricsPublic && !loopbackAddr(f.metricsAddr) {
		return usageError("--metrics-addr %s listens beyond this machine, and /metrics has no auth: it lists the profile names and the decisions counted; "+
			"give --metrics-public to do it anyway (a scraper in a cluster), or listen on localhost", f.metricsAddr)
	}
	if tokens || f.insecureNoAuth {
		return nil
	}
	for _, a := range []struct{ flag, addr string }{{"--addr", f.addr}, {"--http-addr", f.httpAddr}} {
		if a.addr != "" && !loopbackAddr(a.addr) {
			return usageError("%s %s listens beyond this machine, and without --auth-tokens every call is open to anyone who reaches it "+
				"(fits, activations, deletions): give --auth-tokens FILE (see README \"Tokens and roles\"), or --insecure-no-auth to do it anyway, "+
				"or listen on localhost", a.flag, a.addr)
		}
	}
	return nil
}

// loopbackAddr reports whether a listen address (host:port) is this machine's alone: localhost
// or a loopback IP. An empty host (":50051") is every interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && loopbackHost(host)
}

// openStore opens the store the flags name: exported profile files, read-only, or a store.
func (f *serveFlags) openStore(ctx context.Context, explicitStore bool) (store.Store, string, error) {
	if len(f.profileFiles) == 0 {
		if err := ensureStoreDir(f.storePath); err != nil {
			return nil, "", err
		}
		st, err := store.OpenAny(ctx, f.storePath, store.PostgresConfig{MaxConns: int32(f.pgConns), ConnectTimeout: f.pgConnect, Timeout: f.pgTimeout})
		return st, store.Redact(f.storePath), err
	}
	if explicitStore {
		return nil, "", usageError("--profile-file serves profiles with no store: give --store or --profile-file, not both")
	}
	ro, err := service.ReadProfileFiles(f.profileFiles)
	if err != nil {
		return nil, "", err
	}
	return ro, fmt.Sprintf("%d profile files, read-only", len(f.profileFiles)), nil
}

func cmdServe(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("serve", std)
	var f serveFlags
	f.register(fs)
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("serve takes no arguments, only flags: %q", pos[0])
	}
	cfg, logger, err := f.config(std)
	if err != nil {
		return err
	}
	// The addresses first: a busy one fails before a store file is made.
	lis, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	defer lis.Close()
	var httpLis net.Listener
	if f.httpAddr != "" {
		if httpLis, err = net.Listen("tcp", f.httpAddr); err != nil {
			return fmt.Errorf("--http-addr: %w", err)
		}
		defer httpLis.Close()
	}
	st, storeName, err := f.openStore(ctx, fs.given("store"))
	if err != nil {
		return err
	}
	defer st.Close()
	opts := []service.Option{service.MaxStreamBytes(f.maxStreamBytes)}
	if f.receiptKey != "" {
		key, err := monitor.ReadKeyFile(f.receiptKey)
		if err != nil {
			return fmt.Errorf("--receipt-key-file: %w", err)
		}
		signer, err := monitor.NewSigner(key)
		if err != nil {
			return usageError("--receipt-key-file %s: %v", f.receiptKey, err)
		}
		opts = append(opts, service.Receipts(signer))
	}
	if f.aci {
		if f.receiptKey == "" {
			return usageError("--aci moves thresholds by the outcomes fed back: it needs --receipt-key-file")
		}
		if !(f.aciStep > 0 && f.aciStep <= 0.5) {
			return usageError("--aci-step %v: want a step in (0, 0.5]", f.aciStep)
		}
		opts = append(opts, service.ACI(f.aciStep))
	}
	cfg.FeedbackRetention = f.retention
	tracing, stopTracing, err := server.TracingFromEnv(ctx)
	if err != nil {
		return fmt.Errorf("OpenTelemetry: %w", err)
	}
	if tracing {
		cfg.Tracing = true
		fmt.Fprintln(std.err, "plumb: tracing to the OTLP endpoint of OTEL_EXPORTER_OTLP_*")
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			stopTracing(sctx) // flush what is batched
		}()
	}
	srv, err := server.New(service.New(st, opts...), cfg)
	if err != nil {
		return err
	}
	ready := []string{"grpc " + lis.Addr().String()}
	if f.metricsAddr != "" {
		ml, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", srv.MetricsHandler())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ml)
		defer hs.Close()
		fmt.Fprintf(std.err, "plumb: metrics on http://%s/metrics\n", ml.Addr())
		ready = append(ready, "metrics http://"+ml.Addr().String()+"/metrics")
	}
	if httpLis != nil {
		httpErr := make(chan error, 1)
		go func() { httpErr <- srv.ServeHTTP(ctx, httpLis) }()
		defer func() {
			if err := <-httpErr; err != nil {
				fmt.Fprintln(std.err, "plumb: http:", err)
			}
		}()
		scheme := "http"
		if cfg.HTTPTLS != nil {
			scheme = "https"
		}
		fmt.Fprintf(std.err, "plumb: HTTP on %s://%s (the demo page, /badge.js, Connect and gRPC-Web)\n", scheme, httpLis.Addr())
		ready = append(ready, "http "+scheme+"://"+httpLis.Addr().String())
	}
	if len(cfg.Tokens) == 0 {
		logger.Warn("no --auth-tokens: every call is open to whoever reaches the ports, fits and deletions included")
	}
	fmt.Fprintf(std.err, "plumb: serving on %s (store %s)\n", lis.Addr(), storeName)
	if f.readyFile != "" {
		if err := os.WriteFile(f.readyFile, []byte(strings.Join(ready, "\n")+"\n"), 0o644); err != nil {
			return fmt.Errorf("--ready-file: %w", err)
		}
	}
	return srv.Serve(ctx, lis)
}

// files is a repeatable flag of file names.
type files []string

func (f *files) String() string { return strings.Join(*f, ",") }

func (f *files) Set(v string) error {
	*f = append(*f, v)
	return nil
}

// perAddress maps the flag's 0 (no cap) to the server's negative.
func perAddress(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
