package conformal

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkRiskCurve: the Learn-then-Test curve and selection on {1 000, 40 000, 400 000}
// calibration questions.
func BenchmarkRiskCurve(b *testing.B) {
	for _, n := range []int{1000, 40000, 400000} {
		b.Run(fmt.Sprintf("questions=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			conf := make([]float64, n)
			correct := make([]bool, n)
			for i := range conf {
				conf[i] = rng.Float64()
				correct[i] = rng.Float64() < conf[i]
			}
			b.ReportAllocs()
			for b.Loop() {
				Select(RiskCurve(conf, correct), 0.1, 0.1)
			}
		})
	}
}

// BenchmarkMondrian: quantiles over {1 000, 40 000, 400 000} scores in 10 groups.
func BenchmarkMondrian(b *testing.B) {
	for _, n := range []int{1000, 40000, 400000} {
		b.Run(fmt.Sprintf("scores=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, 4))
			scores := make([]float64, n)
			groups := make([]string, n)
			for i := range scores {
				scores[i] = rng.Float64()
				groups[i] = fmt.Sprint(i % 10)
			}
			b.ReportAllocs()
			for b.Loop() {
				FitMondrian(scores, groups, 0.1, FiniteSample, 100)
			}
		})
	}
}

// BenchmarkScores: LAC, APS and RAPS of one 4-option distribution, as Score computes them.
func BenchmarkScores(b *testing.B) {
	p := []float64{0.1, 0.5, 0.15, 0.25}
	dst := make([]float64, 4)
	order := make([]int, 4)
	for _, kind := range []Score{LAC, APS, RAPS} {
		b.Run(fmt.Sprint(kind), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Scores(dst, p, kind, nil, order)
			}
		})
	}
}
