package calibrate_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/simulate"
	"github.com/plumbhq/plumb/temperature"
)

// invariant compares what docs/DESIGN.md promises does not move: answer, confidence (1e-12) and set.
func invariant(t *testing.T, what string, a, b calibrate.Result) {
	t.Helper()
	if a.Answer != b.Answer || math.Abs(a.Confidence-b.Confidence) > 1e-12 || !slices.Equal(a.Set.Answers, b.Set.Answers) {
		t.Fatalf("%s changed the score:\n  %q %.17g %v\n  %q %.17g %v", what,
			a.Answer, a.Confidence, a.Set.Answers, b.Answer, b.Confidence, b.Set.Answers)
	}
}

// TestInvariance: permuting wordings, renaming ids and prompts, and adding or removing
// USER_STANCE wordings leave answer, confidence and set unchanged, for options and samples,
// under the uncalibrated default and under fitted profiles (global and adaptive temperature).
func TestInvariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, tc := range []struct {
		name string
		cfg  simulate.Config
		fit  *calibrate.FitConfig
	}{
		{"options/default", simulate.Config{Questions: 200, Seed: 31, Stance: 2}, nil},
		{"options/adaptive", simulate.Config{Questions: 600, Seed: 32, Stance: 2}, &calibrate.FitConfig{Temperature: temperature.MethodAdaptive}},
		{"options/aps", simulate.Config{Questions: 600, Seed: 33, Stance: 2}, &calibrate.FitConfig{Temperature: temperature.MethodGlobal, Score: 1}},
		{"samples/default", simulate.Config{Questions: 200, Seed: 34, Stance: 2, Samples: 6, Wordings: 5, Tokens: 3}, nil},
		{"samples/fitted", simulate.Config{Questions: 600, Seed: 35, Stance: 2, Samples: 6, Wordings: 5, Tokens: 3}, &calibrate.FitConfig{}},
		{"samples/f1", simulate.Config{Questions: 600, Seed: 36, Stance: 2, Samples: 6, Wordings: 5, Tokens: 3}, &calibrate.FitConfig{Equivalence: calibrate.EquivalenceF1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exs, _ := simulate.Generate(&tc.cfg)
			var p *calibrate.Profile
			if tc.fit != nil {
				var err error
				if p, _, err = calibrate.Fit(context.Background(), exs, tc.fit); err != nil {
					t.Fatal(err)
				}
			}
			for _, ex := range exs[:200] {
				q := ex.Question
				base, err := calibrate.Score(context.Background(), p, &q)
				if err != nil {
					t.Fatal(err)
				}
				// Permute the wordings and rename ids and prompts.
				perm := q
				perm.ID = "renamed-" + strconv.Itoa(rng.IntN(1000))
				perm.Paraphrases = slices.Clone(q.Paraphrases)
				rng.Shuffle(len(perm.Paraphrases), func(i, j int) {
					perm.Paraphrases[i], perm.Paraphrases[j] = perm.Paraphrases[j], perm.Paraphrases[i]
				})
				for i := range perm.Paraphrases {
					perm.Paraphrases[i].Prompt = "prompt " + strconv.Itoa(rng.IntN(1000))
					if len(perm.Paraphrases[i].Options) > 0 && rng.IntN(2) == 0 {
						// Option order within a wording is not meaningful either.
						o := slices.Clone(perm.Paraphrases[i].Options)
						slices.Reverse(o)
						perm.Paraphrases[i].Options = o
					}
				}
				r, err := calibrate.Score(context.Background(), p, &perm)
				if err != nil {
					t.Fatal(err)
				}
				invariant(t, "permuting and renaming", base, r)
				// Remove every USER_STANCE wording.
				neutral := q
				neutral.Paraphrases = slices.DeleteFunc(slices.Clone(q.Paraphrases), func(p calibrate.Paraphrase) bool {
					return p.Framing == calibrate.UserStance
				})
				if r, err = calibrate.Score(context.Background(), p, &neutral); err != nil {
					t.Fatal(err)
				}
				invariant(t, "removing stance wordings", base, r)
				// Add a stance wording that contradicts the answer strongly.
				extra := neutral
				extra.Paraphrases = append(slices.Clone(neutral.Paraphrases), contrarian(q.Paraphrases[0], base.Answer))
				if r, err = calibrate.Score(context.Background(), p, &extra); err != nil {
					t.Fatal(err)
				}
				invariant(t, "adding a stance wording", base, r)
			}
		})
	}
}

// contrarian returns a USER_STANCE wording shaped like p that backs an answer other than ans.
func contrarian(p calibrate.Paraphrase, ans string) calibrate.Paraphrase {
	c := calibrate.Paraphrase{Prompt: "surely not " + ans + "?", Framing: calibrate.UserStance}
	if len(p.Options) > 0 {
		for _, o := range p.Options {
			lp := -8.0
			if o.Label != ans && c.Stance == "" {
				c.Stance, lp = o.Label, -0.001
			}
			c.Options = append(c.Options, calibrate.Option{Label: o.Label, Logprob: lp})
		}
		return c
	}
	c.Stance = "something else entirely"
	for range p.Samples {
		c.Samples = append(c.Samples, calibrate.Sample{Text: c.Stance, Tokens: []calibrate.Token{{Token: "x", Logprob: -0.01}}})
	}
	return c
}
