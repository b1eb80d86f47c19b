package monitor

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/plumbhq/plumb/calibrate"
)

// TestExchangeByHand: the p-values and the mixture martingale against a hand calculation,
// python3 (math only):
//
//	eps = [(k+0.5)/50 for k in range(50)]
//	sum(e*0.5**(e-1) for e in eps)/50                     → 0.6387021588913041
//	sum(e*0.5**(e-1)*e*(0.25/5)**(e-1) for e in eps)/50   → 1.1358266887739772
//
// The bag {0, 0.5, 1}; z = 0.5 with θ = 0.5: one larger, one equal, p = (1 + 0.5·2)/4 = 0.5.
// Then z = 1.5 with θ = 0.25 against {0, 0.5, 0.5, 1}: none larger or equal, p = 0.25/5.
func TestExchangeByHand(t *testing.T) {
	e := newExchange([]float64{0, 0.5, 1})
	e.add(0.5, 0.5)
	if m := e.mixture(); math.Abs(m-0.6387021588913041) > 1e-12 || e.max != 1 {
		t.Errorf("after p = 0.5: M %v (max %v), want 0.6387021588913041 (max 1)", m, e.max)
	}
	e.add(1.5, 0.25)
	if m := e.mixture(); math.Abs(m-1.1358266887739772) > 1e-12 || e.max != m {
		t.Errorf("after p = 0.05: M %v (max %v), want 1.1358266887739772 (its max)", m, e.max)
	}
	if cellOf(math.Inf(1)) != cells || cellOf(7) != cells || cellOf(0) != 0 || cellOf(1) != 2048 {
		t.Errorf("cells of +Inf, 7, 0, 1: %d %d %d %d", cellOf(math.Inf(1)), cellOf(7), cellOf(0), cellOf(1))
	}
}

// TestExchangeability simulates conformal scores with a known law — LAC-like: 0 for a right
// answer, else 1 − p of the true answer, +Inf when no candidate holds it — 1 000 calibration
// scores and 5 000 outcomes, 200 seeds, δ = 0.1, the martingale's maximum over every outcome:
//   - the same law (exchangeable): "calibration_drift" in at most δ of the runs (Ville);
//   - after outcome 1 000 the model is right less often (55 % in place of 70 %) and its wrong
//     answers' true answers less probable: it fires in every run; the median delay is reported.
func TestExchangeability(t *testing.T) {
	const (
		seeds, cal, n, shiftAt = 200, 1000, 5000, 1000
		δ                      = 0.1
	)
	draw := func(rng *rand.Rand, right, spread float64) float64 {
		switch u := rng.Float64(); {
		case u < right:
			return 0
		case u < right+0.03:
			return math.Inf(1)
		}
		return 1 - spread*rng.Float64()
	}
	run := func(seed uint64, right, spread float64) int {
		rng := rand.New(rand.NewPCG(seed, 17))
		ref := make([]float64, cal)
		for i := range ref {
			ref[i] = draw(rng, 0.7, 0.6)
		}
		e := newExchange(ref)
		for i := range n {
			r, s := 0.7, 0.6
			if i >= shiftAt {
				r, s = right, spread
			}
			e.add(draw(rng, r, s), rng.Float64())
			if e.max >= 1/δ {
				return i + 1
			}
		}
		return -1
	}
	falseAlarms := 0
	var delays []int
	for seed := range uint64(seeds) {
		if run(seed, 0.7, 0.6) >= 0 {
			falseAlarms++
		}
		if at := run(seed+1000, 0.55, 0.4); at < 0 {
			t.Errorf("seed %d: the shift never raised calibration_drift in %d outcomes", seed, n)
		} else {
			delays = append(delays, at-shiftAt)
		}
	}
	sort.Ints(delays)
	if len(delays) > 0 {
		t.Logf("false alarms %d of %d; after the shift, median delay %d outcomes (%d runs fired before it)",
			falseAlarms, seeds, delays[len(delays)/2], func() int {
				k := 0
				for _, d := range delays {
					if d <= 0 {
						k++
					}
				}
				return k
			}())
	}
	if float64(falseAlarms)/seeds > δ {
		t.Errorf("%d of %d exchangeable runs raised calibration_drift, want ≤ δ = %v", falseAlarms, seeds, δ)
	}
}

// BenchmarkBuilder: a monitor's cost per outcome, one version × segment with the
// exchangeability test on (2 000 calibration scores), over 100 000 outcomes, and the monitor
// computed at the end.
func BenchmarkBuilder(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	ref := make([]float64, 2000)
	for i := range ref {
		ref[i] = rng.Float64()
	}
	points := make([]Point, 100_000)
	for i := range points {
		points[i] = Point{Profile: "p", Version: 1, Scored: true, Score: rng.Float64(), Tie: rng.Float64(), Flagged: rng.Float64() < 0.05, Δ: 0.1}
		points[i].Confidence, points[i].Correct, points[i].Action = rng.Float64(), rng.Float64() < 0.7, calibrate.Answer
	}
	b.ReportAllocs()
	for b.Loop() {
		bl := NewBuilder(0)
		bl.Reference = func(string, int64) []float64 { return ref }
		for i := range points {
			bl.Add(&points[i])
		}
		bl.Monitors()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(points)), "ns/outcome")
}
