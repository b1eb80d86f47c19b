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

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// TestHoeffdingCS: the bounds equal an independent Python transcription of the formula
// (python3, math only; the script is in the comment below) to 1e-12, and are [0, 1] without
// values.
//
//	def cs(xs, d):
//	    l2 = math.log(2/d); sl = slx = sl2 = 0; lo, hi = 0, 1
//	    for i, x in enumerate(xs):
//	        t = i+1; lam = min(math.sqrt(8*l2/(t*math.log(t+1))), 1)
//	        sl += lam; slx += lam*x; sl2 += lam*lam
//	        mid = slx/sl; w = (l2+sl2/8)/sl
//	        lo = max(lo, mid-w); hi = min(hi, mid+w)
//	    return lo, hi
//	xs = [1 if i%10 in (0,3,7) else 0 for i in range(2000)]
//	cs(xs, 0.1)  → (0.2588778265534142, 0.34498677103688846)
//	cs(xs, 0.05) → (0.2552547054638824, 0.34835060506828075)
//	cs([1,0,0,1,0,0,0,1,0,0], 0.1) → (0, 0.7245861882702627)
func TestHoeffdingCS(t *testing.T) {
	xs := make([]float64, 2000)
	for i := range xs {
		if m := i % 10; m == 0 || m == 3 || m == 7 {
			xs[i] = 1
		}
	}
	for _, tc := range []struct {
		xs     []float64
		δ      float64
		lo, hi float64
	}{
		{xs, 0.1, 0.2588778265534142, 0.34498677103688846},
		{xs, 0.05, 0.2552547054638824, 0.34835060506828075},
		{[]float64{1, 0, 0, 1, 0, 0, 0, 1, 0, 0}, 0.1, 0, 0.7245861882702627},
		{nil, 0.1, 0, 1},
	} {
		lo, hi := HoeffdingCS(tc.xs, tc.δ)
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
