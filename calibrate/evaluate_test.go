package calibrate_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/simulate"
	"github.com/plumbhq/plumb/temperature"
)

// TestEvaluatorWaysAgree: the same examples reported by Evaluate in one call, by an Evaluator
// fed in uneven batches, and by shards filled on three goroutines and merged in order give the
// same report, to the bit (the records keep the input order, so every sum runs in the same
// order). 40 000 questions span several of the evaluator's record blocks; groups are on.
func TestEvaluatorWaysAgree(t *testing.T) {
	exs, _ := simulate.Generate(&simulate.Config{Questions: 40000, Seed: 11, Wordings: 4, Stance: 1})
	p, _, err := calibrate.Fit(context.Background(), exs[:2000], nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := calibrate.Evaluate(context.Background(), p, exs)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Groups) < 2 {
		t.Fatalf("want groups in the report, got %d", len(want.Groups))
	}

	// A group's report is the report of its questions alone.
	for _, g := range want.Groups {
		var sub []calibrate.Example
		for _, ex := range exs {
			if ex.Question.Group == g.Group {
				sub = append(sub, ex)
			}
		}
		alone, err := calibrate.Evaluate(context.Background(), p, sub)
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(alone.Before, g.Before, cmpopts.EquateNaNs()) || !cmp.Equal(alone.After, g.After, cmpopts.EquateNaNs()) {
			t.Errorf("group %s: report %+v / %+v, its questions alone %+v / %+v", g.Group, g.Before, g.After, alone.Before, alone.After)
		}
	}

	ev := calibrate.NewEvaluator(p, calibrate.EquivalenceDefault)
	for start, size := 0, 1; start < len(exs); start, size = start+size, size*3+1 {
		sh := ev.NewShard()
		for i := start; i < min(start+size, len(exs)); i++ {
			if err := sh.Add(context.Background(), &exs[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := ev.Merge(sh); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(want, ev.Report(), cmpopts.EquateNaNs()); diff != "" {
		t.Errorf("shards of growing sizes differ from Evaluate (-want +got):\n%s", diff)
	}

	ev = calibrate.NewEvaluator(p, calibrate.EquivalenceDefault)
	const parts = 3
	shards := make([]*calibrate.Shard, parts)
	var wg sync.WaitGroup
	for w := range shards {
		sh := ev.NewShard()
		shards[w] = sh
		wg.Go(func() {
			for i := w * len(exs) / parts; i < (w+1)*len(exs)/parts; i++ {
				if err := sh.Add(context.Background(), &exs[i]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for _, sh := range shards {
		if err := ev.Merge(sh); err != nil {
			t.Fatal(err)
		}
		if sh.Len() != 0 {
			t.Fatal("a merged shard is not empty")
		}
	}
	if diff := cmp.Diff(want, ev.Report(), cmpopts.EquateNaNs()); diff != "" {
		t.Errorf("shards differ from Evaluate (-want +got):\n%s", diff)
	}
}

// TestShardRefuses: a shard names the field of a bad example and adds nothing; examples of
// the other kind are refused within a shard and when a shard is merged.
func TestShardRefuses(t *testing.T) {
	opts, _ := simulate.Generate(&simulate.Config{Questions: 3, Seed: 1})
	smp, _ := simulate.Generate(&simulate.Config{Questions: 1, Seed: 1, Samples: 3})
	ev := calibrate.NewEvaluator(nil, calibrate.EquivalenceDefault)
	sh := ev.NewShard()
	bad := opts[0]
	bad.Label.Answers = nil
	for _, tc := range []struct {
		name  string
		ex    calibrate.Example
		field string
	}{
		{"no paraphrases", calibrate.Example{Label: calibrate.Label{Answers: []string{"A"}}}, "request.paraphrases"},
		{"no answer", bad, "label.answers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *calibrate.Error
			if err := sh.Add(context.Background(), &tc.ex); !errors.As(err, &e) || e.Field != tc.field {
				t.Errorf("Add: %v, want an error on %s", err, tc.field)
			}
		})
	}
	if err := sh.Add(context.Background(), &opts[1]); err != nil {
		t.Fatal(err)
	}
	var e *calibrate.Error
	if err := sh.Add(context.Background(), &smp[0]); !errors.As(err, &e) || e.Field != "request.paraphrases" {
		t.Errorf("samples after options in one shard: %v", err)
	}
	if sh.Len() != 1 {
		t.Fatalf("shard holds %d examples, want 1", sh.Len())
	}
	other := ev.NewShard() // made before the evaluator has seen a kind
	if err := other.Add(context.Background(), &smp[0]); err != nil {
		t.Fatal(err)
	}
	if err := ev.Merge(sh); err != nil {
		t.Fatal(err)
	}
	if err := ev.Merge(other); !errors.As(err, &e) || e.Field != "examples[1].request.paraphrases" {
		t.Errorf("merging samples after options: %v", err)
	}
	if err := ev.NewShard().Add(context.Background(), &smp[0]); err == nil {
		t.Error("a shard made after options were merged took samples")
	}
	if ev.Len() != 1 {
		t.Errorf("evaluator holds %d examples, want 1", ev.Len())
	}
}

// TestKeepAt1: the evaluator scores each question twice (before, after) and keeps what the
// second analysis can reuse: the label order, and under an adaptive profile the features'
// analysis at T = 1, and for samples the token masses validation summed. The records are
// exactly those of scoring each alone, for adaptive and global profiles and for samples.
func TestKeepAt1(t *testing.T) {
	exs, _ := simulate.Generate(&simulate.Config{Questions: 3000, Seed: 8, Stance: 1})
	for _, choice := range []temperature.Method{temperature.MethodAdaptive, temperature.MethodGlobal} {
		p, _, err := calibrate.Fit(context.Background(), exs[:2000], &calibrate.FitConfig{Temperature: choice})
		if err != nil {
			t.Fatal(err)
		}
		if p.Temperature.Adaptive() != (choice == temperature.MethodAdaptive) {
			t.Fatalf("choice %v gave %v", choice, p.Temperature)
		}
		if i := calibrate.SharedAgrees(p, exs[2000:]); i >= 0 {
			t.Fatalf("choice %v, question %d: records differ", choice, 2000+i)
		}
	}
	smp, _ := simulate.Generate(&simulate.Config{Questions: 1500, Seed: 9, Samples: 5, Tokens: 6, TopK: 3, Stance: 1})
	p, _, err := calibrate.Fit(context.Background(), smp[:1000], nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Temperature.At(nil) == 1 {
		t.Fatal("want a token temperature ≠ 1")
	}
	if i := calibrate.SharedAgrees(p, smp[1000:]); i >= 0 {
		t.Fatalf("samples, question %d: records differ", 1000+i)
	}
}
