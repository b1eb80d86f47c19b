package api

import (
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/conformal"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/temperature"
)

// FitConfig converts a FitConfig to the engine's; unset fields stay zero, the engine's
// defaults. The error names a field holding an enum value the API does not define, or a split
// that is not three fractions.
func FitConfig(c *plumbv1.FitConfig) (calibrate.FitConfig, error) {
	out := calibrate.FitConfig{
		Name:       c.GetName(),
		Alpha:      c.GetAlpha(),
		Seed:       c.GetSeed(),
		Risk:       c.GetRisk(),
		Delta:      c.GetDelta(),
		RiskMin:    c.GetRiskMin(),
		RiskMax:    c.GetRiskMax(),
		MinGroup:   int(c.GetMinGroup()),
		Sycophancy: c.GetSycophancyThreshold(),
	}
	var err error
	if out.Temperature, err = temperatureMethods.read("config.temperature", c.GetTemperature()); err != nil {
		return out, err
	}
	if out.ConfidenceMap, err = confidenceMaps.read("config.confidence_map", c.GetConfidenceMap()); err != nil {
		return out, err
	}
	if out.Score, err = scoreKinds.read("config.score", c.GetScore()); err != nil {
		return out, err
	}
	if out.Equivalence, err = equivalences.read("config.equivalence", c.GetEquivalence()); err != nil {
		return out, err
	}
	if s := c.GetSplit(); len(s) > 0 {
		if len(s) != 3 {
			return out, invalid("config.split", "%d fractions: want three, tune, calibrate and report", len(s))
		}
		copy(out.Split[:], s)
	}
	return out, nil
}

func curveToProto(c []conformal.RiskPoint) []*plumbv1.RiskPoint {
	out := make([]*plumbv1.RiskPoint, len(c))
	for i, p := range c {
		out[i] = &plumbv1.RiskPoint{Lambda: p.Lambda, Answered: int32(p.Answered), Errors: int32(p.Errors)}
	}
	return out
}

// ProfileMessage converts an engine Profile (with its report, and the config it was fitted
// with, which the engine does not keep) to the API's.
func ProfileMessage(p *calibrate.Profile, cfg *plumbv1.FitConfig) *plumbv1.Profile {
	out := &plumbv1.Profile{
		Name:                p.Name,
		Version:             p.Version,
		Calibrated:          p.Calibrated,
		Evidence:            evidences.toAPI(p.Evidence),
		TemperatureMethod:   temperatureMethods.toAPI(p.TemperatureMethod),
		Temperature:         p.Temperature.Theta,
		ConfidenceMap:       p.Map,
		ConfidenceMapMethod: confidenceMaps.toAPI(p.MapMethod),
		Score:               scoreKinds.toAPI(p.Score),
		RapsLambda:          p.RAPS.Lambda,
		RapsKReg:            int32(p.RAPS.KReg),
		Alpha:               p.Alpha,
		Quantile:            p.Quantiles.Global,
		GroupQuantiles:      p.Quantiles.Groups,
		CalibrationScores:   p.CalibrationScores,
		Lambda:              p.Lambda,
		Risk:                p.Risk,
		Delta:               p.Delta,
		RiskMin:             p.RiskMin,
		RiskMax:             p.RiskMax,
		RiskCurve:           curveToProto(p.Curve),
		SycophancyThreshold: p.SycophancyThreshold,
		Equivalence:         equivalences.toAPI(p.Equivalence),
		Config:              cfg,
	}
	if p.Evidence == calibrate.EvidenceClaims {
		out.ClaimMap, out.ClaimMapMethod, out.ClaimThreshold = p.ClaimMap, confidenceMaps.toAPI(p.ClaimMapMethod), p.ClaimThreshold
	}
	if p.CreatedUnix != 0 {
		out.CreateTime = timestamppb.New(time.Unix(p.CreatedUnix, 0))
	}
	if p.Report != nil {
		out.Report = Report(p.Report)
	}
	return out
}

// Profile converts a stored or imported profile to the engine's. The error names a field holding
// an enum value the API does not define, or a method a fitted profile cannot have (auto); the
// engine's Profile.Check judges the rest.
func Profile(m *plumbv1.Profile) (*calibrate.Profile, error) {
	p := calibrate.Default()
	p.Name, p.Version, p.Calibrated = m.GetName(), m.GetVersion(), m.GetCalibrated()
	p.CreatedUnix = m.GetCreateTime().GetSeconds()
	var err error
	if p.Evidence, err = evidences.read("evidence", m.GetEvidence()); err != nil {
		return nil, err
	}
	p.TemperatureMethod = temperature.MethodNone // an unset method: none
	if tm := m.GetTemperatureMethod(); tm != plumbv1.TemperatureMethod_TEMPERATURE_METHOD_UNSPECIFIED {
		if p.TemperatureMethod, err = temperatureMethods.read("temperature_method", tm); err != nil {
			return nil, err
		}
		if p.TemperatureMethod == temperature.MethodAuto {
			return nil, invalid("temperature_method", "auto is how a fit chooses, not a method a profile has")
		}
	}
	p.Temperature = temperature.Model{Theta: m.GetTemperature()}
	p.Map = m.GetConfidenceMap()
	if cm := m.GetConfidenceMapMethod(); cm == plumbv1.ConfidenceMap_CONFIDENCE_MAP_UNSPECIFIED {
		// A version stored before profiles said which map they kept.
		p.MapMethod = calibrate.MapLogistic
		if len(p.Map) == 0 {
			p.MapMethod = calibrate.MapNone
		}
	} else {
		if p.MapMethod, err = confidenceMaps.read("confidence_map_method", cm); err != nil {
			return nil, err
		}
		if p.MapMethod == calibrate.MapAuto {
			return nil, invalid("confidence_map_method", "auto is how a fit chooses, not a map a profile has")
		}
	}
	if p.Score, err = scoreKinds.read("score", m.GetScore()); err != nil {
		return nil, err
	}
	if p.Equivalence, err = equivalences.read("equivalence", m.GetEquivalence()); err != nil {
		return nil, err
	}
	p.RAPS = conformal.RAPSSettings{Lambda: m.GetRapsLambda(), KReg: int(m.GetRapsKReg())}
	p.Alpha = m.GetAlpha()
	p.Quantiles = conformal.Mondrian{Global: m.GetQuantile(), Groups: m.GetGroupQuantiles()}
	p.CalibrationScores = m.GetCalibrationScores()
	p.Lambda, p.Risk, p.Delta = m.GetLambda(), m.GetRisk(), m.GetDelta()
	p.RiskMin, p.RiskMax = m.GetRiskMin(), m.GetRiskMax()
	for _, c := range m.GetRiskCurve() {
		p.Curve = append(p.Curve, conformal.RiskPoint{Lambda: c.GetLambda(), Answered: int(c.GetAnswered()), Errors: int(c.GetErrors())})
	}
	p.SycophancyThreshold = m.GetSycophancyThreshold()
	if p.Evidence == calibrate.EvidenceClaims {
		p.ClaimMap, p.ClaimThreshold = m.GetClaimMap(), m.GetClaimThreshold()
		if p.ClaimMapMethod, err = confidenceMaps.read("claim_map_method", m.GetClaimMapMethod()); err != nil {
			return nil, err
		}
		if p.ClaimMapMethod == calibrate.MapAuto {
			return nil, invalid("claim_map_method", "auto is how a fit chooses, not a map a profile has")
		}
	}
	return p, nil
}

// metricsToProto converts metrics; an undefined one (NaN) is left out.
func metricsToProto(m calibrate.Metrics) *plumbv1.Metrics {
	v := defined
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

// Report converts a Report.
func Report(r *calibrate.Report) *plumbv1.Report {
	out := &plumbv1.Report{
		Examples:            int32(r.Examples),
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
	if c := r.Claims; c != nil {
		out.Claims = &plumbv1.ClaimReport{Passages: int32(c.Passages), Before: claimMetricsToProto(c.Before), After: claimMetricsToProto(c.After),
			BinsBefore: binsToProto(c.BinsBefore), BinsAfter: binsToProto(c.BinsAfter), Threshold: c.Threshold, MapMethod: c.MapMethod,
			MapReason: c.MapReason, TuneClaims: int32(c.TuneClaims), CalibratePassages: int32(c.CalibratePassages)}
	}
	return out
}

// claimMetricsToProto converts claim metrics; an undefined one (NaN) is left out.
func claimMetricsToProto(m calibrate.ClaimMetrics) *plumbv1.ClaimMetrics {
	return &plumbv1.ClaimMetrics{Claims: int32(m.Claims), Accuracy: defined(m.Accuracy), Ece: defined(m.ECE), Brier: defined(m.Brier),
		Auroc: defined(m.AUROC), AucPrFalse: defined(m.AUCPRFalse), AllTrueRate: defined(m.AllTrueRate), KeptRate: defined(m.KeptRate)}
}

// defined returns x, or nil for an undefined metric (NaN).
func defined(x float64) *float64 {
	if math.IsNaN(x) {
		return nil
	}
	return &x
}

// EvaluateEquivalence returns the answer equivalence an EvaluateConfig asks for examples whose
// policy sets none (EquivalenceDefault: the profile's).
func EvaluateEquivalence(c *plumbv1.EvaluateConfig) (calibrate.Equivalence, error) {
	return equivalences.read("config.equivalence", c.GetEquivalence())
}
