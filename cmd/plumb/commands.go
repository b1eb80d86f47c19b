package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/term"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/internal/jsonl"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/server"
	"github.com/plumbhq/plumb/service"
	"github.com/plumbhq/plumb/simulate"
	"github.com/plumbhq/plumb/store"
)

// newFlags returns the flag set of command name: --help prints the command's help on stdout
// (exit 0); a bad flag is reported on stderr with a pointer to --help (exit 64).
func newFlags(name string, io ios) *flag.FlagSet {
	fs := flag.NewFlagSet("plumb "+name, flag.ContinueOnError)
	fs.SetOutput(io.err)
	fs.Usage = func() {}
	helps.Store(fs, func() { commandHelp(name, fs, io.out) })
	return fs
}

// helps holds each flag set's help printer, for parse.
var helps sync.Map

// parse parses flags, allowing flags after positional arguments; it returns the positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				if help, ok := helps.Load(fs); ok {
					help.(func())()
				}
				return nil, errHelp
			}
			fmt.Fprintf(fs.Output(), "Run '%s --help' for its flags.\n", fs.Name())
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func cmdServe(ctx context.Context, args []string, io ios) error {
	fs := newFlags("serve", io)
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
	if _, err := parse(fs, args); err != nil {
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
	logger := slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: level}))
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
		fmt.Fprintf(io.err, "plumb: metrics on http://%s/metrics\n", ml.Addr())
	}
	if httpLis != nil {
		httpErr := make(chan error, 1)
		go func() { httpErr <- srv.ServeHTTP(ctx, httpLis) }()
		defer func() {
			if err := <-httpErr; err != nil {
				fmt.Fprintln(io.err, "plumb: http:", err)
			}
		}()
		scheme := "http"
		if cfg.HTTPTLS != nil {
			scheme = "https"
		}
		fmt.Fprintf(io.err, "plumb: HTTP on %s://%s (the demo page, /badge.js, Connect and gRPC-Web)\n", scheme, httpLis.Addr())
	}
	fmt.Fprintf(io.err, "plumb: serving on %s (store %s)\n", lis.Addr(), storeName)
	return srv.Serve(ctx, lis)
}

// files is a repeatable flag of file names.
type files []string

func (f *files) String() string { return strings.Join(*f, ",") }

func (f *files) Set(v string) error {
	*f = append(*f, v)
	return nil
}

func cmdScore(ctx context.Context, args []string, io ios) error {
	fs := newFlags("score", io)
	var t target
	t.register(fs)
	profile := fs.String("profile", "", "profile for requests that name none (default: the active \"default\")")
	var f inputFlags
	f.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	format, err := jsonl.ParseFormat(f.from)
	if err != nil {
		return err
	}
	file := ""
	if len(pos) > 0 {
		file = pos[0]
	}
	in, closeIn, err := openInput(file, io, format, &f, "scored")
	if err != nil {
		return err
	}
	defer closeIn()
	b, err := t.open(io)
	if err != nil {
		return err
	}
	defer b.Close()
	out := &output{w: bufio.NewWriterSize(io.out, 1<<16), profile: *profile}
	defer out.w.Flush()
	return in.finish(b.score(ctx, in, out))
}

// inputFlags are the flags of the commands that read a file of lines.
type inputFlags struct {
	keepGoing, progress bool
	from                string
}

func (f *inputFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.keepGoing, "keep-going", false, "report a bad line on stderr and go on, instead of stopping")
	fs.BoolVar(&f.progress, "progress", false, "report progress on stderr (lines read, a fit's stages) even when it is not a terminal")
	fs.StringVar(&f.from, "from", "", `input format: "" (plumb's protojson lines) or "openai" (raw chat-completions responses per wording; see README)`)
}

// parseEquivalence reads an --equivalence flag: "" (unset), exact, f1 or embedding.
func parseEquivalence(name string) (plumbv1.Equivalence, error) {
	switch name {
	case "":
		return plumbv1.Equivalence_EQUIVALENCE_UNSPECIFIED, nil
	case "exact":
		return plumbv1.Equivalence_EQUIVALENCE_EXACT, nil
	case "f1":
		return plumbv1.Equivalence_EQUIVALENCE_F1, nil
	case "embedding":
		return plumbv1.Equivalence_EQUIVALENCE_EMBEDDING, nil
	}
	return 0, fmt.Errorf("--equivalence %q: want exact, f1 or embedding", name)
}

// codeName names a status code sent as a number.
func codeName(c int32) string { return codes.Code(c).String() }

// fitFlags are the flags of plumb fit.
type fitFlags struct {
	data, profile, temperature, cmap, score, split, reportDir, equivalence string
	alpha, risk                                                            float64
	seed                                                                   uint64
	minGroup                                                               int
	jsonOut, dryRun, activate                                              bool
	in                                                                     inputFlags
}

func (f *fitFlags) config() (*plumbv1.FitConfig, error) {
	c := &plumbv1.FitConfig{Name: f.profile, Alpha: f.alpha, Seed: f.seed, Risk: f.risk,
		MinGroup: int32(f.minGroup), DryRun: f.dryRun, Activate: f.activate}
	temps := map[string]plumbv1.TemperatureMethod{"auto": plumbv1.TemperatureMethod_TEMPERATURE_METHOD_AUTO,
		"global": plumbv1.TemperatureMethod_TEMPERATURE_METHOD_GLOBAL, "adaptive": plumbv1.TemperatureMethod_TEMPERATURE_METHOD_ADAPTIVE,
		"none": plumbv1.TemperatureMethod_TEMPERATURE_METHOD_NONE}
	var ok bool
	if c.Temperature, ok = temps[f.temperature]; !ok {
		return nil, fmt.Errorf("--temperature %q: want auto, global, adaptive or none", f.temperature)
	}
	maps := map[string]plumbv1.ConfidenceMap{"auto": plumbv1.ConfidenceMap_CONFIDENCE_MAP_AUTO, "none": plumbv1.ConfidenceMap_CONFIDENCE_MAP_NONE,
		"platt": plumbv1.ConfidenceMap_CONFIDENCE_MAP_PLATT, "logistic": plumbv1.ConfidenceMap_CONFIDENCE_MAP_LOGISTIC}
	if c.ConfidenceMap, ok = maps[f.cmap]; !ok {
		return nil, fmt.Errorf("--confidence-map %q: want auto, none, platt or logistic", f.cmap)
	}
	var err error
	if c.Equivalence, err = parseEquivalence(f.equivalence); err != nil {
		return nil, err
	}
	scores := map[string]plumbv1.ScoreKind{"lac": plumbv1.ScoreKind_SCORE_KIND_LAC, "aps": plumbv1.ScoreKind_SCORE_KIND_APS, "raps": plumbv1.ScoreKind_SCORE_KIND_RAPS}
	if c.Score, ok = scores[f.score]; !ok {
		return nil, fmt.Errorf("--score %q: want lac, aps or raps", f.score)
	}
	parts := strings.Split(f.split, ",")
	if len(parts) != 3 {
		return nil, fmt.Errorf("--split %q: want three fractions, tune,calibrate,report", f.split)
	}
	for _, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, fmt.Errorf("--split %q: %w", f.split, err)
		}
		c.Split = append(c.Split, v)
	}
	return c, nil
}

func cmdFit(ctx context.Context, args []string, io ios) error {
	fs := newFlags("fit", io)
	var t target
	t.register(fs)
	var f fitFlags
	fs.StringVar(&f.data, "data", "", "labelled examples, JSONL of LabeledExample (- for stdin)")
	fs.StringVar(&f.profile, "profile", "default", "profile name to fit")
	fs.Float64Var(&f.alpha, "alpha", 0.1, "conformal miscoverage α")
	fs.StringVar(&f.temperature, "temperature", "auto", "temperature scaling: auto, global, adaptive or none")
	fs.StringVar(&f.cmap, "confidence-map", "auto", "confidence map: auto, none, platt or logistic")
	fs.StringVar(&f.equivalence, "equivalence", "", "answer equivalence of samples whose request's policy sets none: exact (the default), f1 or embedding")
	fs.StringVar(&f.score, "score", "lac", "conformal score: lac, aps or raps")
	fs.StringVar(&f.split, "split", "0.4,0.4,0.2", "tune,calibrate,report fractions")
	fs.Uint64Var(&f.seed, "seed", 0, "seed of the split")
	fs.Float64Var(&f.risk, "risk", 0, "selective risk ε of the abstention threshold (default α)")
	fs.IntVar(&f.minGroup, "min-group", 100, "calibrate examples a group needs for its own quantile")
	fs.StringVar(&f.reportDir, "report-dir", "", "write report.json, report.md and the reliability diagram here")
	fs.BoolVar(&f.jsonOut, "json", false, "print the protojson Report, and nothing else, on stdout")
	fs.BoolVar(&f.dryRun, "dry-run", false, "fit and report without storing the profile")
	fs.BoolVar(&f.activate, "activate", true, "make the new version active")
	f.in.register(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	format, err := jsonl.ParseFormat(f.in.from)
	if err != nil {
		return err
	}
	if f.data == "" {
		fmt.Fprintln(io.err, "plumb fit: --data is required")
		return errUsage
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	if err := checkReportDir(f.reportDir); err != nil {
		return err
	}
	in, closeIn, err := openInput(f.data, io, format, &f.in, "read")
	if err != nil {
		return err
	}
	defer closeIn()
	b, err := t.open(io)
	if err != nil {
		return err
	}
	defer b.Close()
	resp, err := b.fit(ctx, in, cfg)
	if err != nil {
		return fmt.Errorf("fit: %w", err)
	}
	if f.reportDir != "" {
		if err := writeReport(f.reportDir, resp.GetReport()); err != nil {
			return err
		}
	}
	if f.jsonOut {
		for _, w := range resp.GetReport().GetWarnings() {
			fmt.Fprintln(io.err, "plumb fit: warning:", w)
		}
		return in.finish(printJSON(io, resp.GetReport()))
	}
	p := resp.GetProfile()
	if resp.GetStored() {
		fmt.Fprintf(io.out, "profile %s version %d stored (active: %v)\n", p.GetName(), p.GetVersion(), p.GetActive())
	} else {
		fmt.Fprintf(io.out, "profile %s fitted (dry run: nothing stored)\n", p.GetName())
	}
	summary(io.out, resp.GetReport())
	if f.reportDir != "" {
		fmt.Fprintf(io.out, "report written to %s\n", f.reportDir)
	}
	return in.finish(nil)
}

func cmdEval(ctx context.Context, args []string, io ios) error {
	fs := newFlags("eval", io)
	var t target
	t.register(fs)
	data := fs.String("data", "", "labelled examples, JSONL of LabeledExample (- for stdin)")
	profile := fs.String("profile", "default", "profile to evaluate")
	version := fs.Int64("version", 0, "profile version (0: the active one)")
	jsonOut := fs.Bool("json", false, "print the protojson Report, and nothing else, on stdout")
	reportDir := fs.String("report-dir", "", "write report.json, report.md and the reliability diagram here")
	equivalence := fs.String("equivalence", "", "answer equivalence of samples whose request's policy sets none: exact, f1 or embedding (default: the profile's)")
	var f inputFlags
	f.register(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	format, err := jsonl.ParseFormat(f.from)
	if err != nil {
		return err
	}
	eq, err := parseEquivalence(*equivalence)
	if err != nil {
		return err
	}
	if *data == "" {
		fmt.Fprintln(io.err, "plumb eval: --data is required")
		return errUsage
	}
	if err := checkReportDir(*reportDir); err != nil {
		return err
	}
	in, closeIn, err := openInput(*data, io, format, &f, "read")
	if err != nil {
		return err
	}
	defer closeIn()
	b, err := t.open(io)
	if err != nil {
		return err
	}
	defer b.Close()
	rep, err := b.evaluate(ctx, in, &plumbv1.EvaluateConfig{Profile: *profile, Version: *version, Equivalence: eq})
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if *reportDir != "" {
		if err := writeReport(*reportDir, rep); err != nil {
			return err
		}
	}
	if *jsonOut {
		return in.finish(printJSON(io, rep))
	}
	summary(io.out, rep)
	return in.finish(nil)
}

func cmdProfiles(ctx context.Context, args []string, io ios) error {
	fs := newFlags("profiles", io)
	var t target
	t.register(fs)
	jsonOut := fs.Bool("json", false, "print protojson (export: write the profile as protojson instead of binary protobuf)")
	importName := fs.String("name", "", "import: store the profile under this name instead of its own")
	activate := fs.Bool("activate", false, "import: make the imported version active (a name's first version always is)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fmt.Fprintln(io.err, "plumb profiles: list, get NAME[@VERSION], export NAME[@VERSION], import FILE, activate NAME VERSION or delete NAME [VERSION]")
		return errUsage
	}
	b, err := t.open(io)
	if err != nil {
		return err
	}
	defer b.Close()
	api := b.profiles()
	switch pos[0] {
	case "list":
		name := ""
		if len(pos) > 1 {
			name = pos[1]
		}
		resp, err := api.ListProfiles(ctx, &plumbv1.ListProfilesRequest{Name: name})
		if err != nil {
			return errors.New(service.Describe(err))
		}
		if *jsonOut {
			return printJSON(io, resp)
		}
		tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tACTIVE\tCREATED\tEVIDENCE\tTEMPERATURE\tALPHA\tLAMBDA")
		for _, p := range resp.GetProfiles() {
			created := ""
			if p.GetCreateTime() != nil {
				created = p.GetCreateTime().AsTime().Format(time.RFC3339)
			}
			active := ""
			if p.GetActive() {
				active = "*"
			}
			if p.GetError() != "" {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.GetName(), p.GetVersion(), active, "DAMAGED: "+p.GetError())
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.2f\t%.2f\n", p.GetName(), p.GetVersion(), active, created,
				strings.ToLower(strings.TrimPrefix(p.GetEvidence().String(), "EVIDENCE_")),
				strings.ToLower(strings.TrimPrefix(p.GetTemperatureMethod().String(), "TEMPERATURE_METHOD_")),
				p.GetAlpha(), p.GetLambda())
		}
		return tw.Flush()
	case "get", "export":
		name, v, err := profileArg(pos[1:])
		if err != nil {
			return err
		}
		resp, err := api.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: name, Version: v})
		if err != nil {
			return errors.New(service.Describe(err))
		}
		if pos[0] == "get" {
			return printJSON(io, resp.GetProfile())
		}
		if !resp.GetProfile().GetCalibrated() {
			return fmt.Errorf("export: %s is the built-in default, not a stored profile", name)
		}
		if *jsonOut {
			return printJSON(io, resp.GetProfile())
		}
		if f, ok := io.out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return fmt.Errorf("export: the profile is binary protobuf: redirect it to a file (> %s.binpb), or give --json", name)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp.GetProfile())
		if err != nil {
			return err
		}
		_, err = io.out.Write(b)
		return err
	case "import":
		if len(pos) != 2 {
			return fmt.Errorf("import: one file is required (plumb profiles import FILE [--name NAME] [--activate])")
		}
		b, err := os.ReadFile(pos[1])
		if err != nil {
			return err
		}
		m, err := service.DecodeProfileFile(b)
		if err != nil {
			return fmt.Errorf("%s: %s", pos[1], service.Describe(err))
		}
		resp, err := api.ImportProfile(ctx, &plumbv1.ImportProfileRequest{Profile: m, Name: *importName, Activate: *activate})
		if err != nil {
			return errors.New(service.Describe(err))
		}
		if *jsonOut {
			return printJSON(io, resp)
		}
		p := resp.GetProfile()
		fmt.Fprintf(io.out, "imported %s as profile %s version %d (active: %v)\n", pos[1], p.GetName(), p.GetVersion(), p.GetActive())
		return nil
	case "activate":
		name, v, err := profileArg(pos[1:])
		if err != nil {
			return err
		}
		if v == 0 {
			return fmt.Errorf("activate: a version is required")
		}
		resp, err := api.ActivateProfile(ctx, &plumbv1.ActivateProfileRequest{Name: name, Version: v})
		if err != nil {
			return errors.New(service.Describe(err))
		}
		if *jsonOut {
			return printJSON(io, resp)
		}
		fmt.Fprintf(io.out, "profile %s version %d is active\n", name, resp.GetProfile().GetVersion())
		return nil
	case "delete":
		name, v, err := profileArg(pos[1:])
		if err != nil {
			return err
		}
		resp, err := api.DeleteProfile(ctx, &plumbv1.DeleteProfileRequest{Name: name, Version: v})
		if err != nil {
			return errors.New(service.Describe(err))
		}
		if *jsonOut {
			return printJSON(io, resp)
		}
		fmt.Fprintf(io.out, "deleted %d version(s) of %s\n", resp.GetDeleted(), name)
		return nil
	}
	return fmt.Errorf("profiles: unknown subcommand %q (list, get, export, import, activate, delete)", pos[0])
}

// indented writes every field, zeros included (a q̂ or λ of 0 is a value, not an absence);
// only an undefined metric, which has no value, is left out.
var indented = protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}

// printJSON prints m as indented protojson.
func printJSON(io ios, m proto.Message) error {
	b, err := indented.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(io.out, string(b))
	return err
}

func cmdSimulate(_ context.Context, args []string, io ios) error {
	fs := newFlags("simulate", io)
	n := fs.Int("questions", 1000, "questions to generate")
	seed := fs.Uint64("seed", 1, "seed")
	samples := fs.Int("samples", 0, "sampled completions per wording (0: option logprobs)")
	wordings := fs.Int("wordings", 10, "neutral wordings per question")
	stance := fs.Int("stance", 0, "USER_STANCE wordings per question")
	tokens := fs.Int("tokens", 0, "tokens per sample (default 8 with --samples)")
	labeled := fs.Bool("labeled", false, "write LabeledExample lines (for fit and eval) instead of ScoreRequest lines")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	out := bufio.NewWriterSize(io.out, 1<<16)
	defer out.Flush()
	var line []byte
	for ex := range simulate.All(&simulate.Config{Questions: *n, Seed: *seed, Samples: *samples, Wordings: *wordings, Stance: *stance, Tokens: *tokens}) {
		var m proto.Message = service.RequestFrom(&ex.Question)
		if *labeled {
			m = service.LabeledFrom(&ex)
		}
		var err error
		if line, err = jsonl.AppendMessage(line[:0], m); err != nil {
			return err
		}
		if _, err := out.Write(line); err != nil {
			return err
		}
	}
	return nil
}
