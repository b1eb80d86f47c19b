// Package temperature turns raw model logprobs into distributions and fits the temperature
// that calibrates them.
//
// Softmax with temperature. For logits z and temperature T > 0,
//
//	log softmax(z/T)_k = z_k/T − log Σ_j exp(z_j/T),
//
// computed stably by subtracting max_j z_j/T before exponentiating (Goodfellow, Bengio and
// Courville 2016, §4.1). Option logprobs are used as logits: at T = 1 the distribution over a
// closed answer set is the model's renormalised probability of each option.
//
// Token confidence. An OpenAI-style token carries its own logprob l and up to 20 top_logprobs.
// Its distribution is taken to be the top entries (the chosen token added when it is not among
// them) plus one pseudo-token holding the residual mass r = 1 − Σ exp(top); at temperature T
//
//	log p_T(chosen) = l/T − log(Σ_j exp(l_j/T) + exp(log r / T)).
//
// At T = 1 this is l itself. A sample's token confidence is tc = exp(mean over tokens of
// log p_T(token)), the geometric-mean token probability (Malinin and Gales 2021).
//
// Fitting. Both fits minimise the negative log-likelihood of the gold answer under the pooled
// distribution π̄_T = mean over wordings p of softmax(z_p/T_p) (Guo et al. 2017 fit one T on the
// NLL of one distribution; plumb pools first because the pooled distribution is what it serves).
// Global scaling has T_p = exp(θ₀); adaptive scaling has log T_p = θ·φ_p with per-wording features
// φ_p (after Xie et al. 2024, "Calibrating language models with adaptive temperature scaling",
// using features an API exposes instead of hidden states). θ is found by L-BFGS (gonum/optimize)
// with the analytic gradient
//
//	∂(−log π̄(y))/∂θ = (1/π̄(y)) · (1/n) Σ_p π_p(y) (u_py − Σ_j π_pj u_pj) φ_p,   u_p = z_p/T_p,
//
// and T is held in [MinTemperature, MaxTemperature] (the gradient is zero where it is clamped).
package temperature

import (
	"math"

	"github.com/plumbhq/plumb/internal/fmath"
)

// Temperatures outside [MinTemperature, MaxTemperature] are clamped to the bounds.
const (
	MinTemperature = 0.05
	MaxTemperature = 20
)

// Clamp returns t held to [MinTemperature, MaxTemperature].
func Clamp(t float64) float64 {
	return min(max(t, MinTemperature), MaxTemperature)
}

// LogSoftmax fills dst with log softmax(z/t) and returns it. If dst is nil a new slice is
// allocated. It panics if t is not positive or len(dst) != len(z).
func LogSoftmax(dst, z []float64, t float64) []float64 {
	dst = prepare(dst, z, t)
	m := maxOf(z)
	var s float64
	it := 1 / t
	for i, v := range z {
		dst[i] = (v - m) * it
		s += fmath.Exp(dst[i])
	}
	ls := fmath.Log(s)
	for i := range dst {
		dst[i] -= ls
	}
	return dst
}

// Softmax fills dst with softmax(z/t) and returns it. If dst is nil a new slice is
// allocated. It panics if t is not positive or len(dst) != len(z).
func Softmax(dst, z []float64, t float64) []float64 {
	dst = prepare(dst, z, t)
	m := maxOf(z)
	var s float64
	it := 1 / t
	for i, v := range z {
		e := fmath.Exp((v - m) * it)
		dst[i] = e
		s += e
	}
	inv := 1 / s
	for i := range dst {
		dst[i] *= inv
	}
	return dst
}

// SoftmaxEntropy fills dst (which may be z) with softmax(z/t) like Softmax and returns its
// entropy in nats,
// computed with one logarithm as H = log Σ_j e^{u_j − m} − Σ_j p_j (u_j − m), u = z/t,
// m = max u. It panics as Softmax does.
func SoftmaxEntropy(dst, z []float64, t float64) float64 {
	dst = prepare(dst, z, t)
	m := maxOf(z)
	// One pass, so that dst may alias z: Σ e_j and Σ e_j (u_j − m).
	var s, eu float64
	it := 1 / t
	for i, v := range z {
		u := (v - m) * it
		e := fmath.Exp(u)
		dst[i] = e
		s += e
		eu += e * u
	}
	inv := 1 / s
	for i := range dst {
		dst[i] *= inv
	}
	return max(fmath.Log(s)-eu*inv, 0)
}

// maxOf returns the largest of z (−Inf for none).
func maxOf(z []float64) float64 {
	m := math.Inf(-1)
	for _, v := range z {
		if v > m {
			m = v
		}
	}
	return m
}

func prepare(dst, z []float64, t float64) []float64 {
	if !(t > 0) {
		panic("temperature: non-positive temperature")
	}
	if dst == nil {
		return make([]float64, len(z))
	}
	if len(dst) != len(z) {
		panic("temperature: slice length mismatch")
	}
	return dst
}

// TokenLogProb returns log p_t(chosen) for one token whose own logprob is chosen and whose
// top_logprobs are top. chosenAt is the index of the chosen token in top, or −1 when it is not
// among them (it then counts as one more entry). The residual mass 1 − Σ exp(entries), when
// positive, is one pseudo-token. At t = 1 the result is chosen. It panics if t is not positive.
func TokenLogProb(chosen float64, top []float64, chosenAt int, t float64) float64 {
	if !(t > 0) {
		panic("temperature: non-positive temperature")
	}
	if t == 1 {
		return chosen
	}
	a, s := TokenTerms(chosen, top, chosenAt, -1, t)
	return a - fmath.Log(s)
}

// TokenTerms returns a and s with log p_t(chosen) = a − log s (TokenLogProb), for callers
// that sum the log-probabilities of many tokens: s lies in [1, len(top)+2], so they can
// multiply the s of many tokens and take one logarithm. topMass is Σ exp(top) when the caller
// has it (validation sums it to check it), or negative. t must be positive.
func TokenTerms(chosen float64, top []float64, chosenAt int, topMass, t float64) (a, s float64) {
	m := chosen
	for _, l := range top {
		if l > m {
			m = l
		}
	}
	if topMass < 0 {
		topMass = 0
		for _, l := range top {
			topMass += fmath.Exp(l)
		}
	}
	mass := topMass
	inv := 1 / t
	if chosenAt < 0 {
		mass += fmath.Exp(chosen)
		s = fmath.Exp((chosen - m) * inv)
	}
	for _, l := range top {
		s += fmath.Exp((l - m) * inv)
	}
	if r := 1 - mass; r > 1e-12 {
		s += fmath.Exp((fmath.Log(r) - m) * inv)
	}
	return (chosen - m) * inv, s
}

// AdaptiveFeatures fills dst with the adaptive-temperature features of one wording,
// φ = [1, H(softmax(z))/log K, top-1 − top-2 probability margin, wording], where wording is the
// question's wording divergence W at T = 1. It returns dst, allocating when dst is nil.
// It panics if len(z) < 2 or dst has a length other than FeatureDim.
func AdaptiveFeatures(dst, z []float64, wording float64) []float64 {
	if len(z) < 2 {
		panic("temperature: fewer than two logits")
	}
	p := make([]float64, len(z))
	h := SoftmaxEntropy(p, z, 1)
	return FeaturesFromProbs(dst, p, h, wording)
}

// FeaturesFromProbs is AdaptiveFeatures given the wording's distribution p = softmax(z) and
// its entropy h, for callers that have them already.
func FeaturesFromProbs(dst, p []float64, h, wording float64) []float64 {
	if dst == nil {
		dst = make([]float64, FeatureDim)
	}
	if len(dst) != FeatureDim {
		panic("temperature: feature slice length mismatch")
	}
	var p1, p2 float64
	for _, v := range p {
		switch {
		case v > p1:
			p1, p2 = v, p1
		case v > p2:
			p2 = v
		}
	}
	dst[0] = 1
	dst[1] = h / logOf(len(p))
	dst[2] = p1 - p2
	dst[3] = wording
	return dst
}

// logs holds log k for the label counts a question may have (the same numbers math.Log gives).
var logs = func() (l [65]float64) {
	for k := range l {
		l[k] = math.Log(float64(k))
	}
	return l
}()

func logOf(k int) float64 {
	if k < len(logs) {
		return logs[k]
	}
	return math.Log(float64(k))
}

// FeatureDim is the length of the adaptive-temperature feature vector.
const FeatureDim = 4

// Model is a fitted temperature: log T = Theta·φ, clamped. A nil or empty Theta means T = 1;
// a Theta of length one is global scaling (φ = [1]).
type Model struct {
	Theta []float64
}

// Global returns the model with a single temperature t.
func Global(t float64) Model { return Model{Theta: []float64{math.Log(t)}} }

// Adaptive reports whether the model uses the wording features.
func (m Model) Adaptive() bool { return len(m.Theta) > 1 }

// At returns the temperature for features phi. Global and identity models ignore phi.
// It panics if the model is adaptive and len(phi) != len(Theta).
func (m Model) At(phi []float64) float64 {
	switch len(m.Theta) {
	case 0:
		return 1
	case 1:
		return Clamp(fmath.Exp(m.Theta[0]))
	}
	if len(phi) != len(m.Theta) {
		panic("temperature: feature length mismatch")
	}
	var lt float64
	for i, v := range m.Theta {
		lt += v * phi[i]
	}
	return Clamp(fmath.Exp(lt))
}
