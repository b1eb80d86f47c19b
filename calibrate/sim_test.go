package calibrate_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/ensemble"
	"github.com/plumbhq/plumb/internal/testenv"
	"github.com/plumbhq/plumb/simulate"
	"github.com/plumbhq/plumb/temperature"
)

// TestRecoversTemperature: on 20 000 simulated questions without wording noise (and no
// ambiguous or hopeless ones, whose gold is not drawn from the true logits), the fitted global
// T is within 5 % of the injected miscalibration T*.
func TestRecoversTemperature(t *testing.T) {
	for _, tStar := range []float64{0.7, 1.5, 2.5} {
		t.Run(fmt.Sprint(tStar), func(t *testing.T) {
			exs, _ := simulate.Generate(&simulate.Config{Questions: 20000, Seed: 11, Temperature: tStar,
				Noise: -1, Ambiguous: -1, Hopeless: -1})
			p, _, err := calibrate.Fit(context.Background(), exs, &calibrate.FitConfig{Temperature: temperature.MethodGlobal,
				ConfidenceMap: calibrate.MapNone, Split: [3]float64{0.8, 0.2, 0}})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Temperature.At(nil); math.Abs(got-tStar)/tStar > 0.05 {
				t.Errorf("fitted T = %.4f, want %.2f ± 5%%", got, tStar)
			}
		})
	}
}

// TestFittedECE: after the full default fit (auto temperature, logistic map), the report-split
// ECE is ≤ 0.02, on options; with PLUMB_LONG=1 also on samples with tokens (20 000 questions of
// 5 wordings × 10 samples, about a minute).
func TestFittedECE(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  simulate.Config
		long bool
	}{
		{"options", simulate.Config{Questions: 50000, Seed: 12}, false},
		{"samples", simulate.Config{Questions: 20000, Seed: 13, Samples: 10, Wordings: 5, Tokens: 4}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.long && !testenv.Long() {
				t.Skip("a long run: PLUMB_LONG=1")
			}
			exs, _ := simulate.Generate(&tc.cfg)
			_, r, err := calibrate.Fit(context.Background(), exs, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("ECE before %.4f after %.4f (report n=%d)", r.Before.ECE, r.After.ECE, r.Examples)
			if r.After.ECE > 0.02 {
				t.Errorf("report ECE after fitting = %.4f, want ≤ 0.02", r.After.ECE)
			}
		})
	}
}

// TestCoverage: split-conformal coverage on fresh data lies near 1 − α for α ∈ {0.05, 0.1,
// 0.2}, for options and for samples where the gold is among the samples for ≥ 95 % of
// questions. A fit here is only what coverage depends on: the temperature (global) and the
// quantiles; no confidence map, which moves no set. Averaged over 20 seeds the mean must lie in
// [1−α−0.015, 1−α+0.03] (the mean's standard deviation is about 0.005: 400 calibration and 300
// report questions a seed); with PLUMB_LONG=1, over 100 seeds in [1−α−0.01, 1−α+0.03].
func TestCoverage(t *testing.T) {
	seeds, low := 20, 0.015
	if testenv.Long() {
		seeds, low = 100, 0.01
	}
	for _, kind := range []struct {
		name string
		cfg  simulate.Config
	}{
		{"options", simulate.Config{Questions: 1000}},
		{"samples", simulate.Config{Questions: 1000, Samples: 10, Wordings: 5, Tokens: 4, MissRate: 0.02}},
	} {
		for _, alpha := range []float64{0.05, 0.1, 0.2} {
			t.Run(fmt.Sprintf("%s/alpha=%v", kind.name, alpha), func(t *testing.T) {
				var cov, seen float64
				for seed := range uint64(seeds) {
					cfg := kind.cfg
					cfg.Seed = 1000 + seed
					exs, _ := simulate.Generate(&cfg)
					_, r, err := calibrate.Fit(context.Background(), exs, &calibrate.FitConfig{Alpha: alpha, Seed: seed, Split: [3]float64{0.3, 0.4, 0.3},
						Temperature: temperature.MethodGlobal, ConfidenceMap: calibrate.MapNone})
					if err != nil {
						t.Fatal(err)
					}
					cov += r.After.Coverage / float64(seeds)
					if kind.cfg.Samples > 0 {
						seen += goldSeen(exs) / float64(seeds)
					}
				}
				t.Logf("mean coverage over %d seeds %.4f", seeds, cov)
				if cov < 1-alpha-low || cov > 1-alpha+0.03 {
					t.Errorf("mean coverage %.4f outside [%.3f, %.2f]", cov, 1-alpha-low, 1-alpha+0.03)
				}
				if kind.cfg.Samples > 0 && seen < 0.95 {
					t.Fatalf("gold among the samples for %.3f of questions, the test needs ≥ 0.95", seen)
				}
			})
		}
	}
}

// goldSeen returns the fraction of questions whose gold answer some pooled sample gives.
func goldSeen(exs []calibrate.Example) float64 {
	var n float64
	for _, ex := range exs {
		res, err := calibrate.Score(context.Background(), nil, &ex.Question)
		if err != nil {
			panic(err)
		}
		for _, c := range res.Candidates {
			if ensemble.Normalize(c.Answer) == ensemble.Normalize(ex.Label.Answers[0]) {
				n++
				break
			}
		}
	}
	return n / float64(len(exs))
}

// TestOpenSet: when the gold is unseen for far more than α of questions, q̂ = ∞ and the sets say
// OPEN_SET.
func TestOpenSet(t *testing.T) {
	exs, _ := simulate.Generate(&simulate.Config{Questions: 2000, Seed: 14, Samples: 10, Wordings: 5, Tokens: 4, MissRate: 0.3})
	p, _, err := calibrate.Fit(context.Background(), exs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(p.Quantiles.Global, 1) {
		t.Fatalf("q̂ = %v, want +Inf with 30 %% unseen golds at α = 0.1", p.Quantiles.Global)
	}
	var open, openReason, abstained int
	for _, ex := range exs[:500] {
		r, err := calibrate.Score(context.Background(), p, &ex.Question)
		if err != nil {
			t.Fatal(err)
		}
		if r.Set.Open {
			open++
		}
		if r.Action == calibrate.Abstain {
			abstained++
			if slices.Contains(r.Reasons, calibrate.ReasonOpenSet) {
				openReason++
			}
		}
	}
	if open != 500 || abstained == 0 || openReason != abstained {
		t.Errorf("open sets %d/500, abstentions %d of which OPEN_SET %d", open, abstained, openReason)
	}
}

// TestRiskControl: the Learn-then-Test threshold keeps the selective error among answered
// questions ≤ ε on fresh data in ≥ 90 % of seeds (δ = 0.1), and it answers something in most
// seeds (a threshold of 1 would pass vacuously).
func TestRiskControl(t *testing.T) {
	const seeds = 100
	var kept, answering int
	for seed := uint64(0); seed < seeds; seed++ {
		exs, _ := simulate.Generate(&simulate.Config{Questions: 3000, Seed: 2000 + seed})
		p, _, err := calibrate.Fit(context.Background(), exs[:1000], &calibrate.FitConfig{Seed: seed, Risk: 0.1, Split: [3]float64{0.5, 0.5, 0}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := calibrate.Evaluate(context.Background(), p, exs[1000:])
		if err != nil {
			t.Fatal(err)
		}
		if r.After.SelectiveError <= 0.1 {
			kept++
		}
		if r.After.AnswerRate > 0.3 {
			answering++
		}
	}
	t.Logf("risk kept in %d/%d seeds; answering > 30 %% in %d", kept, seeds, answering)
	if kept < 90 {
		t.Errorf("selective error ≤ ε in %d/%d seeds, want ≥ 90", kept, seeds)
	}
	if answering < 90 {
		t.Errorf("answered > 30 %% of questions in only %d/%d seeds", answering, seeds)
	}
}

// TestSycophancyShift: the measured shift of USER_STANCE wordings recovers the injected pull
// within ±0.03, for several pulls.
func TestSycophancyShift(t *testing.T) {
	for _, pull := range []float64{0.1, 0.3, 0.5} {
		exs, truths := simulate.Generate(&simulate.Config{Questions: 3000, Seed: 15, Stance: 3, Pull: pull})
		var shift, injected float64
		for i, ex := range exs {
			r, err := calibrate.Score(context.Background(), nil, &ex.Question)
			if err != nil {
				t.Fatal(err)
			}
			shift += r.Sycophancy.Shift / float64(len(exs))
			injected += truths[i].Pull / float64(len(exs))
		}
		t.Logf("pull %.2f: injected mean %.4f, measured %.4f", pull, injected, shift)
		if math.Abs(shift-injected) > 0.03 || math.Abs(injected-pull) > 0.05 {
			t.Errorf("pull %.2f: measured shift %.4f, injected %.4f", pull, shift, injected)
		}
	}
}

// TestActions: under a fitted profile, ambiguous questions get CLARIFY, hopeless ones ABSTAIN
// and easy ones ANSWER, each in ≥ 80 % of cases. Both kinds use 10 wordings: with an odd number
// an ambiguous question's two readings cannot split evenly, and with 5 wordings of 10 samples
// the sampling noise makes hopeless wordings look confident often enough that about a quarter
// read as MULTIPLE_READINGS (measured: CLARIFY 0.73 and ABSTAIN 0.73 at 5 wordings).
func TestActions(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  simulate.Config
	}{
		{"options", simulate.Config{Questions: 6000, Seed: 16}},
		{"samples", simulate.Config{Questions: 6000, Seed: 17, Samples: 10, Wordings: 10, Tokens: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exs, truths := simulate.Generate(&tc.cfg)
			p, _, err := calibrate.Fit(context.Background(), exs[:3000], nil)
			if err != nil {
				t.Fatal(err)
			}
			want := map[simulate.Class]calibrate.Action{simulate.Ambiguous: calibrate.Clarify,
				simulate.Hopeless: calibrate.Abstain, simulate.Easy: calibrate.Answer}
			hit, total := map[simulate.Class]int{}, map[simulate.Class]int{}
			for i, ex := range exs[3000:] {
				r, err := calibrate.Score(context.Background(), p, &ex.Question)
				if err != nil {
					t.Fatal(err)
				}
				cl := truths[3000+i].Class
				total[cl]++
				if r.Action == want[cl] {
					hit[cl]++
				}
			}
			for cl, a := range want {
				rate := float64(hit[cl]) / float64(total[cl])
				t.Logf("%s → %s in %.3f of %d", cl, a, rate, total[cl])
				if rate < 0.8 {
					t.Errorf("%s questions get %s in %.3f of cases, want ≥ 0.8", cl, a, rate)
				}
			}
		})
	}
}
