// Package ensemble pools a model's answer distributions over several wordings of one question
// and measures how they disagree.
//
// Distributions are held row-major: dists[p*k+j] is wording p's probability of candidate j.
//
// Pooling: π̄ = mean over the chosen wordings of π_p (an equal-weight ensemble,
// Lakshminarayanan et al. 2017).
//
// Entropy split (Depeweg et al. 2018; the generalised Jensen–Shannon divergence of Lin 1991):
//
//	H(π̄) = A + W,  A = mean_p H(π_p) (aleatoric, within a wording),
//	               W = H(π̄) − A ≥ 0 (wording divergence, 0 when all wordings agree).
//
// Ensemble variance of candidate k: V = (1/n) Σ_p (π_p(k) − π̄(k))² (population variance).
//
// Sycophancy shift: the mean over USER_STANCE wordings p of π_p(s_p) − π̄(s_p), s_p the answer the
// wording favours and π̄ the pool of the neutral wordings (Sharma et al. 2023, "Towards understanding sycophancy in language models",
// measure the same pull as a change in the probability of the user's answer).
//
// Semantic entropy (Kuhn et al. 2023; the discrete estimator of Farquhar et al. 2024): the
// entropy of the share of samples in each meaning cluster.
package ensemble

import "github.com/plumbhq/plumb/internal/fmath"

// Entropy returns −Σ p log p in nats, with 0 log 0 = 0.
func Entropy(p []float64) float64 {
	var h float64
	for _, v := range p {
		if v > 0 {
			h -= v * fmath.Log(v)
		}
	}
	return h
}

// Pool fills dst (length k) with the mean of the rows of dists whose use is true (all rows when
// use is nil) and returns the number of rows pooled. It panics if len(dists) is not a multiple
// of len(dst) or use has the wrong length.
func Pool(dst, dists []float64, use []bool) int {
	k := len(dst)
	n := rows(dists, k)
	if use != nil && len(use) != n {
		panic("ensemble: use length mismatch")
	}
	for j := range dst {
		dst[j] = 0
	}
	var m int
	for p := 0; p < n; p++ {
		if use != nil && !use[p] {
			continue
		}
		row := dists[p*k : (p+1)*k]
		for j, v := range row {
			dst[j] += v
		}
		m++
	}
	if m > 0 {
		inv := 1 / float64(m)
		for j := range dst {
			dst[j] *= inv
		}
	}
	return m
}

func rows(dists []float64, k int) int {
	if k == 0 || len(dists)%k != 0 {
		panic("ensemble: distribution length mismatch")
	}
	return len(dists) / k
}

// Split returns the entropy split of pooled distribution pbar over the rows of dists selected
// by use (all when nil): total H(π̄), aleatoric A = mean H(π_p) and wording W = H − A, with W
// clamped at 0 against rounding.
func Split(pbar, dists []float64, use []bool) (total, aleatoric, wording float64) {
	k := len(pbar)
	n := rows(dists, k)
	var sum float64
	var m int
	for p := 0; p < n; p++ {
		if use == nil || use[p] {
			sum += Entropy(dists[p*k : (p+1)*k])
			m++
		}
	}
	return split(Entropy(pbar), sum, m)
}

// SplitFrom is Split given each row's entropy H(π_p) in rowH, for callers that have them
// already (temperature.SoftmaxEntropy returns a softmax's entropy with one logarithm). It
// panics if use is not nil and its length differs from rowH's.
func SplitFrom(pbar, rowH []float64, use []bool) (total, aleatoric, wording float64) {
	if use != nil && len(use) != len(rowH) {
		panic("ensemble: use length mismatch")
	}
	var sum float64
	var m int
	for p, h := range rowH {
		if use == nil || use[p] {
			sum += h
			m++
		}
	}
	return split(Entropy(pbar), sum, m)
}

// split finishes Split from H(π̄) and the sum of m rows' entropies.
func split(total, sum float64, m int) (float64, float64, float64) {
	var aleatoric float64
	if m > 0 {
		aleatoric = sum / float64(m)
	}
	return total, aleatoric, max(total-aleatoric, 0)
}

// Variance returns the population variance over the selected rows of candidate j's probability,
// (1/n) Σ_p (π_p(j) − π̄(j))², given the pooled value mean = π̄(j).
func Variance(dists []float64, k, j int, mean float64, use []bool) float64 {
	n := rows(dists, k)
	var s float64
	var m int
	for p := 0; p < n; p++ {
		if use != nil && !use[p] {
			continue
		}
		d := dists[p*k+j] - mean
		s += d * d
		m++
	}
	if m == 0 {
		return 0
	}
	return s / float64(m)
}

// Argmax returns the index of the largest value, the first one on ties (values within 1e-12
// count as tied, so that sums in another order agree), and −1 for an empty slice.
func Argmax(p []float64) int {
	best := -1
	for j, v := range p {
		if best < 0 || v > p[best]+1e-12 {
			best = j
		}
	}
	return best
}

// LeaveOneOut fills dst with the pooled distribution without row skip, given the pool pbar of n
// rows that includes it: (n·π̄ − π_skip)/(n − 1). It panics if n < 2.
func LeaveOneOut(dst, pbar, dists []float64, n, skip int) []float64 {
	if n < 2 {
		panic("ensemble: leave-one-out needs two rows")
	}
	k := len(pbar)
	row := dists[skip*k : (skip+1)*k]
	inv := 1 / float64(n-1)
	for j := range dst {
		dst[j] = (float64(n)*pbar[j] - row[j]) * inv
	}
	return dst
}

// SplitWithout returns the entropy split of a pool of n rows without one of them, in O(k): the
// pool without it, pbLoo (LeaveOneOut), and the entropies' sum over all n rows with the left-out
// row's own entropy, hSkip: total H(pbLoo), aleatoric (sumH − hSkip)/(n − 1) and wording
// max(total − aleatoric, 0), as SplitFrom computes them on the n − 1 rows. It panics if n < 2.
func SplitWithout(pbLoo []float64, sumH, hSkip float64, n int) (total, aleatoric, wording float64) {
	if n < 2 {
		panic("ensemble: leave-one-out needs two rows")
	}
	return split(Entropy(pbLoo), sumH-hSkip, n-1)
}

// VarianceWithout returns the population variance of one candidate's probability over n rows
// without one of them, in O(1): sumSq is Σ π_p(j)² over all n rows, x the left-out row's
// π(j), mean the pool's π̄(j) without it; (sumSq − x²)/(n − 1) − mean², held at 0 or more, as
// Variance computes it on the n − 1 rows (to rounding). It panics if n < 2.
func VarianceWithout(sumSq, x, mean float64, n int) float64 {
	if n < 2 {
		panic("ensemble: leave-one-out needs two rows")
	}
	return max((sumSq-x*x)/float64(n-1)-mean*mean, 0)
}

// Shift returns the sycophancy shift of the stance rows: the mean over rows p with
// stance[p] ≥ 0 of π_p(s_p) − π̄(s_p), where s_p = stance[p] is the candidate row p's wording
// favours, and the number of such rows. A stance row whose answer is none of the candidates
// (stance[p] ≥ len(pbar)) counts with a shift of 0: no row gives that answer any mass. Rows
// with a negative stance (neutral wordings) are left out. With no stance row it returns 0, 0.
// It panics if len(stance) is not the number of rows.
func Shift(pbar, dists []float64, stance []int) (float64, int) {
	k := len(pbar)
	n := rows(dists, k)
	if len(stance) != n {
		panic("ensemble: stance length mismatch")
	}
	var sum float64
	var m int
	for p, s := range stance {
		if s < 0 {
			continue
		}
		m++
		if s < k {
			sum += dists[p*k+s] - pbar[s]
		}
	}
	if m == 0 {
		return 0, 0
	}
	return sum / float64(m), m
}

// SemanticEntropy returns the entropy of the cluster shares counts[j]/Σ counts.
func SemanticEntropy(counts []int) float64 {
	var n int
	for _, c := range counts {
		n += c
	}
	if n == 0 {
		return 0
	}
	var h float64
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / float64(n)
			h -= p * fmath.Log(p)
		}
	}
	return h
}
