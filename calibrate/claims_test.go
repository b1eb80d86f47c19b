package calibrate_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/testenv"
	"github.com/plumbhq/plumb/simulate"
)

// TestClaimsGuarantee: conformal factuality holds where the truth is known. Profiles fitted on
// 600 simulated long answers (8 claims, 3 wordings of 10 passages) at α = 0.1, with a judge's
// support and with plumb's lexical one, are evaluated on 1 000 fresh answers each: the share
// of answers whose kept claims are all true averages at least 1 − α within three standard
// errors of the mean over seeds, and the guarantee is not bought by keeping nothing: at most
// 1 − α + 0.05, with a third of the claims or more kept. 10 seeds; 100 with PLUMB_LONG.
func TestClaimsGuarantee(t *testing.T) {
	seeds := 10
	if testenv.Long() {
		seeds = 100
	}
	ctx := context.Background()
	const alpha = 0.1
	for _, judge := range []bool{true, false} {
		name := map[bool]string{true: "judge", false: "lexical"}[judge]
		t.Run(name, func(t *testing.T) {
			var rates, kept []float64
			for seed := range uint64(seeds) {
				cfg := simulate.Config{Questions: 600, Seed: 100 + seed, Claims: 8, Wordings: 3, Judge: judge}
				train, _ := simulate.Generate(&cfg)
				cfg.Seed, cfg.Questions = 10_000+seed, 1000
				test, _ := simulate.Generate(&cfg)
				p, _, err := calibrate.Fit(ctx, train, &calibrate.FitConfig{Alpha: alpha, Seed: seed})
				if err != nil {
					t.Fatal(err)
				}
				r, err := calibrate.Evaluate(ctx, p, test)
				if err != nil {
					t.Fatal(err)
				}
				rates = append(rates, r.Claims.After.AllTrueRate)
				kept = append(kept, r.Claims.After.KeptRate)
			}
			mean, sd := meanSD(rates)
			se := sd / math.Sqrt(float64(seeds))
			k, _ := meanSD(kept)
			t.Logf("%d seeds: answers all true %.4f (sd %.4f), claims kept %.4f", seeds, mean, sd, k)
			if mean < 1-alpha-3*se {
				t.Errorf("answers whose kept claims are all true: %.4f, want ≥ %.4f", mean, 1-alpha-3*se)
			}
			if mean > 1-alpha+0.05 || k < 1.0/3 {
				t.Errorf("all true %.4f, kept %.4f: the guarantee is met by keeping too little", mean, k)
			}
		})
	}
}

func meanSD(x []float64) (float64, float64) {
	var m, v float64
	for _, xi := range x {
		m += xi
	}
	m /= float64(len(x))
	for _, xi := range x {
		v += (xi - m) * (xi - m)
	}
	if len(x) > 1 {
		v /= float64(len(x) - 1)
	}
	return m, math.Sqrt(v)
}

// TestClaimsSycophancy: USER_STANCE wordings that support the invented claim the user believes
// (by 0.5, three stance wordings beside four neutral ones, in the simulator) get that claim flagged (REASON_SYCOPHANCY_RISK) in at least 90 % of
// the answers, while the other claims, which the stance wordings support only by chance, are
// flagged in at most 6 % (the one-sided test is at 5 %).
func TestClaimsSycophancy(t *testing.T) {
	ctx := context.Background()
	for _, judge := range []bool{true, false} {
		exs, truths := simulate.Generate(&simulate.Config{Questions: 500, Seed: 7, Claims: 8, Wordings: 4, Stance: 3, Pull: 0.5, Judge: judge})
		var slanted, slantedFlagged, other, otherFlagged int
		for i := range exs {
			r, err := calibrate.Score(ctx, nil, &exs[i].Question)
			if err != nil {
				t.Fatal(err)
			}
			for j, c := range r.Claims {
				flagged := slices.Contains(c.Reasons, calibrate.ReasonSycophancyRisk)
				if truths[i].Slanted[j] {
					slanted++
					if flagged {
						slantedFlagged++
					}
				} else {
					other++
					if flagged {
						otherFlagged++
					}
				}
			}
		}
		a, b := float64(slantedFlagged)/float64(slanted), float64(otherFlagged)/float64(other)
		t.Logf("judge %v: slanted claims flagged %.3f of %d, others %.3f of %d", judge, a, slanted, b, other)
		if a < 0.9 || b > 0.06 {
			t.Errorf("judge %v: slanted claims flagged %.3f (want ≥ 0.9), others %.3f (want ≤ 0.06)", judge, a, b)
		}
	}
}

// TestClaimsInvariance: a claim's confidence, support and variance move by less than 1e-12
// when the wordings are permuted, ids and prompts renamed, or the stance wordings removed (a
// neutral one remaining), under the default profile and a fitted one, with a judge's support
// and with the lexical measure (whose word weights come from the neutral wordings alone).
func TestClaimsInvariance(t *testing.T) {
	ctx := context.Background()
	for _, judge := range []bool{true, false} {
		cfg := simulate.Config{Questions: 400, Seed: 3, Claims: 6, Wordings: 4, Stance: 2, Judge: judge}
		exs, _ := simulate.Generate(&cfg)
		fitted, _, err := calibrate.Fit(ctx, exs[:300], &calibrate.FitConfig{Alpha: 0.2, ConfidenceMap: calibrate.MapLogistic})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for _, p := range []*calibrate.Profile{nil, fitted} {
			for _, ex := range exs[300:] {
				q := ex.Question
				base, err := calibrate.Score(ctx, p, &q)
				if err != nil {
					t.Fatal(err)
				}
				perm := q
				perm.Paraphrases = slices.Clone(q.Paraphrases)
				rng.Shuffle(len(perm.Paraphrases), func(a, b int) { perm.Paraphrases[a], perm.Paraphrases[b] = perm.Paraphrases[b], perm.Paraphrases[a] })
				for i := range perm.Paraphrases {
					perm.Paraphrases[i].Prompt = strings.ToUpper(perm.Paraphrases[i].Prompt) + "?"
				}
				perm.ID = "renamed"
				neutral := q
				neutral.Paraphrases = nil
				for _, w := range q.Paraphrases {
					if w.Framing == calibrate.Neutral {
						neutral.Paraphrases = append(neutral.Paraphrases, w)
					}
				}
				for name, other := range map[string]calibrate.Question{"permuted and renamed": perm, "without stance wordings": neutral} {
					r, err := calibrate.Score(ctx, p, &other)
					if err != nil {
						t.Fatal(err)
					}
					for j := range r.Claims {
						a, b := base.Claims[j], r.Claims[j]
						if math.Abs(a.Confidence-b.Confidence) > 1e-12 || math.Abs(a.Support-b.Support) > 1e-12 ||
							math.Abs(a.WordingVariance-b.WordingVariance) > 1e-12 || a.Action != b.Action {
							t.Fatalf("judge %v, %s: claim %d moved: %+v, then %+v", judge, name, j, a, b)
						}
					}
				}
			}
		}
	}
}

// TestClaimsRefused: the bad inputs of a long answer are refused naming the field.
func TestClaimsRefused(t *testing.T) {
	good := func() calibrate.Question {
		exs, _ := simulate.Generate(&simulate.Config{Questions: 1, Seed: 1, Claims: 3, Wordings: 2, Samples: 3, Judge: true})
		return exs[0].Question
	}
	for _, tc := range []struct {
		name  string
		edit  func(q *calibrate.Question)
		kind  calibrate.ErrorKind
		field string
	}{
		{"257 claims", func(q *calibrate.Question) {
			for len(q.Claims) <= calibrate.MaxClaims {
				q.Claims = append(q.Claims, calibrate.Claim{Text: "more"})
			}
		}, calibrate.Exhausted, "claims"},
		{"an empty claim", func(q *calibrate.Question) { q.Claims[1].Text = " " }, calibrate.InvalidInput, "claims[1].text"},
		{"a claim of 4 097 bytes", func(q *calibrate.Question) { q.Claims[2].Text = strings.Repeat("x", 4097) }, calibrate.Exhausted, "claims[2].text"},
		{"support of another length", func(q *calibrate.Question) { q.Paraphrases[1].Samples[2].Support = []float64{1, 0} },
			calibrate.InvalidInput, "paraphrases[1].samples[2].support"},
		{"support above 1", func(q *calibrate.Question) { q.Paraphrases[0].Samples[1].Support[2] = 1.5 }, calibrate.InvalidInput, "paraphrases[0].samples[1].support[2]"},
		{"NaN support", func(q *calibrate.Question) { q.Paraphrases[0].Samples[0].Support[0] = math.NaN() }, calibrate.InvalidInput, "paraphrases[0].samples[0].support[0]"},
		{"support for some samples", func(q *calibrate.Question) { q.Paraphrases[1].Samples[0].Support = nil }, calibrate.InvalidInput, "paraphrases[1].samples[0].support"},
		{"options", func(q *calibrate.Question) {
			q.Paraphrases[1].Options = []calibrate.Option{{Label: "A", Logprob: -0.1}, {Label: "B", Logprob: -2}}
		}, calibrate.InvalidInput, "paraphrases[1].options"},
		{"a passage of 16 385 bytes", func(q *calibrate.Question) { q.Paraphrases[0].Samples[0].Text = strings.Repeat("x", 16<<10+1) },
			calibrate.Exhausted, "paraphrases[0].samples[0].text"},
		{"embeddings for some claims", func(q *calibrate.Question) { q.Claims[0].Embedding = []float32{1, 0} }, calibrate.InvalidInput, "claims"},
		{"a risk of its own", func(q *calibrate.Question) { q.Policy.Risk = 0.2 }, calibrate.InvalidInput, "policy.risk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := good()
			tc.edit(&q)
			_, err := calibrate.Score(context.Background(), nil, &q)
			var e *calibrate.Error
			if !errors.As(err, &e) || e.Kind != tc.kind || e.Field != tc.field {
				t.Fatalf("%v, want %v on %s", err, tc.kind, tc.field)
			}
		})
	}
	// A label with a verdict per claim, no other length.
	q := good()
	ex := calibrate.Example{Question: q, Label: calibrate.Label{Claims: []calibrate.ClaimVerdict{calibrate.ClaimTrue}}}
	f, _ := calibrate.NewFitter(nil)
	var e *calibrate.Error
	if err := f.NewShard().Add(context.Background(), &ex); !errors.As(err, &e) || e.Field != "label.claims" {
		t.Fatalf("a label of 1 verdict for 3 claims: %v", err)
	}
}
