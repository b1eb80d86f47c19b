package calibrate

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/plumbhq/plumb/ensemble"
)

// Long answers (docs/DESIGN.md "Long answers"): a question with Claims is a paragraph under
// judgement, a claim each, and its wordings carry passages the model wrote for the same
// question. Each claim gets a calibrated confidence and an action, from how far the passages
// support it, pooled over the neutral wordings as a question's answers are.

// Caps of a long answer, besides those of every request (MaxParaphrases, MaxTokens).
const (
	// MaxClaims is the most claims a request may have.
	MaxClaims = 256
	// MaxClaimSamples is the most samples a claims request may have, over all its wordings:
	// the support is measured for every claim in every sample.
	MaxClaimSamples = 1000
	// MaxPassageBytes is the longest sample text of a claims request (a passage, not a short
	// answer).
	MaxPassageBytes = 16 << 10
)

// ClaimFeatures is the length of a claim's confidence-map features:
// f = [1, logit S, √V, log(1 + samples)].
const ClaimFeatures = 4

// claimField is "claims[j]".
func claimField(j int) string { return "claims[" + strconv.Itoa(j) + "]" }

// validateClaims checks a long answer against the bad-input table; q has 1..MaxParaphrases
// wordings (validate checked). The support is the caller's (every sample has one per claim),
// embedding (every claim an embedding, every sample its sentences') or lexical.
func (q *Question) validateClaims() error {
	if q.Policy.Risk != 0 {
		return invalid("policy.risk", "a long answer's claims are kept above the profile's threshold τ, fitted at its α: a request cannot move it (fit at another --alpha)")
	}
	if len(q.Claims) > MaxClaims {
		return exhausted("claims", "%d claims, at most %d a request", len(q.Claims), MaxClaims)
	}
	embedded := 0
	dim := -1
	for j := range q.Claims {
		c := &q.Claims[j]
		if strings.TrimSpace(c.Text) == "" {
			return invalid(claimField(j)+".text", "empty claim")
		}
		if len(c.Text) > MaxTextBytes {
			return exhausted(claimField(j)+".text", "%d bytes, at most %d", len(c.Text), MaxTextBytes)
		}
		if len(c.ID) > MaxTextBytes {
			return exhausted(claimField(j)+".id", "%d bytes, at most %d", len(c.ID), MaxTextBytes)
		}
		if len(c.Embedding) > 0 {
			embedded++
			if err := checkEmbedding(c.Embedding, &dim, func() string { return claimField(j) }); err != nil {
				return err
			}
		}
	}
	if embedded > 0 && embedded < len(q.Claims) {
		return invalid("claims", "%d of %d claims have an embedding: give one for every claim, or for none", embedded, len(q.Claims))
	}
	samples, tokens, values := 0, 0, 0
	judged := -1 // the first sample's: 1 with support, 0 without
	for i := range q.Paraphrases {
		p := &q.Paraphrases[i]
		if len(p.Options) > 0 {
			return invalid(paraField(i)+".options", "a long answer's wordings carry samples (passages), not options")
		}
		if len(p.Samples) == 0 {
			return invalid(paraField(i), "no samples: a long answer's wordings carry the passages the model wrote")
		}
		if p.Framing != Neutral && p.Framing != UserStance {
			return invalid(paraField(i)+".framing", "unknown framing %d", p.Framing)
		}
		if len(p.Stance) > MaxTextBytes {
			return exhausted(paraField(i)+".stance", "%d bytes, at most %d", len(p.Stance), MaxTextBytes)
		}
		samples += len(p.Samples)
		if samples > MaxClaimSamples {
			return exhausted("paraphrases", "more than %d samples, at most %d a long answer", MaxClaimSamples, MaxClaimSamples)
		}
		for m := range p.Samples {
			s := &p.Samples[m]
			sf := func() string { return paraField(i) + ".samples[" + strconv.Itoa(m) + "]" }
			if s.Text == "" {
				return invalid(sf()+".text", "empty passage")
			}
			if len(s.Text) > MaxPassageBytes {
				return exhausted(sf()+".text", "%d bytes, at most %d a passage", len(s.Text), MaxPassageBytes)
			}
			if tokens += len(s.Tokens); tokens > MaxTokens {
				return exhausted("paraphrases", "more than %d tokens in one request", MaxTokens)
			}
			has := 0
			if s.Support != nil {
				has = 1
			}
			if judged < 0 {
				judged = has
			}
			if has != judged {
				return invalid(sf()+".support", "support is given for some samples and not others: give it for every sample, or for none (plumb then measures it)")
			}
			if has == 1 {
				if len(s.Support) != len(q.Claims) {
					return invalid(sf()+".support", "%d values, want one per claim (%d)", len(s.Support), len(q.Claims))
				}
				for j, v := range s.Support {
					if !(v >= 0 && v <= 1) {
						return invalid(sf()+".support["+strconv.Itoa(j)+"]", "%v outside [0, 1]", v)
					}
				}
			}
			if embedded > 0 && has == 0 {
				if len(s.Sentences) == 0 {
					return invalid(sf()+".sentences", "the claims have embeddings: give the embeddings of every sample's sentences")
				}
				for k, e := range s.Sentences {
					if err := checkEmbedding(e, &dim, func() string { return sf() + ".sentences[" + strconv.Itoa(k) + "]" }); err != nil {
						return err
					}
					if values += len(e); values > MaxEmbeddingValues {
						return exhausted("paraphrases", "more than %d embedding values in one request", MaxEmbeddingValues)
					}
				}
			}
		}
	}
	return nil
}

// claimAnalysis is a long answer's support: each wording's mean support of each claim over
// its samples, the pooled wordings, and the measure.
type claimAnalysis struct {
	measure   SupportMeasure
	n, k      int       // wordings, claims
	mean      []float64 // n×k: wording p's mean support of claim j at p*k+j
	sq        []float64 // n×k: wording p's mean squared support of claim j
	size      []int     // per wording: its samples
	scratch   []float64 // claimMeans's
	scratch2  []float64
	use       []bool // per wording: pooled
	pooled    int
	noNeutral bool
	samples   int // pooled samples
}

// analyzeClaims measures how far every sample supports every claim, and averages per wording.
func analyzeClaims(ctx context.Context, q *Question) (*claimAnalysis, error) {
	n, k := len(q.Paraphrases), len(q.Claims)
	a := &claimAnalysis{n: n, k: k, mean: make([]float64, n*k), sq: make([]float64, n*k), use: make([]bool, n), size: make([]int, n)}
	for i := range q.Paraphrases {
		a.size[i] = len(q.Paraphrases[i].Samples)
	}
	for i := range q.Paraphrases {
		if q.Paraphrases[i].Framing == Neutral {
			a.use[i] = true
			a.pooled++
		}
	}
	if a.noNeutral = a.pooled == 0; a.noNeutral {
		for i := range a.use {
			a.use[i] = true
		}
		a.pooled = n
	}
	for i := range q.Paraphrases {
		if a.use[i] {
			a.samples += len(q.Paraphrases[i].Samples)
		}
	}
	first := &q.Paraphrases[0].Samples[0]
	switch {
	case first.Support != nil:
		a.measure = SupportJudge
		for i := range q.Paraphrases {
			row, sq := a.mean[i*k:(i+1)*k], a.sq[i*k:(i+1)*k]
			for _, s := range q.Paraphrases[i].Samples {
				for j, v := range s.Support {
					row[j] += v
					sq[j] += v * v
				}
			}
		}
		a.means()
	case len(q.Claims[0].Embedding) > 0:
		a.measure = SupportEmbedding
		a.embeddingSupport(q)
	default:
		a.measure = SupportLexical
		if err := a.lexicalSupport(ctx, q); err != nil {
			return nil, err
		}
	}
	return a, ctx.Err()
}

// lexicalSupport measures the support of every claim by every sample with ensemble's Lexicon,
// the words weighted by their frequency among the pooled wordings' samples.
func (a *claimAnalysis) lexicalSupport(ctx context.Context, q *Question) error {
	// The pooled wordings' samples first: they are the reference.
	var texts []string
	var from []int // per text: its wording
	for _, pooled := range []bool{true, false} {
		for i := range q.Paraphrases {
			if a.use[i] == pooled {
				for _, s := range q.Paraphrases[i].Samples {
					texts = append(texts, s.Text)
					from = append(from, i)
				}
			}
		}
	}
	lex, err := ensemble.NewLexicon(ctx, texts, a.samples)
	if err != nil {
		return err
	}
	support := make([]float64, len(texts))
	for j := range q.Claims {
		if j%16 == 15 && ctx.Err() != nil {
			return ctx.Err()
		}
		lex.Support(support, q.Claims[j].Text)
		for m, v := range support {
			a.mean[from[m]*a.k+j] += v
			a.sq[from[m]*a.k+j] += v * v
		}
	}
	a.means()
	return nil
}

// means turns the sums of each wording's supports, and of their squares, into means.
func (a *claimAnalysis) means() {
	for i := range a.n {
		inv := 1 / float64(a.size[i])
		for j := range a.k {
			a.mean[i*a.k+j] *= inv
			a.sq[i*a.k+j] *= inv
		}
	}
}

// embeddingSupport measures the support of a claim by a sample as the highest cosine of the
// claim's embedding with the sample's sentences', held at 0 or more.
func (a *claimAnalysis) embeddingSupport(q *Question) {
	defer a.means()
	for i := range q.Paraphrases {
		samples := q.Paraphrases[i].Samples
		for j := range q.Claims {
			for _, s := range samples {
				best := 0.0
				for _, e := range s.Sentences {
					best = max(best, ensemble.Cosine(q.Claims[j].Embedding, e))
				}
				a.mean[i*a.k+j] += best
				a.sq[i*a.k+j] += best * best
			}
		}
	}
}

// claim returns claim j's grounded support S (the mean over pooled wordings of their mean
// support), the variance V of the pooled wordings' means, and the sycophancy shift: the mean
// over USER_STANCE wordings of their mean support minus S (0 without one, or when every
// wording carries a stance and all are pooled).
func (a *claimAnalysis) claim(j int) (s, v, shift float64) {
	s, v, shift, _ = a.claimShift(j)
	return s, v, shift
}

// zShift is the standard normal quantile a claim's sycophancy shift must pass, in standard
// errors, to be flagged: a one-sided test at 0.05. A wording of ten samples moves a claim's
// mean support by ±0.15 by chance alone; the threshold alone would flag that.
const zShift = 1.6448536269514722

// claimShift is claim, and whether the shift is significant: at least zShift standard errors
// of the difference between the stance wordings' samples' mean support and the pooled ones'.
func (a *claimAnalysis) claimShift(j int) (s, v, shift float64, significant bool) {
	var pooledSum, pooledSq, stanceSum, stanceSq float64
	var pooledN, stanceN float64
	for i := range a.n {
		m := float64(a.size[i])
		if a.use[i] {
			pooledSum += a.mean[i*a.k+j] * m
			pooledSq += a.sq[i*a.k+j] * m
			pooledN += m
		} else {
			stanceSum += a.mean[i*a.k+j] * m
			stanceSq += a.sq[i*a.k+j] * m
			stanceN += m
		}
	}
	s, v, shift = a.claimMeans(j)
	if stanceN == 0 {
		return s, v, shift, false
	}
	// The shift's variance has two parts: the samples' (under no shift the stance and neutral
	// samples' supports are alike, so their variance σ² is estimated from all of them together,
	// as a two-proportion z-test pools its proportions) and the wordings' own (a wording moves
	// every one of its samples: τ², the variance of the neutral wordings' means beyond what
	// their samples explain).
	n := pooledN + stanceN
	mean := (pooledSum + stanceSum) / n
	within := max((pooledSq+stanceSq)/n-mean*mean, 0)
	between := 0.0
	if a.pooled > 1 {
		between = max(v*float64(a.pooled)/float64(a.pooled-1)-within*float64(a.pooled)/pooledN, 0)
	}
	stances := float64(a.n - a.pooled)
	se := math.Sqrt(within*(1/pooledN+1/stanceN) + between*(1/float64(a.pooled)+1/stances))
	return s, v, shift, shift >= zShift*se
}

// claimMeans is claim's computation over the wordings' means.
func (a *claimAnalysis) claimMeans(j int) (s, v, shift float64) {
	// Sums in ascending order of the values, an order no permutation of the wordings changes:
	// a support on a threshold (a judge's 5 of 10) stays on the same side of it.
	pooled, stance := a.scratch[:0], a.scratch2[:0]
	for i := range a.n {
		if a.use[i] {
			pooled = append(pooled, a.mean[i*a.k+j])
		} else {
			stance = append(stance, a.mean[i*a.k+j])
		}
	}
	slices.Sort(pooled)
	slices.Sort(stance)
	for _, x := range pooled {
		s += x
	}
	s /= float64(len(pooled))
	for i := range pooled {
		pooled[i] = (pooled[i] - s) * (pooled[i] - s)
	}
	slices.Sort(pooled)
	for _, d := range pooled {
		v += d
	}
	v /= float64(len(pooled))
	if len(stance) > 0 {
		var sum float64
		for _, x := range stance {
			sum += x
		}
		shift = sum/float64(len(stance)) - s
	}
	a.scratch, a.scratch2 = pooled, stance
	return s, v, shift
}

// clip returns the bound of the logit of a support: half the finest step a mean of the pooled
// samples' supports can take when they are 0 or 1 (a judge's Yes/No), 1/(2·samples), as for
// the shares of sampled answers.
func (a *claimAnalysis) clip() float64 { return 0.5 / float64(a.samples) }

// claimFeatures returns the claim map's features f = [1, logit S, √V, log(1 + samples)] in
// dst's memory.
func claimFeatures(dst []float64, s, v, clip float64, samples int) []float64 {
	return append(dst[:0], 1, logit(s, clip), math.Sqrt(v), math.Log1p(float64(samples)))
}

// claimConfidence returns c = σ(w·f) under the profile's claim map, or the support S without
// one.
func claimConfidence(p *Profile, f []float64, s float64) float64 {
	if p.ClaimMap == nil {
		return s
	}
	var x float64
	for i, w := range p.ClaimMap {
		x += w * f[i]
	}
	return sigmoid(x)
}

// claimAction returns the action of a claim of confidence c under threshold τ: KEEP when
// c > τ (λ = 1's rule: τ = +Inf keeps nothing), else FLAG when c ≥ ½, else DROP.
func claimAction(c, tau float64) ClaimAction {
	switch {
	case c > tau:
		return Keep
	case c >= 0.5:
		return Flag
	}
	return Drop
}

// scoreClaims scores a valid long answer under profile p.
func scoreClaims(ctx context.Context, p *Profile, q *Question) (Result, error) {
	a, err := analyzeClaims(ctx, q)
	if err != nil {
		return Result{}, err
	}
	r := Result{
		ID:             q.ID,
		Calibrated:     p.Calibrated,
		Profile:        ProfileRef{Name: p.Name, Version: p.Version},
		Claims:         make([]ClaimScore, len(q.Claims)),
		SupportMeasure: a.measure,
		ClaimSamples:   a.samples,
		Set:            PredictionSet{Alpha: p.Alpha, Calibrated: p.Calibrated, Threshold: p.ClaimThreshold, Open: math.IsInf(p.ClaimThreshold, 1)},
		Uncertainty:    Uncertainty{Wordings: a.pooled},
	}
	f := make([]float64, 0, ClaimFeatures)
	kept, flagged := 0, 0
	var text strings.Builder
	var shiftSum float64
	for j := range q.Claims {
		s, v, shift, significant := a.claimShift(j)
		f = claimFeatures(f, s, v, a.clip(), a.samples)
		c := claimConfidence(p, f, s)
		cs := ClaimScore{ID: q.Claims[j].ID, Confidence: c, Action: claimAction(c, p.ClaimThreshold), Support: s,
			WordingVariance: v, SycophancyShift: shift}
		switch cs.Action {
		case Keep:
			kept++
			if text.Len() > 0 {
				text.WriteByte(' ')
			}
			text.WriteString(strings.TrimSpace(q.Claims[j].Text))
		case Drop:
			cs.Reasons = append(cs.Reasons, ReasonLowConfidence)
		}
		shiftSum += shift
		if a.n > a.pooled && shift >= p.SycophancyThreshold && significant {
			cs.Reasons = append(cs.Reasons, ReasonSycophancyRisk)
			flagged++
		}
		if !p.Calibrated {
			cs.Reasons = append(cs.Reasons, ReasonUncalibrated)
		}
		r.Claims[j] = cs
		r.Confidence += c
	}
	// The answer as a whole: its confidence is the expected share of its claims that are true
	// (the mean claim confidence); it is answered when a claim is kept, its text the kept claims.
	r.Confidence /= float64(len(q.Claims))
	r.Answer = text.String()
	r.Action = Abstain
	r.Reasons = make([]Reason, 0, 4)
	switch {
	case kept == 0:
		r.Reasons = append(r.Reasons, ReasonLowConfidence)
	case kept < len(q.Claims):
		r.Action = Answer
		r.Reasons = append(r.Reasons, ReasonClaimsDoubted)
	default:
		r.Action = Answer
	}
	if stances := a.n - a.pooled; stances > 0 { // none when every wording carries a stance: all are pooled
		r.Sycophancy = Sycophancy{Shift: shiftSum / float64(len(q.Claims)), Wordings: stances, Flagged: flagged > 0,
			Threshold: p.SycophancyThreshold}
	} else {
		r.Sycophancy.Threshold = p.SycophancyThreshold
	}
	if flagged > 0 {
		r.Reasons = append(r.Reasons, ReasonSycophancyRisk)
	}
	if a.noNeutral {
		r.Reasons = append(r.Reasons, ReasonNoNeutralWording)
	}
	if !p.Calibrated {
		r.Reasons = append(r.Reasons, ReasonUncalibrated)
	}
	r.Badge = claimsBadge(kept, len(q.Claims), p.Calibrated, a.noNeutral)
	return r, nil
}

// claimsBadge is a long answer's badge: HIGH when every claim is kept, MEDIUM when some are
// (or all, with no neutral wording), LOW when none is, UNCALIBRATED under the default profile;
// its label counts the kept claims ("5 of 7 claims verified"), never a percentage.
func claimsBadge(kept, claims int, calibrated, capped bool) Badge {
	var level BadgeLevel
	switch {
	case !calibrated:
		level = BadgeUncalibrated
	case kept == 0:
		level = BadgeLow
	case kept == claims && !capped:
		level = BadgeHigh
	default:
		level = BadgeMedium
	}
	word := "claims"
	if claims == 1 {
		word = "claim"
	}
	verified := "verified"
	if !calibrated {
		verified = "supported (uncalibrated)"
	}
	return Badge{Level: level, Label: strconv.Itoa(kept) + " of " + strconv.Itoa(claims) + " " + word + " " + verified}
}
