package temperature

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func randomPooled(n, wordings, k int, features bool) *Pooled {
	rng := rand.New(rand.NewPCG(1, 1))
	d := &Pooled{}
	for q := 0; q < n; q++ {
		var lg, ft []float64
		for p := 0; p < wordings; p++ {
			z := make([]float64, k)
			for j := range z {
				z[j] = rng.NormFloat64()
			}
			z[0] += 2
			lg = append(lg, z...)
			if features {
				ft = append(ft, AdaptiveFeatures(nil, z, 0.05)...)
			}
		}
		d.Add(k, lg, ft, rng.IntN(k))
	}
	return d
}

// BenchmarkPooledNLL: one evaluation of the pooled NLL and its adaptive gradient, the inner
// loop of every temperature fit, on {1 000, 10 000, 100 000} questions of 10 wordings × 4.
func BenchmarkPooledNLL(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("questions=%d", n), func(b *testing.B) {
			d := randomPooled(n, 10, 4, true)
			theta := []float64{0.1, -0.2, 0.3, 0.1}
			grad := make([]float64, 4)
			b.ReportAllocs()
			for b.Loop() {
				d.objective(theta, grad, 1e-3)
			}
		})
	}
}

// BenchmarkFitGlobal and BenchmarkFitAdaptive: whole fits on {1 000, 10 000, 40 000} questions
// (40 000 is the tune split of a 100 000-question Fit).
func BenchmarkFitGlobal(b *testing.B) {
	for _, n := range []int{1000, 10000, 40000} {
		b.Run(fmt.Sprintf("questions=%d", n), func(b *testing.B) {
			d := randomPooled(n, 10, 4, false)
			b.ReportAllocs()
			for b.Loop() {
				FitGlobal(d)
			}
		})
	}
}

func BenchmarkFitAdaptive(b *testing.B) {
	for _, n := range []int{1000, 10000, 40000} {
		b.Run(fmt.Sprintf("questions=%d", n), func(b *testing.B) {
			d := randomPooled(n, 10, 4, true)
			b.ReportAllocs()
			for b.Loop() {
				FitAdaptive(d, nil)
			}
		})
	}
}

// BenchmarkTokenLogProb: one token of top-{1, 5, 20} at T ≠ 1, the unit of samples scoring.
func BenchmarkTokenLogProb(b *testing.B) {
	for _, k := range []int{1, 5, 20} {
		b.Run(fmt.Sprintf("top=%d", k), func(b *testing.B) {
			top := make([]float64, k)
			for i := range top {
				top[i] = -0.1 - float64(i)
			}
			b.ReportAllocs()
			for b.Loop() {
				TokenLogProb(top[0], top, 0, 1.3)
			}
		})
	}
}
