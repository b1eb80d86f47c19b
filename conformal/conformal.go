// Package conformal builds prediction sets with a finite-sample coverage guarantee and picks a
// risk-controlling abstention threshold.
//
// Split conformal prediction (Vovk et al. 2005; Angelopoulos and Bates 2023, "A gentle
// introduction"): with nonconformity scores s_1..s_n of the true answers on calibration data
// exchangeable with a new question, q̂ = the ⌈(n+1)(1−α)⌉-th smallest s_i (∞ when that rank
// exceeds n) gives P(y ∈ {k : s(k) ≤ q̂}) ≥ 1 − α. A true answer the model never produced has
// s = ∞, so when more than α of them are unseen q̂ = ∞ and the set is open.
//
// Scores over a distribution π (here the pooled π̄):
//   - LAC (Sadinle, Lei and Wasserman 2019): s(k) = 1 − π(k).
//   - APS (Romano, Sesia and Candès 2020), non-randomised: s(k) = Σ of π over the candidates
//     ranked at or above k (by π descending, index ascending on ties).
//   - RAPS (Angelopoulos et al. 2021): APS + λ·max(0, rank(k) − k_reg), rank 1-based.
//
// Mondrian conformal (Vovk et al. 2005, ch. 4): one q̂ per group with enough calibration data,
// the global q̂ for the rest.
//
// Learn-then-Test (Angelopoulos, Bates, Candès, Jordan and Lei 2021): each abstention threshold λ
// on a grid is a null hypothesis H0: selective risk(λ) > ε, tested with the exact binomial
// (Clopper–Pearson) p-value P(Binom(n_λ, ε) ≤ errors_λ); fixed-sequence testing from the most
// conservative λ rejects while p ≤ δ, and every rejected λ controls the risk at ε with
// probability ≥ 1 − δ.
package conformal

import (
	"math"
	"slices"
)

// Score names a nonconformity score.
type Score int

const (
	// LAC is 1 − π(k), the least ambiguous set-valued classifier. The default.
	LAC Score = iota
	// APS is the cumulative mass of the candidates ranked at or above k.
	APS
	// RAPS is APS plus a penalty on candidates ranked below KReg.
	RAPS
)

var scoreNames = [...]string{"lac", "aps", "raps"}

// String returns the score's name as the CLI spells it.
func (s Score) String() string {
	if s >= 0 && int(s) < len(scoreNames) {
		return scoreNames[s]
	}
	return "unknown"
}

// RAPSSettings are RAPS's penalty λ and rank allowance k_reg. A nil *RAPSSettings means
// Lambda 0.01 and KReg 1 (sized for closed answer sets of 2 to 10 options).
type RAPSSettings struct {
	Lambda float64
	KReg   int
}

func (r *RAPSSettings) orDefault() RAPSSettings {
	if r == nil {
		return RAPSSettings{Lambda: 0.01, KReg: 1}
	}
	return *r
}

// Scores fills dst with the score s(k) of every candidate of distribution probs and returns it;
// order is scratch of the same length (nil allocates). It panics if the lengths differ.
func Scores(dst, probs []float64, kind Score, raps *RAPSSettings, order []int) []float64 {
	if len(dst) != len(probs) {
		panic("conformal: slice length mismatch")
	}
	if kind == LAC {
		for k, p := range probs {
			dst[k] = 1 - p
		}
		return dst
	}
	if order == nil {
		order = make([]int, len(probs))
	}
	Rank(order, probs)
	r := raps.orDefault()
	var cum float64
	for i, k := range order {
		cum += probs[k]
		dst[k] = cum
		if kind == RAPS {
			dst[k] += r.Lambda * math.Max(0, float64(i+1-r.KReg))
		}
	}
	return dst
}

// Rank fills order with the candidate indices by probability descending, index ascending on
// ties (within Tie). It panics if the lengths differ.
func Rank(order []int, probs []float64) {
	if len(order) != len(probs) {
		panic("conformal: slice length mismatch")
	}
	for i := range order {
		order[i] = i
	}
	if len(order) <= insertionLimit {
		// Insertion sort: candidate lists are usually short, and this allocates nothing.
		for i := 1; i < len(order); i++ {
			for j := i; j > 0 && before(probs, order[j], order[j-1]); j-- {
				order[j], order[j-1] = order[j-1], order[j]
			}
		}
		return
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case before(probs, a, b):
			return -1
		case before(probs, b, a):
			return 1
		}
		return 0
	})
}

// insertionLimit is the longest candidate list Rank sorts by insertion.
const insertionLimit = 32

// Tie is the difference below which two probabilities or scores count as equal, so that sums
// taken in another order (the wordings permuted) rank and threshold alike.
const Tie = 1e-12

func before(p []float64, a, b int) bool {
	return p[a] > p[b]+Tie || p[a] >= p[b]-Tie && a < b
}

// QuantileKind selects the rank of the conformal quantile.
type QuantileKind int

const (
	// FiniteSample is the exact split-conformal rank ⌈(n+1)(1−α)⌉. The default.
	FiniteSample QuantileKind = iota
	// HigherAtLevel reproduces torch.quantile(scores, ⌈(n+1)(1−α)⌉/n, interpolation='higher'),
	// as in the code of Kumar et al. 2023: 0-based sorted index ⌈(n−1)·⌈(n+1)(1−α)⌉/n⌉, held to
	// the last score.
	HigherAtLevel
)

// QuantileRank returns the 1-based rank of the conformal quantile among n sorted scores; a rank
// of n+1 means q̂ = ∞. It panics if α is not in (0, 1) or n < 0.
func QuantileRank(n int, alpha float64, kind QuantileKind) int {
	if !(alpha > 0 && alpha < 1) || n < 0 {
		panic("conformal: alpha outside (0, 1)")
	}
	// The 1e-9 guards (n+1)(1−α) that is an integer in exact arithmetic against rounding up.
	r := int(math.Ceil(float64(n+1)*(1-alpha) - 1e-9))
	if kind == HigherAtLevel {
		if n == 0 {
			return 1
		}
		level := float64(r) / float64(n)
		idx := int(math.Ceil(float64(n-1)*level - 1e-9))
		return min(idx, n-1) + 1
	}
	return min(r, n+1)
}

// Quantile returns the conformal quantile q̂ of sorted (ascending) calibration scores at
// level α: the QuantileRank-th smallest, or +Inf when the rank exceeds len(sorted). It panics if
// sorted is not sorted.
func Quantile(alpha float64, kind QuantileKind, sorted []float64) float64 {
	if !slices.IsSorted(sorted) {
		panic("conformal: scores not sorted")
	}
	r := QuantileRank(len(sorted), alpha, kind)
	if r > len(sorted) {
		return math.Inf(1)
	}
	return sorted[r-1]
}

// Set appends to dst the candidates k with scores[k] ≤ qhat (+Tie), plus top (the set is never empty),
// in index order, and returns it.
func Set(dst []int, scores []float64, qhat float64, top int) []int {
	for k, s := range scores {
		if s <= qhat+Tie || k == top {
			dst = append(dst, k)
		}
	}
	return dst
}

// TopMass returns the size of the smallest set of the candidates ranked first (order, as Rank
// fills it) whose probabilities sum to at least level (within Tie): the prediction set of an
// uncalibrated distribution, which has no coverage guarantee. It returns len(order) when even
// all of them fall short.
func TopMass(order []int, probs []float64, level float64) int {
	var mass float64
	for i, k := range order {
		if mass += probs[k]; mass >= level-Tie {
			return i + 1
		}
	}
	return len(order)
}

// Mondrian holds a global quantile and one per group with enough calibration data.
type Mondrian struct {
	Global float64
	Groups map[string]float64
}

// Threshold returns q̂ for group: its own when it has one, else the global one.
func (m Mondrian) Threshold(group string) float64 {
	if q, ok := m.Groups[group]; ok {
		return q
	}
	return m.Global
}

// FitMondrian computes the global quantile of scores at level α and one per group with at least
// minGroup members (groups[i] is score i's group; nil groups means global only). Scores may be
// +Inf (an unseen true answer). scores is not modified.
func FitMondrian(scores []float64, groups []string, alpha float64, kind QuantileKind, minGroup int) Mondrian {
	all := slices.Clone(scores)
	slices.Sort(all)
	m := Mondrian{Global: Quantile(alpha, kind, all)}
	if groups == nil {
		return m
	}
	by := map[string][]float64{}
	for i, g := range groups {
		by[g] = append(by[g], scores[i])
	}
	for g, s := range by {
		if len(s) < minGroup || g == "" {
			continue
		}
		slices.Sort(s)
		if m.Groups == nil {
			m.Groups = map[string]float64{}
		}
		m.Groups[g] = Quantile(alpha, kind, s)
	}
	return m
}

// FactualityScore returns the conformal factuality score of one labelled answer (Mohri and
// Hashimoto 2024, "Language models with conformal factuality guarantees"): the highest
// confidence among its false claims, −∞ when none is false. Keeping the claims whose confidence
// exceeds q̂, the Quantile of these scores over n calibration answers, keeps a new answer's
// claims all true with probability at least 1 − α when the answers are exchangeable: its kept
// claims are all true exactly when its own score is at most q̂. It panics if the lengths differ.
func FactualityScore(conf []float64, isFalse []bool) float64 {
	if len(conf) != len(isFalse) {
		panic("conformal: confidences and verdicts differ in length")
	}
	s := math.Inf(-1)
	for i, c := range conf {
		if isFalse[i] {
			s = max(s, c)
		}
	}
	return s
}
