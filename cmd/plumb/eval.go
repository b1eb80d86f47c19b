package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/jsonl"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
)

// plumb eval: report a profile on labelled examples; it writes nothing.

func cmdEval(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("eval", std)
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
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("eval takes its examples from --data, not %q", pos[0])
	}
	eq, err := parseEquivalence(*equivalence)
	if err != nil {
		return err
	}
	if *data == "" {
		return usageError("plumb eval: --data is required")
	}
	if err := checkReportDir(*reportDir); err != nil {
		return err
	}
	in, b, done, err := openWork(std, &t, *data, &f, "read")
	if err != nil {
		return err
	}
	defer done()
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
		return in.finish(printJSON(std, rep))
	}
	summary(std.out, rep)
	return in.finish(nil)
}

func (l *local) evaluate(ctx context.Context, in *input, cfg *plumbv1.EvaluateConfig) (*plumbv1.Report, error) {
	ev, err := l.svc.NewEvaluation(ctx, cfg)
	if err != nil {
		return nil, describeIn(in.opts.File, err)
	}
	shards := make([]*service.Shard, jsonl.InFlight())
	for i := range shards {
		shards[i] = ev.NewShard()
	}
	err = jsonl.Stream(ctx, in.r, &in.opts, shards, func() func(*jsonl.Chunk[*service.Shard]) {
		d := jsonl.Decoder{Lean: true}
		var ex calibrate.Example
		return func(c *jsonl.Chunk[*service.Shard]) {
			c.Lines(&in.opts, func(line []byte, _ int) error {
				if err := jsonl.DecodeExample(&d, line, &ex, in.opts.Format); err != nil {
					return err
				}
				if err := c.Out.Add(ctx, &ex); err != nil {
					return errors.New(api.Describe(err))
				}
				return nil
			})
		}
	}, func(c *jsonl.Chunk[*service.Shard]) error {
		in.prog.add(c.Out.Len())
		return c.Out.Merge()
	})
	if err != nil {
		return nil, describeIn(in.opts.File, err)
	}
	rep, err := ev.Report()
	return rep, describeIn(in.opts.File, err)
}

func (r *remote) evaluate(ctx context.Context, in *input, cfg *plumbv1.EvaluateConfig) (*plumbv1.Report, error) {
	rep, err := r.c.Evaluate(ctx, cfg, labeled(ctx, in))
	return rep, describeIn(in.opts.File, err)
}
