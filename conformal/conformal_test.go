package conformal

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/plumbhq/plumb/ensemble"
	"github.com/plumbhq/plumb/internal/datasets"
	"github.com/plumbhq/plumb/temperature"
)

func TestScoresHandWorked(t *testing.T) {
	p := []float64{0.1, 0.5, 0.15, 0.25}
	// Ranked by π: B (0.5), D (0.25), C (0.15), A (0.1).
	// APS: cumulative mass through each: B 0.5, D 0.75, C 0.9, A 1.0.
	// RAPS with λ = 0.1, k_reg = 2: + 0.1·max(0, rank − 2): B 0.5, D 0.75, C 1.0, A 1.2.
	for _, tc := range []struct {
		name string
		kind Score
		raps *RAPSSettings
		want []float64
	}{
		{"LAC", LAC, nil, []float64{0.9, 0.5, 0.85, 0.75}},
		{"APS", APS, nil, []float64{1.0, 0.5, 0.9, 0.75}},
		{"RAPS", RAPS, &RAPSSettings{Lambda: 0.1, KReg: 2}, []float64{1.2, 0.5, 1.0, 0.75}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Scores(make([]float64, 4), p, tc.kind, tc.raps, nil)
			for k := range got {
				if math.Abs(got[k]-tc.want[k]) > 1e-12 {
					t.Errorf("s(%d) = %v, want %v", k, got[k], tc.want[k])
				}
			}
		})
	}
	// Ties are ranked by index: both 0.5, index 0 first.
	if got := Scores(make([]float64, 2), []float64{0.5, 0.5}, APS, nil, nil); got[0] != 0.5 || got[1] != 1 {
		t.Errorf("APS on a tie = %v, want [0.5 1]", got)
	}
}

func TestQuantileRank(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		alpha float64
		kind  QuantileKind
		want  int
	}{
		// ⌈(n+1)(1−α)⌉ by hand: ⌈10·0.9⌉ = 9 (exactly 9, not 10 after rounding), ⌈20·0.9⌉ = 18,
		// ⌈1116·0.9⌉ = ⌈1004.4⌉ = 1005 (REFERENCE.md).
		{"n=9 exact integer", 9, 0.1, FiniteSample, 9},
		{"n=19", 19, 0.1, FiniteSample, 18},
		{"n=1115", 1115, 0.1, FiniteSample, 1005},
		// ⌈5·0.9⌉ = 5 > n = 4: q̂ = ∞.
		{"too few", 4, 0.1, FiniteSample, 5},
		{"alpha 0.05 n=100", 100, 0.05, FiniteSample, 96},
		// Paper: level = 1005/1115; index ⌈1114·1005/1115⌉ = ⌈1004.099…⌉ = 1005, rank 1006.
		{"paper n=1115", 1115, 0.1, HigherAtLevel, 1006},
		// level = 9/9 = 1: index ⌈8·1⌉ = 8, the last score, rank 9.
		{"paper level 1", 9, 0.1, HigherAtLevel, 9},
		// level = 5/4 > 1: torch would refuse; held to the last score.
		{"paper held", 4, 0.1, HigherAtLevel, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := QuantileRank(tc.n, tc.alpha, tc.kind); got != tc.want {
				t.Errorf("QuantileRank(%d, %v) = %d, want %d", tc.n, tc.alpha, got, tc.want)
			}
		})
	}
	if q := Quantile(0.1, FiniteSample, []float64{0.1, 0.2, 0.3, 0.4}); !math.IsInf(q, 1) {
		t.Errorf("q̂ with 4 scores at α=0.1 = %v, want +Inf", q)
	}
}

func TestPValue(t *testing.T) {
	// scipy 1.10: python3 -c "from scipy.stats import binom; print(binom.cdf(3,50,0.1),
	// binom.cdf(0,22,0.1), binom.cdf(10,200,0.1))"
	for _, tc := range []struct {
		k, n int
		eps  float64
		want float64
	}{
		{3, 50, 0.1, 0.250293905953308},
		{0, 22, 0.1, 0.0984770902183611},
		{10, 200, 0.1, 0.008071249955102729},
	} {
		t.Run(fmt.Sprintf("k=%d n=%d", tc.k, tc.n), func(t *testing.T) {
			if got := PValue(tc.k, tc.n, tc.eps); math.Abs(got-tc.want) > 1e-10 {
				t.Errorf("PValue(%d, %d, %v) = %.15g, want %.15g", tc.k, tc.n, tc.eps, got, tc.want)
			}
		})
	}
	// numpy: np.ceil(np.log(0.1)/np.log(0.9)) = 22.
	if got := MinAnswered(0.1, 0.1); got != 22 {
		t.Errorf("MinAnswered(0.1, 0.1) = %d, want 22", got)
	}
}

func TestSelect(t *testing.T) {
	// 200 answered with 10 errors at λ ≥ 0.5 (p = 0.0081 above), then 300 wrong answers with
	// confidence 0.3·i/300 < 0.3. Every λ from 0.99 to 0.30 has the same 200 answered (the ones
	// above 0.9 answer fewer than 22 and are passed over) and is rejected; at 0.29 ten wrong
	// answers join: 20 errors in 210, p = 0.466 (scipy: binom.cdf(20,210,.1)), so λ = 0.30.
	var conf []float64
	var correct []bool
	for i := 0; i < 200; i++ {
		conf = append(conf, 0.5+0.4*float64(i)/200)
		correct = append(correct, i >= 10)
	}
	for i := 0; i < 300; i++ {
		conf = append(conf, 0.3*float64(i)/300)
		correct = append(correct, false)
	}
	curve := RiskCurve(conf, correct)
	if got := Select(curve, 0.1, 0.1); got != 0.3 {
		t.Errorf("Select = %v, want 0.3", got)
	}
	// At ε = 0.01, 10 errors in 200 is far above the risk: nothing is rejected.
	if got := Select(curve, 0.01, 0.1); got != 1 {
		t.Errorf("Select at ε=0.01 = %v, want 1 (answer nothing)", got)
	}
}

// pooled returns π̄ at T = 1 for every line of the MMLU file.
func pooled(t *testing.T) ([][]float64, []int, []string) {
	qs := datasets.MMLU(t)
	var pbars [][]float64
	var gold []int
	var groups []string
	for _, q := range qs {
		k := len(q.Labels)
		var d []float64
		for _, z := range q.Logits {
			d = append(d, temperature.Softmax(make([]float64, k), z, 1)...)
		}
		pbar := make([]float64, k)
		ensemble.Pool(pbar, d, nil)
		pbars = append(pbars, pbar)
		gold = append(gold, q.Gold)
		groups = append(groups, q.Group)
	}
	return pbars, gold, groups
}

// TestMMLUReferenceLAC reproduces REFERENCE.md: LAC q̂ at α = 0.1 over all 1 115 lines is
// 0.827239, and its sets (top answer included) have coverage 0.901345 and mean size 2.977578.
func TestMMLUReferenceLAC(t *testing.T) {
	pbars, gold, _ := pooled(t)
	var scores []float64
	for i, p := range pbars {
		scores = append(scores, 1-p[gold[i]])
	}
	slices.Sort(scores)
	q := Quantile(0.1, FiniteSample, scores)
	if math.Abs(q-0.827239) > 1e-6 {
		t.Errorf("q̂ = %.7f, want 0.827239", q)
	}
	var covered, size int
	s := make([]float64, 4)
	for i, p := range pbars {
		set := Set(nil, Scores(s, p, LAC, nil, nil), q, ensemble.Argmax(p))
		size += len(set)
		if slices.Contains(set, gold[i]) {
			covered++
		}
	}
	n := float64(len(pbars))
	if cov := float64(covered) / n; math.Abs(cov-0.901345) > 1e-6 {
		t.Errorf("coverage = %.7f, want 0.901345", cov)
	}
	if ms := float64(size) / n; math.Abs(ms-2.977578) > 1e-6 {
		t.Errorf("mean size = %.7f, want 2.977578", ms)
	}
}

// TestPublishedTable reproduces the table of testdata/README.md (Kumar et al. 2023):
// per subject, LAC at α = 0.1, T = 1, 100 random 50/50 calibrate/test splits. With the paper's
// quantile rank the mean set size is within ±0.1 of the table; with plumb's finite-sample rank
// the sets are no larger (≤ table + 0.05) and mean coverage is ≥ 0.885 per subject and ≥ 0.9
// over the six pooled.
func TestPublishedTable(t *testing.T) {
	pbars, gold, groups := pooled(t)
	table := map[string]float64{
		"anatomy": 3.3, "college_chemistry": 3.7, "computer_security": 2.8,
		"formal_logic": 3.7, "high_school_biology": 3.1, "marketing": 2.4,
	}
	const seeds = 100
	var allCov, allN float64
	for subject, want := range table {
		var idx []int
		for i, g := range groups {
			if g == subject {
				idx = append(idx, i)
			}
		}
		run := func(kind QuantileKind) (size, cov float64) {
			rng := rand.New(rand.NewPCG(7, 8))
			s := make([]float64, 4)
			for seed := 0; seed < seeds; seed++ {
				perm := slices.Clone(idx)
				rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
				cal, test := perm[:len(perm)/2], perm[len(perm)/2:]
				var scores []float64
				for _, i := range cal {
					scores = append(scores, 1-pbars[i][gold[i]])
				}
				slices.Sort(scores)
				q := Quantile(0.1, kind, scores)
				var sz, cv int
				for _, i := range test {
					set := Set(nil, Scores(s, pbars[i], LAC, nil, nil), q, ensemble.Argmax(pbars[i]))
					sz += len(set)
					if slices.Contains(set, gold[i]) {
						cv++
					}
				}
				size += float64(sz) / float64(len(test))
				cov += float64(cv) / float64(len(test))
			}
			return size / seeds, cov / seeds
		}
		paperSize, _ := run(HigherAtLevel)
		size, cov := run(FiniteSample)
		t.Logf("%-20s table %.1f  paper rank %.3f  plumb %.3f (coverage %.3f)", subject, want, paperSize, size, cov)
		if math.Abs(paperSize-want) > 0.1 {
			t.Errorf("%s: paper-rank mean size %.3f, table %.1f ± 0.1", subject, paperSize, want)
		}
		if size > want+0.05 {
			t.Errorf("%s: finite-sample mean size %.3f above table %.1f + 0.05", subject, size, want)
		}
		if cov < 0.885 {
			t.Errorf("%s: mean coverage %.3f below 0.885", subject, cov)
		}
		allCov += cov * float64(len(idx))
		allN += float64(len(idx))
	}
	if c := allCov / allN; c < 0.9 {
		t.Errorf("pooled mean coverage %.4f below 0.9", c)
	}
}

func TestMondrian(t *testing.T) {
	var scores []float64
	var groups []string
	for i := 0; i < 300; i++ {
		scores = append(scores, float64(i)/300)
		groups = append(groups, "big")
	}
	for i := 0; i < 10; i++ {
		scores = append(scores, 0.9)
		groups = append(groups, "small")
	}
	m := FitMondrian(scores, groups, 0.1, FiniteSample, 100)
	// big: rank ⌈301·0.9⌉ = 271, the score 270/300 = 0.9.
	if q := m.Threshold("big"); math.Abs(q-0.9) > 1e-12 {
		t.Errorf("big q̂ = %v, want 0.9", q)
	}
	if _, own := m.Groups["small"]; own || m.Threshold("small") != m.Global {
		t.Errorf("small group (10 < 100) should fall back to the global q̂")
	}
}

func ExampleQuantile() {
	scores := []float64{0.05, 0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.9}
	// n = 10, α = 0.2: rank ⌈11·0.8⌉ = 9.
	fmt.Println(Quantile(0.2, FiniteSample, scores))
	// Output: 0.7
}

func ExampleSelect() {
	conf := []float64{0.95, 0.9, 0.8, 0.3}
	correct := []bool{true, true, true, false}
	curve := RiskCurve(conf, correct)
	// Too few answered to reject at ε = 0.1, δ = 0.1 (22 needed): answer nothing.
	fmt.Println(Select(curve, 0.1, 0.1))
	// Output: 1
}

func TestTopMass(t *testing.T) {
	// Ranked 0.5, 0.25, 0.15, 0.1: cumulative 0.5, 0.75, 0.9, 1.0.
	p := []float64{0.1, 0.5, 0.15, 0.25}
	order := make([]int, 4)
	Rank(order, p)
	for _, tc := range []struct {
		level float64
		want  int
	}{{0.4, 1}, {0.5, 1}, {0.75, 2}, {0.9, 3}, {0.95, 4}, {1, 4}, {1.5, 4}} {
		t.Run(fmt.Sprint(tc.level), func(t *testing.T) {
			if got := TopMass(order, p, tc.level); got != tc.want {
				t.Errorf("TopMass at %v = %d, want %d", tc.level, got, tc.want)
			}
		})
	}
}

// TestRankLong: a long candidate list (sorted, not by insertion) is ranked as insertion ranks
// it: probability descending, index ascending on ties.
func TestRankLong(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	p := make([]float64, 1000)
	for i := range p {
		p[i] = float64(rng.IntN(50)) / 50 // many exact ties
	}
	order := make([]int, len(p))
	Rank(order, p)
	for i := 1; i < len(order); i++ {
		a, b := order[i-1], order[i]
		if p[a] < p[b] || p[a] == p[b] && a > b {
			t.Fatalf("rank %d: candidate %d (%v) before %d (%v)", i, a, p[a], b, p[b])
		}
	}
}
