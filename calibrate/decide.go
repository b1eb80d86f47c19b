package calibrate

import (
	"math"
	"strconv"
	"strings"

	"github.com/plumbhq/plumb/conformal"
	"github.com/plumbhq/plumb/ensemble"
)

// Thresholds of the action rule (docs/DESIGN.md "Scoring one question", step 9).
const (
	// WordingShare: CLARIFY as WORDING_DEPENDENT when W ≥ WordingShare·H(π̄).
	WordingShare = 0.5
	// ReadingMass: MULTIPLE_READINGS needs ≥ 2 set members with π̄ ≥ ReadingMass…
	ReadingMass = 0.2
	// ReadingConfidence: …while most wordings have max_k π_p(k) ≥ ReadingConfidence.
	ReadingConfidence = 0.6
	// HomogeneityLevel: with samples, CLARIFY needs the wordings' disagreement to reject a
	// chi-square test of homogeneity at this level.
	HomogeneityLevel = 0.05
	// HighBadge: ANSWER with c ≥ HighBadge shows a HIGH badge.
	HighBadge = 0.8
)

// outcome is what the decision rule makes of an analysed question under a profile: the numbers
// a report needs, without the strings a response carries.
type outcome struct {
	c         float64
	size      int     // prediction set size; its members are marked in scorer.inSet
	threshold float64 // the q̂ used (0 for the uncalibrated set)
	group     string  // the Mondrian group whose q̂ was used
	open      bool    // q̂ = ∞
	action    Action
	why       Reason  // why a question is not answered (ReasonUnspecified when it is)
	shift     float64 // mean over stance wordings of π_p(stance) − π̄(stance)
	stances   int     // USER_STANCE wordings
	unmatched int     // of which with a stance that is no candidate
	flagged   bool    // shift ≥ the profile's threshold
}

// decide computes c, the prediction set, the sycophancy shift and the action of an analysed
// question (docs/DESIGN.md steps 5, 6, 8 and 9). It leaves s.rank holding the pooled candidates,
// most probable first, and s.inSet marking the set's members.
func (s *scorer) decide(a *analysis, p *Profile, group string, lambda float64) outcome {
	e := a.e
	o := outcome{c: a.confidence(p, &s.features)}
	pool := a.pbar[:e.kPool]
	s.rank = grow(s.rank, e.kPool)
	conformal.Rank(s.rank, pool)
	s.predictionSet(a, p, group, &o)
	if e.noNeutral || e.pooled < e.n { // some wording carries a stance
		o.shift, o.stances = ensemble.Shift(a.pbar, a.dists, e.stance)
		for _, st := range e.stance {
			if st >= e.k {
				o.unmatched++
			}
		}
	}
	o.flagged = o.stances > 0 && o.shift >= p.SycophancyThreshold
	if lambda < 1 && o.c >= lambda { // λ = 1 answers nothing, not even c = 1
		o.action = Answer
		return o
	}
	// Only a question not answered asks where its doubt comes from.
	switch why := s.clarifying(a); {
	case why != ReasonUnspecified:
		o.action, o.why = Clarify, why
	case o.open:
		o.action, o.why = Abstain, ReasonOpenSet
	default:
		o.action, o.why = Abstain, ReasonLowConfidence
	}
	return o
}

// predictionSet marks the set's members in s.inSet and sets o's size, threshold, group and
// open: the split-conformal set {k : s(k) ≤ q̂} ∪ {k*} of the group's (or the global) q̂, or, for
// an uncalibrated profile, the smallest top set with π̄ mass ≥ 1 − α.
func (s *scorer) predictionSet(a *analysis, p *Profile, group string, o *outcome) {
	kPool := a.e.kPool
	pool := a.pbar[:kPool]
	s.inSet = grow(s.inSet, kPool)
	if !p.Calibrated {
		o.size = conformal.TopMass(s.rank, pool, 1-p.Alpha)
		for _, k := range s.rank[:o.size] {
			s.inSet[k] = true
		}
		return
	}
	q := p.Quantiles.Global
	if g, ok := p.Quantiles.Groups[group]; ok {
		q, o.group = g, group
	}
	if s.adaptive {
		q, o.group = s.threshold, ""
	}
	o.threshold, o.open = q, math.IsInf(q, 1)
	s.scores = grow(s.scores, kPool)
	s.order = grow(s.order, kPool)
	conformal.Scores(s.scores, pool, p.Score, &p.RAPS, s.order)
	s.members = conformal.Set(s.members[:0], s.scores, q, a.top)
	o.size = len(s.members)
	for _, k := range s.members {
		s.inSet[k] = true
	}
}

// clarifying returns why the doubt of an analysed question comes from the question rather than
// the model, or ReasonUnspecified when the evidence does not show it: the wordings must be
// confident on their own but disagree. A wording's own confidence is observed with option
// logprobs, with ≥ 2 samples, or with the token confidence of its one sample; one greedy answer
// per wording is no evidence of it (an ignorant model's answer wanders with the wording too).
// Among the pooled wordings so observed (at least two), the reason is WORDING_DEPENDENT when
// W ≥ WordingShare·H of their pool, MULTIPLE_READINGS when the set holds ≥ 2 candidates with
// π̄ ≥ ReadingMass while most of them have a confidence ≥ ReadingConfidence. With samples, their
// disagreement must also reject a test of homogeneity (ensemble.Homogeneity) at
// HomogeneityLevel, which accounts for how few samples each wording has. It reads s.inSet.
func (s *scorer) clarifying(a *analysis) Reason {
	e := a.e
	s.observed = grow(s.observed, e.n)
	observed, confident := 0, 0
	for i := 0; i < e.n; i++ {
		if !e.use[i] {
			continue
		}
		c, ok := a.wordingConfidence(i)
		if !ok {
			continue
		}
		s.observed[i] = true
		observed++
		if c >= ReadingConfidence {
			confident++
		}
	}
	if observed < 2 {
		return ReasonUnspecified
	}
	if e.sampled() {
		if _, _, p := ensemble.Homogeneity(e.count, e.k, s.observed); p >= HomogeneityLevel {
			return ReasonUnspecified
		}
	}
	h, w := a.h, a.w
	if observed < e.pooled {
		s.pool = grow(s.pool, e.k)
		ensemble.Pool(s.pool, a.dists, s.observed)
		h, _, w = ensemble.SplitFrom(s.pool, a.rowH, s.observed)
	}
	if h > 1e-12 && w >= WordingShare*h {
		return ReasonWordingDependent
	}
	plausible := 0
	for k, in := range s.inSet {
		if in && a.pbar[k] >= ReadingMass {
			plausible++
		}
	}
	if plausible >= 2 && 2*confident > observed {
		return ReasonMultipleReadings
	}
	return ReasonUnspecified
}

// result assembles the Result of an analysed question.
func (s *scorer) result(a *analysis, p *Profile, q *Question, lambda, risk float64) Result {
	e := a.e
	o := s.decide(a, p, q.Group, lambda)
	// The map's features: decide's confidence read them when the profile has a map, into
	// s.features, which the sensitivity below reuses as scratch; without a map, read them here.
	if p.Map == nil {
		s.features = a.features(s.features)
	}
	var features [MaxMapFeatures]float64
	nf := copy(features[:], s.features)
	r := Result{
		ID:         q.ID,
		Confidence: o.c,
		Calibrated: p.Calibrated,
		Action:     o.action,
		Profile:    ProfileRef{Name: p.Name, Version: p.Version},
		Lambda:     lambda,
		Risk:       risk,
		Set: PredictionSet{Threshold: o.threshold, Alpha: p.Alpha, Open: o.open, Calibrated: p.Calibrated,
			Group: o.group, Adaptive: s.adaptive},
		Uncertainty: Uncertainty{Total: a.h, Aleatoric: a.a, Wording: a.w, Variance: a.v,
			SemanticEntropy: a.semEnt, Wordings: e.pooled, Sensitivity: s.sensitivity(a, p, o.c)},
		Sycophancy: Sycophancy{Shift: o.shift, Wordings: o.stances, Flagged: o.flagged, Threshold: p.SycophancyThreshold,
			Unmatched: o.unmatched},
		MapFeatures:     features,
		MapFeatureCount: nf,
	}
	if a.tokens {
		r.Uncertainty.TokenConfidence = a.tc[a.top]
	}

	// Candidates, most probable first. A candidate's count is its pooled samples (samples) or
	// the pooled wordings whose top answer it is (options).
	if !e.sampled() {
		s.counts = grow(s.counts, e.kPool)
		for i := 0; i < e.n; i++ {
			if e.use[i] {
				s.counts[ensemble.Argmax(a.dists[i*e.k:(i+1)*e.k])]++
			}
		}
	}
	r.Candidates = make([]Candidate, e.kPool)
	r.Set.Answers = make([]string, 0, o.size)
	for i, k := range s.rank {
		c := Candidate{Answer: e.candidate(k), Probability: a.pbar[k]}
		if e.sampled() {
			c.Count = a.shares[k]
		} else {
			c.Count = s.counts[k]
		}
		if a.tokens {
			c.TokenConfidence = a.tc[k]
		}
		if p.Calibrated && k != a.top {
			c.Nonconformity = s.scores[k]
		}
		r.Candidates[i] = c
		if s.inSet[k] {
			r.Set.Answers = append(r.Set.Answers, c.Answer)
		}
	}
	r.Answer = r.Candidates[0].Answer

	r.Reasons = make([]Reason, 0, 4)
	switch {
	case o.action != Answer:
		r.Reasons = append(r.Reasons, o.why)
	case o.size >= 2:
		r.Reasons = append(r.Reasons, ReasonAlternativesPlausible)
	}
	if o.flagged {
		r.Reasons = append(r.Reasons, ReasonSycophancyRisk)
	}
	if e.noNeutral {
		r.Reasons = append(r.Reasons, ReasonNoNeutralWording)
	}
	if !p.Calibrated {
		r.Reasons = append(r.Reasons, ReasonUncalibrated)
	}
	r.Badge = badge(r.Action, o.c, p.Calibrated, e.noNeutral)
	return r
}

// sensitivity returns max over pooled wordings p of |c − c₋ₚ|, the confidence without wording
// p: the pool (ensemble.LeaveOneOut), the entropy split (ensemble.SplitWithout), the variance
// (ensemble.VarianceWithout) and the token confidence recomputed from totals over the pooled
// wordings in O(k) per wording. Each wording keeps its own distribution (its temperature, and
// the clip of the logit, are those of the whole question). It is 0 with fewer than 3 pooled
// wordings.
func (s *scorer) sensitivity(a *analysis, p *Profile, c float64) float64 {
	e := a.e
	if e.pooled < 3 {
		return 0
	}
	k := e.k
	s.loo = grow(s.loo, 5*k)
	pb, tcs, sq, tcTot, nTot := s.loo[:k], s.loo[k:2*k], s.loo[2*k:3*k], s.loo[3*k:4*k], s.loo[4*k:]
	var sumH float64
	for i := 0; i < e.n; i++ {
		if !e.use[i] {
			continue
		}
		sumH += a.rowH[i]
		for j, v := range a.dists[i*k : (i+1)*k] {
			sq[j] += v * v
		}
		if a.tokens {
			for j := 0; j < k; j++ {
				tcTot[j] += a.tcSum[i*k+j]
				nTot[j] += float64(e.count[i*k+j])
			}
		}
	}
	var worst float64
	for skip := 0; skip < e.n; skip++ {
		if !e.use[skip] {
			continue
		}
		row := a.dists[skip*k : (skip+1)*k]
		ensemble.LeaveOneOut(pb, a.pbar, a.dists, e.pooled, skip)
		top := ensemble.Argmax(pb[:e.kPool])
		_, _, w := ensemble.SplitWithout(pb, sumH, a.rowH[skip], e.pooled)
		v := ensemble.VarianceWithout(sq[top], row[top], pb[top], e.pooled)
		if a.tokens {
			for j := 0; j < k; j++ {
				tcs[j] = 0
				if n := nTot[j] - float64(e.count[skip*k+j]); n > 0 {
					tcs[j] = (tcTot[j] - a.tcSum[skip*k+j]) / n
				}
			}
		}
		worst = max(worst, math.Abs(c-a.confidenceOf(p, &s.features, pb[top], w, v, tcs, top)))
	}
	return worst
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
	var b strings.Builder
	b.Grow(24)
	b.WriteString(badgePercent(c))
	b.WriteString(" · ")
	b.WriteString(level.String())
	return Badge{Level: level, Label: b.String()}
}

// badgePercent is a confidence as a badge reads it: rounded to 5 %, except that only an exact
// 1 or 0 reads "100%" or "0%": a confidence that rounds to them reads "> 99%" or "> 95%",
// "< 1%" or "< 5%", so that a badge never claims a certainty the model does not have.
func badgePercent(c float64) string {
	pct := int(math.Round(c*20)) * 5
	switch {
	case pct >= 100 && c < 1 && c >= 0.99:
		return "> 99%"
	case pct >= 100 && c < 1:
		return "> 95%"
	case pct <= 0 && c > 0 && c <= 0.01:
		return "< 1%"
	case pct <= 0 && c > 0:
		return "< 5%"
	}
	return strconv.Itoa(pct) + "%"
}
