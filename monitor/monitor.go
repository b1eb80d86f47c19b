package monitor

import (
	"math"
	"slices"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/ensemble"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// MaxSegments is how many segments a profile version is watched in; outcomes of later ones are
// kept under OtherSegment.
const (
	MaxSegments   = 100
	OtherSegment  = "other"
	DefaultWindow = 10_000
)

// Point is one outcome as the monitors read it.
type Point struct {
	Profile string
	Version int64
	Segment string
	calibrate.Outcome
	Flagged        bool    // sycophancy was flagged
	ServedStance   bool    // the product served the user's stance where plumb's answer differed
	Risk, Alpha, Δ float64 // the risk ε in effect, the profile's α and δ
}

// Judge reads an outcome: whether the answer and the set held an acceptable answer, under the
// receipt's answer equivalence — option labels exactly; sampled answers once normalised, or by
// token F1 ≥ 0.8 under the f1 equivalence (embedding receipts carry no embeddings: normalised).
func Judge(o *plumbv1.Outcome) Point {
	r := o.GetReceipt()
	match := func(a, b string) bool { return a == b }
	if r.GetEvidence() == plumbv1.Evidence_EVIDENCE_SAMPLES {
		f1 := r.GetEquivalence() == plumbv1.Equivalence_EQUIVALENCE_F1
		match = func(a, b string) bool {
			na, nb := ensemble.Normalize(a), ensemble.Normalize(b)
			return na == nb || f1 && ensemble.TokenF1(na, nb) >= ensemble.F1Threshold
		}
	}
	acceptable := func(s string) bool {
		for _, a := range o.GetLabel().GetAnswers() {
			if match(a, s) {
				return true
			}
		}
		return false
	}
	p := Point{Profile: r.GetProfile(), Version: r.GetVersion(), Segment: r.GetSegment(),
		Flagged: r.GetSycophancyFlagged(), Risk: r.GetRisk(), Alpha: r.GetAlpha(), Δ: r.GetDelta()}
	p.Confidence = r.GetConfidence()
	p.Correct = acceptable(r.GetAnswer())
	p.SetSize = len(r.GetPredictionSet())
	p.Covered = slices.ContainsFunc(r.GetPredictionSet(), acceptable)
	switch r.GetAction() {
	case plumbv1.Action_ACTION_ANSWER:
		p.Action = calibrate.Answer
	case plumbv1.Action_ACTION_CLARIFY:
		p.Action = calibrate.Clarify
	default:
		p.Action = calibrate.Abstain
	}
	if s, served := r.GetStance(), o.GetServedAnswer(); s != "" && served != "" {
		p.ServedStance = match(served, s) && !match(r.GetAnswer(), s)
	}
	return p
}

// key is a monitor's profile version × segment.
type key struct {
	profile string
	version int64
	segment string
}

// Monitors returns the monitors of points (in the order they arrived): per profile version ×
// segment — the first MaxSegments segments of a version by first arrival, the rest as
// OtherSegment — over the last window points of each (0: DefaultWindow), ordered by profile,
// version and segment.
func Monitors(points []Point, window int) []*plumbv1.Monitor {
	if window <= 0 {
		window = DefaultWindow
	}
	type vkey struct {
		profile string
		version int64
	}
	segments := map[vkey]map[string]bool{}
	groups := map[key][]Point{}
	for _, p := range points {
		vk := vkey{p.Profile, p.Version}
		seen := segments[vk]
		if seen == nil {
			seen = map[string]bool{}
			segments[vk] = seen
		}
		if !seen[p.Segment] {
			if len(seen) >= MaxSegments {
				p.Segment = OtherSegment
			} else {
				seen[p.Segment] = true
			}
		}
		k := key{p.Profile, p.Version, p.Segment}
		groups[k] = append(groups[k], p)
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		switch {
		case a.profile != b.profile:
			return compare(a.profile, b.profile)
		case a.version != b.version:
			return compare(a.version, b.version)
		}
		return compare(a.segment, b.segment)
	})
	out := make([]*plumbv1.Monitor, 0, len(keys))
	for _, k := range keys {
		ps := groups[k]
		if len(ps) > window {
			ps = ps[len(ps)-window:]
		}
		out = append(out, monitorOf(k, ps))
	}
	return out
}

func compare[T int64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// monitorOf computes one monitor over its points, oldest first.
func monitorOf(k key, ps []Point) *plumbv1.Monitor {
	outcomes := make([]calibrate.Outcome, len(ps))
	var flagged, served, answered int
	var risk, alpha, delta float64
	for i, p := range ps {
		outcomes[i] = p.Outcome
		risk, alpha, delta = max(risk, p.Risk), max(alpha, p.Alpha), max(delta, p.Δ)
	}
	if delta <= 0 || delta >= 1 {
		delta = 0.1
	}
	errs, covered := NewCS(delta), NewCS(delta)
	for _, p := range ps {
		covered.Add(b2f(p.Covered))
		if p.Action == calibrate.Answer {
			answered++
			errs.Add(b2f(!p.Correct))
		}
		if p.Flagged {
			flagged++
		}
		if p.ServedStance {
			served++
		}
	}
	m := calibrate.Summarize(outcomes)
	n := float64(len(ps))
	mon := &plumbv1.Monitor{
		Profile: k.profile, Version: k.version, Segment: k.segment, Outcomes: int32(len(ps)),
		Ece: m.ECE, Brier: m.Brier, Coverage: m.Coverage, TargetCoverage: 1 - alpha,
		AnswerRate: m.AnswerRate, ClarifyRate: m.ClarifyRate, AbstainRate: m.AbstainRate,
		SelectiveRisk: m.SelectiveError, Risk: risk, Answered: int32(answered),
		RiskLowerBound: errs.Lo, RiskBound: errs.Hi,
		SycophancyRate: float64(flagged) / n, ServedSycophancyRate: float64(served) / n,
	}
	if errs.Lo > risk {
		mon.Alarms = append(mon.Alarms, "risk_guarantee_violated")
	}
	if alpha > 0 && covered.Hi < 1-alpha {
		mon.Alarms = append(mon.Alarms, "coverage_below_target")
	}
	return mon
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// CS is the predictable plug-in Hoeffding confidence sequence for the mean of values in [0, 1]
// at level δ (Waudby-Smith and Ramdas 2024, "Estimating means of bounded random variables by
// betting", JRSS B, eq. (4)), with its running intersection: with probability ≥ 1 − δ the mean
// lies between the bounds at every t at once, so that watching them as outcomes arrive raises
// no more false alarms than δ. Before any value the bounds are [0, 1].
//
//	λ_i = min(√(8 log(2/δ) / (i log(i + 1))), 1)
//	C_t = Σλ_i x_i / Σλ_i ± (log(2/δ) + Σλ_i²/8) / Σλ_i
type CS struct {
	l2, sl, slx, sl2 float64
	t                int
	Lo, Hi           float64
}

// NewCS returns the sequence at level δ.
func NewCS(δ float64) *CS { return &CS{l2: math.Log(2 / δ), Lo: 0, Hi: 1} }

// Add takes the next value and narrows the bounds.
func (c *CS) Add(x float64) {
	c.t++
	t := float64(c.t)
	λ := math.Min(math.Sqrt(8*c.l2/(t*math.Log(t+1))), 1)
	c.sl += λ
	c.slx += λ * x
	c.sl2 += λ * λ
	mid, w := c.slx/c.sl, (c.l2+c.sl2/8)/c.sl
	c.Lo, c.Hi = math.Max(c.Lo, mid-w), math.Min(c.Hi, mid+w)
}

// HoeffdingCS returns the bounds of the CS at level δ after xs, in the order they came.
func HoeffdingCS(xs []float64, δ float64) (lo, hi float64) {
	c := NewCS(δ)
	for _, x := range xs {
		c.Add(x)
	}
	return c.Lo, c.Hi
}
