package fmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestLogAgainstMath: Log is within 2 ulp of math.Log (itself within 1 ulp of log x) on random
// points over all positive normal floats (uniform in the exponent), densely where plumb uses
// it (softmax sums in [1, 64], probabilities in (0, 1], odds), around 1 on both sides, at
// every sub-interval's bounds and next to them; and within 2 ulp of math.Log1p(x − 1), a
// second reference, where x − 1 is exact. Special values and subnormals are math.Log's own
// answers.
func TestLogAgainstMath(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	w := within{name: "math.Log", f: Log, ref: math.Log}
	check := w.check
	for range 1_000_000 {
		check(math.Ldexp(1+rng.Float64(), rng.IntN(2046)-1022))
		check(1 + 63*rng.Float64())
		check(rng.Float64())
		check(math.Exp(rng.NormFloat64() * 10))
		check(1 + (rng.Float64()-0.5)*math.Ldexp(1, -rng.IntN(60)))
	}
	for i := range uint64(logSize + 1) {
		for _, e := range []int{-1022, -60, -1, 0, 1, 60, 1023} {
			x := math.Ldexp(math.Float64frombits(logOff+i<<(52-logBits)), e)
			if x > math.MaxFloat64 || x < 0x1p-1022 {
				continue
			}
			check(x)
			check(math.Nextafter(x, 0))
			check(math.Nextafter(x, math.Inf(1)))
		}
	}
	w.report(t, 2)

	w1p := within{name: "math.Log1p(x − 1) on [0.5, 2)", f: Log, ref: func(x float64) float64 { return math.Log1p(x - 1) }}
	for range 1_000_000 {
		w1p.check(0.5 + 1.5*rng.Float64())
	}
	w1p.report(t, 2)

	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), -1,
		math.SmallestNonzeroFloat64, 0x1p-1023, math.MaxFloat64} {
		got, want := Log(x), math.Log(x)
		if !(got == want || math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("Log(%v) = %v, want %v", x, got, want)
		}
	}
	for _, x := range []float64{1, 2, 0.5, math.E} {
		t.Logf("Log(%v) = %v, math.Log %v", x, Log(x), math.Log(x))
	}
	if Log(1) != 0 {
		t.Errorf("Log(1) = %v, want 0", Log(1))
	}
}

func BenchmarkLog(b *testing.B) {
	xs := make([]float64, 1024)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range xs {
		xs[i] = 1 + 3*rng.Float64()
	}
	b.Run("fmath", func(b *testing.B) { throughput(b, xs, Log) })
	b.Run("math", func(b *testing.B) { throughput(b, xs, math.Log) })
	// Latency: each call waits for the one before, as a softmax's log of its sum waits for
	// the sum.
	b.Run("fmath-chain", func(b *testing.B) {
		x := 1.5
		for b.Loop() {
			x = Log(x) + 2
		}
		sink = x
	})
	b.Run("math-chain", func(b *testing.B) {
		x := 1.5
		for b.Loop() {
			x = math.Log(x) + 2
		}
		sink = x
	})
}
