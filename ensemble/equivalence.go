package ensemble

import (
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
// item with the first member of every cluster so far. It panics if len(assign) != len(items).
func Cluster(assign []int, items []Item, mode Mode) int {
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
				if items[f].Key == "" && equivalent(&items[f], it, mode) {
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
	return len(first)
}

func equivalent(a, b *Item, mode Mode) bool {
	switch mode {
	case F1:
		return TokenF1(a.Norm, b.Norm) >= F1Threshold
	case Embedding:
		return Cosine(a.Embedding, b.Embedding) >= CosineThreshold
	}
	return a.Norm == b.Norm
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
