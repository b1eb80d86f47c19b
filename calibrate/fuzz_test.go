package calibrate

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/plumbhq/plumb/conformal"
)

// reader turns fuzz bytes into structure: small counts, labels and raw float64s (so NaN, ±Inf
// and positive logprobs all occur).
type reader struct{ b []byte }

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) float() float64 {
	if len(r.b) < 8 {
		return -float64(r.byte()) / 16
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *reader) small() float64 { return -float64(r.byte()) / 32 }

func (r *reader) label() string { return string(rune('A' + r.byte()%6)) }

func (r *reader) text() string {
	return [...]string{"Paris", "paris.", "The Paris", "1,000", "1000", "lyon", "", "ＰＡＲＩＳ"}[r.byte()%8]
}

// questionFrom builds a question, well-formed or not, from fuzz bytes.
func questionFrom(data []byte) Question {
	r := &reader{b: data}
	q := Question{ID: "fuzz", Group: r.label(), Policy: Policy{Equivalence: Equivalence(r.byte() % 5)}}
	if r.byte()%8 == 0 {
		q.Policy.Risk = r.float()
	}
	n := int(r.byte() % 8)
	for i := 0; i < n; i++ {
		p := Paraphrase{Framing: Framing(r.byte() % 3)}
		if p.Framing != Neutral {
			p.Stance = r.label()
		}
		flags := r.byte()
		raw := flags&4 != 0
		val := func() float64 {
			if raw {
				return r.float()
			}
			return r.small()
		}
		if flags&1 != 0 {
			for k := int(r.byte() % 6); k > 0; k-- {
				p.Options = append(p.Options, Option{Label: r.label(), Logprob: val()})
			}
		}
		if flags&2 != 0 {
			for k := int(r.byte() % 5); k > 0; k-- {
				s := Sample{Text: r.text()}
				for t := int(r.byte() % 4); t > 0; t-- {
					tok := Token{Token: r.label(), Logprob: val()}
					for a := int(r.byte() % 3); a > 0; a-- {
						tok.TopLogprobs = append(tok.TopLogprobs, TopLogprob{Token: r.label(), Logprob: val()})
					}
					s.Tokens = append(s.Tokens, tok)
				}
				for e := int(r.byte() % 3); e > 0; e-- {
					s.Embedding = append(s.Embedding, float32(val()))
				}
				p.Samples = append(p.Samples, s)
			}
		}
		q.Paraphrases = append(q.Paraphrases, p)
	}
	return q
}

// fuzzProfile is a fitted-looking profile with every knob set, so Score's calibrated paths run:
// adaptive temperature for options, a global token temperature for samples (as Fit makes them).
func fuzzProfile(e Evidence) *Profile {
	p := Default()
	p.Name, p.Version, p.Calibrated, p.Evidence = "fuzz", 1, true, e
	p.Map = []float64{0.1, 0.9, -0.5, -0.3, 0.4}
	p.Temperature.Theta = []float64{0.2, -0.1, 0.3, 0.05}
	if e == EvidenceSamples {
		p.Temperature.Theta = []float64{0.4}
	}
	p.Quantiles.Global = 0.6
	p.Quantiles.Groups = map[string]float64{"A": math.Inf(1), "B": 0.2}
	p.RiskMin, p.RiskMax = 0.01, 0.5
	p.Curve = []conformal.RiskPoint{{Lambda: 0.9, Answered: 50, Errors: 1}, {Lambda: 0.5, Answered: 90, Errors: 9}}
	return p
}

// FuzzScore: Validate and Score never panic; Score refuses everything Validate refuses, with
// the same error (validation comes first), and what Validate accepts Score refuses only for the
// profile's sake (a risk outside its bounds, evidence of the other kind); every accepted result
// is well-formed. Run: go test ./calibrate -run '^$' -fuzz FuzzScore -fuzztime 2m
func FuzzScore(f *testing.F) {
	f.Add([]byte{0, 1, 1, 3, 0, 1, 4, 0, 10, 1, 20, 2, 30, 3, 40, 0, 1, 4, 0, 12, 1, 22, 2, 32, 3, 42})
	f.Add([]byte{1, 2, 1, 2, 0, 2, 3, 1, 2, 0, 5, 1, 0, 0, 2, 3, 2, 1, 1, 0})
	f.Add([]byte{2, 3, 0, 2, 1, 1, 5, 3, 0, 1, 1, 2, 2, 3, 3, 4, 4, 0, 1, 3, 0, 1, 1, 2, 2, 3})
	f.Add(append([]byte{0, 0, 1, 1, 0, 5, 2, 0}, make([]byte, 40)...))
	nan := binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.NaN()))
	f.Add(append([]byte{0, 0, 1, 1, 0, 5, 2, 0}, nan...))
	profiles := []*Profile{nil, fuzzProfile(EvidenceOptions), fuzzProfile(EvidenceSamples)}
	f.Fuzz(func(t *testing.T, data []byte) {
		q := questionFrom(data)
		verr := q.Validate()
		for _, p := range profiles {
			r, err := Score(context.Background(), p, &q)
			if verr != nil {
				if err == nil || err.Error() != verr.Error() {
					t.Fatalf("Validate refused (%v), Score said %v", verr, err)
				}
				continue
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Field != "policy.risk" && !strings.Contains(e.Msg, "was fitted on") {
					t.Fatalf("Score refused what Validate accepts: %v", err)
				}
				continue
			}
			if math.IsNaN(r.Confidence) || r.Confidence < 0 || r.Confidence > 1 {
				t.Fatalf("confidence %v", r.Confidence)
			}
			if len(r.Set.Answers) == 0 || r.Set.Answers[0] != r.Answer || r.Action == ActionUnspecified || r.Badge.Label == "" {
				t.Fatalf("malformed result %+v", r)
			}
			for _, c := range r.Candidates {
				if math.IsNaN(c.Probability) {
					t.Fatalf("NaN probability in %+v", r)
				}
			}
		}
	})
}

// profileFrom changes a fitted-looking profile's numbers to ones read from fuzz bytes: raw
// float64s, so NaN, ±Inf, 1e308 and negative values all occur.
func profileFrom(data []byte) *Profile {
	r := &reader{b: data}
	p := fuzzProfile(Evidence(1 + r.byte()%2))
	flags := r.byte()
	if flags&1 != 0 {
		p.Map = p.Map[:r.byte()%6]
		for i := range p.Map {
			p.Map[i] = r.float()
		}
	}
	if flags&2 != 0 {
		for i := range p.Temperature.Theta {
			p.Temperature.Theta[i] = r.float()
		}
	}
	if flags&4 != 0 {
		p.Lambda = r.float()
	}
	if flags&8 != 0 {
		p.RAPS.Lambda, p.RAPS.KReg = r.float(), int(r.byte())-8
		p.Score = conformal.RAPS
	}
	if flags&16 != 0 {
		p.Quantiles.Global = r.float()
	}
	if flags&32 != 0 {
		for i := range p.Curve {
			p.Curve[i].Lambda = r.float()
			p.Curve[i].Answered, p.Curve[i].Errors = int(r.byte()), int(r.byte())
		}
	}
	if flags&64 != 0 {
		p.ClaimMap = []float64{r.float(), r.float(), r.float(), r.float()}
		p.ClaimThreshold = r.float()
	}
	return p
}

// FuzzProfile: whatever a profile file holds, a profile that Check accepts never makes Score
// emit a non-finite number on any question: the confidence lies in [0, 1], every candidate probability, the
// prediction set's threshold and the sycophancy shift are finite, under the profile's risk and
// under a request's. Run: go test ./calibrate -run '^$' -fuzz FuzzProfile -fuzztime 2m
func FuzzProfile(f *testing.F) {
	big := binary.LittleEndian.AppendUint64(nil, math.Float64bits(1e308))
	zero := make([]byte, 8)
	// The confidence map [0, 1e308, 1e308, 0].
	questions := [][]byte{
		{0, 1, 1, 3, 0, 1, 4, 0, 10, 1, 20, 2, 30, 3, 40, 0, 1, 4, 0, 12, 1, 22, 2, 32, 3, 42},
		{1, 2, 1, 2, 0, 2, 3, 1, 2, 0, 5, 1, 0, 0, 2, 3, 2, 1, 1, 0},
		{2, 3, 0, 2, 1, 1, 5, 3, 0, 1, 1, 2, 2, 3, 3, 4, 4, 0, 1, 3, 0, 1, 1, 2, 2, 3},
	}
	for _, q := range questions {
		f.Add(slices.Concat([]byte{0, 1, 4}, zero, big, big, zero), q)
		f.Add(slices.Concat([]byte{1, 1, 2}, big, big), q)
		f.Add([]byte{0, 32, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, q)
		f.Add(slices.Concat([]byte{0, 8}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.NaN())), []byte{3}), q)
	}
	f.Fuzz(func(t *testing.T, profile, question []byte) {
		p := profileFrom(profile)
		if p.Check() != nil {
			return
		}
		for _, q := range append(validQuestions(), questionFrom(question)) {
			for _, risk := range []float64{0, p.RiskMin, p.RiskMax} {
				q.Policy.Risk = risk
				r, err := Score(context.Background(), p, &q)
				if err != nil {
					continue // evidence of the other kind, or a question Validate refuses
				}
				if !(r.Confidence >= 0 && r.Confidence <= 1) || math.IsNaN(r.Set.Threshold) || math.IsNaN(r.Sycophancy.Shift) || math.IsInf(r.Sycophancy.Shift, 0) {
					t.Fatalf("a profile Check accepts (%+v) scored %+v", p, r)
				}
				for _, c := range r.Candidates {
					if !(c.Probability >= 0 && c.Probability <= 1) {
						t.Fatalf("candidate probability %v under %+v", c.Probability, p)
					}
				}
				if strings.Contains(r.Badge.Label, "-") || strings.Contains(r.Badge.Label, "NaN") {
					t.Fatalf("badge %q", r.Badge.Label)
				}
			}
		}
	})
}

// validQuestions are questions Validate accepts: options whose wordings disagree (so the
// wording features are large), one with a user-stance wording, and sampled answers.
func validQuestions() []Question {
	opts := func(a, b, c float64) []Option {
		return []Option{{Label: "A", Logprob: a}, {Label: "B", Logprob: b}, {Label: "C", Logprob: c}}
	}
	return []Question{
		{ID: "disagree", Paraphrases: []Paraphrase{{Options: opts(-0.01, -6, -9)}, {Options: opts(-9, -0.01, -6)}, {Options: opts(-6, -9, -0.01)}}},
		{ID: "sure", Paraphrases: []Paraphrase{{Options: opts(-0.001, -9, -12)}, {Options: opts(-0.002, -8, -12)},
			{Framing: UserStance, Stance: "B", Options: opts(-3, -0.05, -12)}}},
		{ID: "samples", Paraphrases: []Paraphrase{
			{Samples: []Sample{{Text: "Paris", Tokens: []Token{{Token: "Paris", Logprob: -0.1}}}, {Text: "Lyon", Tokens: []Token{{Token: "Lyon", Logprob: -2}}}}},
			{Samples: []Sample{{Text: "Paris", Tokens: []Token{{Token: "Paris", Logprob: -0.2}}}, {Text: "Paris", Tokens: []Token{{Token: "Paris", Logprob: -0.3}}}}},
		}},
	}
}

// TestCheckRefusesBrokenProfiles: the profiles of issue 21 that passed Check and broke Score.
func TestCheckRefusesBrokenProfiles(t *testing.T) {
	for name, tc := range map[string]struct {
		change func(p *Profile)
		field  string
	}{
		"map of 1e308": {func(p *Profile) { p.Map = []float64{0, 1e308, 1e308, 0} }, "confidence_map[1]"},
		"unsorted curve": {func(p *Profile) {
			p.Curve = []conformal.RiskPoint{{Lambda: 0.5, Answered: 90, Errors: 9}, {Lambda: 0.9, Answered: 50, Errors: 1}}
		}, "risk_curve[1]"},
		"NaN RAPS λ":        {func(p *Profile) { p.Score, p.RAPS.Lambda = conformal.RAPS, math.NaN() }, "raps"},
		"negative RAPS λ":   {func(p *Profile) { p.Score, p.RAPS.Lambda = conformal.RAPS, -0.1 }, "raps"},
		"claim map of +Inf": {func(p *Profile) { p.ClaimMap = []float64{0, math.Inf(1)} }, "claim_map[1]"},
		"claim threshold 2": {func(p *Profile) { p.ClaimThreshold = 2 }, "claim_threshold"},
	} {
		p := fuzzProfile(EvidenceOptions)
		if err := p.Check(); err != nil {
			t.Fatalf("the unchanged profile: %v", err)
		}
		tc.change(p)
		var e *Error
		if err := p.Check(); !errors.As(err, &e) || e.Field != tc.field {
			t.Errorf("%s: Check said %v, want an error naming %s", name, err, tc.field)
		}
	}
}
