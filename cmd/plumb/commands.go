package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	stdio "io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/server"
	"github.com/plumbhq/plumb/simulate"
	"github.com/plumbhq/plumb/store"
)

func newFlags(name string, io ios) *flag.FlagSet {
	fs := flag.NewFlagSet("plumb "+name, flag.ContinueOnError)
	fs.SetOutput(io.err)
	return fs
}

// parse parses flags, allowing flags after positional arguments; it returns the positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errUsage
			}
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
	storePath := fs.String("store", envOr("PLUMB_STORE", "plumb.db"), "profile store file ($PLUMB_STORE)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics on this address (e.g. localhost:9090)")
	tokens := fs.String("auth-tokens", "", "file of accepted bearer tokens, one per line; none means no auth")
	cert := fs.String("tls-cert", "", "TLS certificate file")
	key := fs.String("tls-key", "", "TLS key file")
	rateLimit := fs.Float64("rate-limit", 0, "requests per second across the server (0: unlimited)")
	maxMsg := fs.Int("max-message-bytes", 16<<20, "largest request message")
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
	cfg := server.Config{MaxMessageBytes: *maxMsg, RateLimit: *rateLimit, ShutdownGrace: *grace, Baseline: *baseline,
		Logger: slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: level}))}
	if *tokens != "" {
		b, err := os.ReadFile(*tokens)
		if err != nil {
			return fmt.Errorf("--auth-tokens: %w", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				cfg.AuthTokens = append(cfg.AuthTokens, t)
			}
		}
		if len(cfg.AuthTokens) == 0 {
			return fmt.Errorf("--auth-tokens: %s holds no token", *tokens)
		}
	}
	if (*cert == "") != (*key == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if *cert != "" {
		c, err := credentials.NewServerTLSFromFile(*cert, *key)
		if err != nil {
			return fmt.Errorf("credentials.NewServerTLSFromFile: %w", err)
		}
		cfg.TLS = c
	}
	st, err := store.Open(*storePath, 0)
	if err != nil {
		return err
	}
	defer st.Close()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("net.Listen: %w", err)
	}
	srv := server.New(st, cfg)
	if *metricsAddr != "" {
		ml, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics net.Listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", srv.MetricsHandler())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ml)
		defer hs.Close()
		fmt.Fprintf(io.err, "plumb: metrics on http://%s/metrics\n", ml.Addr())
	}
	fmt.Fprintf(io.err, "plumb: serving on %s (store %s)\n", lis.Addr(), *storePath)
	return srv.Serve(ctx, lis)
}

func cmdScore(ctx context.Context, args []string, io ios) error {
	fs := newFlags("score", io)
	var t target
	t.register(fs)
	profile := fs.String("profile", "", "profile for requests that name none (default: the active \"default\")")
	var in inputOptions
	in.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := in.check(); err != nil {
		return err
	}
	file := ""
	if len(pos) > 0 {
		file = pos[0]
	}
	r, name, b, closeAll, err := openWork(file, &t, io)
	if err != nil {
		return err
	}
	defer closeAll()
	prog := newProgress(io.err, "scored")
	defer prog.done()
	out := bufio.NewWriterSize(io.out, 1<<16)
	defer out.Flush()

	var readErr error
	reqs := func(yield func(*plumbv1.ScoreRequest) bool) {
		for req, err := range lines(r, name, func() *plumbv1.ScoreRequest { return new(plumbv1.ScoreRequest) }, in, io.err, prog) {
			if err != nil {
				readErr = err
				return
			}
			if req.GetProfile() == "" {
				req.Profile = *profile
			}
			if !yield(req) {
				return
			}
		}
	}
	i := 0
	for resp, err := range b.ScoreAll(ctx, iter.Seq[*plumbv1.ScoreRequest](reqs)) {
		if err != nil {
			return fmt.Errorf("%s: %s", name, describe(err))
		}
		if e := resp.GetError(); e != nil && !in.keepGoing {
			return fmt.Errorf("%s: request %d (id %q): %s", name, i+1, resp.GetId(), e.GetMessage())
		}
		if err := writeLine(out, resp); err != nil {
			return err
		}
		i++
	}
	return readErr
}

// fitFlags are the flags of plumb fit.
type fitFlags struct {
	data, profile, temperature, cmap, score, split, reportDir string
	alpha, risk                                               float64
	seed                                                      uint64
	minGroup                                                  int
	jsonOut, dryRun, activate                                 bool
	in                                                        inputOptions
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
	maps := map[string]plumbv1.ConfidenceMap{"logistic": plumbv1.ConfidenceMap_CONFIDENCE_MAP_LOGISTIC, "none": plumbv1.ConfidenceMap_CONFIDENCE_MAP_NONE}
	if c.ConfidenceMap, ok = maps[f.cmap]; !ok {
		return nil, fmt.Errorf("--confidence-map %q: want logistic or none", f.cmap)
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
	fs.StringVar(&f.cmap, "confidence-map", "logistic", "confidence map: logistic or none")
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
	if err := f.in.check(); err != nil {
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
	var resp *plumbv1.FitResponse
	if t.server == "" {
		resp, err = fitLocal(ctx, cfg, f.data, f.in, &t, io)
	} else {
		err = withLabeled(f.data, f.in, &t, io, func(b backend, exs iter.Seq2[*plumbv1.LabeledExample, error]) (err error) {
			resp, err = b.Fit(ctx, cfg, exs)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("fit: %w", err)
	}
	if f.reportDir != "" {
		if err := writeReport(f.reportDir, resp.GetReport()); err != nil {
			return err
		}
	}
	if f.jsonOut {
		return printJSON(io, resp.GetReport())
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
	return nil
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
	var in inputOptions
	in.register(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := in.check(); err != nil {
		return err
	}
	if *data == "" {
		fmt.Fprintln(io.err, "plumb eval: --data is required")
		return errUsage
	}
	var rep *plumbv1.Report
	var err error
	if t.server == "" {
		rep, err = evalLocal(ctx, *data, *profile, *version, in, &t, io)
	} else {
		err = withLabeled(*data, in, &t, io, func(b backend, exs iter.Seq2[*plumbv1.LabeledExample, error]) (err error) {
			rep, err = b.Evaluate(ctx, &plumbv1.EvaluateConfig{Profile: *profile, Version: *version}, exs)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if *reportDir != "" {
		if err := writeReport(*reportDir, rep); err != nil {
			return err
		}
	}
	if *jsonOut {
		return printJSON(io, rep)
	}
	summary(io.out, rep)
	return nil
}

// fitLocal fits in-process: the file is decoded over all cores straight into the engine's
// types (readExamples), then fitted and stored as the engine's Fit does.
func fitLocal(ctx context.Context, cfg *plumbv1.FitConfig, data string, in inputOptions, t *target, io ios) (*plumbv1.FitResponse, error) {
	r, name, b, closeAll, err := openWork(data, t, io)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	prog := newProgress(io.err, "read")
	exs, err := readExamples(ctx, r, name, in, io.err, prog)
	prog.done()
	if err != nil {
		return nil, inFile(name, err)
	}
	resp, err := b.(local).FitExamples(ctx, cfg, exs)
	return resp, inFile(name, err)
}

// evalLocal evaluates in-process: the file streams over all cores into an Evaluator
// (evaluateFile); the report is the one the engine's Evaluate gives.
func evalLocal(ctx context.Context, data, profile string, version int64, in inputOptions, t *target, io ios) (*plumbv1.Report, error) {
	r, name, b, closeAll, err := openWork(data, t, io)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	p, err := b.(local).Profile(ctx, profile, version)
	if err != nil {
		return nil, inFile(name, err)
	}
	prog := newProgress(io.err, "read")
	rep, err := evaluateFile(ctx, p, r, name, in, io.err, prog)
	prog.done()
	if err != nil {
		return nil, inFile(name, err)
	}
	return server.ReportToProto(rep), nil
}

// openWork opens a command's input file (or stdin) and its backend; closeAll releases both.
func openWork(file string, t *target, io ios) (r stdio.Reader, name string, b backend, closeAll func(), err error) {
	r, name, closeIn, err := input(file, io.in)
	if err != nil {
		return nil, "", nil, nil, err
	}
	if b, err = t.open(); err != nil {
		closeIn()
		return nil, "", nil, nil, err
	}
	return r, name, b, func() { b.Close(); closeIn() }, nil
}

// withLabeled opens the labelled-example file and the backend and runs f on them; a bad line
// comes back as its *lineError, anything else described as the server would.
func withLabeled(data string, in inputOptions, t *target, io ios, f func(backend, iter.Seq2[*plumbv1.LabeledExample, error]) error) error {
	r, name, b, closeAll, err := openWork(data, t, io)
	if err != nil {
		return err
	}
	defer closeAll()
	prog := newProgress(io.err, "read")
	err = f(b, examplesFrom(r, name, in, io.err, prog))
	prog.done()
	return inFile(name, err)
}

// inFile words an error of a command reading file: a bad line already names its file and
// line; anything else is described as the server would, after the file's name.
func inFile(file string, err error) error {
	var le *lineError
	if err == nil || errors.As(err, &le) {
		return err
	}
	return fmt.Errorf("%s: %s", file, describe(err))
}

func cmdProfiles(ctx context.Context, args []string, io ios) error {
	fs := newFlags("profiles", io)
	var t target
	t.register(fs)
	jsonOut := fs.Bool("json", false, "print protojson")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fmt.Fprintln(io.err, "plumb profiles: list, get NAME [VERSION], activate NAME VERSION or delete NAME [VERSION]")
		return errUsage
	}
	b, err := t.open()
	if err != nil {
		return err
	}
	defer b.Close()
	switch pos[0] {
	case "list":
		name := ""
		if len(pos) > 1 {
			name = pos[1]
		}
		resp, err := b.ListProfiles(ctx, &plumbv1.ListProfilesRequest{Name: name})
		if err != nil {
			return errors.New(describe(err))
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
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.2f\t%.2f\n", p.GetName(), p.GetVersion(), active, created,
				strings.ToLower(strings.TrimPrefix(p.GetEvidence().String(), "EVIDENCE_")),
				strings.ToLower(strings.TrimPrefix(p.GetTemperatureMethod().String(), "TEMPERATURE_METHOD_")),
				p.GetAlpha(), p.GetLambda())
		}
		return tw.Flush()
	case "get":
		name, v, err := profileArg(pos[1:])
		if err != nil {
			return err
		}
		resp, err := b.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: name, Version: v})
		if err != nil {
			return errors.New(describe(err))
		}
		return printJSON(io, resp.GetProfile())
	case "activate":
		name, v, err := profileArg(pos[1:])
		if err != nil {
			return err
		}
		if v == 0 {
			return fmt.Errorf("activate: a version is required")
		}
		resp, err := b.ActivateProfile(ctx, &plumbv1.ActivateProfileRequest{Name: name, Version: v})
		if err != nil {
			return errors.New(describe(err))
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
		resp, err := b.DeleteProfile(ctx, &plumbv1.DeleteProfileRequest{Name: name, Version: v})
		if err != nil {
			return errors.New(describe(err))
		}
		if *jsonOut {
			return printJSON(io, resp)
		}
		fmt.Fprintf(io.out, "deleted %d version(s) of %s\n", resp.GetDeleted(), name)
		return nil
	}
	return fmt.Errorf("profiles: unknown subcommand %q (list, get, activate, delete)", pos[0])
}

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
	for ex := range simulate.All(&simulate.Config{Questions: *n, Seed: *seed, Samples: *samples, Wordings: *wordings, Stance: *stance, Tokens: *tokens}) {
		var err error
		if *labeled {
			err = writeLine(out, server.LabeledFrom(&ex))
		} else {
			err = writeLine(out, server.RequestFrom(&ex.Question))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
