package calibrate

import (
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/plumbhq/plumb/conformal"
)

// RefitRow is one outcome fed back, as a refit reads it: the confidence map's features of the
// answer (a receipt's), whether it was right, whether its prediction set covered an acceptable
// answer, the set's size, and the action it was given. When the receipt carried the candidates'
// conformal scores (Scored), Score is the acceptable answer's (as the calibration questions were
// scored: 0 for a right answer, +Inf when no candidate was acceptable), Candidates the scores of
// the candidates it carried, and Group the request's group.
type RefitRow struct {
	Features   []float64
	Correct    bool
	Covered    bool
	SetSize    int
	Action     Action
	Scored     bool
	Score      float64
	Candidates []float64
	Group      string
}

// refitMinGroup is the outcomes a group needs for a quantile of its own in a refit, as in Fit.
const refitMinGroup = 100

// Refit returns a new version of p fitted on outcomes fed back from production: the confidence
// map, chosen and fitted on a tune split as Fit does (method, MapAuto by default), and the
// abstention threshold λ, chosen by Learn-then-Test at p's risk and δ on a calibrate split, in
// the fractions of split (tune, calibrate, report; a seeded shuffle), and, when every outcome
// of the calibrate split carried its conformal score, the conformal quantiles (Mondrian, as
// Fit sets them) and the calibration scores kept for the exchangeability test. The
// temperature and everything else stay p's: the features and scores were computed at p's
// temperature. The report compares p (before) with the refit (after) on the report split:
// calibration and selective risk, with actions ANSWER (c ≥ λ) or, otherwise, the outcome's own
// non-answer (ABSTAIN when it was answered); coverage and set sizes after are those of the new
// quantiles (a set counts the candidates the receipt carried).
func Refit(p *Profile, rows []RefitRow, method MapMethod, split [3]float64, seed uint64, l2 float64) (*Profile, *Report, error) {
	splits, err := refitSplits(len(rows), split, seed, "outcomes")
	if err != nil {
		return nil, nil, err
	}
	tune, cal, rep := splits[0], splits[1], splits[2]
	q := *p
	q.Version, q.Report = 0, nil
	q.Map = slices.Clone(p.Map)

	d := mapData{dim: 2}
	for _, i := range tune {
		r := &rows[i]
		if len(r.Features) < 2 {
			return nil, nil, &Error{Kind: InvalidInput, Field: "feedback", Msg: "an outcome without the map's features: its receipt is from before plumb put them in receipts"}
		}
		d.feats = append(d.feats, r.Features)
		d.conf = append(d.conf, sigmoid(r.Features[1]))
		y := 0.0
		if r.Correct {
			y = 1
		}
		d.ys = append(d.ys, y)
		d.dim = max(d.dim, len(r.Features))
	}
	reason := ""
	if method == MapAuto {
		method, reason = d.choose(l2)
	}
	q.MapMethod = method
	q.Map = nil
	if k := method.features(d.dim); k > 0 {
		w, err := d.fit(k, l2, nil)
		if err != nil {
			return nil, nil, &Error{Kind: Precondition, Field: "feedback", Msg: "confidence map fit: " + err.Error()}
		}
		q.Map = w
	}

	conf := make([]float64, len(cal))
	correct := make([]bool, len(cal))
	for j, i := range cal {
		conf[j], correct[j] = confidenceOfFeatures(&q, rows[i].Features), rows[i].Correct
	}
	q.Curve = conformal.RiskCurve(conf, correct)
	q.Lambda = conformal.Select(q.Curve, q.Risk, q.Delta)
	warnings, certifiable := riskAdvice(&q, len(cal))
	quantiles := !slices.ContainsFunc(cal, func(i int) bool { return !rows[i].Scored })
	if quantiles {
		scores := make([]float64, len(cal))
		groups := make([]string, len(cal))
		for j, i := range cal {
			scores[j], groups[j] = rows[i].Score, rows[i].Group
		}
		q.Quantiles = conformal.FitMondrian(scores, groups, q.Alpha, conformal.FiniteSample, refitMinGroup)
		q.CalibrationScores = keepScores(scores, seed)
	}

	outcomes := func(pr *Profile) []Outcome {
		out := make([]Outcome, len(rep))
		for j, i := range rep {
			r := &rows[i]
			c := confidenceOfFeatures(pr, r.Features)
			a := r.Action
			switch {
			case pr.Lambda < 1 && c >= pr.Lambda:
				a = Answer
			case a == Answer:
				a = Abstain
			}
			out[j] = Outcome{Confidence: c, Correct: r.Correct, Covered: r.Covered, SetSize: r.SetSize, Action: a}
			if pr == &q && quantiles && r.Scored {
				// The new quantiles' set: the candidates scored within q̂ (the answer's 0 among them).
				thr := q.Quantiles.Threshold(r.Group)
				out[j].Covered, out[j].SetSize = r.Score <= thr+conformal.Tie, 0
				for _, s := range r.Candidates {
					if s <= thr+conformal.Tie {
						out[j].SetSize++
					}
				}
			}
		}
		return out
	}
	rp := &Report{Examples: len(rep), Tune: len(tune), Calibrate: len(cal),
		Before: Summarize(outcomes(p)), After: Summarize(outcomes(&q)),
		Profile: ProfileRef{Name: q.Name}, MapMethod: q.MapMethod.String(), MapReason: reason, Map: q.Map,
		Alpha: q.Alpha, Quantile: q.Quantiles.Global, Lambda: q.Lambda, Risk: q.Risk, Curve: q.Curve,
		Warnings: warnings, Certifiable: certifiable}
	q.Report = rp
	return &q, rp, nil
}

// refitSplits shuffles n outcomes (what they are, for the error) by seed into tune, calibrate
// and report splits in the fractions of split, each of at least MinSplit.
func refitSplits(n int, split [3]float64, seed uint64, what string) ([3][]int, error) {
	perm := rand.New(rand.NewPCG(seed, 0x726566697421)).Perm(n)
	nTune := int(split[0] * float64(n))
	nCal := int(split[1] * float64(n))
	idx := [3][]int{perm[:nTune], perm[nTune : nTune+nCal], perm[nTune+nCal:]}
	for k, name := range []string{"tune", "calibrate", "report"} {
		if len(idx[k]) < MinSplit {
			return idx, &Error{Kind: Precondition, Field: "feedback",
				Msg: "too few " + what + ": the " + name + " split has " + strconv.Itoa(len(idx[k])) + ", at least " + strconv.Itoa(MinSplit) + " are needed"}
		}
	}
	return idx, nil
}

// confidenceOfFeatures is the confidence p's map gives features: σ(Map · f), or π̄(k*) (read
// back from logit π̄(k*), features[1]) without a map.
func confidenceOfFeatures(p *Profile, f []float64) float64 {
	if p.Map == nil {
		return sigmoid(f[1])
	}
	var x float64
	for i, fi := range f {
		if i < len(p.Map) {
			x += p.Map[i] * fi
		}
	}
	return sigmoid(x)
}

// ClaimRefitRow is one long answer fed back, as a claims refit reads it: each claim's support
// and wording variance (a receipt's), the pooled samples they were measured over, and the
// verdicts fed back, in claims order.
type ClaimRefitRow struct {
	Supports, Variances []float64
	Samples             int
	Verdicts            []ClaimVerdict
}

// RefitClaims returns a new version of the claims profile p fitted on long answers fed back
// from production: the claim confidence map on a tune split (method, MapAuto by default, as
// Fit chooses it) and the conformal factuality threshold τ at p's α on the calibration answers
// (the calibrate split, and the tune split too under a map that keeps the supports' order, as
// in Fit), in the fractions of split (a seeded shuffle). The report compares p (before) with the
// refit (after) on the report split's claims.
func RefitClaims(p *Profile, rows []ClaimRefitRow, method MapMethod, split [3]float64, seed uint64, l2 float64) (*Profile, *Report, error) {
	if p.Evidence != EvidenceClaims {
		return nil, nil, &Error{Kind: Precondition, Field: "name", Msg: "not a claims profile: its outcomes are short answers'"}
	}
	idx, err := refitSplits(len(rows), split, seed, "long answers")
	if err != nil {
		return nil, nil, err
	}
	passages := make([]*claimPassage, len(rows))
	for i := range rows {
		r := &rows[i]
		if len(r.Supports) != len(r.Verdicts) || len(r.Variances) != len(r.Verdicts) || r.Samples < 1 {
			return nil, nil, &Error{Kind: InvalidInput, Field: "feedback", Msg: "a long answer without its claims' supports: its receipt is from before plumb put them in receipts"}
		}
		cp := &claimPassage{rows: make([]claimRow, len(r.Verdicts)), samples: r.Samples, clip: 0.5 / float64(r.Samples)}
		for j := range cp.rows {
			cp.rows[j] = claimRow{s: r.Supports[j], v: r.Variances[j], verdict: r.Verdicts[j]}
		}
		passages[i] = cp
	}
	of := func(idx []int) []*claimPassage {
		out := make([]*claimPassage, len(idx))
		for j, i := range idx {
			out[j] = passages[i]
		}
		return out
	}
	q := *p
	q.Version, q.Report = 0, nil
	reason, err := fitClaimMap(&q, of(idx[0]), method, l2)
	if err != nil {
		return nil, nil, err
	}
	calibration := claimCalibration(&q, idx[0], idx[1])
	warnings := claimThreshold(&q, of(calibration))
	ev := newEvaluator(p, &q, p.Equivalence)
	ev.evidence = EvidenceClaims
	for _, cp := range of(idx[2]) {
		ev.addClaimPassage(cp)
	}
	r := ev.Report()
	r.Claims.TuneClaims, r.Claims.CalibratePassages = tuneClaims(of(idx[0])), len(calibration)
	r.Claims.MapReason, r.Warnings = reason, warnings
	r.Tune, r.Calibrate = len(idx[0]), len(idx[1])
	q.Report = r
	return &q, r, nil
}
