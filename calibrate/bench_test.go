package calibrate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/datasets"
	"github.com/plumbhq/plumb/simulate"
)

func fitted(b *testing.B, cfg simulate.Config) (*calibrate.Profile, []calibrate.Example) {
	b.Helper()
	exs, _ := simulate.Generate(&cfg)
	p, _, err := calibrate.Fit(context.Background(), exs, nil)
	if err != nil {
		b.Fatal(err)
	}
	return p, exs
}

func benchScore(b *testing.B, p *calibrate.Profile, exs []calibrate.Example) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := calibrate.Score(context.Background(), p, &exs[i%len(exs)].Question); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScoreOptions: 4 options × {2, 10, 64} wordings under a fitted profile (adaptive or
// global temperature, logistic map, conformal set). docs/DESIGN.md target at 10: ≤ 5 µs, ≤ 20 allocs.
func BenchmarkScoreOptions(b *testing.B) {
	for _, w := range []int{2, 10, 64} {
		b.Run(fmt.Sprintf("wordings=%d", w), func(b *testing.B) {
			p, exs := fitted(b, simulate.Config{Questions: 2000, Seed: 1, Wordings: w})
			benchScore(b, p, exs)
		})
	}
}

// BenchmarkScoreOptionsDefault: the same at 10 wordings under the uncalibrated default.
func BenchmarkScoreOptionsDefault(b *testing.B) {
	exs, _ := simulate.Generate(&simulate.Config{Questions: 2000, Seed: 1})
	benchScore(b, nil, exs)
}

// BenchmarkScoreSamples: {2, 5, 10} wordings × 10 samples × 32 tokens × top-5 under a fitted
// profile (token temperature, logistic map). docs/DESIGN.md target at 5 wordings: ≤ 100 µs.
func BenchmarkScoreSamples(b *testing.B) {
	for _, w := range []int{2, 5, 10} {
		b.Run(fmt.Sprintf("wordings=%d", w), func(b *testing.B) {
			p, exs := fitted(b, simulate.Config{Questions: 400, Seed: 2, Wordings: w, Samples: 10, Tokens: 32, TopK: 5})
			benchScore(b, p, exs[:200])
		})
	}
}

// BenchmarkFit: the default fit (auto temperature, logistic map, LAC, LTT, report) on
// {1 000, 10 000, 100 000} option questions of 10 wordings. docs/DESIGN.md target at 100 000: ≤ 2 s.
func BenchmarkFit(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("examples=%d", n), func(b *testing.B) {
			exs, _ := simulate.Generate(&simulate.Config{Questions: n, Seed: 3})
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := calibrate.Fit(context.Background(), exs, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEvaluatorAdd: validating and scoring (before and after) labelled option questions
// of 10 wordings into an Evaluator, per question, under a fitted profile. Run with -cpu 1 for
// the CPU cost of one question; plumb eval's budget for 200 000 questions/s on 2 cores is 10 µs
// for decoding and this together.
func BenchmarkEvaluatorAdd(b *testing.B) {
	p, exs := fitted(b, simulate.Config{Questions: 4096, Seed: 4})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := calibrate.Evaluate(context.Background(), p, exs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(exs)), "ns/question")
}

// BenchmarkScoreClaims: a long answer of 20 claims, one wording of 20 passages of real GPT-3
// biographies (testdata/wikibio, about 150 words each: the words per passage are reported),
// scored under the default profile with plumb's lexical support and with a judge's. docs/DESIGN.md
// target for the lexical support: ≤ 1 ms.
func BenchmarkScoreClaims(b *testing.B) {
	passages := datasets.WikiBio(b)
	q := calibrate.Question{}
	var w calibrate.Paraphrase
	words := 0
	for _, s := range passages[0].Samples {
		w.Samples = append(w.Samples, calibrate.Sample{Text: s})
		words += len(strings.Fields(s))
	}
	for _, p := range passages {
		for _, c := range p.Claims {
			if len(q.Claims) < 20 {
				q.Claims = append(q.Claims, calibrate.Claim{ID: fmt.Sprint("c", len(q.Claims)), Text: c})
			}
		}
	}
	q.Paraphrases = []calibrate.Paraphrase{w}
	judged := q
	judged.Paraphrases = []calibrate.Paraphrase{{}}
	for _, s := range w.Samples {
		s.Support = make([]float64, len(q.Claims))
		judged.Paraphrases[0].Samples = append(judged.Paraphrases[0].Samples, s)
	}
	for name, q := range map[string]*calibrate.Question{"lexical": &q, "judge": &judged} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := calibrate.Score(context.Background(), nil, q); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(words)/float64(len(w.Samples)), "words/passage")
		})
	}
}
