package calibrate

import (
	"math"
	"slices"

	"github.com/plumbhq/plumb/ensemble"
	"github.com/plumbhq/plumb/internal/fmath"
	"github.com/plumbhq/plumb/temperature"
)

// analysis is a prepared question under one profile: each wording's distribution π_p, the pool
// π̄ of the pooled wordings and its answer k*, and the uncertainty the confidence is computed
// from (docs/DESIGN.md "Scoring one question", steps 2 to 4); for samples also the token
// confidences and the semantic entropy (sampleAnalysis), and for an adaptive temperature the
// question at T = 1 (atOneScratch). Its slices are reused from one question to the next.
type analysis struct {
	e       *prepared
	dists   []float64 // n×k: π_p(j) at p*k+j
	rowH    []float64 // per wording: H(π_p)
	pbar    []float64 // π̄ (k; only the first kPool candidates can be the answer)
	top     int       // k* = argmax π̄ over the pooled candidates
	h, a, w float64   // H(π̄) = A + W
	v       float64   // var_p π_p(k*)

	sampleAnalysis
	atOneScratch
}

// sampleAnalysis is what an analysis of samples adds.
type sampleAnalysis struct {
	semEnt float64   // entropy of the pooled clusters' shares
	tokens bool      // some pooled sample has tokens
	tcSum  []float64 // n×k: Σ tc of wording p's samples in candidate j
	tc     []float64 // per candidate: mean tc of its pooled samples (0 without tokens)
	shares []int     // per pooled candidate: its pooled samples
}

// atOneScratch holds the question at T = 1 when an adaptive temperature needs it and no
// analysis at T = 1 is given.
type atOneScratch struct {
	dists1 []float64
	rowH1  []float64
	pbar1  []float64
	phi    []float64
}

// analyze computes e (which must be q's prepared form) under profile p. For an adaptive
// temperature, whose features are read at T = 1, at1 may be an analysis of e under a profile
// without temperature (T = 1), which an evaluation has anyway; nil computes it here.
func (a *analysis) analyze(e *prepared, q *Question, p *Profile, at1 *analysis) {
	a.e = e
	a.dists = grow(a.dists, e.n*e.k)
	a.rowH = grow(a.rowH, e.n)
	a.tokens, a.semEnt = false, 0
	if e.sampled() {
		a.sampleShares(q, p.Temperature.At(nil))
	} else {
		a.softmax(p.Temperature, at1)
	}
	a.pbar = grow(a.pbar, e.k)
	ensemble.Pool(a.pbar, a.dists, e.use)
	a.top = ensemble.Argmax(a.pbar[:e.kPool])
	a.h, a.a, a.w = ensemble.SplitFrom(a.pbar, a.rowH, e.use)
	a.v = ensemble.Variance(a.dists, e.k, a.top, a.pbar[a.top], e.use)
}

// softmax fills the distributions of an options question: softmax(z_p/T_p) at the model's
// temperature, one temperature for every wording or, when adaptive, T_p from wording p's
// features at T = 1.
func (a *analysis) softmax(m temperature.Model, at1 *analysis) {
	e := a.e
	k := e.k
	if !m.Adaptive() {
		t := m.At(nil)
		for i := 0; i < e.n; i++ {
			a.rowH[i] = temperature.SoftmaxEntropy(a.dists[i*k:(i+1)*k], e.logits[i*k:(i+1)*k], t)
		}
		return
	}
	dists1, rowH1, w1 := a.atOne(at1)
	a.phi = grow(a.phi, temperature.FeatureDim)
	for i := 0; i < e.n; i++ {
		temperature.FeaturesFromProbs(a.phi, dists1[i*k:(i+1)*k], rowH1[i], w1)
		a.rowH[i] = temperature.SoftmaxEntropy(a.dists[i*k:(i+1)*k], e.logits[i*k:(i+1)*k], m.At(a.phi))
	}
}

// atOne returns the distributions, their entropies and the wording divergence W of the
// question at T = 1: at1's, or computed into a's scratch when at1 is nil.
func (a *analysis) atOne(at1 *analysis) (dists, rowH []float64, w float64) {
	if at1 != nil {
		if at1.e != a.e {
			panic("calibrate: the analysis at T = 1 is of another question")
		}
		return at1.dists, at1.rowH, at1.w
	}
	e := a.e
	k := e.k
	a.dists1 = grow(a.dists1, e.n*k)
	a.rowH1 = grow(a.rowH1, e.n)
	a.pbar1 = grow(a.pbar1, k)
	for i := 0; i < e.n; i++ {
		a.rowH1[i] = temperature.SoftmaxEntropy(a.dists1[i*k:(i+1)*k], e.logits[i*k:(i+1)*k], 1)
	}
	ensemble.Pool(a.pbar1, a.dists1, e.use)
	_, _, w = ensemble.SplitFrom(a.pbar1, a.rowH1, e.use)
	return a.dists1, a.rowH1, w
}

// sampleShares fills the distributions of a samples question (each wording's share of samples
// per candidate), the semantic entropy of the pooled clusters and the token confidences at
// token temperature t.
func (a *analysis) sampleShares(q *Question, t float64) {
	e := a.e
	k := e.k
	a.tcSum = grow(a.tcSum, e.n*k)
	idx := 0
	for i := range q.Paraphrases {
		para := &q.Paraphrases[i]
		inv := 1 / float64(len(para.Samples))
		row := a.dists[i*k : (i+1)*k]
		for j, c := range e.count[i*k : (i+1)*k] {
			row[j] = float64(c) * inv
		}
		a.rowH[i] = ensemble.Entropy(row)
		for j := range para.Samples {
			if toks := para.Samples[j].Tokens; len(toks) > 0 {
				a.tcSum[i*k+e.assign[idx]] += sampleConfidence(toks, t)
				a.tokens = a.tokens || e.use[i]
			}
			idx++
		}
	}
	a.shares = grow(a.shares, e.kPool)
	a.tc = grow(a.tc, k)
	for c := 0; c < k; c++ {
		var sum float64
		var n int
		for i := 0; i < e.n; i++ {
			if e.use[i] {
				sum += a.tcSum[i*k+c]
				n += e.count[i*k+c]
			}
		}
		if c < e.kPool {
			a.shares[c] = n
		}
		if a.tokens && n > 0 {
			a.tc[c] = sum / float64(n)
		}
	}
	a.semEnt = ensemble.SemanticEntropy(a.shares)
}

// sampleConfidence returns a sample's token confidence tc = exp(mean over its tokens of
// log p_t(token)) (temperature.TokenLogProb).
func sampleConfidence(tokens []Token, t float64) float64 {
	var sum float64
	if t == 1 {
		for i := range tokens {
			sum += tokens[i].Logprob
		}
		return fmath.Exp(sum / float64(len(tokens)))
	}
	// Σ log p = Σ a − log Π s (temperature.TokenTerms), the product folded into the sum before
	// it could overflow.
	prod := 1.0
	var top [20]float64
	for i := range tokens {
		tok := &tokens[i]
		tops := top[:0]
		at := -1
		for j, tl := range tok.TopLogprobs {
			if j == len(top) {
				break // OpenAI serves at most 20
			}
			if at < 0 && tl.Token == tok.Token {
				at = j
			}
			tops = append(tops, tl.Logprob)
		}
		x, s := temperature.TokenTerms(tok.Logprob, tops, at, -1, t)
		sum += x
		if prod *= s; prod > 1e250 {
			sum -= fmath.Log(prod)
			prod = 1
		}
	}
	sum -= fmath.Log(prod)
	return fmath.Exp(sum / float64(len(tokens)))
}

// clip returns the bound of the logit of π̄(k*): logitClip for options; for samples half the
// finest step a pooled share can take, 1/(2·n·max_p m_p) for n pooled wordings of m_p samples
// (1/(2M) of M pooled samples when every wording has as many: the continuity correction), so
// that a unanimous vote does not read as certainty, while shares that differ are not clipped
// alike.
func (a *analysis) clip() float64 {
	e := a.e
	if !e.sampled() {
		return logitClip
	}
	return 0.5 / float64(e.pooled*e.maxSamples)
}

// wordingConfidence returns wording i's own confidence in its answer, and whether it is
// observed: max_k π_p(k) with option logprobs or ≥ 2 samples; the token confidence of its one
// sample when that has tokens; not observed for one sample without tokens.
func (a *analysis) wordingConfidence(i int) (float64, bool) {
	e := a.e
	row := a.dists[i*e.k : (i+1)*e.k]
	if !e.sampled() || e.size[i] >= 2 {
		return slices.Max(row), true
	}
	if e.tokens[i] {
		var tc float64
		for _, v := range a.tcSum[i*e.k : (i+1)*e.k] {
			tc += v
		}
		return tc, true
	}
	return 0, false
}

// logitClip keeps the logit features of options finite: probabilities are held to
// [logitClip, 1 − logitClip].
const logitClip = 1e-6

func logit(p, clip float64) float64 {
	p = min(max(p, clip), 1-clip)
	return fmath.Log(p / (1 - p))
}

func sigmoid(x float64) float64 { return 1 / (1 + fmath.Exp(-x)) }

// mapFeatures returns the confidence-map features f = [1, logit π̄(k*), W, √V, logit tc(k*)]
// in dst's memory (the last only when tokens is true).
func mapFeatures(dst []float64, top, clip, w, v, tc float64, tokens bool) []float64 {
	dst = append(dst[:0], 1, logit(top, clip), w, math.Sqrt(v))
	if tokens {
		dst = append(dst, logit(tc, logitClip))
	}
	return dst
}

// features returns the confidence-map features of the analysed question in dst's memory.
func (a *analysis) features(dst []float64) []float64 {
	return a.featuresOf(dst, a.pbar[a.top], a.w, a.v, a.tc, a.top)
}

// featuresOf returns the features of a pool whose answer k has probability top, wording
// divergence w, variance v and token confidences tc.
func (a *analysis) featuresOf(dst []float64, top, w, v float64, tc []float64, k int) []float64 {
	var tck float64
	if a.tokens {
		tck = tc[k]
	}
	return mapFeatures(dst, top, a.clip(), w, v, tck, a.tokens)
}

// confidence returns c = σ(w·f) under the profile's map, or π̄(k*) without one; f is scratch.
func (a *analysis) confidence(p *Profile, f *[]float64) float64 {
	return a.confidenceOf(p, f, a.pbar[a.top], a.w, a.v, a.tc, a.top)
}

func (a *analysis) confidenceOf(p *Profile, f *[]float64, top, w, v float64, tc []float64, k int) float64 {
	if p.Map == nil {
		return top
	}
	*f = a.featuresOf(*f, top, w, v, tc, k)
	var x float64
	for i, fi := range *f {
		if i < len(p.Map) {
			x += p.Map[i] * fi
		}
	}
	return sigmoid(x)
}
