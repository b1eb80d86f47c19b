package service

import (
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/conformal"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/temperature"
)

// QuestionFrom converts a ScoreRequest to the engine's Question. It never fails: the engine
// validates.
func QuestionFrom(r *plumbv1.ScoreRequest) calibrate.Question {
	q := calibrate.Question{
		ID:             r.GetId(),
		Profile:        r.GetProfile(),
		ProfileVersion: r.GetProfileVersion(),
		Group:          r.GetGroup(),
		Kind:           calibrate.QueryKind(r.GetKind()),
		Paraphrases:    make([]calibrate.Paraphrase, len(r.GetParaphrases())),
		Policy: calibrate.Policy{
			Risk:        r.GetPolicy().GetRisk(),
			Equivalence: calibrate.Equivalence(r.GetPolicy().GetEquivalence()),
		},
	}
	for i, p := range r.GetParaphrases() {
		qp := &q.Paraphrases[i]
		qp.Prompt, qp.Stance = p.GetPrompt(), p.GetStance()
		switch p.GetFraming() {
		case plumbv1.Framing_FRAMING_UNSPECIFIED, plumbv1.Framing_FRAMING_NEUTRAL:
			qp.Framing = calibrate.Neutral
		case plumbv1.Framing_FRAMING_USER_STANCE:
			qp.Framing = calibrate.UserStance
		default:
			qp.Framing = calibrate.Framing(p.GetFraming()) // rejected by validation
		}
		if opts := p.GetOptions(); len(opts) > 0 {
			qp.Options = make([]calibrate.Option, len(opts))
			for j, o := range opts {
				qp.Options[j] = calibrate.Option{Label: o.GetLabel(), Logprob: o.GetLogprob()}
			}
		}
		if ss := p.GetSamples(); len(ss) > 0 {
			qp.Samples = make([]calibrate.Sample, len(ss))
			for j, s := range ss {
				cs := &qp.Samples[j]
				cs.Text, cs.Embedding, cs.Cluster = s.GetText(), s.GetEmbedding(), s.GetCluster()
				if toks := s.GetTokens(); len(toks) > 0 {
					cs.Tokens = make([]calibrate.Token, len(toks))
					for t, tok := range toks {
						ct := &cs.Tokens[t]
						ct.Token, ct.Logprob = tok.GetToken(), tok.GetLogprob()
						if tops := tok.GetTopLogprobs(); len(tops) > 0 {
							ct.TopLogprobs = make([]calibrate.TopLogprob, len(tops))
							for a, tl := range tops {
								ct.TopLogprobs[a] = calibrate.TopLogprob{Token: tl.GetToken(), Logprob: tl.GetLogprob()}
							}
						}
					}
				}
			}
		}
	}
	return q
}

// ExampleFrom converts a LabeledExample.
func ExampleFrom(e *plumbv1.LabeledExample) calibrate.Example {
	return calibrate.Example{Question: QuestionFrom(e.GetRequest()), Label: calibrate.Label{Answers: e.GetLabel().GetAnswers()}}
}

// RequestFrom converts an engine Question back to a ScoreRequest: a question the CLI decoded,
// to send to a server, or the simulator's output.
func RequestFrom(q *calibrate.Question) *plumbv1.ScoreRequest {
	r := &plumbv1.ScoreRequest{Id: q.ID, Profile: q.Profile, ProfileVersion: q.ProfileVersion, Group: q.Group, Kind: plumbv1.QueryKind(q.Kind)}
	if q.Policy != (calibrate.Policy{}) {
		r.Policy = &plumbv1.Policy{Risk: q.Policy.Risk, Equivalence: plumbv1.Equivalence(q.Policy.Equivalence)}
	}
	for _, p := range q.Paraphrases {
		pp := &plumbv1.Paraphrase{Prompt: p.Prompt, Stance: p.Stance}
		if p.Framing == calibrate.UserStance {
			pp.Framing = plumbv1.Framing_FRAMING_USER_STANCE
		}
		for _, o := range p.Options {
			pp.Options = append(pp.Options, &plumbv1.Option{Label: o.Label, Logprob: o.Logprob})
		}
		for _, s := range p.Samples {
			ps := &plumbv1.Sample{Text: s.Text, Embedding: s.Embedding, Cluster: s.Cluster}
			for _, t := range s.Tokens {
				pt := &plumbv1.Token{Token: t.Token, Logprob: t.Logprob}
				for _, tl := range t.TopLogprobs {
					pt.TopLogprobs = append(pt.TopLogprobs, &plumbv1.TopLogprob{Token: tl.Token, Logprob: tl.Logprob})
				}
				ps.Tokens = append(ps.Tokens, pt)
			}
			pp.Samples = append(pp.Samples, ps)
		}
		r.Paraphrases = append(r.Paraphrases, pp)
	}
	return r
}

// LabeledFrom converts an engine Example back to a LabeledExample.
func LabeledFrom(e *calibrate.Example) *plumbv1.LabeledExample {
	return &plumbv1.LabeledExample{Request: RequestFrom(&e.Question), Label: &plumbv1.Label{Answers: e.Label.Answers}}
}

// ResponseFrom converts a Result.
func ResponseFrom(r *calibrate.Result) *plumbv1.ScoreResponse {
	out := &plumbv1.ScoreResponse{
		Id:         r.ID,
		Answer:     r.Answer,
		Confidence: r.Confidence,
		Action:     plumbv1.Action(r.Action),
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
		Badge:      &plumbv1.Badge{Level: plumbv1.BadgeLevel(r.Badge.Level), Label: r.Badge.Label},
		Profile:    &plumbv1.ProfileRef{Name: r.Profile.Name, Version: r.Profile.Version},
		Calibrated: r.Calibrated,
		Lambda:     r.Lambda,
		Risk:       r.Risk,
	}
	for i, reason := range r.Reasons {
		out.Reasons[i] = plumbv1.Reason(reason)
	}
	cands := make([]plumbv1.Candidate, len(r.Candidates))
	for i, c := range r.Candidates {
		cands[i] = plumbv1.Candidate{Answer: c.Answer, Probability: c.Probability, TokenConfidence: c.TokenConfidence, Count: int32(c.Count)}
		out.Candidates[i] = &cands[i]
	}
	return out
}

// FitConfigFrom converts a FitConfig to the engine's.
func FitConfigFrom(c *plumbv1.FitConfig) calibrate.FitConfig {
	out := calibrate.FitConfig{
		Name:        c.GetName(),
		Alpha:       c.GetAlpha(),
		Seed:        c.GetSeed(),
		Risk:        c.GetRisk(),
		Delta:       c.GetDelta(),
		RiskMin:     c.GetRiskMin(),
		RiskMax:     c.GetRiskMax(),
		MinGroup:    int(c.GetMinGroup()),
		Equivalence: calibrate.Equivalence(c.GetEquivalence()),
		Sycophancy:  c.GetSycophancyThreshold(),
	}
	switch c.GetTemperature() {
	case plumbv1.TemperatureMethod_TEMPERATURE_METHOD_NONE:
		out.Temperature = temperature.MethodNone
	case plumbv1.TemperatureMethod_TEMPERATURE_METHOD_GLOBAL:
		out.Temperature = temperature.MethodGlobal
	case plumbv1.TemperatureMethod_TEMPERATURE_METHOD_ADAPTIVE:
		out.Temperature = temperature.MethodAdaptive
	case plumbv1.TemperatureMethod_TEMPERATURE_METHOD_AUTO, plumbv1.TemperatureMethod_TEMPERATURE_METHOD_UNSPECIFIED:
	default:
		out.Temperature = -1 // refused by the engine, naming config.temperature
	}
	if m, ok := mapFromProto[c.GetConfidenceMap()]; ok {
		out.ConfidenceMap = m
	} else {
		out.ConfidenceMap = -1 // refused by the engine, naming config.confidence_map
	}
	switch c.GetScore() {
	case plumbv1.ScoreKind_SCORE_KIND_APS:
		out.Score = conformal.APS
	case plumbv1.ScoreKind_SCORE_KIND_RAPS:
		out.Score = conformal.RAPS
	case plumbv1.ScoreKind_SCORE_KIND_LAC, plumbv1.ScoreKind_SCORE_KIND_UNSPECIFIED:
	default:
		out.Score = -1
	}
	if s := c.GetSplit(); len(s) > 0 {
		if len(s) != 3 {
			out.Split = [3]float64{-1, 0, 0} // rejected, naming config.split
		} else {
			copy(out.Split[:], s)
		}
	}
	return out
}

func methodToProto(m temperature.Method) plumbv1.TemperatureMethod {
	switch m {
	case temperature.MethodGlobal:
		return plumbv1.TemperatureMethod_TEMPERATURE_METHOD_GLOBAL
	case temperature.MethodAdaptive:
		return plumbv1.TemperatureMethod_TEMPERATURE_METHOD_ADAPTIVE
	case temperature.MethodAuto:
		return plumbv1.TemperatureMethod_TEMPERATURE_METHOD_AUTO
	}
	return plumbv1.TemperatureMethod_TEMPERATURE_METHOD_NONE
}

func methodFromProto(m plumbv1.TemperatureMethod) temperature.Method {
	switch m {
	case plumbv1.TemperatureMethod_TEMPERATURE_METHOD_GLOBAL:
		return temperature.MethodGlobal
	case plumbv1.TemperatureMethod_TEMPERATURE_METHOD_ADAPTIVE:
		return temperature.MethodAdaptive
	}
	return temperature.MethodNone
}

var mapFromProto = map[plumbv1.ConfidenceMap]calibrate.MapMethod{
	plumbv1.ConfidenceMap_CONFIDENCE_MAP_UNSPECIFIED: calibrate.MapAuto,
	plumbv1.ConfidenceMap_CONFIDENCE_MAP_AUTO:        calibrate.MapAuto,
	plumbv1.ConfidenceMap_CONFIDENCE_MAP_NONE:        calibrate.MapNone,
	plumbv1.ConfidenceMap_CONFIDENCE_MAP_PLATT:       calibrate.MapPlatt,
	plumbv1.ConfidenceMap_CONFIDENCE_MAP_LOGISTIC:    calibrate.MapLogistic,
}

func mapToProto(m calibrate.MapMethod) plumbv1.ConfidenceMap {
	for pm, cm := range mapFromProto {
		if cm == m && pm != plumbv1.ConfidenceMap_CONFIDENCE_MAP_UNSPECIFIED {
			return pm
		}
	}
	return plumbv1.ConfidenceMap_CONFIDENCE_MAP_UNSPECIFIED
}

func scoreToProto(s conformal.Score) plumbv1.ScoreKind { return plumbv1.ScoreKind(s + 1) }

func curveToProto(c []conformal.RiskPoint) []*plumbv1.RiskPoint {
	out := make([]*plumbv1.RiskPoint, len(c))
	for i, p := range c {
		out[i] = &plumbv1.RiskPoint{Lambda: p.Lambda, Answered: int32(p.Answered), Errors: int32(p.Errors)}
	}
	return out
}

// ProfileToProto converts an engine Profile (with its report and config).
func ProfileToProto(p *calibrate.Profile, cfg *plumbv1.FitConfig) *plumbv1.Profile {
	out := &plumbv1.Profile{
		Name:                p.Name,
		Version:             p.Version,
		Calibrated:          p.Calibrated,
		Evidence:            plumbv1.Evidence(p.Evidence),
		TemperatureMethod:   methodToProto(p.TemperatureMethod),
		Temperature:         p.Temperature.Theta,
		ConfidenceMap:       p.Map,
		ConfidenceMapMethod: mapToProto(p.MapMethod),
		Score:               scoreToProto(p.Score),
		RapsLambda:          p.RAPS.Lambda,
		RapsKReg:            int32(p.RAPS.KReg),
		Alpha:               p.Alpha,
		Quantile:            p.Quantiles.Global,
		GroupQuantiles:      p.Quantiles.Groups,
		Lambda:              p.Lambda,
		Risk:                p.Risk,
		Delta:               p.Delta,
		RiskMin:             p.RiskMin,
		RiskMax:             p.RiskMax,
		RiskCurve:           curveToProto(p.Curve),
		SycophancyThreshold: p.SycophancyThreshold,
		Equivalence:         plumbv1.Equivalence(p.Equivalence),
		Config:              cfg,
	}
	if p.CreatedUnix != 0 {
		out.CreateTime = timestamppb.New(time.Unix(p.CreatedUnix, 0))
	}
	if p.Report != nil {
		out.Report = ReportToProto(p.Report)
	}
	return out
}

// ProfileFromProto converts a stored profile back to the engine's.
func ProfileFromProto(m *plumbv1.Profile) *calibrate.Profile {
	p := calibrate.Default()
	p.Name, p.Version, p.Calibrated = m.GetName(), m.GetVersion(), m.GetCalibrated()
	p.CreatedUnix = m.GetCreateTime().GetSeconds()
	p.Evidence = calibrate.Evidence(m.GetEvidence())
	p.TemperatureMethod = methodFromProto(m.GetTemperatureMethod())
	p.Temperature = temperature.Model{Theta: m.GetTemperature()}
	p.Map = m.GetConfidenceMap()
	p.MapMethod = mapFromProto[m.GetConfidenceMapMethod()]
	if m.GetConfidenceMapMethod() == plumbv1.ConfidenceMap_CONFIDENCE_MAP_UNSPECIFIED {
		// A version stored before profiles said which map they kept.
		p.MapMethod = calibrate.MapLogistic
		if len(p.Map) == 0 {
			p.MapMethod = calibrate.MapNone
		}
	}
	p.Score = conformal.Score(max(int(m.GetScore())-1, 0))
	p.RAPS = conformal.RAPSSettings{Lambda: m.GetRapsLambda(), KReg: int(m.GetRapsKReg())}
	p.Alpha = m.GetAlpha()
	p.Quantiles = conformal.Mondrian{Global: m.GetQuantile(), Groups: m.GetGroupQuantiles()}
	p.Lambda, p.Risk, p.Delta = m.GetLambda(), m.GetRisk(), m.GetDelta()
	p.RiskMin, p.RiskMax = m.GetRiskMin(), m.GetRiskMax()
	for _, c := range m.GetRiskCurve() {
		p.Curve = append(p.Curve, conformal.RiskPoint{Lambda: c.GetLambda(), Answered: int(c.GetAnswered()), Errors: int(c.GetErrors())})
	}
	p.SycophancyThreshold = m.GetSycophancyThreshold()
	p.Equivalence = calibrate.Equivalence(m.GetEquivalence())
	return p
}

// metricsToProto converts metrics; an undefined one (NaN) is left out.
func metricsToProto(m calibrate.Metrics) *plumbv1.Metrics {
	v := func(x float64) *float64 {
		if math.IsNaN(x) {
			return nil
		}
		return &x
	}
	return &plumbv1.Metrics{
		Accuracy: v(m.Accuracy), Ece: v(m.ECE), AdaptiveEce: v(m.AdaptiveECE), Mce: v(m.MCE), Brier: v(m.Brier),
		Nll: v(m.NLL), Auroc: v(m.AUROC), Aurc: v(m.AURC), Coverage: v(m.Coverage), MeanSetSize: v(m.MeanSetSize),
		SingletonRate: v(m.SingletonRate), AnswerRate: v(m.AnswerRate), ClarifyRate: v(m.ClarifyRate),
		AbstainRate: v(m.AbstainRate), SelectiveError: v(m.SelectiveError), WordingAgreement: v(m.WordingAgreement),
		SycophancyShift: v(m.SycophancyShift), Examples: int32(m.Examples),
	}
}

func binsToProto(bins []calibrate.Bin) []*plumbv1.ReliabilityBin {
	out := make([]*plumbv1.ReliabilityBin, len(bins))
	for i, b := range bins {
		out[i] = &plumbv1.ReliabilityBin{Lower: b.Lower, Upper: b.Upper, Count: int32(b.Count), Confidence: b.Confidence, Accuracy: b.Accuracy}
	}
	return out
}

// ReportToProto converts a Report.
func ReportToProto(r *calibrate.Report) *plumbv1.Report {
	out := &plumbv1.Report{
		Examples:            int64(r.Examples),
		Before:              metricsToProto(r.Before),
		After:               metricsToProto(r.After),
		BinsBefore:          binsToProto(r.BinsBefore),
		BinsAfter:           binsToProto(r.BinsAfter),
		RiskCurve:           curveToProto(r.Curve),
		Tune:                int32(r.Tune),
		Calibrate:           int32(r.Calibrate),
		Profile:             &plumbv1.ProfileRef{Name: r.Profile.Name, Version: r.Profile.Version},
		TemperatureMethod:   r.TemperatureMethod,
		Temperature:         r.Temperature,
		ConfidenceMap:       r.Map,
		ConfidenceMapMethod: r.MapMethod,
		ConfidenceMapReason: r.MapReason,
		Warnings:            r.Warnings,
		Alpha:               r.Alpha,
		Quantile:            r.Quantile,
		Lambda:              r.Lambda,
		Risk:                r.Risk,
	}
	if c := r.Certifiable; c != nil {
		out.CertifiableRisk = &plumbv1.CertifiableRisk{Risk: c.Risk, Lambda: c.Lambda, AnswerRate: c.AnswerRate}
	}
	for _, g := range r.Groups {
		out.Groups = append(out.Groups, &plumbv1.GroupReport{Group: g.Group, Before: metricsToProto(g.Before), After: metricsToProto(g.After)})
	}
	return out
}
