package monitor

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/plumbhq/plumb/calibrate"
)

// binnedECE is the population ECE over calibrate.Bins equal-width bins of confidence ~ U(0, 1)
// whose gap, confidence − P(correct | confidence), has the antiderivative G: Σ_b |G(b₊) − G(b₋)|.
func binnedECE(G func(float64) float64) float64 {
	var sum float64
	for b := range calibrate.Bins {
		sum += math.Abs(G(float64(b+1)/calibrate.Bins) - G(float64(b)/calibrate.Bins))
	}
	return sum
}

// TestECEIntervalCovers draws windows of outcomes whose population ECE is known in closed form
// and checks that the bootstrap interval at level 1 − δ = 0.9 holds it in at least 85 % of 300
// windows (nominal 0.9), with a mean width of at most 0.2.
func TestECEIntervalCovers(t *testing.T) {
	truths := []struct {
		name string
		p    func(c float64) float64 // P(correct | c)
		G    func(c float64) float64 // ∫ (c − p(c)) dc
	}{
		// Calibrated: ECE 0.
		{"calibrated", func(c float64) float64 { return c }, func(float64) float64 { return 0 }},
		// Overconfident, p = c²: the gap c − c² keeps its sign, so ECE = ∫(c − c²) = 1/6.
		{"overconfident", func(c float64) float64 { return c * c }, func(c float64) float64 { return c*c/2 - c*c*c/3 }},
		// A gap of −0.1 sin 2πc changes sign: ECE = Σ_b |0.1 (cos 2πb₊ − cos 2πb₋)/(2π)| ≈ 0.0637.
		{"mixed", func(c float64) float64 { return c + 0.1*math.Sin(2*math.Pi*c) },
			func(c float64) float64 { return 0.1 * math.Cos(2*math.Pi*c) / (2 * math.Pi) }},
	}
	for _, tr := range truths {
		want := binnedECE(tr.G)
		for _, n := range []int{500, 2000, 10000} {
			const runs = 300
			held, width := 0, 0.0
			for run := range runs {
				rng := rand.New(rand.NewPCG(uint64(run), uint64(n)))
				var e eceBins
				for range n {
					c := rng.Float64()
					e.add(c, rng.Float64() < tr.p(c))
				}
				lo, hi := e.interval(0.1, uint64(run))
				if lo <= want && want <= hi {
					held++
				}
				width += hi - lo
			}
			rate := float64(held) / runs
			t.Logf("%-13s ECE %.4f  n %5d: held %.3f, mean width %.4f", tr.name, want, n, rate, width/runs)
			if rate < 0.85 {
				t.Errorf("%s, n %d: the 90%% interval held the ECE %.4f in %.3f of windows, want ≥ 0.85", tr.name, n, want, rate)
			}
			if width/runs > 0.2 {
				t.Errorf("%s, n %d: mean width %.3f", tr.name, n, width/runs)
			}
		}
	}
}
