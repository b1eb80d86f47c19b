package calibrate

import (
	"context"
	"math"
	"strings"
	"testing"
)

func opts(labels string, lps ...float64) []Option {
	var o []Option
	for i, l := range strings.Split(labels, ",") {
		o = append(o, Option{Label: l, Logprob: lps[i]})
	}
	return o
}

func okOptions() Paraphrase {
	return Paraphrase{Options: opts("A,B,C", -0.5, -1.5, -2)}
}

func okSamples() Paraphrase {
	return Paraphrase{Samples: []Sample{
		{Text: "Paris", Tokens: []Token{{Token: "Paris", Logprob: -0.1, TopLogprobs: []TopLogprob{{"Paris", -0.1}, {"Lyon", -2.5}}}}},
		{Text: "Lyon", Embedding: []float32{1, 0}},
	}}
}

// TestValidateBadInput covers every request row of docs/DESIGN.md's bad-input table: each bad
// request is rejected with its kind and the exact field path.
func TestValidateBadInput(t *testing.T) {
	many := make([]Paraphrase, MaxParaphrases+1)
	for i := range many {
		many[i] = okOptions()
	}
	hugeTokens := make([]Token, MaxTokens+1)
	for i := range hugeTokens {
		hugeTokens[i] = Token{Token: "x", Logprob: -0.1}
	}
	emb := func(vs ...[]float32) Paraphrase {
		p := Paraphrase{}
		for _, v := range vs {
			p.Samples = append(p.Samples, Sample{Text: "x", Embedding: v})
		}
		return p
	}
	tokenWith := func(tok Token) Paraphrase {
		p := okSamples()
		p.Samples[0].Tokens = []Token{{Token: "a", Logprob: -0.1}, tok}
		return p
	}
	for _, tc := range []struct {
		name  string
		q     Question
		kind  ErrorKind
		field string
	}{
		{"no paraphrases", Question{}, InvalidInput, "paraphrases"},
		{"too many paraphrases", Question{Paraphrases: many}, InvalidInput, "paraphrases"},
		{"both options and samples", Question{Paraphrases: []Paraphrase{okOptions(), {Options: opts("A,B", -1, -1), Samples: []Sample{{Text: "x"}}}}}, InvalidInput, "paraphrases[1]"},
		{"neither", Question{Paraphrases: []Paraphrase{okOptions(), {}}}, InvalidInput, "paraphrases[1]"},
		{"mixed kinds", Question{Paraphrases: []Paraphrase{okOptions(), okOptions(), okSamples()}}, InvalidInput, "paraphrases[2]"},
		{"different label sets", Question{Paraphrases: []Paraphrase{okOptions(), {Options: opts("A,B,D", -1, -1, -1)}}}, InvalidInput, "paraphrases[1].options[2].label"},
		{"different label counts", Question{Paraphrases: []Paraphrase{okOptions(), {Options: opts("A,B", -1, -1)}}}, InvalidInput, "paraphrases[1].options"},
		{"duplicate labels", Question{Paraphrases: []Paraphrase{{Options: opts("A,B,A", -1, -1, -1)}}}, InvalidInput, "paraphrases[0].options[2].label"},
		{"one option", Question{Paraphrases: []Paraphrase{{Options: opts("A", -1)}}}, InvalidInput, "paraphrases[0].options"},
		{"NaN option logprob", Question{Paraphrases: []Paraphrase{okOptions(), {Options: opts("A,B,C", -1, math.NaN(), -1)}}}, InvalidInput, "paraphrases[1].options[1].logprob"},
		{"+Inf option logprob", Question{Paraphrases: []Paraphrase{{Options: opts("A,B,C", math.Inf(1), -1, -1)}}}, InvalidInput, "paraphrases[0].options[0].logprob"},
		{"-Inf option logprob", Question{Paraphrases: []Paraphrase{{Options: opts("A,B,C", -1, -1, math.Inf(-1))}}}, InvalidInput, "paraphrases[0].options[2].logprob"},
		{"positive option logprob", Question{Paraphrases: []Paraphrase{{Options: opts("A,B,C", -1, 0.01, -1)}}}, InvalidInput, "paraphrases[0].options[1].logprob"},
		{"positive token logprob", Question{Paraphrases: []Paraphrase{okSamples(), okSamples(), tokenWith(Token{Token: "b", Logprob: 0.3})}}, InvalidInput, "paraphrases[2].samples[0].tokens[1].logprob"},
		{"NaN top logprob", Question{Paraphrases: []Paraphrase{tokenWith(Token{Token: "b", Logprob: -1, TopLogprobs: []TopLogprob{{"b", -1}, {"c", math.NaN()}}})}}, InvalidInput, "paraphrases[0].samples[0].tokens[1].top_logprobs[1].logprob"},
		{"top mass over 1", Question{Paraphrases: []Paraphrase{tokenWith(Token{Token: "b", Logprob: -0.1, TopLogprobs: []TopLogprob{{"b", -0.1}, {"c", -0.5}}})}}, InvalidInput, "paraphrases[0].samples[0].tokens[1].top_logprobs"},
		{"embedding lengths differ", Question{Paraphrases: []Paraphrase{emb([]float32{1, 0}, []float32{1, 0, 0})}, Policy: Policy{Equivalence: EquivalenceEmbedding}}, InvalidInput, "paraphrases[0].samples[1].embedding"},
		{"zero embedding", Question{Paraphrases: []Paraphrase{emb([]float32{1, 0}), emb([]float32{0, 0})}, Policy: Policy{Equivalence: EquivalenceEmbedding}}, InvalidInput, "paraphrases[1].samples[0].embedding"},
		{"missing embedding", Question{Paraphrases: []Paraphrase{emb([]float32{1, 0}, nil)}, Policy: Policy{Equivalence: EquivalenceEmbedding}}, InvalidInput, "paraphrases[0].samples[1].embedding"},
		{"stance without stance", Question{Paraphrases: []Paraphrase{okOptions(), {Framing: UserStance, Options: opts("A,B,C", -1, -1, -1)}}}, InvalidInput, "paraphrases[1].stance"},
		{"stance not a label", Question{Paraphrases: []Paraphrase{okOptions(), {Framing: UserStance, Stance: "Z", Options: opts("A,B,C", -1, -1, -1)}}}, InvalidInput, "paraphrases[1].stance"},
		{"too many tokens", Question{Paraphrases: []Paraphrase{{Samples: []Sample{{Text: "x", Tokens: hugeTokens}}}}}, Exhausted, "paraphrases"},
		{"empty sample text", Question{Paraphrases: []Paraphrase{{Samples: []Sample{{Text: ""}}}}}, InvalidInput, "paraphrases[0].samples[0].text"},
		{"risk out of range", Question{Paraphrases: []Paraphrase{okOptions()}, Policy: Policy{Risk: 1.5}}, InvalidInput, "policy.risk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.q.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			e, ok := err.(*Error)
			if !ok || e.Kind != tc.kind || e.Field != tc.field {
				t.Fatalf("error %q (kind %d, field %q), want kind %d field %q", err, KindOf(err), e.Field, tc.kind, tc.field)
			}
			if !strings.HasPrefix(err.Error(), tc.field+": ") {
				t.Errorf("message %q does not start with the field", err)
			}
			// Score refuses the same request with the same error.
			if _, serr := Score(context.Background(), nil, &tc.q); serr == nil || serr.Error() != err.Error() {
				t.Errorf("Score error %v, want %v", serr, err)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    Question
	}{
		{"options", Question{Paraphrases: []Paraphrase{okOptions(), {Options: opts("C,A,B", -2, -0.4, -1.5)}}}},
		{"logprob within rounding of 0", Question{Paraphrases: []Paraphrase{{Options: opts("A,B", 5e-7, -20)}}}},
		{"samples", Question{Paraphrases: []Paraphrase{okSamples()}}},
		{"stance", Question{Paraphrases: []Paraphrase{okOptions(), {Framing: UserStance, Stance: "B", Options: opts("A,B,C", -1, -1, -1)}}}},
		{"embeddings", Question{Paraphrases: []Paraphrase{emb2()}, Policy: Policy{Equivalence: EquivalenceEmbedding}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.q.Validate(); err != nil {
				t.Fatal(err)
			}
			if _, err := Score(context.Background(), nil, &tc.q); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func emb2() Paraphrase {
	return Paraphrase{Samples: []Sample{{Text: "a", Embedding: []float32{1, 0}}, {Text: "b", Embedding: []float32{0.9, 0.1}}}}
}
