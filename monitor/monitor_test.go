package monitor

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// TestCS: the bounds equal an independent Python transcription of the formula (python3, math
// only; the script is below) to 1e-12, and are [0, 1] before any value.
//
//	def cs(xs, d):
//	    l2 = math.log(2/d); sl = slx = svp = sx = ssq = 0.0; t = 0; lo, hi = 0.0, 1.0
//	    for x in xs:
//	        pm = (0.5+sx)/(t+1); pv = (0.25+ssq)/(t+1)
//	        t += 1
//	        lam = min(math.sqrt(2*l2/(pv*t*math.log(1+t))), 0.5)
//	        v = 4*(x-pm)**2
//	        sl += lam; slx += lam*x; svp += v*(-math.log(1-lam)-lam)/4
//	        sx += x; mu = (0.5+sx)/(t+1); ssq += (x-mu)**2
//	        mid = slx/sl; w = (l2+svp)/sl
//	        lo = max(lo, mid-w); hi = min(hi, mid+w)
//	    return lo, hi
//	xs = [1 if i%10 in (0,3,7) else 0 for i in range(2000)]
//	cs(xs, 0.1)  → (0.26182254282631345, 0.3408167625489172)
//	cs(xs, 0.05) → (0.25847935114844367, 0.3439232810142538)
//	cs([1,0,0,1,0,0,0,1,0,0], 0.1) → (0.0, 1.0)
//	cs([(i%7)/6 for i in range(500)], 0.1) → (0.4503818127139267, 0.545745339229257)
func TestCS(t *testing.T) {
	xs := make([]float64, 2000)
	for i := range xs {
		if m := i % 10; m == 0 || m == 3 || m == 7 {
			xs[i] = 1
		}
	}
	ys := make([]float64, 500)
	for i := range ys {
		ys[i] = float64(i%7) / 6
	}
	for _, tc := range []struct {
		xs     []float64
		δ      float64
		lo, hi float64
	}{
		{xs, 0.1, 0.26182254282631345, 0.3408167625489172},
		{xs, 0.05, 0.25847935114844367, 0.3439232810142538},
		{[]float64{1, 0, 0, 1, 0, 0, 0, 1, 0, 0}, 0.1, 0, 1},
		{ys, 0.1, 0.4503818127139267, 0.545745339229257},
		{nil, 0.1, 0, 1},
	} {
		lo, hi := Bounds(tc.xs, tc.δ)
		if math.Abs(lo-tc.lo) > 1e-12 || math.Abs(hi-tc.hi) > 1e-12 {
			t.Errorf("%d values at δ = %v: [%v, %v], want [%v, %v]", len(tc.xs), tc.δ, lo, hi, tc.lo, tc.hi)
		}
	}
}

// TestRiskAlarm simulates answered outcomes whose errors are Bernoulli with a known rate, the
// monitor watched after every outcome (anytime), 100 seeds of 5 000 outcomes at δ = 0.1:
//   - at the promised risk (errors at ε = 0.1 exactly), the alarm "risk_guarantee_violated"
//     fires at some point in at most δ of the runs;
//   - after a shift of +15 points (errors at 0.25 from outcome 1 000 on, the accuracy dropping
//     at the same confidence), it fires in every run, and the median delay is reported.
func TestRiskAlarm(t *testing.T) {
	const (
		seeds, n, shiftAt = 100, 5000, 1000
		ε, δ              = 0.1, 0.1
	)
	// run returns the outcome after which the alarm first fires (−1: never). The bounds only
	// narrow, so a check after every outcome is the check of the running bounds.
	run := func(seed uint64, after float64) int {
		rng := rand.New(rand.NewPCG(seed, 7))
		cs := NewCS(δ)
		for i := range n {
			rate := ε
			if i >= shiftAt {
				rate = after
			}
			cs.Add(b2f(rng.Float64() < rate))
			if cs.Lo > ε {
				return i + 1
			}
		}
		return -1
	}
	falseAlarms := 0
	var delays []int
	for seed := range uint64(seeds) {
		if run(seed, ε) >= 0 {
			falseAlarms++
		}
		if at := run(seed+1000, ε+0.15); at < 0 {
			t.Errorf("seed %d: a shift to 0.25 errors never raised the alarm in %d outcomes", seed, n)
		} else {
			delays = append(delays, at-shiftAt)
		}
	}
	sort.Ints(delays)
	t.Logf("false alarms %d of %d at ε; after the shift, median delay %d outcomes", falseAlarms, seeds, delays[len(delays)/2])
	if float64(falseAlarms)/seeds > δ {
		t.Errorf("%d of %d runs at the promised risk raised the alarm, want ≤ δ = %v", falseAlarms, seeds, δ)
	}
}

// TestReceipts: a signed receipt opens to its body; a receipt altered by one character, signed
// with another key, older than MaxAge or not a receipt at all is refused with its reason.
func TestReceipts(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	body := &plumbv1.ReceiptBody{Id: []byte("0123456789ab"), Profile: "mmlu", Version: 3, IssuedUnix: now.Unix(),
		Answer: "B", Confidence: 0.8, PredictionSet: []string{"B", "C"}, Action: plumbv1.Action_ACTION_ANSWER}
	r, err := s.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Open(r)
	if err != nil || !proto.Equal(got, body) {
		t.Fatalf("Open(Sign(b)) = %v, %v; want b", got, err)
	}
	other, _ := NewSigner([]byte(strings.Repeat("o", 32)))
	other.now = s.now
	altered := []byte(r)
	altered[len(receiptPrefix)+5] ^= 1
	old := proto.CloneOf(body)
	old.IssuedUnix = now.Add(-MaxAge - time.Second).Unix()
	oldR, _ := s.Sign(old)
	for _, tc := range []struct {
		name    string
		receipt string
		open    *Signer
		want    error
	}{
		{"altered", string(altered), s, ErrForged},
		{"another key", r, other, ErrForged},
		{"expired", oldR, s, ErrExpired},
		{"not a receipt", "hello", s, ErrBadForm},
		{"truncated", r[:len(r)-3], s, ErrForged},
	} {
		if _, err := tc.open.Open(tc.receipt); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := NewSigner(key[:31]); err == nil {
		t.Error("a 31-byte key was taken")
	}
}

// TestJudge: correctness and coverage by option label, by normalised text for samples, the
// served-sycophancy flag, and the segment cap.
func TestJudge(t *testing.T) {
	opts := &plumbv1.Outcome{Receipt: &plumbv1.ReceiptBody{Evidence: plumbv1.Evidence_EVIDENCE_OPTIONS, Answer: "B",
		PredictionSet: []string{"B", "C"}, Stance: "C", Action: plumbv1.Action_ACTION_ANSWER},
		Label: &plumbv1.Label{Answers: []string{"C"}}, ServedAnswer: "C"}
	p := Judge(opts)
	if p.Correct || !p.Covered || p.SetSize != 2 || !p.ServedStance {
		t.Errorf("options: %+v; want wrong, covered, size 2, the stance served", p)
	}
	samples := &plumbv1.Outcome{Receipt: &plumbv1.ReceiptBody{Evidence: plumbv1.Evidence_EVIDENCE_SAMPLES, Answer: "Canberra.",
		PredictionSet: []string{"Canberra."}}, Label: &plumbv1.Label{Answers: []string{"canberra"}}}
	if p := Judge(samples); !p.Correct || !p.Covered || p.ServedStance {
		t.Errorf("samples: %+v; want right and covered once normalised", p)
	}
	var points []Point
	for i := range MaxSegments + 5 {
		points = append(points, Point{Profile: "p", Version: 1, Segment: "s" + strings.Repeat("x", i)})
	}
	ms := Monitors(points, 0)
	if len(ms) != MaxSegments+1 || !slices.ContainsFunc(ms, func(m *plumbv1.Monitor) bool { return m.GetSegment() == OtherSegment && m.GetOutcomes() == 5 }) {
		t.Errorf("%d monitors for %d segments, want %d with 5 outcomes under %q", len(ms), MaxSegments+5, MaxSegments+1, OtherSegment)
	}
}

// BenchmarkSign: signing one receipt of an MMLU-sized answer (a 4-answer set).
func BenchmarkSign(b *testing.B) {
	s, _ := NewSigner([]byte(strings.Repeat("k", 32)))
	body := &plumbv1.ReceiptBody{Id: []byte("0123456789ab"), Profile: "mmlu", Version: 3, IssuedUnix: 1_800_000_000,
		Group: "marketing", Segment: "web", Answer: "B", Confidence: 0.8, PredictionSet: []string{"B", "C", "A", "D"},
		Action: plumbv1.Action_ACTION_ANSWER, Risk: 0.1, Alpha: 0.1, Delta: 0.1, Pooled: 0.7, Wording: 0.05, Variance: 0.01}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMiscalibrated simulates outcomes with a known truth, 100 seeds at δ = 0.1, the
// calibration gap's sequence watched after every outcome:
//   - calibrated (each answer right with probability its confidence, confidences uniform in
//     [0.3, 1]), 20 000 outcomes: "miscalibrated" fires in at most δ of the runs;
//   - from outcome 1 000 on, the model becomes overconfident as if its logits doubled — the
//     confidence reported stays, the probability that an answer of confidence c is right becomes
//     σ(logit(c)/2) — or its accuracy drops 15 points at the same confidence: it fires in
//     every run; the median number of outcomes after the shift is reported.
//
// The alarm is monitorOf's: the last run of each shift is checked through it too.
func TestMiscalibrated(t *testing.T) {
	const (
		seeds, n, shiftAt = 100, 20_000, 1000
		δ                 = 0.1
	)
	sigmoid := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	logit := func(p float64) float64 { return math.Log(p / (1 - p)) }
	for _, shift := range []struct {
		name  string
		truth func(c float64) float64
	}{
		{"none", func(c float64) float64 { return c }},
		{"logits doubled", func(c float64) float64 { return sigmoid(logit(min(c, 1-1e-9)) / 2) }},
		{"accuracy −15 points", func(c float64) float64 { return max(c-0.15, 0) }},
	} {
		fired := 0
		var delays []int
		for seed := range uint64(seeds) {
			rng := rand.New(rand.NewPCG(seed, 11))
			g := &group{alpha: 0.1, delta: δ, risk: 1}
			gap := NewCS(δ)
			for i := range n {
				c := 0.3 + 0.7*rng.Float64()
				p := c
				if i >= shiftAt {
					p = shift.truth(c)
				}
				x := slim{conf: c, correct: rng.Float64() < p, action: int8(calibrate.Abstain)}
				g.ring = append(g.ring, x)
				gap.Add((x.conf - b2f(x.correct) + 1) / 2) // as monitorOf adds it
				if gap.Lo > 0.5 || gap.Hi < 0.5 {
					fired++
					delays = append(delays, i+1-shiftAt)
					break
				}
			}
			if seed == seeds-1 {
				alarm := slices.Contains(monitorOf(key{profile: "p"}, g).GetAlarms(), "miscalibrated")
				if alarm != (gap.Lo > 0.5 || gap.Hi < 0.5) {
					t.Errorf("%s: monitorOf says %v where the sequence says otherwise", shift.name, alarm)
				}
			}
		}
		sort.Ints(delays)
		median := -1
		if len(delays) > 0 {
			median = delays[len(delays)/2]
		}
		t.Logf("%s: fired in %d of %d runs, median %d outcomes after the shift", shift.name, fired, seeds, median)
		if shift.name == "none" && float64(fired)/seeds > δ {
			t.Errorf("calibrated outcomes raised miscalibrated in %d of %d runs, want ≤ δ = %v", fired, seeds, δ)
		}
		if shift.name != "none" && fired != seeds {
			t.Errorf("%s: miscalibrated fired in %d of %d runs, want all", shift.name, fired, seeds)
		}
	}
}

// TestSycophancyRising simulates outcomes flagged for sycophancy at a known rate, 100 seeds of
// 10 000 at δ = 0.1, the monitor read every 250 outcomes (a subset of reading it after every one,
// which the confidence sequences allow):
//   - at a steady rate of 0.05, "sycophancy_rising" fires in at most δ of the runs;
//   - when the rate doubles to 0.10 at outcome 2 000 (a personalisation feature ships), it fires
//     in every run, and the median delay is reported.
func TestSycophancyRising(t *testing.T) {
	const (
		seeds, n, shiftAt, every = 100, 10_000, 2000, 250
		δ                        = 0.1
	)
	run := func(seed uint64, after float64) (int, float64) {
		rng := rand.New(rand.NewPCG(seed, 13))
		b := NewBuilder(n)
		for i := range n {
			rate := 0.05
			if i >= shiftAt {
				rate = after
			}
			b.Add(&Point{Profile: "p", Version: 1, Flagged: rng.Float64() < rate, Δ: δ})
			if (i+1)%every == 0 {
				m := b.Monitors()[0]
				if slices.Contains(m.GetAlarms(), "sycophancy_rising") {
					return i + 1, m.GetSycophancyBaseline()
				}
			}
		}
		return -1, math.NaN()
	}
	falseAlarms := 0
	var delays []int
	for seed := range uint64(seeds) {
		if at, _ := run(seed, 0.05); at >= 0 {
			falseAlarms++
		}
		at, base := run(seed+1000, 0.10)
		if at < 0 {
			t.Errorf("seed %d: the flag rate doubling never raised sycophancy_rising in %d outcomes", seed, n)
			continue
		}
		if math.Abs(base-0.05) > 0.03 {
			t.Errorf("seed %d: baseline %.3f of the first %d outcomes at rate 0.05", seed, base, Baseline)
		}
		delays = append(delays, at-shiftAt)
	}
	sort.Ints(delays)
	if len(delays) > 0 {
		t.Logf("false alarms %d of %d at a steady 0.05; after doubling, fired in %d of %d, median delay %d outcomes",
			falseAlarms, seeds, len(delays), seeds, delays[len(delays)/2])
	}
	if float64(falseAlarms)/seeds > δ {
		t.Errorf("%d of %d steady runs raised sycophancy_rising, want ≤ δ = %v", falseAlarms, seeds, δ)
	}
}

// TestLongAnswers: a long answer's outcome is its judged claims; its monitor computes ECE and
// Brier over the claims (by hand below), coverage as the share of answers with no false kept
// claim, and keeps the claims of the window's answers only.
func TestLongAnswers(t *testing.T) {
	T, F, U := plumbv1.ClaimVerdict_CLAIM_VERDICT_TRUE, plumbv1.ClaimVerdict_CLAIM_VERDICT_FALSE, plumbv1.ClaimVerdict_CLAIM_VERDICT_UNSPECIFIED
	long := func(conf []float64, kept []bool, v ...plumbv1.ClaimVerdict) *plumbv1.Outcome {
		return &plumbv1.Outcome{Receipt: &plumbv1.ReceiptBody{Profile: "p", Version: 1, ClaimConfidences: conf, ClaimsKept: kept,
			Action: plumbv1.Action_ACTION_ANSWER, Alpha: 0.2, Delta: 0.1}, Label: &plumbv1.Label{Claims: v}}
	}
	// Answer 1: a kept false claim (wrong); the unjudged third claim is left out.
	a := Judge(long([]float64{0.9, 0.8, 0.3}, []bool{true, true, false}, T, F, U))
	// Answer 2: the false claim was dropped (right).
	b := Judge(long([]float64{0.95, 0.2}, []bool{true, false}, T, F))
	if !a.Long || a.Correct || a.Covered || a.SetSize != 2 || len(a.Claims) != 2 {
		t.Errorf("answer 1: %+v; want long, wrong, 2 kept, 2 judged claims", a)
	}
	if !b.Correct || !b.Covered || len(b.Claims) != 2 {
		t.Errorf("answer 2: %+v; want right, 2 judged claims", b)
	}
	ms := Monitors([]Point{a, b}, 0)
	if len(ms) != 1 || !ms[0].GetLongAnswers() {
		t.Fatalf("%v; want one monitor of long answers", ms)
	}
	m := ms[0]
	// Claims (c, y): (0.9, 1) bin 13, (0.8, 0) bin 11, (0.95, 1) bin 14, (0.2, 0) bin 2.
	// ECE = (|0.9−1| + |0.8−0| + |0.95−1| + |0.2−0|)/4 = 1.15/4; Brier = (0.01+0.64+0.0025+0.04)/4.
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"ece", m.GetEce(), 1.15 / 4}, {"brier", m.GetBrier(), 0.6925 / 4}, {"coverage", m.GetCoverage(), 0.5},
		{"selective risk", m.GetSelectiveRisk(), 0.5}, {"claims", float64(m.GetClaims()), 4},
		{"calibration gap", m.GetCalibrationGap(), (-0.1 + 0.8 - 0.05 + 0.2) / 4},
	} {
		if math.Abs(c.got-c.want) > 1e-12 {
			t.Errorf("%s %v, want %v", c.name, c.got, c.want)
		}
	}
	// A window of 1 answer keeps only the last one's claims.
	if m := Monitors([]Point{a, b}, 1)[0]; m.GetClaims() != 2 || math.Abs(m.GetEce()-(0.05+0.2)/2) > 1e-12 {
		t.Errorf("window 1: %d claims, ECE %v; want answer 2's: 2, %v", m.GetClaims(), m.GetEce(), (0.05+0.2)/2)
	}
}
