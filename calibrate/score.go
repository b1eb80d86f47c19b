package calibrate

import (
	"context"
	"strconv"
	"sync"

	"github.com/plumbhq/plumb/conformal"
)

// scorer holds what scoring a question needs and keeps between questions: the question's
// prepared form, its analysis under each profile it is scored under (an evaluation scores it
// uncalibrated, before, and under the profile, after), and scratch. Score takes one from a
// pool; each goroutine of a fit or an evaluation has its own.
type scorer struct {
	prep          prepared
	view          prepared // a fit item's prepared form, sharing the item's memory: never prepared into
	before, after analysis

	features []float64 // confidence-map features
	// adaptive, when set, is the threshold that replaces the profile's quantile (the question's
	// Threshold under adaptive conformal inference).
	adaptive  bool
	threshold float64
	rank      []int     // pooled candidates, most probable first
	order     []int     // scratch of conformal.Scores
	scores    []float64 // nonconformity scores of the pooled candidates
	members   []int     // the prediction set, in candidate order
	inSet     []bool    // per pooled candidate: in the prediction set
	counts    []int     // per pooled candidate: pooled wordings whose top answer it is
	loo       []float64 // leave-one-out scratch of sensitivity
	halves    []float64 // split-half pools of wordingAgreement
	observed  []bool    // per wording: pooled with its own confidence observed (clarifying)
	pool      []float64 // the pool of the observed wordings (clarifying)
}

var scorers = sync.Pool{New: func() any { return new(scorer) }}

// Score scores one question under profile p (nil means Default()). It validates q first and
// computes nothing from invalid input; the error is an *Error naming the field. It stops, with
// ctx's error, when ctx is done (before anything else, and during the clustering of many
// samples in F1 and embedding modes, the only part of a valid request that can take long).
func Score(ctx context.Context, p *Profile, q *Question) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if p == nil {
		p = builtin
	}
	mode := modeFor(q, p.Equivalence)
	if err := q.validate(mode); err != nil {
		return Result{}, err
	}
	if err := checkEvidence(p, q); err != nil {
		return Result{}, err
	}
	if len(q.Claims) > 0 {
		return scoreClaims(ctx, p, q)
	}
	lambda, risk, err := p.threshold(q.Policy.Risk)
	if err != nil {
		return Result{}, err
	}
	s := scorers.Get().(*scorer)
	defer scorers.Put(s)
	if err := s.prep.prepare(ctx, q, mode); err != nil {
		return Result{}, err
	}
	s.after.analyze(&s.prep, q, p, nil)
	s.adaptive, s.threshold = q.Adaptive && p.Calibrated, q.Threshold
	defer func() { s.adaptive = false }()
	return s.result(&s.after, p, q, lambda, risk), nil
}

// checkEvidence refuses a question of the other kind of evidence than the profile was fitted
// on.
func checkEvidence(p *Profile, q *Question) error {
	if got := evidenceOf(q); p.Evidence != EvidenceAny && got != p.Evidence {
		return &Error{Kind: InvalidInput, Field: "paraphrases",
			Msg: "profile " + strconv.Quote(p.Name) + " was fitted on " + p.Evidence.String() + " and cannot score " + got.String()}
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
