package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/plumbhq/plumb/server"
	"github.com/plumbhq/plumb/service"
	"github.com/plumbhq/plumb/store"
	"google.golang.org/grpc/credentials"
)

func cmdServe(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("serve", std)
	addr := fs.String("addr", "localhost:50051", "listen address (port 0 picks a free port)")
	storePath := fs.String("store", envOr("PLUMB_STORE", "plumb.db"), "profile store: a bbolt file, or a postgres:// URL that several replicas share ($PLUMB_STORE)")
	var profileFiles files
	fs.Var(&profileFiles, "profile-file", "serve this exported profile (repeatable), read-only, with no store")
	pgConns := fs.Int("pg-max-conns", 8, "with a postgres:// store: connections in the pool")
	pgConnect := fs.Duration("pg-connect-timeout", 5*time.Second, "with a postgres:// store: how long to wait for a connection to open")
	pgTimeout := fs.Duration("pg-timeout", 5*time.Second, "with a postgres:// store: how long one store operation may take")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics on this address (e.g. localhost:9090)")
	httpAddr := fs.String("http-addr", "", "also serve HTTP (Connect JSON/binary, gRPC-Web), the badge and a demo page on this address (e.g. localhost:8080)")
	var corsOrigins files
	fs.Var(&corsOrigins, "cors-origin", "an origin browsers may call the HTTP endpoint from (repeatable; * for any)")
	tokens := fs.String("auth-tokens", "", "file of accepted bearer tokens, a line each: \"score TOKEN\" or \"admin TOKEN\"; none means no auth")
	cert := fs.String("tls-cert", "", "TLS certificate file (PEM)")
	key := fs.String("tls-key", "", "TLS key file (PEM)")
	clientCA := fs.String("client-ca", "", "require client certificates signed by the CAs in this PEM file (mutual TLS; needs --tls-cert)")
	rateLimit := fs.Float64("rate-limit", 0, "requests per second across the server (0: unlimited)")
	maxMsg := fs.Int("max-message-bytes", 16<<20, "largest request message")
	maxConns := fs.Int("max-connections", 1000, "open connections at most; more wait to be accepted")
	maxStreams := fs.Uint("max-streams", 100, "concurrent calls on one connection at most")
	sendTimeout := fs.Duration("send-timeout", 30*time.Second, "end a ScoreStream whose responses stay unread this long")
	maxStreamBytes := fs.Int64("max-stream-bytes", 1<<30, "memory one Fit or Evaluate may hold for its examples (0: no cap)")
	grace := fs.Duration("shutdown-grace", 10*time.Second, "how long to drain in-flight calls on SIGTERM")
	baseline := fs.Bool("baseline", false, "also serve plumb.bench.v1.BaselineService/Noop, the no-op floor of bench/load.sh")
	logLevel := fs.String("log-level", "info", "debug, info (one line per call), warn or error")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"--max-message-bytes", *maxMsg > 0}, {"--max-connections", *maxConns > 0}, {"--max-streams", *maxStreams > 0 && *maxStreams <= 1<<20},
		{"--send-timeout", *sendTimeout > 0}, {"--max-stream-bytes", *maxStreamBytes >= 0}, {"--shutdown-grace", *grace >= 0}, {"--rate-limit", *rateLimit >= 0},
		{"--pg-max-conns", *pgConns > 0 && *pgConns <= 10000}, {"--pg-connect-timeout", *pgConnect > 0}, {"--pg-timeout", *pgTimeout > 0},
	} {
		if !f.ok {
			return fmt.Errorf("%s %s: out of range", f.name, fs.Lookup(strings.TrimPrefix(f.name, "--")).Value)
		}
	}
	logger := slog.New(slog.NewTextHandler(std.err, &slog.HandlerOptions{Level: level}))
	cfg := server.Config{MaxMessageBytes: *maxMsg, RateLimit: *rateLimit, ShutdownGrace: *grace, Baseline: *baseline, Logger: logger,
		MaxConnections: *maxConns, MaxStreams: uint32(*maxStreams), SendTimeout: *sendTimeout}
	if *tokens != "" {
		toks, warnings, err := server.ReadTokens(*tokens)
		if err != nil {
			return fmt.Errorf("--auth-tokens: %w", err)
		}
		for _, w := range warnings {
			logger.Warn(w)
		}
		cfg.Tokens = toks
	}
	if (*cert == "") != (*key == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if *clientCA != "" && *cert == "" {
		return fmt.Errorf("--client-ca needs --tls-cert and --tls-key")
	}
	if *cert != "" {
		tc, err := server.TLSConfig(*cert, *key, *clientCA)
		if err != nil {
			return err
		}
		cfg.TLS, cfg.HTTPTLS = credentials.NewTLS(tc), tc
	}
	for _, o := range corsOrigins {
		cfg.CORSOrigins = append(cfg.CORSOrigins, strings.Split(o, ",")...)
	}
	if len(cfg.CORSOrigins) > 0 && *httpAddr == "" {
		return fmt.Errorf("--cors-origin needs --http-addr")
	}
	// The addresses first: a busy one fails before a store file is made.
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	defer lis.Close()
	var httpLis net.Listener
	if *httpAddr != "" {
		if httpLis, err = net.Listen("tcp", *httpAddr); err != nil {
			return fmt.Errorf("--http-addr: %w", err)
		}
		defer httpLis.Close()
	}
	var st store.Store
	storeName := store.Redact(*storePath)
	if len(profileFiles) > 0 {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "store" })
		if explicit {
			return fmt.Errorf("--profile-file serves profiles with no store: give --store or --profile-file, not both")
		}
		ro, err := service.ReadProfileFiles(profileFiles)
		if err != nil {
			return err
		}
		st, storeName = ro, fmt.Sprintf("%d profile files, read-only", len(profileFiles))
	} else {
		var err error
		if st, err = store.OpenAny(ctx, *storePath, store.PostgresConfig{MaxConns: int32(*pgConns), ConnectTimeout: *pgConnect, Timeout: *pgTimeout}); err != nil {
			return err
		}
	}
	defer st.Close()
	srv, err := server.New(service.New(st, service.MaxStreamBytes(*maxStreamBytes)), cfg)
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		ml, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", srv.MetricsHandler())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ml)
		defer hs.Close()
		fmt.Fprintf(std.err, "plumb: metrics on http://%s/metrics\n", ml.Addr())
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
	}
	fmt.Fprintf(std.err, "plumb: serving on %s (store %s)\n", lis.Addr(), storeName)
	return srv.Serve(ctx, lis)
}

// files is a repeatable flag of file names.
type files []string

func (f *files) String() string { return strings.Join(*f, ",") }

func (f *files) Set(v string) error {
	*f = append(*f, v)
	return nil
}
