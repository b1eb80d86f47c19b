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
			Open: r.Set.Open, Calibrated: r.Set.Calibrated, Group: r.Set.Group,
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
