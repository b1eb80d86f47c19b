package temperature

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/plumbhq/plumb/internal/datasets"
)

func TestLogSoftmax(t *testing.T) {
	// Hand calculation: log(e¹ + e² + e³) = 3.4076059644443806, so
	// log softmax([1,2,3]) = [1,2,3] − 3.4076059644443806. At T = 2 the logits are [0.5,1,1.5]
	// and log(e^0.5 + e^1 + e^1.5) = 2.1802696706417346 (python3: math.log(math.exp(.5)+math.exp(1)+math.exp(1.5)))
	for _, tc := range []struct {
		name string
		z    []float64
		t    float64
		want []float64
	}{
		{"T=1", []float64{1, 2, 3}, 1, []float64{-2.4076059644443806, -1.4076059644443806, -0.4076059644443806}},
		{"T=2", []float64{1, 2, 3}, 2, []float64{0.5 - 2.1802696706417346, 1 - 2.1802696706417346, 1.5 - 2.1802696706417346}},
		{"huge logits stay finite", []float64{1000, 1000}, 1, []float64{-math.Ln2, -math.Ln2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LogSoftmax(nil, tc.z, tc.t)
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 1e-12 {
					t.Errorf("LogSoftmax[%d] = %.15g, want %.15g", i, got[i], tc.want[i])
				}
			}
			p := Softmax(nil, tc.z, tc.t)
			for i := range p {
				if math.Abs(math.Log(p[i])-tc.want[i]) > 1e-12 {
					t.Errorf("log Softmax[%d] = %.15g, want %.15g", i, math.Log(p[i]), tc.want[i])
				}
			}
		})
	}
}

// TestSoftmaxEntropy checks the one-logarithm entropy against −Σ p log p of the same softmax.
func TestSoftmaxEntropy(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for trial := 0; trial < 1000; trial++ {
		z := make([]float64, 2+rng.IntN(8))
		for i := range z {
			z[i] = rng.NormFloat64() * 5
		}
		tt := 0.1 + 3*rng.Float64()
		p := make([]float64, len(z))
		h := SoftmaxEntropy(p, z, tt)
		var want float64
		for i, v := range Softmax(nil, z, tt) {
			if math.Abs(v-p[i]) > 1e-15 {
				t.Fatalf("probabilities differ: %v vs %v", p[i], v)
			}
			if v > 0 {
				want -= v * math.Log(v)
			}
		}
		if math.Abs(h-want) > 1e-12 {
			t.Fatalf("z=%v t=%v: entropy %.15g, want %.15g", z, tt, h, want)
		}
		// In place, as Score calls it.
		if hh := SoftmaxEntropy(z, z, tt); hh != h {
			t.Fatalf("in place: entropy %.15g, want %.15g", hh, h)
		}
	}
}

func TestTokenLogProb(t *testing.T) {
	lp := []float64{math.Log(0.5), math.Log(0.3)} // residual 0.2
	// At T = 1 the token's own logprob comes back unchanged.
	if got := TokenLogProb(lp[0], lp, 0, 1); got != lp[0] {
		t.Errorf("T=1: got %v, want %v", got, lp[0])
	}
	// At T = 2 the distribution is ∝ √0.5, √0.3, √0.2 (the residual pseudo-token), so
	// p(chosen) = √0.5 / (√0.5 + √0.3 + √0.2) = 0.70710678/(0.70710678+0.54772256+0.44721360).
	want := math.Log(0.7071067811865476 / (0.7071067811865476 + 0.5477225575051661 + 0.4472135954999579))
	if got := TokenLogProb(lp[0], lp, 0, 2); math.Abs(got-want) > 1e-12 {
		t.Errorf("T=2: got %.15g, want %.15g", got, want)
	}
	// A chosen token outside its top list counts as one more entry: {0.5, 0.3} plus chosen 0.1,
	// residual 0.1; at T = 0.5 the weights are squares: 0.01/(0.25+0.09+0.01+0.01).
	want = math.Log(0.01 / 0.36)
	if got := TokenLogProb(math.Log(0.1), lp, -1, 0.5); math.Abs(got-want) > 1e-12 {
		t.Errorf("chosen outside top: got %.15g, want %.15g", got, want)
	}
	// The analytic derivative of the token-confidence NLL in log T matches a central difference.
	d := &Tokens{}
	d.Add([][]Token{{{Logprob: lp[0], Top: lp, ChosenAt: 0}, {Logprob: math.Log(0.1), Top: lp, ChosenAt: -1}}}, true)
	d.Add([][]Token{{{Logprob: lp[1], Top: lp, ChosenAt: 1}}}, false)
	for _, x := range []float64{-1.2, 0, 0.9} {
		_, g := d.objective(x)
		h := 1e-6
		fp, _ := d.objective(x + h)
		fm, _ := d.objective(x - h)
		if fd := (fp - fm) / (2 * h); math.Abs(g-fd) > 1e-7*math.Max(1, math.Abs(fd)) {
			t.Errorf("log T=%v: d/dlogT = %v, finite difference %v", x, g, fd)
		}
	}
}

func loadPooled(t *testing.T, features bool) *Pooled {
	qs := datasets.MMLU(t)
	d := &Pooled{}
	for _, q := range qs {
		k := len(q.Labels)
		var flat, f []float64
		for _, z := range q.Logits {
			flat = append(flat, z...)
		}
		if features {
			for _, z := range q.Logits {
				f = append(f, AdaptiveFeatures(nil, z, 0.1)...)
			}
		}
		d.Add(k, flat, f, q.Gold)
	}
	return d
}

// TestGlobalMMLU reproduces testdata/mmlu-llama13b/REFERENCE.md on all 1 115 lines: the pooled NLL at
// T = 1 (1.193554) and the global T (0.756009, tolerance 1e-4) with its NLL (1.184861).
func TestGlobalMMLU(t *testing.T) {
	d := loadPooled(t, false)
	if d.Len() != 1115 {
		t.Fatalf("%d questions, want 1115", d.Len())
	}
	if got := d.NLL(Model{}); math.Abs(got-1.193554) > 1e-6 {
		t.Errorf("pooled NLL at T=1 = %.7f, want 1.193554", got)
	}
	m, err := FitGlobal(d)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.At(nil); math.Abs(got-0.756009) > 1e-4 {
		t.Errorf("global T = %.6f, want 0.756009", got)
	}
	if got := d.NLL(m); math.Abs(got-0.184861-1) > 1e-6 {
		t.Errorf("pooled NLL at fitted T = %.7f, want 1.184861", got)
	}
}

// TestPerWordingMMLU reproduces REFERENCE.md's per-wording fit: each wording of each line taken
// as its own question (so the pooled NLL is −mean_{i,p} log softmax(z_p/T)(gold)): NLL 1.202153
// at T = 1 and 1.198137 at the fitted T = 0.831488 (tolerance 1e-4 on T, 1e-6 on the NLLs).
func TestPerWordingMMLU(t *testing.T) {
	qs := datasets.MMLU(t)
	d := &Pooled{}
	for _, q := range qs {
		for _, z := range q.Logits {
			d.Add(len(z), z, nil, q.Gold)
		}
	}
	if got := d.NLL(Model{}); math.Abs(got-1.202153) > 1e-6 {
		t.Errorf("per-wording NLL at T=1 = %.7f, want 1.202153", got)
	}
	m, err := FitGlobal(d)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.At(nil); math.Abs(got-0.831488) > 1e-4 {
		t.Errorf("per-wording T = %.6f, want 0.831488", got)
	}
	if got := d.NLL(m); math.Abs(got-1.198137) > 1e-6 {
		t.Errorf("per-wording NLL at fitted T = %.7f, want 1.198137", got)
	}
}

// TestAdaptiveGradient checks the analytic gradient of the regularised pooled NLL against
// central finite differences, to 1e-6 relative.
func TestAdaptiveGradient(t *testing.T) {
	d := loadPooled(t, true)
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 5; trial++ {
		theta := make([]float64, FeatureDim)
		for i := range theta {
			theta[i] = rng.NormFloat64() * 0.3
		}
		grad := make([]float64, FeatureDim)
		d.objective(theta, grad, 1e-3)
		for i := range theta {
			h := 1e-5
			x := append([]float64(nil), theta...)
			x[i] += h
			fp, _ := d.objective(x, nil, 1e-3)
			x[i] -= 2 * h
			fm, _ := d.objective(x, nil, 1e-3)
			fd := (fp - fm) / (2 * h)
			if rel := math.Abs(grad[i]-fd) / math.Max(math.Abs(fd), 1e-3); rel > 1e-6 {
				t.Errorf("theta=%v: grad[%d] = %.10g, finite difference %.10g (rel %.2g)", theta, i, grad[i], fd, rel)
			}
		}
	}
}

// TestFitAdaptiveNotWorse: the adaptive fit, which starts from the global optimum and can set
// its extra coefficients to zero, must reach a regularised NLL no higher than global's.
func TestFitAdaptiveNotWorse(t *testing.T) {
	d := loadPooled(t, true)
	g, _ := FitGlobal(d)
	a, err := FitAdaptive(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.NLL(a) > d.NLL(g)+1e-9 {
		t.Errorf("adaptive NLL %.7f above global %.7f", d.NLL(a), d.NLL(g))
	}
	m, method, err := FitAuto(d, nil)
	if err != nil || (method != MethodGlobal && method != MethodAdaptive) || len(m.Theta) == 0 {
		t.Errorf("FitAuto = %v, %v, %v", m, method, err)
	}
}

// TestFitTokens recovers a known temperature: tokens whose reported distribution is the true
// one sharpened by T* = 2 (logprobs = log softmax(2·u)), and correctness drawn from the true tc.
func TestFitTokens(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	d := &Tokens{}
	const tStar = 2.0
	for q := 0; q < 4000; q++ {
		var sample []Token
		trueLP := 0.0
		for j := 0; j < 4; j++ {
			u := []float64{rng.NormFloat64() + 1.5, rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()}
			truth := LogSoftmax(nil, u, 1)
			rep := LogSoftmax(nil, u, 1/tStar)
			trueLP += truth[0]
			sample = append(sample, Token{Logprob: rep[0], Top: rep, ChosenAt: 0})
		}
		tc := math.Exp(trueLP / 4)
		d.Add([][]Token{sample}, rng.Float64() < tc)
	}
	m, err := FitTokens(d)
	if err != nil {
		t.Fatal(err)
	}
	// The geometric-mean confidence is not the exact probability of correctness, so allow 10 %.
	if got := m.At(nil); math.Abs(got-tStar)/tStar > 0.10 {
		t.Errorf("fitted T = %.3f, want %.1f ± 10%%", got, tStar)
	}
}

func ExampleSoftmax() {
	p := Softmax(nil, []float64{0, math.Log(3)}, 1)
	fmt.Printf("%.2f\n", p)
	// Output: [0.25 0.75]
}

func ExampleTokenLogProb() {
	// A token with probability 0.5, alternatives 0.3, residual 0.2, read at T = 2.
	top := []float64{math.Log(0.5), math.Log(0.3)}
	fmt.Printf("%.4f\n", math.Exp(TokenLogProb(top[0], top, 0, 2)))
	// Output: 0.4154
}
