package ensemble

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plumbhq/plumb/internal/datasets"
	"github.com/plumbhq/plumb/temperature"
)

func distributions(q datasets.MMLUQuestion) []float64 {
	k := len(q.Labels)
	d := make([]float64, 0, len(q.Logits)*k)
	for _, z := range q.Logits {
		d = append(d, temperature.Softmax(make([]float64, k), z, 1)...)
	}
	return d
}

// TestMMLUReference reproduces testdata/mmlu-llama13b/REFERENCE.md: line 1 (anatomy-0000) to 1e-6 (its
// π̄ to 1e-8, as printed) and the means over all 1 115 lines to 1e-6.
func TestMMLUReference(t *testing.T) {
	qs := datasets.MMLU(t)
	q := qs[0]
	d := distributions(q)
	pbar := make([]float64, 4)
	Pool(pbar, d, nil)
	want := []float64{0.36010214, 0.17160325, 0.18883393, 0.27946068}
	if diff := cmp.Diff(want, pbar, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-8 })); diff != "" {
		t.Errorf("π̄ of anatomy-0000 (-want +got):\n%s", diff)
	}
	h, a, w := Split(pbar, d, nil)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"H", h, 1.341306953}, {"A", a, 1.334105777}, {"W", w, 0.007201175},
		{"var π_p(A)", Variance(d, 4, 0, pbar[0], nil), 0.001691895},
	} {
		t.Run("anatomy-0000/"+c.name, func(t *testing.T) {
			if math.Abs(c.got-c.want) > 1e-6 {
				t.Errorf("anatomy-0000 %s = %.9f, want %.9f", c.name, c.got, c.want)
			}
		})
	}

	var sh, sa, sw, sv float64
	for _, q := range qs {
		d := distributions(q)
		Pool(pbar, d, nil)
		h, a, w := Split(pbar, d, nil)
		sh, sa, sw = sh+h, sa+a, sw+w
		sv += Variance(d, 4, Argmax(pbar), pbar[Argmax(pbar)], nil)
	}
	n := float64(len(qs))
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"mean H(π̄)", sh / n, 1.252169}, {"mean A", sa / n, 1.243019},
		{"mean W", sw / n, 0.009151}, {"mean var π_p(k*)", sv / n, 0.002231},
	} {
		t.Run(c.name, func(t *testing.T) {
			if math.Abs(c.got-c.want) > 1e-6 {
				t.Errorf("%s = %.7f, want %.6f", c.name, c.got, c.want)
			}
		})
	}
}

func TestSplitAgreeingWordings(t *testing.T) {
	// Identical wordings: W = 0 exactly and A = H. Two opposite certain wordings: A = 0 and
	// W = H = log 2.
	d := []float64{0.2, 0.8, 0.2, 0.8}
	pbar := make([]float64, 2)
	Pool(pbar, d, nil)
	if h, a, w := Split(pbar, d, nil); w != 0 || math.Abs(h-a) > 1e-15 {
		t.Errorf("agreeing: H=%v A=%v W=%v", h, a, w)
	}
	d = []float64{1, 0, 0, 1}
	Pool(pbar, d, nil)
	if h, a, w := Split(pbar, d, nil); a != 0 || math.Abs(w-math.Ln2) > 1e-15 || math.Abs(h-math.Ln2) > 1e-15 {
		t.Errorf("opposite: H=%v A=%v W=%v", h, a, w)
	}
}

func TestShiftAndLeaveOneOut(t *testing.T) {
	// Rows: two neutral wordings and one stance wording toward candidate 1.
	d := []float64{0.7, 0.3, 0.5, 0.5, 0.2, 0.8}
	neutral := []bool{true, true, false}
	pbar := make([]float64, 2)
	if n := Pool(pbar, d, neutral); n != 2 || math.Abs(pbar[0]-0.6) > 1e-15 {
		t.Fatalf("pool = %v over %d", pbar, n)
	}
	// Hand calculation: 0.8 − 0.4 = 0.4.
	if s, m := Shift(pbar, d, []int{-1, -1, 1}); m != 1 || math.Abs(s-0.4) > 1e-15 {
		t.Errorf("shift = %v over %d, want 0.4 over 1", s, m)
	}
	// Every row a stance row, toward candidates 0, 1 and 1: ((0.7 − 0.6) + (0.5 − 0.4)
	// + (0.8 − 0.4))/3 = 0.2. A stance that is no candidate (2) counts with 0:
	// ((0.7 − 0.6) + 0 + (0.8 − 0.4))/3 = 1/6.
	for _, tc := range []struct {
		stance []int
		want   float64
	}{{[]int{0, 1, 1}, 0.2}, {[]int{0, 2, 1}, 1.0 / 6}} {
		if s, m := Shift(pbar, d, tc.stance); m != 3 || math.Abs(s-tc.want) > 1e-15 {
			t.Errorf("stances %v: shift = %v over %d, want %v over 3", tc.stance, s, m, tc.want)
		}
	}
	loo := LeaveOneOut(make([]float64, 2), pbar, d, 2, 0)
	if math.Abs(loo[0]-0.5) > 1e-15 {
		t.Errorf("leave-one-out = %v, want [0.5 0.5]", loo)
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"The Eiffel Tower.", "eiffel tower"},
		{"  an   apple, a pear ", "apple pear"},
		{"1,000", "1000"},
		{"1000.0", "1000"},
		{"1000", "1000"},
		{"$1,000.50!", "1000.5"},
		{"-0.0", "0"},
		{"1,00", "100"}, // not a thousands grouping: the comma is punctuation and is dropped
		{"ＡＢＣ", "abc"},  // NFKC folds full-width letters
		{"Paris", "paris"},
		{"50%", "50"}, // % is punctuation (Unicode Po)
		{"", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := Normalize(tc.in); got != tc.want {
				t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTokenF1(t *testing.T) {
	// Hand calculation: {barack, obama} vs {obama}: common 1, F1 = 2·1/(2+1) = 2/3.
	if got := TokenF1("barack obama", "obama"); math.Abs(got-2.0/3) > 1e-15 {
		t.Errorf("TokenF1 = %v, want 2/3", got)
	}
	if got := Cosine([]float32{1, 0}, []float32{1, 1}); math.Abs(got-1/math.Sqrt2) > 1e-7 {
		t.Errorf("Cosine = %v, want 1/√2", got)
	}
}

// TestClusterOrderIndependent: permuting the items, and adding late items, leaves every
// neutral item's cluster unchanged, in every mode.
func TestClusterOrderIndependent(t *testing.T) {
	texts := []string{"paris", "paris france", "city of paris", "lyon", "paris", "london", "lyon france", "paris france"}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, mode := range []Mode{Exact, F1, Embedding} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			var items []Item
			for i, s := range texts {
				e := []float32{float32(len(s)), float32(s[0]), float32(i % 2)}
				items = append(items, Item{Norm: s, Embedding: e})
			}
			ref := make([]int, len(items))
			n := must(Cluster(context.Background(), ref, items, mode))
			for trial := 0; trial < 50; trial++ {
				perm := rng.Perm(len(items))
				shuffled := make([]Item, 0, len(items)+2)
				for _, i := range perm {
					shuffled = append(shuffled, items[i])
				}
				shuffled = append(shuffled, Item{Norm: "berlin", Embedding: []float32{-1, 2, 3}, Late: true},
					Item{Norm: "paris", Embedding: []float32{5, 'p', 0}, Late: true})
				got := make([]int, len(shuffled))
				m := must(Cluster(context.Background(), got, shuffled, mode))
				for j, i := range perm {
					if got[j] != ref[i] {
						t.Fatalf("item %q: cluster %d, want %d", items[i].Norm, got[j], ref[i])
					}
				}
				if m < n {
					t.Fatalf("%d clusters with late items, %d without", m, n)
				}
			}
		})
	}
	// Exact mode on its own: equal texts share a cluster and clusters follow sorted order.
	got := make([]int, 4)
	must(Cluster(context.Background(), got, []Item{{Norm: "b"}, {Norm: "a"}, {Norm: "b"}, {Norm: "c", Late: true}}, Exact))
	if !slices.Equal(got, []int{1, 0, 1, 2}) {
		t.Errorf("exact clusters = %v, want [1 0 1 2]", got)
	}
}

func TestRepresentative(t *testing.T) {
	raw := []string{"Paris", "paris", "Paris", "Lyon"}
	got := Representative(raw, []int{0, 0, 0, 1}, 2)
	if !slices.Equal(got, []string{"Paris", "Lyon"}) {
		t.Errorf("Representative = %v", got)
	}
}

func ExampleSplit() {
	// Two wordings that each are sure, of different answers: all the doubt is wording doubt.
	d := []float64{1, 0, 0, 1}
	pbar := make([]float64, 2)
	Pool(pbar, d, nil)
	h, a, w := Split(pbar, d, nil)
	fmt.Printf("H=%.4f A=%.4f W=%.4f\n", h, a, w)
	// Output: H=0.6931 A=0.0000 W=0.6931
}

func ExampleNormalize() {
	fmt.Println(Normalize("The answer is 1,000."))
	// Output: answer is 1000
}

// TestSplitFrom: the split from per-row entropies is the split from the rows, on the MMLU
// file's first 100 lines, with and without a selection of rows.
func TestSplitFrom(t *testing.T) {
	for i, q := range datasets.MMLU(t)[:100] {
		d := distributions(q)
		pbar := make([]float64, 4)
		use := []bool{true, false, true, true, false, true, true, true, false, true}
		Pool(pbar, d, use)
		rowH := make([]float64, len(q.Logits))
		for p := range rowH {
			rowH[p] = Entropy(d[p*4 : (p+1)*4])
		}
		for _, u := range [][]bool{use, nil} {
			h1, a1, w1 := Split(pbar, d, u)
			h2, a2, w2 := SplitFrom(pbar, rowH, u)
			if h1 != h2 || a1 != a2 || w1 != w2 {
				t.Fatalf("line %d: Split %v %v %v, SplitFrom %v %v %v", i+1, h1, a1, w1, h2, a2, w2)
			}
		}
	}
}

// TestClusterKeys: items with the same key are one cluster whatever their text; keyed and
// unkeyed items never share one; the clusters do not depend on the order of the items.
func TestClusterKeys(t *testing.T) {
	items := []Item{
		{Norm: "ruler of england in 1616 was king james i", Key: "james"},
		{Norm: "king james i governed england", Key: "james"},
		{Norm: "elizabeth i", Key: "elizabeth"},
		{Norm: "king james i governed england"}, // the same text, no key: its own cluster
		{Norm: "elizabeth i", Key: "james"},     // the judge says james, whatever the text
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 20; trial++ {
		perm := rng.Perm(len(items))
		shuffled := make([]Item, len(items))
		for j, i := range perm {
			shuffled[j] = items[i]
		}
		got := make([]int, len(items))
		if n := must(Cluster(context.Background(), got, shuffled, Exact)); n != 3 {
			t.Fatalf("%d clusters, want 3", n)
		}
		at := make([]int, len(items)) // cluster of items[i]
		for j, i := range perm {
			at[i] = got[j]
		}
		// Keyed clusters come first, by key: elizabeth 0, james 1; the unkeyed one 2.
		if want := []int{1, 1, 0, 2, 1}; !slices.Equal(at, want) {
			t.Fatalf("clusters %v, want %v", at, want)
		}
	}
}

// TestClusterExactMany: with more clusters than it scans, Exact mode (a map) gives the
// clusters a scan gives: equal texts together, numbered in canonical order.
func TestClusterExactMany(t *testing.T) {
	var items []Item
	for i := range 500 {
		items = append(items, Item{Norm: fmt.Sprintf("answer %d", i%137), Late: i%7 == 0})
	}
	got := make([]int, len(items))
	n := must(Cluster(context.Background(), got, items, Exact))
	byText := map[string]int{}
	for i, it := range items {
		if c, ok := byText[it.Norm]; ok && c != got[i] {
			t.Fatalf("%q in clusters %d and %d", it.Norm, c, got[i])
		}
		byText[it.Norm] = got[i]
	}
	if n != 137 || len(byText) != 137 {
		t.Fatalf("%d clusters of %d texts, want 137", n, len(byText))
	}
	// Neutral texts first, in sorted order; texts only late items have come after.
	var neutral []string
	seen := map[string]bool{}
	for _, it := range items {
		if !it.Late && !seen[it.Norm] {
			seen[it.Norm] = true
			neutral = append(neutral, it.Norm)
		}
	}
	slices.Sort(neutral)
	for want, text := range neutral {
		if byText[text] != want {
			t.Fatalf("%q is cluster %d, want %d", text, byText[text], want)
		}
	}
}

func must(n int, err error) int {
	if err != nil {
		panic(err)
	}
	return n
}

// TestF1AtLeast: the early-stopping comparison of sorted token lists agrees with TokenF1 ≥ the
// threshold on random texts of 0 to 30 words from a vocabulary of 12, at thresholds around
// F1Threshold.
func TestF1AtLeast(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	words := strings.Fields("a b c d e f g h i j k l")
	text := func() string {
		n := rng.IntN(31)
		out := make([]string, n)
		for i := range out {
			out[i] = words[rng.IntN(len(words))]
		}
		return strings.Join(out, " ")
	}
	for range 20000 {
		x, y := text(), text()
		pw, _ := newPairwise(context.Background(), []Item{{Norm: x}, {Norm: y}}, F1)
		for _, th := range []float64{0.5, F1Threshold, 0.9, 1} {
			if got, want := f1AtLeast(pw.tokens[0], pw.tokens[1], th), TokenF1(x, y) >= th; got != want {
				t.Fatalf("%q vs %q at %v: %v, TokenF1 says %v (%v)", x, y, th, got, want, TokenF1(x, y))
			}
		}
	}
}

// TestClusterStops: pairwise clustering stops with the context's error once it is done.
func TestClusterStops(t *testing.T) {
	var items []Item
	for i := range 3000 {
		items = append(items, Item{Norm: fmt.Sprintf("answer number %d of many", i)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Cluster(ctx, make([]int, len(items)), items, F1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v, want context.Canceled", err)
	}
	if _, err := Cluster(context.Background(), make([]int, len(items)), items, F1); err != nil {
		t.Fatal(err)
	}
}

// TestLeaveOneOutForms: SplitWithout and VarianceWithout, the O(k) forms of the split and the
// variance without one row, equal SplitFrom and Variance computed on the other rows (to 1e-12),
// on random distributions; and a hand calculation: rows [0.7 0.3], [0.5 0.5], [0.9 0.1] without
// the last pool to [0.6 0.4], whose variance of candidate 0 is ((0.1)² + (0.1)²)/2 = 0.01.
func TestLeaveOneOutForms(t *testing.T) {
	d := []float64{0.7, 0.3, 0.5, 0.5, 0.9, 0.1}
	pbar := make([]float64, 2)
	Pool(pbar, d, nil)
	loo := LeaveOneOut(make([]float64, 2), pbar, d, 3, 2)
	sumSq := 0.7*0.7 + 0.5*0.5 + 0.9*0.9
	if v := VarianceWithout(sumSq, 0.9, loo[0], 3); math.Abs(v-0.01) > 1e-12 {
		t.Errorf("hand case: variance %v, want 0.01", v)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := range 200 {
		n, k := 2+rng.IntN(10), 2+rng.IntN(6)
		d := make([]float64, n*k)
		rowH := make([]float64, n)
		for p := range n {
			row := d[p*k : (p+1)*k]
			var sum float64
			for j := range row {
				row[j] = rng.ExpFloat64()
				sum += row[j]
			}
			for j := range row {
				row[j] /= sum
			}
			rowH[p] = Entropy(row)
		}
		pbar := make([]float64, k)
		Pool(pbar, d, nil)
		var sumH float64
		for _, h := range rowH {
			sumH += h
		}
		skip, j := rng.IntN(n), rng.IntN(k)
		var sumSq float64
		for p := range n {
			sumSq += d[p*k+j] * d[p*k+j]
		}
		use := make([]bool, n)
		for p := range use {
			use[p] = p != skip
		}
		loo := LeaveOneOut(make([]float64, k), pbar, d, n, skip)
		wantH, wantA, wantW := SplitFrom(loo, rowH, use)
		h, a, w := SplitWithout(loo, sumH, rowH[skip], n)
		wantV := Variance(d, k, j, loo[j], use)
		v := VarianceWithout(sumSq, d[skip*k+j], loo[j], n)
		if math.Abs(h-wantH) > 1e-12 || math.Abs(a-wantA) > 1e-12 || math.Abs(w-wantW) > 1e-12 || math.Abs(v-wantV) > 1e-12 {
			t.Fatalf("trial %d (n %d, k %d, skip %d): split %v %v %v, want %v %v %v; variance %v, want %v",
				trial, n, k, skip, h, a, w, wantH, wantA, wantW, v, wantV)
		}
	}
}
