package calibrate_test

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/simulate"
)

// TestMapFeatures: a Result's map features are the map's: σ(Map · features) is the confidence,
// to 1e-12, for options and for samples with tokens, under fitted profiles with a map.
func TestMapFeatures(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []simulate.Config{{Questions: 1500, Seed: 3}, {Questions: 800, Seed: 4, Samples: 6}} {
		exs, _ := simulate.Generate(&cfg)
		p, _, err := calibrate.Fit(ctx, exs[:len(exs)*2/3], &calibrate.FitConfig{ConfidenceMap: calibrate.MapLogistic})
		if err != nil {
			t.Fatal(err)
		}
		if p.Map == nil {
			t.Fatal("the fit kept no map")
		}
		for i := len(exs) * 2 / 3; i < len(exs); i++ {
			r, err := calibrate.Score(ctx, p, &exs[i].Question)
			if err != nil {
				t.Fatal(err)
			}
			var x float64
			for j, f := range r.MapFeatures[:r.MapFeatureCount] {
				x += p.Map[j] * f
			}
			if c := 1 / (1 + math.Exp(-x)); math.Abs(c-r.Confidence) > 1e-12 {
				t.Fatalf("samples %d, question %d: σ(Map · features) = %v, confidence %v", cfg.Samples, i, c, r.Confidence)
			}
		}
	}
}

// rowsOf scores examples under p and returns what their receipts and labels would give a refit.
func rowsOf(t *testing.T, p *calibrate.Profile, exs []calibrate.Example) []calibrate.RefitRow {
	t.Helper()
	rows := make([]calibrate.RefitRow, len(exs))
	for i := range exs {
		r, err := calibrate.Score(context.Background(), p, &exs[i].Question)
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = calibrate.RefitRow{Features: slices.Clone(r.MapFeatures[:r.MapFeatureCount]),
			Correct: slices.Contains(exs[i].Label.Answers, r.Answer), Covered: slices.ContainsFunc(r.Set.Answers, func(a string) bool {
				return slices.Contains(exs[i].Label.Answers, a)
			}), SetSize: len(r.Set.Answers), Action: r.Action}
	}
	return rows
}

// TestRefitAfterShift, the simulator with a known truth, 10 seeds: a profile fitted on data of
// miscalibration T* = 1.5, then used where the model's temperature has doubled (T* = 3), is far
// off; refitted on 4 000 outcomes fed back from the shifted data (half to the map, 40 % to λ),
// its ECE on fresh shifted data is never worse than the old profile's, and exceeds that of a
// profile fitted from scratch on the 4 000 shifted examples with their labels by at most 0.02 on
// average over the seeds (the bound) and 0.03 at worst. (A refit keeps the temperature,
// which a fit from scratch refits: the map alone makes up most of the difference.)
func TestRefitAfterShift(t *testing.T) {
	ctx := context.Background()
	var gap, worst float64
	for seed := uint64(1); seed <= 10; seed++ {
		old, _ := simulate.Generate(&simulate.Config{Questions: 4000, Seed: seed, Temperature: 1.5})
		shifted, _ := simulate.Generate(&simulate.Config{Questions: 4000, Seed: seed + 100, Temperature: 3})
		fresh, _ := simulate.Generate(&simulate.Config{Questions: 4000, Seed: seed + 200, Temperature: 3})
		p, _, err := calibrate.Fit(ctx, old, &calibrate.FitConfig{Seed: seed, Risk: 0.2})
		if err != nil {
			t.Fatal(err)
		}
		refit, rep, err := calibrate.Refit(p, rowsOf(t, p, shifted), calibrate.MapAuto, [3]float64{0.5, 0.4, 0.1}, seed, 0)
		if err != nil {
			t.Fatal(err)
		}
		scratch, _, err := calibrate.Fit(ctx, shifted, &calibrate.FitConfig{Seed: seed, Risk: 0.2})
		if err != nil {
			t.Fatal(err)
		}
		ece := func(pr *calibrate.Profile) float64 {
			ev := calibrate.NewEvaluator(pr, calibrate.EquivalenceDefault)
			sh := ev.NewShard()
			for i := range fresh {
				if err := sh.Add(ctx, &fresh[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := ev.Merge(sh); err != nil {
				t.Fatal(err)
			}
			return ev.Report().After.ECE
		}
		before, after, want := ece(p), ece(refit), ece(scratch)
		t.Logf("seed %d: ECE on fresh shifted data: old profile %.4f, refitted %.4f, fitted from scratch %.4f; refit report: ECE %.4f → %.4f, map %s",
			seed, before, after, want, rep.Before.ECE, rep.After.ECE, rep.MapMethod)
		gap += (after - want) / 10
		worst = max(worst, after-want)
		if after > before {
			t.Errorf("seed %d: the refit's ECE %.4f is worse than the old profile's %.4f", seed, after, before)
		}
	}
	t.Logf("refit − fresh fit ECE: mean %.4f, worst %.4f", gap, worst)
	if gap > 0.02 || worst > 0.03 {
		t.Errorf("the refit's ECE exceeds a fresh fit's by %.4f on average (want ≤ 0.02), %.4f at worst (want ≤ 0.03)", gap, worst)
	}
}
