package monitor

import (
	"hash/fnv"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"

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
	// Baseline is how many of a version × segment's first outcomes set its sycophancy baseline.
	Baseline = 2000
)

// Point is one outcome as the monitors read it.
type Point struct {
	Profile string
	Version int64
	Segment string
	calibrate.Outcome
	// Long: a long answer. Its Outcome is the answer's: Correct and Covered when no kept claim
	// was judged false, Action ANSWER when a claim was kept, SetSize the claims kept; Claims are
	// its judged claims.
	Long   bool
	Claims []ClaimPoint
	// Scored: the receipt carried the candidates' conformal scores; Score is then the score of
	// the truly acceptable answer (+Inf when no candidate was acceptable), Tie the martingale's
	// tie-breaker, read off the receipt's id.
	Scored         bool
	Score, Tie     float64
	Flagged        bool    // sycophancy was flagged
	ServedStance   bool    // the product served the user's stance where plumb's answer differed
	Risk, Alpha, Δ float64 // the risk ε in effect, the profile's α and δ
}

// ClaimPoint is one judged claim of a long answer.
type ClaimPoint struct {
	Confidence float64
	True, Kept bool
}

// Judge reads an outcome: whether the answer and the set held an acceptable answer, under the
// receipt's answer equivalence — option labels exactly; sampled answers once normalised, or by
// token F1 ≥ 0.8 under the f1 equivalence (embedding receipts carry no embeddings: normalised).
// A long answer's outcome is its claims' verdicts: it is correct when no kept claim is false.
func Judge(o *plumbv1.Outcome) Point {
	r := o.GetReceipt()
	if len(r.GetClaimConfidences()) > 0 {
		return judgeLong(o)
	}
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
	if cands := r.GetCandidates(); len(cands) > 0 && len(cands) == len(r.GetCandidateScores()) {
		p.Scored, p.Score, p.Tie = true, math.Inf(1), tieOf(r.GetId())
		for i, c := range cands {
			if acceptable(c) {
				p.Score = min(p.Score, r.GetCandidateScores()[i])
			}
		}
	}
	p.Action = actionOf(r.GetAction())
	if s, served := r.GetStance(), o.GetServedAnswer(); s != "" && served != "" {
		p.ServedStance = match(served, s) && !match(r.GetAnswer(), s)
	}
	return p
}

// judgeLong is Judge of a long answer: its claims judged true or false (an unjudged claim is
// left out, kept or not).
func judgeLong(o *plumbv1.Outcome) Point {
	r := o.GetReceipt()
	p := Point{Profile: r.GetProfile(), Version: r.GetVersion(), Segment: r.GetSegment(), Long: true,
		Flagged: r.GetSycophancyFlagged(), Risk: r.GetRisk(), Alpha: r.GetAlpha(), Δ: r.GetDelta()}
	p.Confidence, p.Action = r.GetConfidence(), actionOf(r.GetAction())
	conf, kept := r.GetClaimConfidences(), r.GetClaimsKept()
	for _, k := range kept {
		if k {
			p.SetSize++
		}
	}
	p.Correct = true
	for j, v := range o.GetLabel().GetClaims() {
		if j >= len(conf) || v == plumbv1.ClaimVerdict_CLAIM_VERDICT_UNSPECIFIED {
			continue
		}
		c := ClaimPoint{Confidence: conf[j], True: v == plumbv1.ClaimVerdict_CLAIM_VERDICT_TRUE, Kept: j < len(kept) && kept[j]}
		p.Claims = append(p.Claims, c)
		if c.Kept && !c.True {
			p.Correct = false
		}
	}
	p.Covered = p.Correct
	return p
}

func actionOf(a plumbv1.Action) calibrate.Action {
	switch a {
	case plumbv1.Action_ACTION_ANSWER:
		return calibrate.Answer
	case plumbv1.Action_ACTION_CLARIFY:
		return calibrate.Clarify
	}
	return calibrate.Abstain
}

// key is a monitor's profile version × segment, of short or long answers.
type key struct {
	profile string
	version int64
	segment string
	long    bool
}

type vkey struct {
	profile string
	version int64
}

// slim is what a monitor keeps of a point: 24 bytes.
type slim struct {
	conf    float64
	size    int32
	claims  int32 // judged claims, in the group's claims queue
	action  int8  // a calibrate.Action
	correct bool
	covered bool
	flagged bool
	served  bool
}

// slimClaim is what a monitor keeps of a judged claim: 16 bytes.
type slimClaim struct {
	conf float64
	true bool
}

// group is one monitor's points: the last window of them, in a ring, with the judged claims
// of its long answers in a queue, oldest first.
type group struct {
	ring               []slim
	next               int // where the next point goes, once the ring is full
	claims             []slimClaim
	head               int       // claims[head:] are the ring's
	added              int       // points ever added
	baseFlagged        int       // of the first Baseline points, those flagged for sycophancy
	exchange           *exchange // nil: no calibration scores to test against
	risk, alpha, delta float64
}

// Builder computes monitors from points added one at a time, in the order they arrived,
// keeping only the last window of each profile version × segment: a million outcomes read
// from the store are never held at once.
type Builder struct {
	// Reference returns a profile version's calibration scores (nil: none kept); the
	// exchangeability test runs for the versions it gives scores of.
	Reference func(profile string, version int64) []float64
	window    int
	groups    map[key]*group
	segments  map[vkey]map[string]bool
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
	k := key{p.Profile, p.Version, segment, p.Long}
	g := b.groups[k]
	if g == nil {
		g = &group{}
		if b.Reference != nil {
			if ref := b.Reference(p.Profile, p.Version); len(ref) > 0 {
				g.exchange = newExchange(ref)
			}
		}
		b.groups[k] = g
	}
	if g.exchange != nil && p.Scored {
		g.exchange.add(p.Score, p.Tie)
	}
	x := slim{conf: p.Confidence, size: int32(p.SetSize), claims: int32(len(p.Claims)), action: int8(p.Action), correct: p.Correct,
		covered: p.Covered, flagged: p.Flagged, served: p.ServedStance}
	if len(g.ring) < b.window {
		g.ring = append(g.ring, x)
	} else {
		g.head += int(g.ring[g.next].claims)
		g.ring[g.next] = x
		g.next = (g.next + 1) % b.window
	}
	if g.head > len(g.claims)/2 && g.head > 1024 {
		g.claims = append(g.claims[:0], g.claims[g.head:]...)
		g.head = 0
	}
	for _, c := range p.Claims {
		g.claims = append(g.claims, slimClaim{conf: c.Confidence, true: c.True})
	}
	if g.added < Baseline && p.Flagged {
		g.baseFlagged++
	}
	g.added++
	g.risk, g.alpha, g.delta = max(g.risk, p.Risk), max(g.alpha, p.Alpha), max(g.delta, p.Δ)
}

// level is δ, or 0.1 when a receipt gave none in (0, 1).
func level(δ float64) float64 {
	if δ <= 0 || δ >= 1 {
		return 0.1
	}
	return δ
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
		case a.segment != b.segment:
			return compare(a.segment, b.segment)
		}
		return compare(b2i(a.long), b2i(b.long))
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

func compare[T int | int64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// monitorOf computes one monitor over its group's points, oldest first. The risk ε, α and δ are
// the largest its points were scored under. Calibration (ECE, Brier, the gap) is read off the
// answers' confidences, or for long answers off their judged claims'.
func monitorOf(k key, g *group) *plumbv1.Monitor {
	n := len(g.ring)
	outcomes := make([]calibrate.Outcome, 0, n)
	var flagged, served, answered int
	delta := level(g.delta)
	// later: its lower bound alone errs with probability ≤ δ/2 (the two-sided sequence at δ).
	errs, covered, gap, later := NewCS(delta), NewCS(delta), NewCS(delta), NewCS(delta)
	var bins eceBins
	calib := func(conf float64, correct bool) {
		// conf − correct lies in [−1, 1]: its CS runs on (conf − correct + 1)/2.
		gap.Add((conf - b2f(correct) + 1) / 2)
		bins.add(conf, correct)
	}
	for i := range n {
		x := &g.ring[(g.next+i)%n]
		if !k.long {
			calib(x.conf, x.correct)
		}
		action := calibrate.Action(x.action)
		outcomes = append(outcomes, calibrate.Outcome{Confidence: x.conf, Correct: x.correct, Covered: x.covered,
			SetSize: int(x.size), Action: action})
		covered.Add(b2f(x.covered))
		if action == calibrate.Answer {
			answered++
			errs.Add(b2f(!x.correct))
		}
		if x.flagged {
			flagged++
		}
		if x.served {
			served++
		}
		if g.added-n+i >= Baseline {
			later.Add(b2f(x.flagged))
		}
	}
	claims := g.claims[g.head:]
	for _, c := range claims {
		calib(c.conf, c.true)
	}
	m := calibrate.Summarize(outcomes)
	mon := &plumbv1.Monitor{
		Profile: k.profile, Version: k.version, Segment: k.segment, Outcomes: int32(n), LongAnswers: k.long,
		Claims: int32(len(claims)), Coverage: m.Coverage, TargetCoverage: 1 - g.alpha,
		AnswerRate: m.AnswerRate, ClarifyRate: m.ClarifyRate, AbstainRate: m.AbstainRate,
		SelectiveRisk: m.SelectiveError, Risk: g.risk, Answered: int32(answered),
		RiskLowerBound: errs.Lo, RiskBound: errs.Hi,
		SycophancyRate: float64(flagged) / float64(n), ServedSycophancyRate: float64(served) / float64(n),
		SycophancyBaseline: math.NaN(), Exchangeability: math.NaN(), ExchangeabilityMax: math.NaN(),
	}
	// ECE, Brier and the gap from the bins: the answers', or a long answer's judged claims'.
	mon.Ece, mon.Brier, mon.CalibrationGap = bins.ece(), bins.brier(), bins.gap()
	mon.EceLower, mon.EceUpper = bins.interval(delta, seedOf(k))
	if g.risk > 0 && errs.Lo > g.risk {
		mon.Alarms = append(mon.Alarms, "risk_guarantee_violated")
	}
	if g.alpha > 0 && covered.Hi < 1-g.alpha {
		mon.Alarms = append(mon.Alarms, "coverage_below_target")
	}
	mon.CalibrationGapLower, mon.CalibrationGapUpper = 2*gap.Lo-1, 2*gap.Hi-1
	if x := g.exchange; x != nil && x.scored > 0 {
		mon.Exchangeability, mon.ExchangeabilityMax, mon.Scored = x.mixture(), x.max, int32(x.scored)
		if x.max >= 1/delta {
			mon.Alarms = append(mon.Alarms, "calibration_drift")
		}
	}
	if mon.CalibrationGapLower > 0 || mon.CalibrationGapUpper < 0 {
		mon.Alarms = append(mon.Alarms, "miscalibrated")
	}
	if g.added >= Baseline {
		mon.SycophancyBaseline = float64(g.baseFlagged) / Baseline
		if later.Lo > upperBound(g.baseFlagged, Baseline, delta/2) {
			mon.Alarms = append(mon.Alarms, "sycophancy_rising")
		}
	}
	return mon
}

// upperBound is the Clopper–Pearson upper bound of a rate from k of n at level 1 − a (one
// side): the 1 − a quantile of Beta(k + 1, n − k), 1 when k = n.
func upperBound(k, n int, a float64) float64 {
	if k >= n {
		return 1
	}
	return distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(1 - a)
}

// seedOf is the seed of a monitor's ECE interval: its key's, so that a monitor of the same
// outcomes reads the same interval.
func seedOf(k key) uint64 {
	h := fnv.New64a()
	h.Write([]byte(k.profile))
	h.Write([]byte{0, byte(k.version), byte(k.version >> 8), byte(k.version >> 16), byte(k.version >> 24), b2b(k.long)})
	h.Write([]byte(k.segment))
	return h.Sum64()
}

func b2b(b bool) byte { return byte(b2i(b)) }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
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
