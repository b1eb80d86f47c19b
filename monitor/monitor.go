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

type vkey struct {
	profile string
	version int64
}

// slim is what a monitor keeps of a point: 24 bytes.
type slim struct {
	conf    float64
	size    int32
	action  calibrate.Action
	correct bool
	covered bool
	flagged bool
	served  bool
}

// group is one monitor's points: the last window of them, in a ring.
type group struct {
	ring               []slim
	next               int // where the next point goes, once the ring is full
	risk, alpha, delta float64
}

// Builder computes monitors from points added one at a time, in the order they arrived,
// keeping only the last window of each profile version × segment: a million outcomes read
// from the store are never held at once.
type Builder struct {
	window   int
	groups   map[key]*group
	segments map[vkey]map[string]bool
}

// NewBuilder returns a Builder over the last window points of each monitor (0: DefaultWindow).
func NewBuilder(window int) *Builder {
	if window <= 0 {
		window = DefaultWindow
	}
	return &Builder{window: window, groups: map[key]*group{}, segments: map[vkey]map[string]bool{}}
}

// Add takes the next point: into its version's segment, or OtherSegment past MaxSegments.
func (b *Builder) Add(p *Point) {
	vk := vkey{p.Profile, p.Version}
	seen := b.segments[vk]
	if seen == nil {
		seen = map[string]bool{}
		b.segments[vk] = seen
	}
	segment := p.Segment
	if !seen[segment] {
		if len(seen) >= MaxSegments {
			segment = OtherSegment
		} else {
			seen[segment] = true
		}
	}
	k := key{p.Profile, p.Version, segment}
	g := b.groups[k]
	if g == nil {
		g = &group{}
		b.groups[k] = g
	}
	x := slim{conf: p.Confidence, size: int32(p.SetSize), action: p.Action, correct: p.Correct, covered: p.Covered,
		flagged: p.Flagged, served: p.ServedStance}
	if len(g.ring) < b.window {
		g.ring = append(g.ring, x)
	} else {
		g.ring[g.next] = x
		g.next = (g.next + 1) % b.window
	}
	g.risk, g.alpha, g.delta = max(g.risk, p.Risk), max(g.alpha, p.Alpha), max(g.delta, p.Δ)
}

// Monitors returns the monitors, ordered by profile, version and segment.
func (b *Builder) Monitors() []*plumbv1.Monitor {
	keys := make([]key, 0, len(b.groups))
	for k := range b.groups {
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
		out = append(out, monitorOf(k, b.groups[k]))
	}
	return out
}

// Monitors returns the monitors of points (in the order they arrived): per profile version ×
// segment — the first MaxSegments segments of a version by first arrival, the rest as
// OtherSegment — over the last window points of each (0: DefaultWindow), ordered by profile,
// version and segment.
func Monitors(points []Point, window int) []*plumbv1.Monitor {
	b := NewBuilder(window)
	for i := range points {
		b.Add(&points[i])
	}
	return b.Monitors()
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

// monitorOf computes one monitor over its group's points, oldest first. The risk ε, α and δ are
// the largest its points were scored under.
func monitorOf(k key, g *group) *plumbv1.Monitor {
	n := len(g.ring)
	outcomes := make([]calibrate.Outcome, 0, n)
	var flagged, served, answered int
	delta := g.delta
	if delta <= 0 || delta >= 1 {
		delta = 0.1
	}
	errs, covered, gap := NewCS(delta), NewCS(delta), NewCS(delta)
	var gapSum float64
	for i := range n {
		x := &g.ring[(g.next+i)%n]
		// conf − correct lies in [−1, 1]: its CS runs on (conf − correct + 1)/2.
		d := x.conf - b2f(x.correct)
		gapSum += d
		gap.Add((d + 1) / 2)
		outcomes = append(outcomes, calibrate.Outcome{Confidence: x.conf, Correct: x.correct, Covered: x.covered,
			SetSize: int(x.size), Action: x.action})
		covered.Add(b2f(x.covered))
		if x.action == calibrate.Answer {
			answered++
			errs.Add(b2f(!x.correct))
		}
		if x.flagged {
			flagged++
		}
		if x.served {
			served++
		}
	}
	m := calibrate.Summarize(outcomes)
	mon := &plumbv1.Monitor{
		Profile: k.profile, Version: k.version, Segment: k.segment, Outcomes: int32(n),
		Ece: m.ECE, Brier: m.Brier, Coverage: m.Coverage, TargetCoverage: 1 - g.alpha,
		AnswerRate: m.AnswerRate, ClarifyRate: m.ClarifyRate, AbstainRate: m.AbstainRate,
		SelectiveRisk: m.SelectiveError, Risk: g.risk, Answered: int32(answered),
		RiskLowerBound: errs.Lo, RiskBound: errs.Hi,
		SycophancyRate: float64(flagged) / float64(n), ServedSycophancyRate: float64(served) / float64(n),
	}
	if errs.Lo > g.risk {
		mon.Alarms = append(mon.Alarms, "risk_guarantee_violated")
	}
	if g.alpha > 0 && covered.Hi < 1-g.alpha {
		mon.Alarms = append(mon.Alarms, "coverage_below_target")
	}
	mon.CalibrationGap = gapSum / float64(n)
	mon.CalibrationGapLower, mon.CalibrationGapUpper = 2*gap.Lo-1, 2*gap.Hi-1
	if mon.CalibrationGapLower > 0 || mon.CalibrationGapUpper < 0 {
		mon.Alarms = append(mon.Alarms, "calibration_drift")
	}
	return mon
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// CS is the predictable plug-in empirical-Bernstein confidence sequence for the mean of values
// in [0, 1] at level δ (Waudby-Smith and Ramdas 2024, "Estimating means of bounded random
// variables by betting", JRSS B, Theorem 2), with its running intersection: with probability
// ≥ 1 − δ the mean lies between the bounds at every t at once, so that watching them as outcomes
// arrive raises no more false alarms than δ. It narrows with the values' variance, not their
// range: for an error rate of 0.1 its width tends to √(0.09/0.25) = 0.6 of Hoeffding's. Before
// any value the bounds are [0, 1].
//
//	μ̂_t = (1/2 + Σ_{i≤t} x_i)/(t + 1),   σ̂²_t = (1/4 + Σ_{i≤t} (x_i − μ̂_i)²)/(t + 1)
//	λ_t = min(√(2 log(2/δ) / (σ̂²_{t−1} t log(1 + t))), 1/2)
//	v_t = 4 (x_t − μ̂_{t−1})²,   ψ(λ) = (−log(1 − λ) − λ)/4
//	C_t = Σλ_i x_i / Σλ_i ± (log(2/δ) + Σ v_i ψ(λ_i)) / Σλ_i
type CS struct {
	l2, sl, slx, svp float64 // log(2/δ), Σλ, Σλx, Σvψ(λ)
	sx, ssq          float64 // Σx, Σ(x_i − μ̂_i)²
	t                int
	Lo, Hi           float64
}

// NewCS returns the sequence at level δ.
func NewCS(δ float64) *CS { return &CS{l2: math.Log(2 / δ), Lo: 0, Hi: 1} }

// Add takes the next value and narrows the bounds.
func (c *CS) Add(x float64) {
	prevMu := (0.5 + c.sx) / float64(c.t+1)
	prevVar := (0.25 + c.ssq) / float64(c.t+1)
	c.t++
	t := float64(c.t)
	λ := math.Min(math.Sqrt(2*c.l2/(prevVar*t*math.Log(1+t))), 0.5)
	v := 4 * (x - prevMu) * (x - prevMu)
	c.sl += λ
	c.slx += λ * x
	c.svp += v * (-math.Log(1-λ) - λ) / 4
	c.sx += x
	mu := (0.5 + c.sx) / (t + 1)
	c.ssq += (x - mu) * (x - mu)
	mid, w := c.slx/c.sl, (c.l2+c.svp)/c.sl
	c.Lo, c.Hi = math.Max(c.Lo, mid-w), math.Min(c.Hi, mid+w)
}

// Bounds returns the bounds of the CS at level δ after xs, in the order they came.
func Bounds(xs []float64, δ float64) (lo, hi float64) {
	c := NewCS(δ)
	for _, x := range xs {
		c.Add(x)
	}
	return c.Lo, c.Hi
}
