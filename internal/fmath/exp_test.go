package fmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ulps returns how many representable float64s lie between a and b, of either sign.
func ulps(a, b float64) int64 {
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

// within records the largest difference in ulps between f and a reference over the points it
// is given, and fails t if it exceeds limit.
type within struct {
	name  string
	f     func(float64) float64
	ref   func(float64) float64
	worst int64
	at    float64
}

func (w *within) check(x float64) {
	if d := ulps(w.f(x), w.ref(x)); d > w.worst {
		w.worst, w.at = d, x
	}
}

func (w *within) report(t *testing.T, limit int64) {
	t.Helper()
	t.Logf("worst difference from %s: %d ulp at x = %v", w.name, w.worst, w.at)
	if w.worst > limit {
		t.Errorf("differs from %s by %d ulp at x = %v", w.name, w.worst, w.at)
	}
}

// TestExpAgainstMath: Exp is within 2 ulp of math.Exp (itself within 1 ulp of e^x) on 4
// million random points over its whole fast range and densely where plumb uses it (logits and
// logprobs in [−50, 5]), at every multiple of ln2/256 (the table's knots) and next to them;
// special values and the range edges are math.Exp's own answers.
func TestExpAgainstMath(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w := within{name: "math.Exp", f: Exp, ref: math.Exp}
	check := w.check
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
	w.report(t, 2)
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

// throughput runs f over xs in a sum of independent calls (through a function value, so both
// sides of a comparison pay the same call).
func throughput(b *testing.B, xs []float64, f func(float64) float64) {
	var s float64
	for i := 0; b.Loop(); i++ {
		s += f(xs[i%len(xs)])
	}
	sink = s
}

func BenchmarkExp(b *testing.B) {
	xs := make([]float64, 1024)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range xs {
		xs[i] = -20 * rng.Float64()
	}
	b.Run("fmath", func(b *testing.B) { throughput(b, xs, Exp) })
	b.Run("math", func(b *testing.B) { throughput(b, xs, math.Exp) })
}
