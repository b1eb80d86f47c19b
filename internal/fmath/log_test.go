package fmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

// signedUlps returns how many representable float64s lie between a and b, of either sign.
func signedUlps(a, b float64) int64 {
	key := func(x float64) int64 { // monotonic in x
		u := int64(math.Float64bits(x))
		if u < 0 {
			u = math.MinInt64 - u
		}
		return u
	}
	d := key(a) - key(b)
	if d < 0 {
		d = -d
	}
	return d
}

// TestLogAgainstMath: Log is within 2 ulp of math.Log (itself within 1 ulp of log x) on random
// points over all positive normal floats (uniform in the exponent), densely where plumb uses
// it (softmax sums in [1, 64], probabilities in (0, 1], odds), around 1 on both sides, at
// every sub-interval's bounds and next to them; and within 2 ulp of math.Log1p(x − 1), a
// second reference, where x − 1 is exact. Special values and subnormals are math.Log's own
// answers.
func TestLogAgainstMath(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var worst int64
	var at float64
	check := func(x float64) {
		got, want := Log(x), math.Log(x)
		if d := signedUlps(got, want); d > worst {
			worst, at = d, x
		}
	}
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
	t.Logf("worst difference from math.Log: %d ulp at x = %v", worst, at)
	if worst > 2 {
		t.Errorf("Log differs from math.Log by %d ulp at x = %v", worst, at)
	}

	worst = 0
	for range 1_000_000 {
		x := 0.5 + 1.5*rng.Float64()
		if d := signedUlps(Log(x), math.Log1p(x-1)); d > worst {
			worst, at = d, x
		}
	}
	t.Logf("worst difference from math.Log1p(x − 1) on [0.5, 2): %d ulp at x = %v", worst, at)
	if worst > 2 {
		t.Errorf("Log differs from math.Log1p(x−1) by %d ulp at x = %v", worst, at)
	}

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
	b.Run("fmath", func(b *testing.B) {
		var s float64
		for i := 0; b.Loop(); i++ {
			s += Log(xs[i&1023])
		}
		sink = s
	})
	b.Run("math", func(b *testing.B) {
		var s float64
		for i := 0; b.Loop(); i++ {
			s += math.Log(xs[i&1023])
		}
		sink = s
	})
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
