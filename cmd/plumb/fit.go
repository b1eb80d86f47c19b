package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/jsonl"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
	"google.golang.org/grpc/codes"
)

// plumb fit: fit and store a profile version on labelled examples.

// fitFlags are the flags of plumb fit.
type fitFlags struct {
	data, profile, temperature, cmap, score, split, reportDir, equivalence, fitID, fromFeedback string
	since                                                                                       time.Duration
	alpha, risk                                                                                 float64
	seed                                                                                        uint64
	minGroup                                                                                    int
	version                                                                                     int64
	jsonOut, dryRun, activate, activateGiven                                                    bool
	in                                                                                          inputFlags
}

func (f *fitFlags) config() (*plumbv1.FitConfig, error) {
	c := &plumbv1.FitConfig{Name: f.profile, Alpha: f.alpha, Seed: f.seed, Risk: f.risk,
		MinGroup: int32(f.minGroup), DryRun: f.dryRun, FitId: f.fitID}
	if c.FitId == "" && !f.dryRun {
		c.FitId = rand.Text() // this run's own: shown when the outcome is unknown, for a retry
	}
	if f.activateGiven {
		c.Activate = &f.activate
	}
	var ok bool
	if c.Temperature, ok = api.ParseTemperature(f.temperature); !ok {
		return nil, usageError("--temperature %q: want auto, global, adaptive or none", f.temperature)
	}
	if c.ConfidenceMap, ok = api.ParseConfidenceMap(f.cmap); !ok {
		return nil, usageError("--confidence-map %q: want auto, none, platt or logistic", f.cmap)
	}
	var err error
	if c.Equivalence, err = parseEquivalence(f.equivalence); err != nil {
		return nil, err
	}
	if c.Score, ok = api.ParseScore(f.score); !ok {
		return nil, usageError("--score %q: want lac, aps or raps", f.score)
	}
	parts := strings.Split(f.split, ",")
	if len(parts) != 3 {
		return nil, usageError("--split %q: want three fractions, tune,calibrate,report", f.split)
	}
	for _, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, usageError("--split %q: %v", f.split, err)
		}
		c.Split = append(c.Split, v)
	}
	return c, nil
}

func cmdFit(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("fit", std)
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
	fs.StringVar(&f.fromFeedback, "from-feedback", "", "refit this profile's confidence map, λ and quantiles from the outcomes fed back for its active version (or --version), instead of --data")
	fs.DurationVar(&f.since, "since", 0, "with --from-feedback: only outcomes received in this last while (e.g. 720h; 0: all)")
	fs.Int64Var(&f.version, "version", 0, "with --from-feedback: the version whose outcomes to read (0: the active one)")
	fs.StringVar(&f.fitID, "fit-id", "", "this fit's id (default: a new random one): a retry with the same id returns the version the fit stored, if it was, instead of storing another")
	fs.BoolVar(&f.activate, "activate", true, "make the new version active (=false: store it inactive); unset: active when it answers something, else stored inactive and exit status 3")
	f.in.register(fs)
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("fit takes its examples from --data, not %q", pos[0])
	}
	f.activateGiven = fs.given("activate")
	if f.fromFeedback != "" {
		if f.data != "" {
			return usageError("plumb fit: --data or --from-feedback, not both")
		}
		return refitFromFeedback(ctx, std, &t, &f)
	}
	if f.data == "" {
		return usageError("plumb fit: --data is required (or --from-feedback PROFILE)")
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	if err := checkReportDir(f.reportDir); err != nil {
		return err
	}
	in, b, done, err := openWork(std, &t, f.data, &f.in, "read")
	if err != nil {
		return err
	}
	defer done()
	resp, err := b.fit(ctx, in, cfg)
	if err != nil {
		if c := api.FaultOf(err).Code; cfg.GetFitId() != "" && (c == codes.Unknown || c == codes.Unavailable || c == codes.DeadlineExceeded) {
			return fmt.Errorf("fit: %w\nrun the same command with --fit-id %s: if this fit was stored, that returns its version; if not, it fits again", err, cfg.GetFitId())
		}
		return fmt.Errorf("fit: %w", err)
	}
	if f.reportDir != "" {
		if err := writeReport(f.reportDir, resp.GetReport()); err != nil {
			return err
		}
	}
	if f.jsonOut {
		for _, w := range resp.GetReport().GetWarnings() {
			fmt.Fprintln(std.err, "plumb fit: warning:", w)
		}
		if err := printJSON(std, resp.GetReport()); err != nil {
			return in.finish(err)
		}
		return in.finish(storedInactive(resp, f.activateGiven))
	}
	printFitted(std, resp, false)
	if f.reportDir != "" {
		fmt.Fprintf(std.out, "report written to %s\n", f.reportDir)
	}
	return in.finish(storedInactive(resp, f.activateGiven))
}

// storedInactive is the error of a fit whose version was stored inactive because it answers
// nothing (the user did not choose with --activate): exit status 3, saying how to go on.
func storedInactive(resp *plumbv1.FitResponse, chosen bool) error {
	p := resp.GetProfile()
	if chosen || !resp.GetStored() || p.GetActive() {
		return nil
	}
	return errInactive{fmt.Sprintf("profile %s version %d answers nothing and was stored inactive: refit with a larger --risk, or serve it anyway with 'plumb profiles activate %s %d'",
		p.GetName(), p.GetVersion(), p.GetName(), p.GetVersion())}
}

func (l *local) fit(ctx context.Context, in *input, cfg *plumbv1.FitConfig) (*plumbv1.FitResponse, error) {
	f, err := l.svc.NewFitting(ctx, cfg, in.prog.stage)
	if err != nil {
		return nil, describeIn(in.opts.File, err)
	}
	shards := make([]*service.Shard, jsonl.InFlight())
	for i := range shards {
		shards[i] = f.NewShard()
	}
	// Each line is checked and, for options, compacted by the workers, so a refused example is
	// named by its file and line; the shards are merged in file order.
	err = jsonl.Stream(ctx, in.r, &in.opts, shards, func() func(*jsonl.Chunk[*service.Shard]) {
		d := jsonl.Decoder{Lean: true}
		ex := new(calibrate.Example)
		return func(c *jsonl.Chunk[*service.Shard]) {
			c.Lines(&in.opts, func(line []byte, _ int) error {
				if err := jsonl.DecodeExample(&d, line, ex, in.opts.Format); err != nil {
					return err
				}
				if err := c.Out.Add(ctx, ex); err != nil {
					return api.Described(err)
				}
				if len(ex.Question.Paraphrases[0].Samples) > 0 {
					ex = new(calibrate.Example) // the fit keeps a samples example
				}
				return nil
			})
		}
	}, func(c *jsonl.Chunk[*service.Shard]) error {
		in.prog.add(c.Out.Len())
		return c.Out.Merge()
	})
	in.prog.done()
	if err != nil {
		return nil, describeIn(in.opts.File, err)
	}
	resp, err := f.Run(ctx)
	return resp, describeIn(in.opts.File, err)
}

func (r *remote) fit(ctx context.Context, in *input, cfg *plumbv1.FitConfig) (*plumbv1.FitResponse, error) {
	resp, err := r.c.Fit(ctx, cfg, labeled(ctx, in))
	return resp, describeIn(in.opts.File, err)
}

// refitFromFeedback runs `plumb fit --from-feedback PROFILE`: a new version from the outcomes
// fed back, stored inactive unless --activate is given.
func refitFromFeedback(ctx context.Context, std stdio, t *target, f *fitFlags) error {
	r := &plumbv1.RefitRequest{Name: f.fromFeedback, Version: f.version, DryRun: f.dryRun, Seed: f.seed, FitId: f.fitID}
	if f.activateGiven {
		r.Activate = &f.activate
	}
	if f.since > 0 {
		r.SinceUnix = time.Now().Add(-f.since).Unix()
	}
	if r.FitId == "" && !f.dryRun {
		r.FitId = rand.Text()
	}
	b, err := t.open(std)
	if err != nil {
		return err
	}
	defer b.Close()
	resp, err := b.monitor().Refit(ctx, r)
	if err != nil {
		return fmt.Errorf("fit --from-feedback: %w", api.Described(err))
	}
	if f.reportDir != "" {
		if err := writeReport(f.reportDir, resp.GetReport()); err != nil {
			return err
		}
	}
	if f.jsonOut {
		return printJSON(std, resp.GetReport())
	}
	printFitted(std, resp, true)
	return nil
}

// printFitted says what a fit (refit: from feedback) stored, and its report's summary.
func printFitted(std stdio, resp *plumbv1.FitResponse, refit bool) {
	p := resp.GetProfile()
	how, done := "", "fitted"
	if refit {
		how, done = " refitted from feedback and", "refitted from feedback"
	}
	switch {
	case resp.GetExisting():
		fmt.Fprintf(std.out, "profile %s version %d was stored by this fit id before (active: %v); nothing new was stored\n", p.GetName(), p.GetVersion(), p.GetActive())
	case resp.GetStored():
		fmt.Fprintf(std.out, "profile %s version %d%s stored (active: %v)\n", p.GetName(), p.GetVersion(), how, p.GetActive())
	default:
		fmt.Fprintf(std.out, "profile %s %s (dry run: nothing stored)\n", p.GetName(), done)
	}
	summary(std.out, resp.GetReport())
}
