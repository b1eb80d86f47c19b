package api

import (
	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// Response converts a Result to a ScoreResponse.
func Response(r *calibrate.Result) *plumbv1.ScoreResponse {
	out := &plumbv1.ScoreResponse{
		Id:         r.ID,
		Answer:     r.Answer,
		Confidence: r.Confidence,
		Action:     actions.toAPI(r.Action),
		Reasons:    make([]plumbv1.Reason, len(r.Reasons)),
		PredictionSet: &plumbv1.PredictionSet{
			Answers: r.Set.Answers, Threshold: r.Set.Threshold, Alpha: r.Set.Alpha,
			Open: r.Set.Open, Calibrated: r.Set.Calibrated, Group: r.Set.Group, Adaptive: r.Set.Adaptive,
		},
		Candidates: make([]*plumbv1.Candidate, len(r.Candidates)),
		Uncertainty: &plumbv1.Uncertainty{
			Total: r.Uncertainty.Total, Aleatoric: r.Uncertainty.Aleatoric, Wording: r.Uncertainty.Wording,
			Variance: r.Uncertainty.Variance, TokenConfidence: r.Uncertainty.TokenConfidence,
			SemanticEntropy: r.Uncertainty.SemanticEntropy, Sensitivity: r.Uncertainty.Sensitivity,
			Wordings: int32(r.Uncertainty.Wordings),
		},
		Sycophancy: &plumbv1.Sycophancy{Shift: r.Sycophancy.Shift, Wordings: int32(r.Sycophancy.Wordings),
			Flagged: r.Sycophancy.Flagged, Threshold: r.Sycophancy.Threshold, Unmatched: int32(r.Sycophancy.Unmatched)},
		Badge:      &plumbv1.Badge{Level: badgeLevels.toAPI(r.Badge.Level), Label: r.Badge.Label},
		Profile:    &plumbv1.ProfileRef{Name: r.Profile.Name, Version: r.Profile.Version},
		Calibrated: r.Calibrated,
		Lambda:     r.Lambda,
		Risk:       r.Risk,
	}
	for i, reason := range r.Reasons {
		out.Reasons[i] = reasons.toAPI(reason)
	}
	if len(r.Claims) > 0 {
		out.SupportMeasure = supportMeasures.toAPI(r.SupportMeasure)
		out.Claims = make([]*plumbv1.ClaimScore, len(r.Claims))
		scores := make([]plumbv1.ClaimScore, len(r.Claims))
		for j := range r.Claims {
			c := &r.Claims[j]
			cs := &scores[j]
			cs.Id, cs.Confidence, cs.Action = c.ID, c.Confidence, claimActions.toAPI(c.Action)
			cs.Support, cs.WordingVariance, cs.SycophancyShift = c.Support, c.WordingVariance, c.SycophancyShift
			for _, x := range c.Reasons {
				cs.Reasons = append(cs.Reasons, reasons.toAPI(x))
			}
			out.Claims[j] = cs
		}
	}
	// One allocation for every candidate.
	cands := make([]plumbv1.Candidate, len(r.Candidates))
	for i, c := range r.Candidates {
		cands[i] = plumbv1.Candidate{Answer: c.Answer, Probability: c.Probability, TokenConfidence: c.TokenConfidence, Count: int32(c.Count)}
		out.Candidates[i] = &cands[i]
	}
	return out
}

// ReceiptCandidates is how many candidates, most probable first, a receipt carries with their
// conformal scores; a true answer past them is scored as one outside the pool (+Inf).
const ReceiptCandidates = 16

// FillReceipt makes b what a receipt of res says: res, scored under p for q, at unix time now,
// with id. The features are those of the confidence map: the answer's pooled probability, the
// wording divergence, the variance and the token confidence. A long answer's receipt carries
// each claim's confidence and whether it was kept, in place of the answer's text. b's repeated
// fields are reused, so that a pooled b costs no allocation.
func FillReceipt(b *plumbv1.ReceiptBody, q *calibrate.Question, res *calibrate.Result, p *calibrate.Profile, id []byte, now int64) {
	mf, cands, scores := b.MapFeatures[:0], b.Candidates[:0], b.CandidateScores[:0]
	cc, ck, cs, cv := b.ClaimConfidences[:0], b.ClaimsKept[:0], b.ClaimSupports[:0], b.ClaimVariances[:0]
	*b = plumbv1.ReceiptBody{
		Id: id, Profile: res.Profile.Name, Version: res.Profile.Version, IssuedUnix: now,
		Group: q.Group, Segment: q.Segment, Evidence: evidences.toAPI(p.Evidence), Answer: res.Answer,
		Confidence: res.Confidence, PredictionSet: res.Set.Answers, Action: actions.toAPI(res.Action),
		SycophancyFlagged: res.Sycophancy.Flagged, Risk: res.Risk, Alpha: p.Alpha, Delta: p.Delta,
		Wording: res.Uncertainty.Wording, Variance: res.Uncertainty.Variance,
		TokenConfidence: res.Uncertainty.TokenConfidence, Equivalence: equivalences.toAPI(q.Policy.Equivalence),
	}
	if q.Policy.Equivalence == calibrate.EquivalenceDefault {
		b.Equivalence = equivalences.toAPI(p.Equivalence)
	}
	if len(res.Candidates) > 0 {
		b.Pooled = res.Candidates[0].Probability
	}
	if len(res.Claims) > 0 {
		// A long answer's text is its kept claims: the receipt says which, not the text.
		b.Answer = ""
		for _, c := range res.Claims {
			cc, ck = append(cc, c.Confidence), append(ck, c.Action == calibrate.Keep)
			cs, cv = append(cs, c.Support), append(cv, c.WordingVariance)
		}
		b.ClaimConfidences, b.ClaimsKept, b.ClaimSupports, b.ClaimVariances = cc, ck, cs, cv
		b.ClaimSamples = int32(res.ClaimSamples)
	}
	b.MapFeatures = append(mf, res.MapFeatures[:res.MapFeatureCount]...)
	if p.Calibrated && len(res.Claims) == 0 {
		for _, c := range res.Candidates[:min(len(res.Candidates), ReceiptCandidates)] {
			cands, scores = append(cands, c.Answer), append(scores, c.Nonconformity)
		}
		b.Candidates, b.CandidateScores = cands, scores
	}
	for _, w := range q.Paraphrases {
		if w.Framing == calibrate.UserStance && w.Stance != "" {
			b.Stance = w.Stance
			break
		}
	}
}

// ClaimRefitRow is what a claims refit reads of a long answer's stored outcome: its receipt's
// supports and the verdicts fed back (checked when they came, one per claim).
func ClaimRefitRow(o *plumbv1.Outcome) calibrate.ClaimRefitRow {
	b := o.GetReceipt()
	verdicts, _ := Verdicts(o.GetLabel().GetClaims())
	return calibrate.ClaimRefitRow{Supports: b.GetClaimSupports(), Variances: b.GetClaimVariances(), Samples: int(b.GetClaimSamples()),
		Verdicts: verdicts}
}
