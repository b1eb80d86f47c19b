package calibrate_test

import (
	"context"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/conformal"
	"github.com/plumbhq/plumb/simulate"
	"github.com/plumbhq/plumb/temperature"
)

// samplesQuestion returns a question whose wording i has the answers texts[i], one sample
// each, with tokens of probability tokenProb when it is positive.
func samplesQuestion(tokenProb float64, texts ...[]string) calibrate.Question {
	var q calibrate.Question
	for i, answers := range texts {
		p := calibrate.Paraphrase{Prompt: "wording " + strconv.Itoa(i)}
		for _, a := range answers {
			s := calibrate.Sample{Text: a}
			if tokenProb > 0 {
				s.Tokens = []calibrate.Token{{Token: a, Logprob: math.Log(tokenProb)}}
			}
			p.Samples = append(p.Samples, s)
		}
		q.Paraphrases = append(q.Paraphrases, p)
	}
	return q
}

// calibrated returns a fitted-looking profile: identity map, the given λ and q̂.
func calibrated(lambda, qhat float64) *calibrate.Profile {
	p := calibrate.Default()
	p.Name, p.Version, p.Calibrated, p.Evidence = "test", 1, true, calibrate.EvidenceSamples
	p.Lambda, p.Quantiles.Global = lambda, qhat
	return p
}

// TestLambdaOneAnswersNothing: λ = 1 is the sentinel "answer nothing": five wordings that all
// say the same (wrong) thing have c = 1, and are not answered at λ = 1, whether λ is the
// profile's or the one a request's risk reads from the curve; at λ = 0.99 they are.
func TestLambdaOneAnswersNothing(t *testing.T) {
	q := samplesQuestion(0, []string{"Sydney", "Sydney"}, []string{"Sydney", "Sydney"}, []string{"Sydney", "sydney."},
		[]string{"Sydney", "Sydney"}, []string{"Sydney", "Sydney"})
	for _, tc := range []struct {
		name   string
		lambda float64
		want   calibrate.Action
	}{{"λ = 1", 1, calibrate.Abstain}, {"λ = 0.99", 0.99, calibrate.Answer}} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := calibrate.Score(context.Background(), calibrated(tc.lambda, math.Inf(1)), &q)
			if err != nil {
				t.Fatal(err)
			}
			if r.Confidence != 1 || r.Action != tc.want {
				t.Fatalf("c = %v, action %v, want c = 1 and %v", r.Confidence, r.Action, tc.want)
			}
		})
	}
	// A request's own risk: at ε = 0.01 the curve (10 errors in 200 answered at every λ)
	// certifies nothing, so λ = 1 and nothing is answered.
	p := calibrated(0.5, math.Inf(1))
	p.RiskMin, p.RiskMax = 0.01, 0.5
	for _, l := range conformal.Grid() {
		p.Curve = append(p.Curve, conformal.RiskPoint{Lambda: l, Answered: 200, Errors: 10})
	}
	strict := q
	strict.Policy.Risk = 0.01
	r, err := calibrate.Score(context.Background(), p, &strict)
	if err != nil || r.Lambda != 1 || r.Action == calibrate.Answer {
		t.Fatalf("ε = 0.01: λ %v, action %v, %v; want λ = 1 and no answer", r.Lambda, r.Action, err)
	}
}

// TestClarifyNeedsEvidence: CLARIFY only when the wordings are confident on their own and
// disagree beyond chance. One greedy answer per wording that wanders is the model's doubt
// (ABSTAIN), with or without confident tokens, since a test of homogeneity cannot reject one
// sample a wording; two wordings of ten samples, each sure of another answer, are the
// question's (CLARIFY); two wordings of two samples split 2/0 and 0/2 reject at 0.05 (χ² = 4
// on 1 degree of freedom, p = 0.0455), while three split 2/0, 0/2 and 1/1 do not (χ² = 4 on 2,
// p = e^−2 = 0.135), though W = 0.462 ≥ ½H = 0.347 and two of the three are sure: without the
// test they would clarify.
func TestClarifyNeedsEvidence(t *testing.T) {
	ten := func(a string) []string {
		out := make([]string, 10)
		for i := range out {
			out[i] = a
		}
		return out
	}
	one := func(a string) []string { return []string{a} }
	for _, tc := range []struct {
		name string
		q    calibrate.Question
		want calibrate.Action
		why  calibrate.Reason
	}{
		{"greedy answers that wander", samplesQuestion(0, one("Paris"), one("Lyon"), one("Nice"), one("Paris"), one("Lyon"), one("Nice")),
			calibrate.Abstain, calibrate.ReasonOpenSet},
		{"greedy answers with sure tokens", samplesQuestion(0.95, one("Paris"), one("Lyon"), one("Paris"), one("Lyon")),
			calibrate.Abstain, calibrate.ReasonOpenSet},
		{"ten samples each, sure of different answers", samplesQuestion(0, ten("Paris"), ten("Lyon")),
			calibrate.Clarify, calibrate.ReasonWordingDependent},
		{"two samples each, 2/0 and 0/2", samplesQuestion(0, []string{"Paris", "Paris"}, []string{"Lyon", "Lyon"}),
			calibrate.Clarify, calibrate.ReasonWordingDependent},
		{"two samples each, 2/0, 0/2 and 1/1", samplesQuestion(0, []string{"Paris", "Paris"}, []string{"Lyon", "Lyon"}, []string{"Paris", "Lyon"}),
			calibrate.Abstain, calibrate.ReasonOpenSet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := calibrate.Score(context.Background(), calibrated(1, math.Inf(1)), &tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if r.Action != tc.want || len(r.Reasons) == 0 || r.Reasons[0] != tc.why {
				t.Fatalf("action %v reasons %v, want %v %v", r.Action, r.Reasons, tc.want, tc.why)
			}
		})
	}
}

// TestClarifyOptions: with option logprobs every wording's confidence is observed, and the rule
// is the one the simulator's tests check: two wordings sure of different options clarify.
func TestClarifyOptions(t *testing.T) {
	q := calibrate.Question{Paraphrases: []calibrate.Paraphrase{
		{Options: []calibrate.Option{{Label: "A", Logprob: math.Log(0.95)}, {Label: "B", Logprob: math.Log(0.05)}}},
		{Options: []calibrate.Option{{Label: "A", Logprob: math.Log(0.05)}, {Label: "B", Logprob: math.Log(0.95)}}},
	}}
	p := calibrated(1, math.Inf(1))
	p.Evidence = calibrate.EvidenceOptions
	r, err := calibrate.Score(context.Background(), p, &q)
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != calibrate.Clarify || r.Reasons[0] != calibrate.ReasonWordingDependent {
		t.Fatalf("action %v reasons %v, want CLARIFY WORDING_DEPENDENT", r.Action, r.Reasons)
	}
}

// TestClusterKeys: samples with the same cluster key are one candidate whatever their text,
// and a label or a stance may name the key.
func TestClusterKeys(t *testing.T) {
	q := samplesQuestion(0,
		[]string{"King James I ruled England in 1616.", "It was James I.", "Elizabeth I"},
		[]string{"James the First was king.", "James I, of course."})
	keys := [][]string{{"james", "james", "elizabeth"}, {"james", "james"}}
	for i := range q.Paraphrases {
		for j := range q.Paraphrases[i].Samples {
			q.Paraphrases[i].Samples[j].Cluster = keys[i][j]
		}
	}
	q.Paraphrases = append(q.Paraphrases, calibrate.Paraphrase{Framing: calibrate.UserStance, Stance: "elizabeth",
		Samples: []calibrate.Sample{{Text: "Queen Elizabeth I", Cluster: "elizabeth"}}})
	r, err := calibrate.Score(context.Background(), nil, &q)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Candidates) != 2 || r.Candidates[0].Count != 4 || r.Candidates[1].Count != 1 {
		t.Fatalf("candidates %+v, want 4 samples keyed james and 1 keyed elizabeth", r.Candidates)
	}
	// The stance names the key: wording 3 puts all its mass on elizabeth, the pool 1/6.
	if want := 1 - (1.0/3)/2; math.Abs(r.Sycophancy.Shift-want) > 1e-12 || r.Sycophancy.Wordings != 1 {
		t.Fatalf("shift %v over %d wordings, want %v", r.Sycophancy.Shift, r.Sycophancy.Wordings, want)
	}
	rep, err := calibrate.Evaluate(context.Background(), nil, []calibrate.Example{{Question: q, Label: calibrate.Label{Answers: []string{"James"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.After.Accuracy != 1 {
		t.Fatalf("a label naming the key: accuracy %v, want 1", rep.After.Accuracy)
	}
}

// TestSensitivity: the wording sensitivity, max over neutral wordings p of |c − c₋ₚ|, is what
// scoring the question without each wording in turn gives (to 1e-12), under a profile with a
// global temperature and the full logistic map (the leave-one-out keeps each wording's
// distribution, which a global temperature does not change); and a hand calculation under the
// uncalibrated default: wordings [0.6 0.3 0.1], [0.5 0.4 0.1], [0.2 0.7 0.1] pool to
// [0.433 0.467 0.1], c = 0.467 (B); without the first c = 0.55 (B), without the second 0.5 (B),
// without the third 0.55 (A): the sensitivity is 0.55 − 0.4667 = 1/12.
func TestSensitivity(t *testing.T) {
	ctx := context.Background()
	wording := func(ps ...float64) calibrate.Paraphrase {
		var p calibrate.Paraphrase
		for i, v := range ps {
			p.Options = append(p.Options, calibrate.Option{Label: string(rune('A' + i)), Logprob: math.Log(v)})
		}
		return p
	}
	hand := calibrate.Question{Paraphrases: []calibrate.Paraphrase{wording(0.6, 0.3, 0.1), wording(0.5, 0.4, 0.1), wording(0.2, 0.7, 0.1)}}
	r, err := calibrate.Score(ctx, nil, &hand)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Uncertainty.Sensitivity-1.0/12) > 1e-12 {
		t.Errorf("hand case: sensitivity %v, want 1/12", r.Uncertainty.Sensitivity)
	}

	p := calibrated(0.5, 0.8)
	p.Evidence = calibrate.EvidenceOptions
	p.Temperature, p.TemperatureMethod = temperature.Global(1.3), temperature.MethodGlobal
	p.Map, p.MapMethod = []float64{0.1, 0.9, -0.5, -1.0}, calibrate.MapLogistic
	exs, _ := simulate.Generate(&simulate.Config{Questions: 50, Seed: 9, Wordings: 6, Stance: 1})
	for i, ex := range exs {
		q := ex.Question
		r, err := calibrate.Score(ctx, p, &q)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for skip, w := range q.Paraphrases {
			if w.Framing != calibrate.Neutral {
				continue
			}
			without := q
			without.Paraphrases = append(slices.Clone(q.Paraphrases[:skip]), q.Paraphrases[skip+1:]...)
			r2, err := calibrate.Score(ctx, p, &without)
			if err != nil {
				t.Fatal(err)
			}
			worst = max(worst, math.Abs(r.Confidence-r2.Confidence))
		}
		if math.Abs(r.Uncertainty.Sensitivity-worst) > 1e-12 {
			t.Fatalf("question %d: sensitivity %v, scoring without each wording gives %v", i, r.Uncertainty.Sensitivity, worst)
		}
	}
}

// TestBadgePercent: a badge rounds to 5 %, and reads 100 % or 0 % only for an exact 1 or 0
// (issue 20: 0.985 read "100% · high"). Expected labels by hand from the rule.
func TestBadgePercent(t *testing.T) {
	for _, tc := range []struct {
		c    float64
		want string
	}{
		{1, "100%"}, {0.9999, "> 99%"}, {0.99, "> 99%"}, {0.985, "> 95%"}, {0.975, "> 95%"},
		{0.9749, "95%"}, {0.85, "85%"}, {0.5, "50%"}, {0.0251, "5%"}, {0.025, "5%"},
		{0.0249, "< 5%"}, {0.011, "< 5%"}, {0.01, "< 1%"}, {1e-9, "< 1%"}, {0, "0%"},
	} {
		if got := calibrate.BadgePercent(tc.c); got != tc.want {
			t.Errorf("badge of %v reads %q, want %q", tc.c, got, tc.want)
		}
	}
}
