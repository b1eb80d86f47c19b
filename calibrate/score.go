package calibrate

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/plumbhq/plumb/conformal"
	"github.com/plumbhq/plumb/ensemble"
	"github.com/plumbhq/plumb/internal/fmath"
	"github.com/plumbhq/plumb/temperature"
)

// Thresholds of the action rule (DESIGN.md "Scoring one question", step 9).
const (
	// WordingShare: CLARIFY as WORDING_DEPENDENT when W ≥ WordingShare·H(π̄).
	WordingShare = 0.5
	// ReadingMass: MULTIPLE_READINGS needs ≥ 2 set members with π̄ ≥ ReadingMass…
	ReadingMass = 0.2
	// ReadingConfidence: …while most wordings have max_k π_p(k) ≥ ReadingConfidence.
	ReadingConfidence = 0.6
	// HighBadge: ANSWER with c ≥ HighBadge shows a HIGH badge.
	HighBadge = 0.8
	// logitClip keeps logit features finite: probabilities are held to [clip, 1 − clip]. A
	// share of m pooled samples is held to [1/(2m), 1 − 1/(2m)] instead (half a sample, the
	// continuity correction), so that a unanimous vote does not read as certainty.
	logitClip = 1e-6
)

// analysis is the per-question state shared by Score and Fit, kept in pooled scratch.
type analysis struct {
	samples bool
	n, k    int // wordings, candidates (all clusters for samples)
	kPool   int // candidates with pooled mass (options: k)

	labels    []string // option labels in canonical (sorted) order
	order     []int    // per wording, per canonical label: index into its options
	dists     []float64
	pbar      []float64
	use       []bool // pooled wordings
	stance    []int  // per wording: stance candidate, −1 when neutral or unknown
	noNeut    bool
	pooled    int
	top       int
	h, a, w   float64
	rowH      []float64 // per wording: H(π_p)
	rowH1     []float64 // per wording: H(π_p) at T = 1 (adaptive temperature)
	at1       []float64 // per wording: π_p at T = 1 (adaptive temperature)
	w1        float64   // W at T = 1 (adaptive temperature)
	haveAt1   bool      // at1, rowH1 and w1 hold the question's analysis at T = 1 (again)
	sameOrder bool      // labels, order and stance hold for the question (again)
	inOrder   bool      // every wording lists its labels in the first's order (check)
	perm      []int     // canonical label j is the first wording's option perm[j]

	masses     []float64 // per token of the question: its top_logprobs mass (validation's)
	haveMasses bool      // masses holds the question's (check) for the next analysis
	usedMasses bool      // the last analysis used masses (again keeps them for the next)
	v          float64

	tokens   bool      // any pooled sample has tokens
	tc       []float64 // per candidate: mean tc of its pooled samples
	tcSum    []float64 // per wording×candidate: Σ tc (for leave-one-out)
	count    []int     // per wording×candidate: samples
	answers  []string  // per candidate (samples)
	semEnt   float64
	z, phi   []float64
	items    []ensemble.Item
	assign   []int
	raw      []string
	sampleTC []float64
	features []float64
	scores   []float64
	rank     []int
	ord      []int
	loo      []float64
}

var scratchPool = sync.Pool{New: func() any { return new(analysis) }}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// analyze computes the per-wording distributions, the pool and the uncertainty of q under
// profile p. q must be valid.
func (s *analysis) analyze(p *Profile, q *Question, mode Equivalence) {
	s.n = len(q.Paraphrases)
	s.samples = len(q.Paraphrases[0].Samples) > 0
	s.use = grow(s.use, s.n)
	s.pooled = 0
	for i := range q.Paraphrases {
		if q.Paraphrases[i].Framing == Neutral {
			s.use[i] = true
			s.pooled++
		}
	}
	s.noNeut = s.pooled == 0
	s.tokens, s.semEnt = false, 0
	if s.noNeut {
		for i := range s.use {
			s.use[i] = true
		}
		s.pooled = s.n
	}
	if s.samples {
		s.analyzeSamples(p, q, mode)
	} else {
		s.analyzeOptions(p, q)
	}
	s.pbar = grow(s.pbar, s.k)
	ensemble.Pool(s.pbar, s.dists, s.use)
	s.top = ensemble.Argmax(s.pbar[:s.kPool])
	// The entropy split of ensemble.Split, with each wording's entropy kept for leave-one-out
	// (options computed it with the softmax).
	if s.samples {
		s.rowH = grow(s.rowH, s.n)
		for i := 0; i < s.n; i++ {
			s.rowH[i] = ensemble.Entropy(s.dists[i*s.k : (i+1)*s.k])
		}
	}
	s.a = 0
	for i := 0; i < s.n; i++ {
		if s.use[i] {
			s.a += s.rowH[i]
		}
	}
	s.a /= float64(s.pooled)
	s.h = ensemble.Entropy(s.pbar)
	s.w = max(s.h-s.a, 0)
	s.v = ensemble.Variance(s.dists, s.k, s.top, s.pbar[s.top], s.use)
	if s.samples {
		s.poolTokenConfidence()
	}
}

// analyzeOptions fills dists with softmax(z_p/T_p) over the labels in sorted order.
func (s *analysis) analyzeOptions(p *Profile, q *Question) {
	first := q.Paraphrases[0].Options
	s.k, s.kPool = len(first), len(first)
	s.dists = grow(s.dists, s.n*s.k)
	// What check and again kept is for this analysis only.
	useAt1, inOrder := s.haveAt1, s.inOrder
	s.haveAt1, s.haveMasses, s.inOrder = false, false, false
	if s.sameOrder {
		// The same question as the last analysis: its labels, order and stances hold.
		for i := range q.Paraphrases {
			opts := q.Paraphrases[i].Options
			row := s.dists[i*s.k : (i+1)*s.k]
			for j, o := range s.order[i*s.k : (i+1)*s.k] {
				row[j] = opts[o].Logprob
			}
		}
	} else {
		s.orderOptions(q, inOrder)
	}
	s.sameOrder = false
	s.rowH = grow(s.rowH, s.n)
	m := p.Temperature
	if !m.Adaptive() {
		t := m.At(nil)
		for i := 0; i < s.n; i++ {
			row := s.dists[i*s.k : (i+1)*s.k]
			s.rowH[i] = temperature.SoftmaxEntropy(row, row, t)
		}
		return
	}
	// Adaptive: φ_p needs each wording's distribution at T = 1 and the question's W at T = 1,
	// which an analysis at T = 1 of the same question may have kept (again).
	k := s.k
	if !useAt1 {
		s.at1 = grow(s.at1, s.n*k)
		s.rowH1 = grow(s.rowH1, s.n)
		var a float64
		for i := 0; i < s.n; i++ {
			s.rowH1[i] = temperature.SoftmaxEntropy(s.at1[i*k:(i+1)*k], s.dists[i*k:(i+1)*k], 1)
			if s.use[i] {
				a += s.rowH1[i]
			}
		}
		s.pbar = grow(s.pbar, k)
		ensemble.Pool(s.pbar, s.at1, s.use)
		s.w1 = max(ensemble.Entropy(s.pbar)-a/float64(s.pooled), 0)
	}
	s.phi = grow(s.phi, temperature.FeatureDim)
	for i := 0; i < s.n; i++ {
		row := s.dists[i*k : (i+1)*k]
		temperature.FeaturesFromProbs(s.phi, s.at1[i*k:(i+1)*k], s.rowH1[i], s.w1)
		s.rowH[i] = temperature.SoftmaxEntropy(row, row, m.At(s.phi))
	}
}

// orderOptions sorts the labels and finds, per wording, where each is among its options and
// which is its stance; dists gets the logprobs in that order. When validation found every
// wording's labels in the first's order (inOrder), the first's order serves them all.
func (s *analysis) orderOptions(q *Question, inOrder bool) {
	first := q.Paraphrases[0].Options
	k := s.k
	s.perm = grow(s.perm, k)
	s.labels = grow(s.labels, k)
	for i := range s.perm {
		s.perm[i] = i
	}
	// Insertion sort: few labels, no allocation.
	for i := 1; i < k; i++ {
		for j := i; j > 0 && first[s.perm[j]].Label < first[s.perm[j-1]].Label; j-- {
			s.perm[j], s.perm[j-1] = s.perm[j-1], s.perm[j]
		}
	}
	for j, o := range s.perm {
		s.labels[j] = first[o].Label
	}
	s.order = grow(s.order, s.n*k)
	s.stance = grow(s.stance, s.n)
	perm, labels := s.perm, s.labels[:len(s.perm)]
	for i := range q.Paraphrases {
		para := &q.Paraphrases[i]
		opts := para.Options
		row, order := s.dists[i*k:(i+1)*k], s.order[i*k:(i+1)*k]
		row, order = row[:len(perm)], order[:len(perm)] // bounds known to the compiler
		for j, o := range perm {
			if !inOrder && (o >= len(opts) || !sameLabel(opts[o].Label, labels[j])) {
				o = indexOf(opts, labels[j])
			}
			order[j] = o
			row[j] = opts[o].Logprob
		}
		s.stance[i] = -1
		if para.Framing == UserStance {
			for j, l := range labels {
				if sameLabel(l, para.Stance) {
					s.stance[i] = j
				}
			}
		}
	}
}

// again says the next analysis is of the same question: with samples, the validated token
// masses are kept; with options, the label order is, and with at1
// (an analysis at T = 1, the uncalibrated profile's, before one under an adaptive temperature
// whose features are read at T = 1) so are the distributions at T = 1. The numbers are those
// of recomputing them.
func (s *analysis) again(at1 bool) {
	if s.samples {
		s.haveMasses = s.usedMasses
		return
	}
	s.sameOrder = true
	if !at1 {
		return
	}
	s.at1 = append(s.at1[:0], s.dists[:s.n*s.k]...)
	s.rowH1 = append(s.rowH1[:0], s.rowH[:s.n]...)
	s.w1 = s.w
	s.haveAt1 = true
}

func modeOf(e Equivalence) ensemble.Mode {
	switch e {
	case EquivalenceF1:
		return ensemble.F1
	case EquivalenceEmbedding:
		return ensemble.Embedding
	}
	return ensemble.Exact
}

// analyzeSamples clusters every sample and fills dists with each wording's cluster shares.
func (s *analysis) analyzeSamples(p *Profile, q *Question, mode Equivalence) {
	total := 0
	for i := range q.Paraphrases {
		total += len(q.Paraphrases[i].Samples)
	}
	s.items = grow(s.items, total)
	s.assign = grow(s.assign, total)
	s.raw = grow(s.raw, total)
	s.sampleTC = grow(s.sampleTC, total)
	s.tokens = false
	t := p.Temperature.At(nil)
	idx, tok := 0, 0
	s.usedMasses, s.haveMasses = s.haveMasses, false
	for i := range q.Paraphrases {
		para := &q.Paraphrases[i]
		for j := range para.Samples {
			sm := &para.Samples[j]
			s.items[idx] = ensemble.Item{Norm: ensemble.Normalize(sm.Text), Embedding: sm.Embedding, Late: !s.use[i]}
			s.raw[idx] = sm.Text
			s.sampleTC[idx] = -1
			if len(sm.Tokens) > 0 {
				if s.use[i] {
					s.tokens = true
				}
				var masses []float64
				if s.usedMasses {
					masses = s.masses[tok : tok+len(sm.Tokens)]
				}
				s.sampleTC[idx] = sampleConfidence(sm.Tokens, t, masses)
				tok += len(sm.Tokens)
			}
			idx++
		}
	}
	m := modeOf(mode)
	if m == ensemble.Embedding && len(s.items) > 0 && len(s.items[0].Embedding) == 0 {
		m = ensemble.Exact
	}
	s.k = ensemble.Cluster(s.assign, s.items, m)
	// Neutral clusters are numbered first: the pooled candidates are 0..kPool−1.
	s.kPool = 0
	for i, it := range s.items {
		if !it.Late {
			s.kPool = max(s.kPool, s.assign[i]+1)
		}
	}
	s.dists = grow(s.dists, s.n*s.k)
	s.count = grow(s.count, s.n*s.k)
	s.tcSum = grow(s.tcSum, s.n*s.k)
	s.stance = grow(s.stance, s.n)
	idx = 0
	for i := range q.Paraphrases {
		para := &q.Paraphrases[i]
		for range para.Samples {
			c := s.assign[idx]
			s.count[i*s.k+c]++
			if s.sampleTC[idx] >= 0 {
				s.tcSum[i*s.k+c] += s.sampleTC[idx]
			}
			idx++
		}
		inv := 1 / float64(len(para.Samples))
		for c := 0; c < s.k; c++ {
			s.dists[i*s.k+c] = float64(s.count[i*s.k+c]) * inv
		}
		s.stance[i] = -1
		if para.Framing == UserStance {
			s.stance[i] = s.findCluster(para.Stance, m)
		}
	}
	// Each cluster's answer is its most frequent raw text among pooled samples (any sample for
	// clusters only stance wordings produced).
	s.answers = grow(s.answers, s.k)
	var pooledRaw []string
	var pooledAssign []int
	for i, it := range s.items {
		if !it.Late {
			pooledRaw = append(pooledRaw, s.raw[i])
			pooledAssign = append(pooledAssign, s.assign[i])
		}
	}
	copy(s.answers, ensemble.Representative(pooledRaw, pooledAssign, s.kPool))
	if s.k > s.kPool {
		late := ensemble.Representative(s.raw, s.assign, s.k)
		copy(s.answers[s.kPool:], late[s.kPool:])
	}
	counts := grow(s.rank, s.kPool)
	for c := 0; c < s.kPool; c++ {
		for i := 0; i < s.n; i++ {
			if s.use[i] {
				counts[c] += s.count[i*s.k+c]
			}
		}
	}
	s.semEnt = ensemble.SemanticEntropy(counts)
}

// findCluster returns the cluster whose representative text the stance matches, or −1.
func (s *analysis) findCluster(stance string, m ensemble.Mode) int {
	ns := ensemble.Normalize(stance)
	for i, it := range s.items {
		if it.Norm == ns || m == ensemble.F1 && ensemble.TokenF1(it.Norm, ns) >= ensemble.F1Threshold {
			return s.assign[i]
		}
	}
	return -1
}

// poolTokenConfidence sets tc per candidate: the mean tc of its pooled samples.
func (s *analysis) poolTokenConfidence() {
	s.tc = grow(s.tc, s.k)
	if !s.tokens {
		return
	}
	for c := 0; c < s.k; c++ {
		var sum float64
		var n int
		for i := 0; i < s.n; i++ {
			if s.use[i] {
				sum += s.tcSum[i*s.k+c]
				n += s.count[i*s.k+c]
			}
		}
		if n > 0 {
			s.tc[c] = sum / float64(n)
		}
	}
}

// sampleConfidence returns tc = exp(mean over tokens of log p_t(token)). masses holds each
// token's top_logprobs mass as validation summed it (nil: computed here).
func sampleConfidence(tokens []Token, t float64, masses []float64) float64 {
	var sum float64
	if t == 1 {
		for i := range tokens {
			sum += tokens[i].Logprob
		}
		return fmath.Exp(sum / float64(len(tokens)))
	}
	// Σ log p = Σ a − log Π s, with the product folded into the sum before it could overflow.
	prod := 1.0
	for i := range tokens {
		tok := &tokens[i]
		var top [20]float64
		tops := top[:0]
		at := -1
		for j, tl := range tok.TopLogprobs {
			if j == len(top) {
				break
			}
			if at < 0 && tl.Token == tok.Token {
				at = j
			}
			tops = append(tops, tl.Logprob)
		}
		mass := -1.0
		if masses != nil && len(tok.TopLogprobs) <= len(top) {
			mass = masses[i]
		}
		a, s := temperature.TokenTerms(tok.Logprob, tops, at, mass, t)
		sum += a
		if prod *= s; prod > 1e250 {
			sum -= fmath.Log(prod)
			prod = 1
		}
	}
	sum -= fmath.Log(prod)
	return fmath.Exp(sum / float64(len(tokens)))
}

func logit(p, clip float64) float64 {
	p = min(max(p, clip), 1-clip)
	return fmath.Log(p / (1 - p))
}

func sigmoid(x float64) float64 { return 1 / (1 + fmath.Exp(-x)) }

// mapFeatures fills f with the confidence-map features [1, logit π̄(k*), W, √V, logit tc(k*)]
// (the last only when tokens is true) and returns it.
func mapFeatures(f []float64, top, clip, w, v, tc float64, tokens bool) []float64 {
	f = append(f[:0], 1, logit(top, clip), w, math.Sqrt(v))
	if tokens {
		f = append(f, logit(tc, logitClip))
	}
	return f
}

// clip returns the bound of the logit of π̄(k*): logitClip for options, half a pooled sample
// for samples.
func (s *analysis) clip() float64 {
	if !s.samples {
		return logitClip
	}
	m := 0
	for i := 0; i < s.n; i++ {
		if s.use[i] {
			for c := 0; c < s.k; c++ {
				m += s.count[i*s.k+c]
			}
		}
	}
	return 0.5 / float64(m)
}

// confidence returns c for the analysed question: σ(w·f) under the profile's map, else π̄(k*).
func (s *analysis) confidence(p *Profile) float64 {
	return s.confidenceOf(p, s.pbar[s.top], s.w, s.v, s.tc, s.top)
}

func (s *analysis) confidenceOf(p *Profile, top, w, v float64, tc []float64, k int) float64 {
	if p.Map == nil {
		return top
	}
	var tck float64
	if s.tokens && len(tc) > k {
		tck = tc[k]
	}
	s.features = mapFeatures(s.features, top, s.clip(), w, v, tck, s.tokens)
	var x float64
	for i, f := range s.features {
		if i < len(p.Map) {
			x += p.Map[i] * f
		}
	}
	return sigmoid(x)
}

// sensitivity returns max over pooled p of |c − c₋ₚ|, with the pool, split, variance and token
// confidence recomputed without wording p (from totals over the pooled wordings, O(k) per
// wording), or 0 with fewer than 3 pooled wordings.
func (s *analysis) sensitivity(p *Profile, c float64) float64 {
	if s.pooled < 3 {
		return 0
	}
	k := s.k
	s.loo = grow(s.loo, 5*k)
	pb, tcs, s2, tcTot, nTot := s.loo[:k], s.loo[k:2*k], s.loo[2*k:3*k], s.loo[3*k:4*k], s.loo[4*k:]
	var sumH float64
	for i := 0; i < s.n; i++ {
		if !s.use[i] {
			continue
		}
		sumH += s.rowH[i]
		for j, v := range s.dists[i*k : (i+1)*k] {
			s2[j] += v * v
		}
		if s.tokens {
			for j := 0; j < k; j++ {
				tcTot[j] += s.tcSum[i*k+j]
				nTot[j] += float64(s.count[i*k+j])
			}
		}
	}
	m := float64(s.pooled - 1)
	var worst float64
	for skip := 0; skip < s.n; skip++ {
		if !s.use[skip] {
			continue
		}
		row := s.dists[skip*k : (skip+1)*k]
		ensemble.LeaveOneOut(pb, s.pbar, s.dists, s.pooled, skip)
		top := ensemble.Argmax(pb[:s.kPool])
		w := max(ensemble.Entropy(pb)-(sumH-s.rowH[skip])/m, 0)
		v := max((s2[top]-row[top]*row[top])/m-pb[top]*pb[top], 0)
		if s.tokens {
			for cl := 0; cl < k; cl++ {
				tcs[cl] = 0
				if n := nTot[cl] - float64(s.count[skip*k+cl]); n > 0 {
					tcs[cl] = (tcTot[cl] - s.tcSum[skip*k+cl]) / n
				}
			}
		}
		worst = max(worst, math.Abs(c-s.confidenceOf(p, pb[top], w, v, tcs, top)))
	}
	return worst
}

// Score scores one question under profile p (nil means Default()). It validates q first and
// computes nothing from invalid input. The error is an *Error naming the field.
func Score(p *Profile, q *Question) (Result, error) {
	if p == nil {
		p = Default()
	}
	mode := q.Policy.Equivalence
	if mode == EquivalenceDefault {
		mode = p.Equivalence
	}
	s := scratchPool.Get().(*analysis)
	defer scratchPool.Put(s)
	if err := s.check(q, mode); err != nil {
		return Result{}, err
	}
	if err := checkEvidence(p, q); err != nil {
		return Result{}, err
	}
	lambda, risk, err := p.threshold(q.Policy.Risk)
	if err != nil {
		return Result{}, err
	}
	s.analyze(p, q, mode)
	return s.result(p, q, lambda, risk), nil
}

// check validates q and keeps, for the analysis of q that follows, each token's top_logprobs
// mass, which validation sums to check it and token confidences need.
func (s *analysis) check(q *Question, mode Equivalence) error {
	s.masses = s.masses[:0]
	err := q.validateInto(mode, &s.masses, &s.inOrder)
	s.haveMasses = err == nil
	s.inOrder = s.inOrder && err == nil
	return err
}

func checkEvidence(p *Profile, q *Question) error {
	samples := len(q.Paraphrases[0].Samples) > 0
	if p.Evidence == EvidenceOptions && samples || p.Evidence == EvidenceSamples && !samples {
		return &Error{Kind: InvalidInput, Field: "paraphrases",
			Msg: "profile " + strconv.Quote(p.Name) + " was fitted on " + p.Evidence.String() + " and cannot score " + kindName(!samples)}
	}
	return nil
}

// threshold returns λ for a request's risk ε (0 = the profile's), read from the stored curve.
func (p *Profile) threshold(eps float64) (lambda, risk float64, err error) {
	if eps == 0 || eps == p.Risk {
		return p.Lambda, p.Risk, nil
	}
	if eps < p.RiskMin-1e-12 || eps > p.RiskMax+1e-12 {
		return 0, 0, invalid("policy.risk", "%v outside the profile's bounds [%v, %v]", eps, p.RiskMin, p.RiskMax)
	}
	if len(p.Curve) == 0 {
		return p.Lambda, p.Risk, nil
	}
	return conformal.Select(p.Curve, eps, p.Delta), eps, nil
}

// outcome is what the action rule decides for an analysed question: the numbers a report
// needs, without the strings a response carries.
type outcome struct {
	c       float64
	size    int  // prediction set size (its members are s.rank[:size])
	open    bool // q̂ = ∞
	action  Action
	why     Reason  // the reason that decided the action (ALTERNATIVES_PLAUSIBLE: none)
	shift   float64 // mean over stance wordings of π_p(stance) − π̄(stance)
	stances int     // USER_STANCE wordings
	flagged bool    // shift ≥ the profile's threshold
}

// decide computes c, the set, the sycophancy shift and the action of an analysed question
// (DESIGN.md steps 5, 6, 8 and 9). It leaves s.rank holding the pooled candidates, most
// probable first.
func (s *analysis) decide(p *Profile, q *Question, lambda float64, set *PredictionSet) outcome {
	o := outcome{c: s.confidence(p)}
	s.rank = grow(s.rank, s.kPool)
	conformal.Rank(s.rank, s.pbar[:s.kPool])
	o.size = s.predictionSet(p, q.Group, set)
	o.open = set.Open
	for i := 0; i < s.n; i++ {
		if q.Paraphrases[i].Framing != UserStance {
			continue
		}
		o.stances++
		if st := s.stance[i]; st >= 0 {
			o.shift += s.dists[i*s.k+st] - s.pbar[st]
		}
	}
	if o.stances > 0 {
		o.shift /= float64(o.stances)
	}
	o.flagged = o.stances > 0 && o.shift >= p.Syco
	switch {
	case o.c >= lambda:
		o.action, o.why = Answer, ReasonAlternativesPlausible
	case s.h > 1e-12 && s.w >= WordingShare*s.h:
		o.action, o.why = Clarify, ReasonWordingDependent
	case s.multipleReadings(o.size):
		o.action, o.why = Clarify, ReasonMultipleReadings
	case o.open:
		o.action, o.why = Abstain, ReasonOpenSet
	default:
		o.action, o.why = Abstain, ReasonLowConfidence
	}
	return o
}

// result assembles the Result of an analysed question.
func (s *analysis) result(p *Profile, q *Question, lambda, risk float64) Result {
	r := Result{
		ID:         q.ID,
		Calibrated: p.Calibrated,
		Profile:    ProfileRef{Name: p.Name, Version: p.Version},
		Lambda:     lambda,
		Risk:       risk,
	}
	o := s.decide(p, q, lambda, &r.Set)
	c := o.c
	r.Confidence, r.Action = c, o.action
	r.Uncertainty = Uncertainty{Total: s.h, Aleatoric: s.a, Wording: s.w, Variance: s.v,
		SemanticEntropy: s.semEnt, Wordings: s.pooled}
	if s.tokens {
		r.Uncertainty.TokenConfidence = s.tc[s.top]
	}
	r.Uncertainty.Sensitivity = s.sensitivity(p, c)

	// Candidates, most probable first; the set is the first o.size of them.
	r.Candidates = make([]Candidate, s.kPool)
	if !s.samples {
		// Options: a candidate's count is the pooled wordings whose top answer it is.
		s.ord = grow(s.ord, s.kPool)
		for w := 0; w < s.n; w++ {
			if s.use[w] {
				s.ord[ensemble.Argmax(s.dists[w*s.k:(w+1)*s.k])]++
			}
		}
	}
	for i, k := range s.rank {
		cand := Candidate{Answer: s.answer(k), Probability: s.pbar[k]}
		if !s.samples {
			cand.Count = s.ord[k]
		}
		if s.tokens {
			cand.TokenConfidence = s.tc[k]
		}
		if s.samples {
			for w := 0; w < s.n; w++ {
				if s.use[w] {
					cand.Count += s.count[w*s.k+k]
				}
			}
		}
		r.Candidates[i] = cand
	}
	r.Answer = r.Candidates[0].Answer
	r.Set.Answers = make([]string, o.size)
	for i := range r.Set.Answers {
		r.Set.Answers[i] = r.Candidates[i].Answer
	}
	r.Sycophancy = Sycophancy{Wordings: o.stances, Shift: o.shift, Threshold: p.Syco, Flagged: o.flagged}

	r.Reasons = make([]Reason, 0, 4)
	if o.action != Answer || o.size >= 2 {
		r.Reasons = append(r.Reasons, o.why)
	}
	if o.flagged {
		r.Reasons = append(r.Reasons, ReasonSycophancyRisk)
	}
	if s.noNeut {
		r.Reasons = append(r.Reasons, ReasonNoNeutralWording)
	}
	if !p.Calibrated {
		r.Reasons = append(r.Reasons, ReasonUncalibrated)
	}
	r.Badge = badge(r.Action, c, p.Calibrated, s.noNeut)
	return r
}

func (s *analysis) answer(k int) string {
	if s.samples {
		return s.answers[k]
	}
	return s.labels[k]
}

// predictionSet fills set (all but Answers) and returns its size; the members are the first
// size candidates of s.rank, since every score is monotone in π̄.
func (s *analysis) predictionSet(p *Profile, group string, set *PredictionSet) int {
	set.Alpha = p.Alpha
	if !p.Calibrated {
		// The smallest top set with π̄ mass ≥ 1 − α.
		var mass float64
		for i, k := range s.rank {
			mass += s.pbar[k]
			if mass >= 1-p.Alpha-1e-12 {
				return i + 1
			}
		}
		return len(s.rank)
	}
	set.Calibrated = true
	q := p.Quantiles.Global
	if g, ok := p.Quantiles.Groups[group]; ok {
		q = g
		set.Group = group
	}
	set.Threshold = q
	if math.IsInf(q, 1) {
		set.Open = true
		return len(s.rank)
	}
	s.scores = grow(s.scores, s.kPool)
	s.ord = grow(s.ord, s.kPool)
	conformal.Scores(s.scores, s.pbar[:s.kPool], p.Score, &p.RAPS, s.ord)
	size := 0
	for i, k := range s.rank {
		if i == 0 || s.scores[k] <= q+conformal.Tie {
			size = i + 1
		}
	}
	return size
}

// multipleReadings: ≥ 2 set members with π̄ ≥ ReadingMass while most pooled wordings are
// confident on their own.
func (s *analysis) multipleReadings(size int) bool {
	plausible := 0
	for _, k := range s.rank[:size] {
		if s.pbar[k] >= ReadingMass {
			plausible++
		}
	}
	if plausible < 2 {
		return false
	}
	confident := 0
	for i := 0; i < s.n; i++ {
		if !s.use[i] {
			continue
		}
		if slices.Max(s.dists[i*s.k:(i+1)*s.k]) >= ReadingConfidence {
			confident++
		}
	}
	return 2*confident > s.pooled
}

func badge(a Action, c float64, calibrated, capped bool) Badge {
	var level BadgeLevel
	switch {
	case !calibrated:
		level = BadgeUncalibrated
	case a != Answer:
		level = BadgeLow
	case c >= HighBadge && !capped:
		level = BadgeHigh
	default:
		level = BadgeMedium
	}
	pct := int(math.Round(c*20)) * 5
	var b strings.Builder
	b.Grow(24)
	b.WriteString(strconv.Itoa(pct))
	b.WriteString("% · ")
	b.WriteString(level.String())
	return Badge{Level: level, Label: b.String()}
}
