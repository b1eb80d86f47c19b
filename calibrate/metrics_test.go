package calibrate

import (
	"context"
	"fmt"
	"math"

	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plumbhq/plumb/internal/datasets"
	"github.com/plumbhq/plumb/temperature"
)

func TestBinEdges(t *testing.T) {
	// Bin 1 is [0, 1/15], bin i is ((i−1)/15, i/15] (REFERENCE.md).
	for _, tc := range []struct {
		c    float64
		want int
	}{{0, 0}, {1.0 / 15, 0}, {1.0/15 + 1e-9, 1}, {2.0 / 15, 1}, {0.5, 7}, {14.0 / 15, 13}, {1, 14}} {
		t.Run(fmt.Sprint(tc.c), func(t *testing.T) {
			if got := binOf(tc.c); got != tc.want {
				t.Errorf("binOf(%v) = %d, want %d", tc.c, got, tc.want)
			}
		})
	}
}

func TestMetricsHandWorked(t *testing.T) {
	// ECE: 0.1 falls in bin ((1/15, 2/15]) with accuracy ½: gap 0.4, weight ½; 0.9 in bin 13
	// with accuracy 1: gap 0.1, weight ½. ECE = 0.2 + 0.05 = 0.25, MCE = 0.4.
	rs := []record{{conf: 0.1}, {conf: 0.1, correct: true}, {conf: 0.9, correct: true}, {conf: 0.9, correct: true}}
	m, _ := summarize(rs)
	if math.Abs(m.ECE-0.25) > 1e-12 || math.Abs(m.MCE-0.4) > 1e-12 {
		t.Errorf("ECE %v MCE %v, want 0.25 0.4", m.ECE, m.MCE)
	}
	// Brier: (0.01 + 0.81 + 0.01 + 0.01)/4 = 0.21.
	if math.Abs(m.Brier-0.21) > 1e-12 {
		t.Errorf("Brier %v, want 0.21", m.Brier)
	}
	// AUROC with ties: right answers at 0.5 and 0.8, wrong at 0.2 and 0.5. Of the 4 pairs three
	// are ordered and one tied: (3 + ½)/4 = 0.875.
	if got := AUROC([]float64{0.2, 0.5, 0.5, 0.8}, []bool{false, true, false, true}); math.Abs(got-0.875) > 1e-12 {
		t.Errorf("AUROC %v, want 0.875", got)
	}
	if got := AUROC([]float64{0.2, 0.3}, []bool{true, true}); !math.IsNaN(got) {
		t.Errorf("AUROC with one class %v, want NaN (undefined)", got)
	}
	// AURC: risks of the top 1, 2, 3 are 0, ½, ⅓: mean 5/18. A tie of one right and one wrong
	// spreads its error: ½ then 1/2: mean ½.
	if got := AURC([]float64{0.9, 0.8, 0.7}, []bool{true, false, true}); math.Abs(got-5.0/18) > 1e-12 {
		t.Errorf("AURC %v, want 5/18", got)
	}
	if got := AURC([]float64{0.9, 0.9}, []bool{true, false}); math.Abs(got-0.5) > 1e-12 {
		t.Errorf("AURC with a tie %v, want 0.5", got)
	}
	// Adaptive ECE with one question per equal-mass bin is the mean |y − c|.
	var conf []float64
	var correct []bool
	var want float64
	for i := 0; i < 15; i++ {
		c := (float64(i) + 0.5) / 15
		y := i%2 == 0
		conf, correct = append(conf, c), append(correct, y)
		want += math.Abs(b2f(y)-c) / 15
	}
	if got := adaptiveECE(conf, correct); math.Abs(got-want) > 1e-12 {
		t.Errorf("adaptive ECE %v, want %v", got, want)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// mmluExamples converts the MMLU file into labelled examples.
func mmluExamples(t testing.TB) []Example {
	qs := datasets.MMLU(t)
	exs := make([]Example, len(qs))
	for i, q := range qs {
		ex := Example{Question: Question{ID: q.ID, Group: q.Group}, Label: Label{Answers: []string{q.Labels[q.Gold]}}}
		for p, z := range q.Logits {
			para := Paraphrase{Prompt: "one-shot prompt " + string(rune('0'+p))}
			for j, l := range q.Labels {
				para.Options = append(para.Options, Option{Label: l, Logprob: z[j]})
			}
			ex.Question.Paraphrases = append(ex.Question.Paraphrases, para)
		}
		exs[i] = ex
	}
	return exs
}

// TestMMLUReferenceMetrics reproduces REFERENCE.md's T = 1 metrics of c = π̄(k*) over all
// 1 115 lines, to 1e-6, through Evaluate with the uncalibrated default profile.
func TestMMLUReferenceMetrics(t *testing.T) {
	exs := mmluExamples(t)
	r, err := Evaluate(context.Background(), nil, exs)
	if err != nil {
		t.Fatal(err)
	}
	var meanC float64
	for i := range exs {
		res, err := Score(context.Background(), nil, &exs[i].Question)
		if err != nil {
			t.Fatal(err)
		}
		meanC += res.Confidence / float64(len(exs))
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"accuracy", r.After.Accuracy, 0.458296},
		{"mean c", meanC, 0.419946},
		{"ECE15", r.After.ECE, 0.044632},
		{"Brier", r.After.Brier, 0.212021},
		{"AUROC", r.After.AUROC, 0.710508},
	} {
		t.Run(c.name, func(t *testing.T) {
			if math.Abs(c.got-c.want) > 1e-6 {
				t.Errorf("%s = %.7f, want %.6f", c.name, c.got, c.want)
			}
		})
	}
	if !cmp.Equal(r.Before, r.After, cmpopts.EquateNaNs()) {
		t.Errorf("before and after differ under the default profile")
	}
}

// TestPublishedTableThroughFit repeats the finite-sample half of conformal's TestPublishedTable
// through Fit, as the CLI runs it (--temperature none --confidence-map none --split 0,0.5,0.5
// --alpha 0.1): per subject over 50 seeds, mean set size ≤ table + 0.05 and mean coverage
// ≥ 0.885; ≥ 0.9 over the six pooled.
func TestPublishedTableThroughFit(t *testing.T) {
	exs := mmluExamples(t)
	table := map[string]float64{
		"anatomy": 3.3, "college_chemistry": 3.7, "computer_security": 2.8,
		"formal_logic": 3.7, "high_school_biology": 3.1, "marketing": 2.4,
	}
	var allCov, allN float64
	for subject, want := range table {
		var sub []Example
		for _, ex := range exs {
			if ex.Question.Group == subject {
				sub = append(sub, ex)
			}
		}
		const seeds = 50
		var size, cov float64
		for seed := uint64(1); seed <= seeds; seed++ {
			_, r, err := Fit(context.Background(), sub, &FitConfig{Temperature: temperature.MethodNone, ConfidenceMap: MapNone,
				Split: [3]float64{0, 0.5, 0.5}, Alpha: 0.1, Seed: seed})
			if err != nil {
				t.Fatal(err)
			}
			size += r.After.MeanSetSize / seeds
			cov += r.After.Coverage / seeds
		}
		t.Logf("%-20s table %.1f  plumb %.3f  coverage %.3f", subject, want, size, cov)
		if size > want+0.05 {
			t.Errorf("%s: mean size %.3f above table %.1f + 0.05", subject, size, want)
		}
		if cov < 0.885 {
			t.Errorf("%s: mean coverage %.3f below 0.885", subject, cov)
		}
		allCov += cov * float64(len(sub))
		allN += float64(len(sub))
	}
	if c := allCov / allN; c < 0.9 {
		t.Errorf("pooled coverage %.4f below 0.9", c)
	}
}

// TestSortPositions: the radix sort orders scores exactly as the comparison sort does, by
// (confidence, position), with many ties, zeros and ones, and with a negative confidence
// (which it hands to the comparison sort).
func TestSortPositions(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{10, radixMin, 100000} {
		for _, neg := range []bool{false, true} {
			s := make([]scored, n)
			for i := range s {
				c := math.Round(rng.Float64()*1000) / 1000 // ties
				switch rng.IntN(20) {
				case 0:
					c = 0
				case 1:
					c = 1
				case 2:
					c = rng.Float64() // distinct
				}
				s[i] = newScored(c, rng.IntN(3), i, rng.IntN(2) == 0)
			}
			if neg {
				s[n/2].c = -0.5
			}
			want := slices.Clone(s)
			sortScored(want)
			got := sortPositions(s, make([]scored, n))
			if !slices.Equal(got, want) {
				t.Fatalf("n = %d, negative %v: radix and comparison sorts differ", n, neg)
			}
		}
	}
}
