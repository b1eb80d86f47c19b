package fmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ulps returns how many representable float64s lie between a and b (both positive, finite).
func ulps(a, b float64) int64 {
	d := int64(math.Float64bits(a)) - int64(math.Float64bits(b))
	if d < 0 {
		d = -d
	}
	return d
}

// TestExpAgainstMath: Exp is within 2 ulp of math.Exp (itself within 1 ulp of e^x) on 4
// million random points over its whole fast range and densely where plumb uses it (logits and
// logprobs in [−50, 5]), at every multiple of ln2/256 (the table's knots) and next to them;
// special values and the range edges are math.Exp's own answers.
func TestExpAgainstMath(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var worst int64
	var at float64
	check := func(x float64) {
		got, want := Exp(x), math.Exp(x)
		if d := ulps(got, want); d > worst {
			worst, at = d, x
		}
	}
	for range 2_000_000 {
		check(-708 + rng.Float64()*(709+708))
		check(-50 + rng.Float64()*55)
	}
	for k := -261000; k <= 261000; k += 7 {
		x := float64(k) * math.Ln2 / tableSize
		check(x)
		check(math.Nextafter(x, 0))
		check(math.Nextafter(x, 1000))
	}
	for _, x := range []float64{0, -0.0, 1e-300, -1e-300, 1, -1, 708.9, -707.9} {
		check(x)
	}
	t.Logf("worst difference from math.Exp: %d ulp at x = %v", worst, at)
	if worst > 2 {
		t.Errorf("Exp differs from math.Exp by %d ulp at x = %v", worst, at)
	}
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 709, 710, -708, -745, -746, 1000, -1000} {
		got, want := Exp(x), math.Exp(x)
		if !(got == want || math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("Exp(%v) = %v, want %v", x, got, want)
		}
	}
	if Exp(0) != 1 {
		t.Errorf("Exp(0) = %v, want 1", Exp(0))
	}
}

var sink float64

func BenchmarkExp(b *testing.B) {
	xs := make([]float64, 1024)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range xs {
		xs[i] = -20 * rng.Float64()
	}
	b.Run("fmath", func(b *testing.B) {
		var s float64
		for i := 0; b.Loop(); i++ {
			s += Exp(xs[i&1023])
		}
		sink = s
	})
	b.Run("math", func(b *testing.B) {
		var s float64
		for i := 0; b.Loop(); i++ {
			s += math.Exp(xs[i&1023])
		}
		sink = s
	})
}
