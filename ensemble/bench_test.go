package ensemble

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkCluster: clustering {10, 50, 200} sampled answers in each mode.
func BenchmarkCluster(b *testing.B) {
	words := []string{"paris", "paris france", "city of paris", "lyon", "marseille", "nice", "paris city"}
	for _, mode := range []Mode{Exact, F1, Embedding} {
		for _, n := range []int{10, 50, 200} {
			b.Run(fmt.Sprintf("mode=%d/samples=%d", mode, n), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 2))
				items := make([]Item, n)
				for i := range items {
					w := words[rng.IntN(len(words))]
					items[i] = Item{Norm: w, Embedding: []float32{float32(len(w)), float32(w[0]), 1}, Late: i%10 == 9}
				}
				assign := make([]int, n)
				b.ReportAllocs()
				for b.Loop() {
					Cluster(context.Background(), assign, items, mode)
				}
			})
		}
	}
}

// BenchmarkNormalize: one answer's normalisation.
func BenchmarkNormalize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Normalize("The answer is 1,000 metres.")
	}
}

// BenchmarkSplit: pool and entropy split of {2, 10, 64} wordings × 4 candidates.
func BenchmarkSplit(b *testing.B) {
	for _, n := range []int{2, 10, 64} {
		b.Run(fmt.Sprintf("wordings=%d", n), func(b *testing.B) {
			d := make([]float64, n*4)
			for i := range d {
				d[i] = 0.25
			}
			pbar := make([]float64, 4)
			b.ReportAllocs()
			for b.Loop() {
				Pool(pbar, d, nil)
				Split(pbar, d, nil)
			}
		})
	}
}
