package ensemble

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Normalize returns the canonical form of a sampled answer used to decide equivalence: Unicode
// NFKC, lower case, numbers in canonical form (1,000 = 1000 = 1000.0 → "1000"), punctuation
// dropped, the articles a/an/the dropped and white space collapsed to single spaces (the SQuAD
// answer normalisation of Rajpurkar et al. 2016, with numbers added).
func Normalize(s string) string {
	s = strings.ToLower(norm.NFKC.String(s))
	var b strings.Builder
	b.Grow(len(s))
	for _, f := range strings.Fields(s) {
		w := strings.TrimFunc(f, isPunct)
		if v, ok := number(w); ok {
			w = v
		} else {
			w = strings.Map(func(r rune) rune {
				if isPunct(r) {
					return -1
				}
				return r
			}, w)
		}
		for _, part := range strings.Fields(w) {
			if part == "a" || part == "an" || part == "the" {
				continue
			}
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(part)
		}
	}
	return b.String()
}

func isPunct(r rune) bool { return unicode.IsPunct(r) || unicode.IsSymbol(r) }

// number returns the canonical form of w when w is a decimal number, with optional sign,
// thousands separated by commas in groups of three and an optional fraction.
func number(w string) (string, bool) {
	if w == "" {
		return "", false
	}
	body := strings.TrimLeft(w, "+-")
	if len(w)-len(body) > 1 || body == "" {
		return "", false
	}
	intPart, frac, hasDot := strings.Cut(body, ".")
	if hasDot && (frac == "" || !allDigits(frac)) {
		return "", false
	}
	if strings.Contains(intPart, ",") {
		groups := strings.Split(intPart, ",")
		if len(groups[0]) == 0 || len(groups[0]) > 3 || !allDigits(groups[0]) {
			return "", false
		}
		for _, g := range groups[1:] {
			if len(g) != 3 || !allDigits(g) {
				return "", false
			}
		}
		intPart = strings.ReplaceAll(intPart, ",", "")
	} else if intPart != "" && !allDigits(intPart) {
		return "", false
	}
	if intPart == "" && !hasDot {
		return "", false
	}
	v, err := strconv.ParseFloat(w[:len(w)-len(body)]+intPart+"."+frac+"0", 64)
	if err != nil || math.IsInf(v, 0) {
		return "", false
	}
	if v == 0 {
		v = 0 // drop the sign of −0
	}
	return strconv.FormatFloat(v, 'f', -1, 64), true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Mode selects how two sampled answers are judged equivalent.
type Mode int

const (
	// Exact: equal normalised text. The default.
	Exact Mode = iota
	// F1: token-level F1 of the normalised texts ≥ F1Threshold.
	F1
	// Embedding: cosine similarity of caller-supplied embeddings ≥ CosineThreshold.
	Embedding
)

// Thresholds of the F1 and Embedding modes.
const (
	F1Threshold     = 0.8
	CosineThreshold = 0.9
)

// Item is one sample to cluster: its normalised text, its embedding (Embedding mode only), the
// caller's cluster key (when the caller judged meaning itself: items with the same non-empty Key
// are one cluster whatever their text) and whether it comes from a USER_STANCE wording (Late),
// which is visited after every neutral one.
type Item struct {
	Norm      string
	Embedding []float32
	Key       string
	Late      bool
}

// scanLimit is the number of clusters up to which Exact mode scans them instead of keeping a map.
const scanLimit = 32

// Cluster assigns each item a cluster, filling assign (length len(items)), and returns the
// number of clusters. Items with a Key form one cluster per key; the others are clustered by
// mode, greedily and deterministically: items are visited neutral first, each group in
// canonical order (keyed items by key, then the others by normalised text, then embedding),
// and an item joins the first cluster whose first member it matches, else it starts a new one.
// Keyed and unkeyed items never share a cluster. Cluster numbers follow the visit order, so
// neutral clusters come first and neither the order of the items nor the presence of late items
// changes them. Exact mode and keys take near-linear time (maps); F1 and Embedding compare an
// item with the first member of every cluster so far (each text tokenised and each embedding's
// norm taken once), and stop with ctx's error when ctx is done. It panics if
// len(assign) != len(items).
func Cluster(ctx context.Context, assign []int, items []Item, mode Mode) (int, error) {
	if len(assign) != len(items) {
		panic("ensemble: assign length mismatch")
	}
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		x, y := &items[a], &items[b]
		if x.Late != y.Late {
			if x.Late {
				return 1
			}
			return -1
		}
		if (x.Key == "") != (y.Key == "") {
			if x.Key == "" {
				return 1
			}
			return -1
		}
		if c := strings.Compare(x.Key, y.Key); c != 0 {
			return c
		}
		if c := strings.Compare(x.Norm, y.Norm); c != 0 {
			return c
		}
		return slices.Compare(x.Embedding, y.Embedding)
	})
	var first []int // first member of each cluster
	var keys, texts map[string]int
	var pw *pairwise
	if mode != Exact {
		var err error
		if pw, err = newPairwise(ctx, items, mode); err != nil {
			return 0, err
		}
	}
	compared := 0
	for _, i := range order {
		it := &items[i]
		c := -1
		switch {
		case it.Key != "":
			if keys == nil {
				keys = map[string]int{}
			}
			if j, ok := keys[it.Key]; ok {
				c = j
			} else {
				keys[it.Key] = len(first)
			}
		case mode == Exact && texts != nil:
			if j, ok := texts[it.Norm]; ok {
				c = j
			}
		case mode == Exact:
			// Few clusters: scan them. In canonical order equal texts are adjacent among neutral
			// items, but a late item may equal an earlier neutral one: look back over all.
			for j := len(first) - 1; j >= 0; j-- {
				if f := &items[first[j]]; f.Key == "" && f.Norm == it.Norm {
					c = j
					break
				}
			}
		default:
			for j, f := range first {
				if compared++; compared%1024 == 0 && ctx.Err() != nil {
					return 0, ctx.Err()
				}
				if items[f].Key == "" && pw.equivalent(f, i) {
					c = j
					break
				}
			}
		}
		if c < 0 {
			c = len(first)
			first = append(first, i)
			if mode == Exact && it.Key == "" {
				if texts == nil && len(first) > scanLimit {
					texts = make(map[string]int, 2*len(first))
					for j, f := range first {
						if items[f].Key == "" {
							texts[items[f].Norm] = j
						}
					}
				} else if texts != nil {
					texts[it.Norm] = c
				}
			}
		}
		assign[i] = c
	}
	return len(first), nil
}

// pairwise holds what F1 and Embedding modes compare, prepared once per item: each text's
// tokens as sorted numbers, or each embedding as a unit vector.
type pairwise struct {
	mode   Mode
	tokens [][]int32   // F1: per item, its tokens (numbered in order of appearance), sorted
	units  [][]float32 // Embedding: per item, e/|e| (nil for a zero vector)
}

func newPairwise(ctx context.Context, items []Item, mode Mode) (*pairwise, error) {
	pw := &pairwise{mode: mode}
	switch mode {
	case F1:
		ids := map[string]int32{}
		pw.tokens = make([][]int32, len(items))
		for i := range items {
			if i%256 == 255 && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			words := strings.Fields(items[i].Norm)
			t := make([]int32, len(words))
			for j, w := range words {
				id, ok := ids[w]
				if !ok {
					id = int32(len(ids))
					ids[w] = id
				}
				t[j] = id
			}
			slices.Sort(t)
			pw.tokens[i] = t
		}
	case Embedding:
		pw.units = make([][]float32, len(items))
		for i := range items {
			e := items[i].Embedding
			var ss float64
			for _, v := range e {
				ss += float64(v) * float64(v)
			}
			if ss == 0 {
				continue
			}
			inv := 1 / math.Sqrt(ss)
			u := make([]float32, len(e))
			for d, v := range e {
				u[d] = float32(float64(v) * inv)
			}
			pw.units[i] = u
		}
	}
	return pw, nil
}

// equivalent reports whether items a and b match under the mode: TokenF1 ≥ F1Threshold, or
// Cosine ≥ CosineThreshold, as those functions compute them.
func (pw *pairwise) equivalent(a, b int) bool {
	if pw.mode == F1 {
		return f1AtLeast(pw.tokens[a], pw.tokens[b], F1Threshold)
	}
	x, y := pw.units[a], pw.units[b]
	if x == nil || y == nil {
		return false
	}
	if len(x) != len(y) {
		panic("ensemble: embedding length mismatch")
	}
	return dot(x, y) >= CosineThreshold
}

// dot returns Σ x_i·y_i in float64 over four running sums (a single one makes each step wait
// for the last: four are about three times as fast on long embeddings).
func dot(x, y []float32) float64 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += float64(x[i]) * float64(y[i])
		s1 += float64(x[i+1]) * float64(y[i+1])
		s2 += float64(x[i+2]) * float64(y[i+2])
		s3 += float64(x[i+3]) * float64(y[i+3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i]) * float64(y[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// f1AtLeast reports whether the token F1 of two sorted token lists, 2·common/(|a| + |b|), is at
// least threshold (two empty lists: 1), stopping as soon as the tokens left cannot reach it.
func f1AtLeast(a, b []int32, threshold float64) bool {
	total := len(a) + len(b)
	if total == 0 {
		return 1 >= threshold
	}
	f1 := func(common int) float64 { return 2 * float64(common) / float64(total) }
	if f1(min(len(a), len(b))) < threshold {
		return false // the shorter list cannot match enough of the longer
	}
	common, i, j := 0, 0, 0
	for i < len(a) && j < len(b) {
		if f1(common+min(len(a)-i, len(b)-j)) < threshold {
			return false
		}
		switch {
		case a[i] == b[j]:
			common++
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return f1(common) >= threshold
}

// TokenF1 returns the token-overlap F1 of two normalised texts (SQuAD's F1): with common the
// size of the multiset intersection of their space-separated tokens, 2·common/(|a| + |b|).
// Two empty texts score 1.
func TokenF1(a, b string) float64 {
	ta, tb := strings.Fields(a), strings.Fields(b)
	if len(ta) == 0 && len(tb) == 0 {
		return 1
	}
	if len(ta) == 0 || len(tb) == 0 {
		return 0
	}
	count := make(map[string]int, len(ta))
	for _, t := range ta {
		count[t]++
	}
	var common int
	for _, t := range tb {
		if count[t] > 0 {
			count[t]--
			common++
		}
	}
	return 2 * float64(common) / float64(len(ta)+len(tb))
}

// Cosine returns the cosine similarity of a and b, and 0 when either is zero. It panics if the
// lengths differ.
func Cosine(a, b []float32) float64 {
	if len(a) != len(b) {
		panic("ensemble: embedding length mismatch")
	}
	var ab, aa, bb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		ab += x * y
		aa += x * x
		bb += y * y
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// Representative returns, for each of n clusters, its most frequent raw text (the
// lexicographically smallest on ties).
func Representative(raw []string, assign []int, n int) []string {
	out := make([]string, n)
	best := make([]int, n)
	counts := make(map[string]int, len(raw))
	key := func(c int, s string) string { return strconv.Itoa(c) + "\x00" + s }
	for i, s := range raw {
		counts[key(assign[i], s)]++
	}
	for i, s := range raw {
		c := assign[i]
		m := counts[key(c, s)]
		if m > best[c] || m == best[c] && s < out[c] {
			best[c], out[c] = m, s
		}
	}
	return out
}
