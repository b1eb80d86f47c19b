package calibrate

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/plumbhq/plumb/conformal"
)

// Fitting and reporting profiles of long answers (docs/DESIGN.md "Long answers"): a claim
// confidence map on the tune split's claims, then the conformal factuality threshold τ on
// calibration answers, and a report of the claims of the held-out answers.

// claimRow is one claim of a labelled long answer as a fit or an evaluation holds it: its
// grounded support, the variance of its wordings' mean supports, and its verdict.
type claimRow struct {
	s, v    float64
	verdict ClaimVerdict
}

// claimPassage is a labelled long answer as a fit holds it: its claims, and the pooled samples
// and the clip of the logit their features need.
type claimPassage struct {
	rows    []claimRow
	samples int
	clip    float64
}

// newClaimPassage measures the support of a valid labelled long answer's claims.
func newClaimPassage(ctx context.Context, ex *Example) (*claimPassage, error) {
	a, err := analyzeClaims(ctx, &ex.Question)
	if err != nil {
		return nil, err
	}
	c := &claimPassage{rows: make([]claimRow, a.k), samples: a.samples, clip: a.clip()}
	for j := range c.rows {
		s, v, _ := a.claim(j)
		c.rows[j] = claimRow{s: s, v: v, verdict: ex.Label.Claims[j]}
	}
	return c, nil
}

// confidences returns the confidence of each of the passage's claims under p, in dst's memory.
func (c *claimPassage) confidences(dst []float64, p *Profile) []float64 {
	dst = dst[:0]
	f := make([]float64, 0, ClaimFeatures)
	for _, r := range c.rows {
		f = claimFeatures(f, r.s, r.v, c.clip, c.samples)
		dst = append(dst, claimConfidence(p, f, r.s))
	}
	return dst
}

// fitClaims fits a claims profile on the passages (Fit's split: tune, cal, rep; stage reports
// the stages).
func (f *Fitter) fitClaims(tune, cal, rep []int, stage func(string) error) (*Profile, *Report, error) {
	c := f.cfg
	p := Default()
	p.Name, p.Calibrated, p.Evidence = c.Name, true, EvidenceClaims
	p.Alpha, p.Equivalence, p.SycophancyThreshold = c.Alpha, c.Equivalence, c.Sycophancy
	p.Risk, p.Delta, p.RiskMin, p.RiskMax = c.Risk, c.Delta, c.RiskMin, c.RiskMax
	known := 0
	for i := range f.items {
		for _, r := range f.items[i].claims.rows {
			if r.verdict != ClaimUnknown {
				known++
			}
		}
	}
	if known == 0 {
		return nil, nil, &Error{Kind: Precondition, Field: "examples", Msg: "no claim is labelled true or false: label.claims says which are"}
	}

	mapReason := ""
	p.ClaimMapMethod = MapNone
	if c.ConfidenceMap != MapNone {
		if err := stage("confidence map"); err != nil {
			return nil, nil, err
		}
		var err error
		if mapReason, err = fitClaimMap(p, passagesOf(f.items, tune), c.ConfidenceMap, c.L2); err != nil {
			return nil, nil, err
		}
	}
	if err := stage("conformal"); err != nil {
		return nil, nil, err
	}
	calibration := claimCalibration(p, tune, cal)
	warnings := claimThreshold(p, passagesOf(f.items, calibration))

	if err := stage("report"); err != nil {
		return nil, nil, err
	}
	before := Default()
	before.Alpha, before.Equivalence, before.SycophancyThreshold = c.Alpha, c.Equivalence, c.Sycophancy
	ev := newEvaluator(before, p, c.Equivalence)
	ev.evidence = EvidenceClaims
	for _, i := range rep {
		ev.addClaimPassage(f.items[i].claims)
	}
	r := ev.Report()
	r.Claims.TuneClaims, r.Claims.CalibratePassages = tuneClaims(passagesOf(f.items, tune)), len(calibration)
	r.Claims.MapReason, r.Warnings = mapReason, warnings
	r.Tune, r.Calibrate = len(tune), len(cal)
	p.Report = r
	return p, r, nil
}

// passagesOf returns the long answers items[idx[j]].
func passagesOf(items []fitItem, idx []int) []*claimPassage {
	out := make([]*claimPassage, len(idx))
	for j, i := range idx {
		out[j] = items[i].claims
	}
	return out
}

// claimCalibration returns the answers that calibrate the threshold τ under p's fitted claim
// map: a map that keeps the order of the supports (none, or Platt with a positive slope) makes
// the keep rule the image of a rule on the supports alone, which depend on no fitted parameter,
// so every answer outside the report split calibrates it; a logistic map only the calibrate
// split.
func claimCalibration(p *Profile, tune, cal []int) []int {
	if p.ClaimMap == nil || p.ClaimMapMethod == MapPlatt && p.ClaimMap[1] > 0 {
		return append(slices.Clone(tune), cal...)
	}
	return cal
}

// claimThreshold sets p's threshold τ: the conformal quantile at p.Alpha of the factuality
// scores of the calibration answers under p's claim map. It returns a warning when τ = ∞.
func claimThreshold(p *Profile, calibration []*claimPassage) []string {
	scores := make([]float64, 0, len(calibration))
	var conf []float64
	for _, cp := range calibration {
		conf = cp.confidences(conf, p)
		isFalse := make([]bool, len(cp.rows))
		for j, r := range cp.rows {
			isFalse[j] = r.verdict == ClaimFalse
		}
		scores = append(scores, conformal.FactualityScore(conf, isFalse))
	}
	slices.Sort(scores)
	p.ClaimThreshold = conformal.Quantile(p.Alpha, conformal.FiniteSample, scores)
	if math.IsInf(p.ClaimThreshold, 1) {
		return []string{fmt.Sprintf("τ = ∞: %d calibration answers are too few for a guarantee at α = %.2g (⌈(n+1)(1−α)⌉ must be at most n): this profile keeps no claim; fit on more answers, or ask a larger α",
			len(scores), p.Alpha)}
	}
	return nil
}

// tuneClaims counts the labelled claims of the passages.
func tuneClaims(passages []*claimPassage) int {
	n := 0
	for _, cp := range passages {
		for _, r := range cp.rows {
			if r.verdict != ClaimUnknown {
				n++
			}
		}
	}
	return n
}

// fitClaimMap fits the claim confidence map on the tune passages' labelled claims: the maps of
// fitMap (none, Platt on [1, logit S], logistic on every feature), chosen alike.
func fitClaimMap(p *Profile, tune []*claimPassage, method MapMethod, l2 float64) (string, error) {
	d := mapData{dim: ClaimFeatures}
	for _, cp := range tune {
		for _, r := range cp.rows {
			if r.verdict == ClaimUnknown {
				continue
			}
			d.feats = append(d.feats, claimFeatures(nil, r.s, r.v, cp.clip, cp.samples))
			d.conf = append(d.conf, r.s)
			y := 0.0
			if r.verdict == ClaimTrue {
				y = 1
			}
			d.ys = append(d.ys, y)
		}
	}
	if len(d.ys) < MinSplit {
		return "", &Error{Kind: Precondition, Field: "examples", Msg: fmt.Sprintf("the tune split has %d labelled claims, at least %d are needed to fit a claim map (or fit with --confidence-map none)", len(d.ys), MinSplit)}
	}
	reason := ""
	if method == MapAuto {
		method, reason = d.choose(l2)
	}
	p.ClaimMapMethod = method
	k := method.features(d.dim)
	if k == 0 {
		p.ClaimMap = nil
		return reason, nil
	}
	w, err := d.fit(k, l2, nil)
	if err != nil {
		return "", &Error{Kind: Precondition, Field: "examples", Msg: "claim map fit: " + err.Error()}
	}
	p.ClaimMap = w
	return reason, nil
}

// claimRecord is what one labelled claim contributes to a report: its confidence before (the
// support, under the default's threshold) and after (the profile), its verdict and its answer.
type claimRecord struct {
	before, after float64
	verdict       ClaimVerdict
	passage       int32
}

// addClaimPassage records a labelled long answer's claims, before and after.
func (e *Evaluator) addClaimPassage(cp *claimPassage) {
	e.claims = appendClaims(e.claims, cp, e.before, e.after, e.passages)
	e.passages++
}

// appendClaims appends the records of a labelled long answer's claims, passage the answer's
// position, confidences before and after.
func appendClaims(dst []claimRecord, cp *claimPassage, before, after *Profile, passage int) []claimRecord {
	cb := cp.confidences(nil, before)
	ca := cp.confidences(nil, after)
	for j, r := range cp.rows {
		dst = append(dst, claimRecord{before: cb[j], after: ca[j], verdict: r.verdict, passage: int32(passage)})
	}
	return dst
}

// ClaimReport is a claims profile's account of its claims on held-out long answers.
type ClaimReport struct {
	Passages          int
	Before, After     ClaimMetrics
	BinsBefore        []Bin
	BinsAfter         []Bin
	Threshold         float64 // τ
	MapMethod         string
	MapReason         string
	TuneClaims        int // labelled claims the map was fitted on
	CalibratePassages int // answers the threshold was set on
}

// ClaimMetrics summarise the labelled claims of long answers. A metric undefined on them is NaN.
type ClaimMetrics struct {
	Claims      int
	Accuracy    float64 // share of claims that are true
	ECE         float64 // 15 equal-width bins
	Brier       float64
	AUROC       float64 // P(c of a true claim > c of a false one), ties ½
	AUCPRFalse  float64 // average precision of the false claims ranked by 1 − c
	AllTrueRate float64 // share of answers whose kept claims are all true
	KeptRate    float64 // share of the labelled claims kept
}

// claimReport summarises the recorded claims.
func (e *Evaluator) claimReport() *ClaimReport {
	r := &ClaimReport{Passages: e.passages, Threshold: e.after.ClaimThreshold, MapMethod: e.after.ClaimMapMethod.String()}
	r.Before, r.BinsBefore = claimMetrics(e.claims, e.passages, e.before.ClaimThreshold, func(c *claimRecord) float64 { return c.before })
	r.After, r.BinsAfter = claimMetrics(e.claims, e.passages, e.after.ClaimThreshold, func(c *claimRecord) float64 { return c.after })
	return r
}

// claimMetrics computes the metrics of one side (conf) of the labelled claims of passages
// answers, keeping the claims whose confidence exceeds tau.
func claimMetrics(recs []claimRecord, passages int, tau float64, conf func(*claimRecord) float64) (ClaimMetrics, []Bin) {
	m := ClaimMetrics{}
	bins := make([]Bin, Bins)
	for b := range bins {
		bins[b].Lower, bins[b].Upper = float64(b)/Bins, float64(b+1)/Bins
	}
	var cs []float64
	var right []bool
	wrongKept := make([]bool, passages)
	kept := 0
	for i := range recs {
		r := &recs[i]
		if r.verdict == ClaimUnknown {
			continue
		}
		c := conf(r)
		t := r.verdict == ClaimTrue
		y := 0.0
		if t {
			y = 1
			m.Accuracy++
		}
		m.Claims++
		m.Brier += (c - y) * (c - y)
		b := &bins[binOf(c)]
		b.Count++
		b.Confidence += c
		b.Accuracy += y
		cs, right = append(cs, c), append(right, t)
		if c > tau {
			kept++
			if !t {
				wrongKept[r.passage] = true
			}
		}
	}
	if m.Claims == 0 {
		nan := math.NaN()
		return ClaimMetrics{Accuracy: nan, ECE: nan, Brier: nan, AUROC: nan, AUCPRFalse: nan, AllTrueRate: nan, KeptRate: nan}, bins
	}
	for b := range bins {
		if n := float64(bins[b].Count); n > 0 {
			bins[b].Confidence /= n
			bins[b].Accuracy /= n
		}
	}
	n := float64(m.Claims)
	m.ECE, _ = calibrationErrors(bins, m.Claims)
	m.Accuracy /= n
	m.Brier /= n
	m.KeptRate = float64(kept) / n
	allTrue := 0
	for _, w := range wrongKept {
		if !w {
			allTrue++
		}
	}
	m.AllTrueRate = float64(allTrue) / float64(passages)
	m.AUROC = aurocOf(sortedScores(cs, right))
	m.AUCPRFalse = averagePrecision(cs, right)
	return m, bins
}

// averagePrecision returns the average precision of finding the false claims (right false)
// ranked by 1 − c, as scikit-learn's average_precision_score computes it: Σ over the distinct
// thresholds of (R_k − R_{k−1})·P_k, claims of equal confidence taken together. It is NaN
// without a false claim.
func averagePrecision(conf []float64, right []bool) float64 {
	idx := make([]int, len(conf))
	for i := range idx {
		idx[i] = i
	}
	// Most suspect first: the lowest confidence.
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case conf[a] < conf[b]:
			return -1
		case conf[a] > conf[b]:
			return 1
		}
		return 0
	})
	positives := 0
	for _, r := range right {
		if !r {
			positives++
		}
	}
	if positives == 0 {
		return math.NaN()
	}
	var ap float64
	tp, fp, prevTP := 0, 0, 0
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && conf[idx[j]] == conf[idx[i]] {
			if right[idx[j]] {
				fp++
			} else {
				tp++
			}
			j++
		}
		ap += float64(tp-prevTP) / float64(positives) * float64(tp) / float64(tp+fp)
		prevTP = tp
		i = j
	}
	return ap
}
