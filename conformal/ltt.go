package conformal

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// RiskPoint is one abstention threshold λ of a risk curve: how many calibration questions have
// confidence ≥ λ (Answered) and how many of those are wrong (Errors).
type RiskPoint struct {
	Lambda   float64
	Answered int
	Errors   int
}

// Grid returns the abstention thresholds tested by Learn-then-Test, in testing order:
// 0.99, 0.98, …, 0.00.
func Grid() []float64 {
	g := make([]float64, 100)
	for i := range g {
		g[i] = float64(99-i) / 100
	}
	return g
}

// RiskCurve returns, for each λ of Grid, the number of questions with conf ≥ λ and the errors
// among them. It panics if the lengths differ.
func RiskCurve(conf []float64, correct []bool) []RiskPoint {
	if len(conf) != len(correct) {
		panic("conformal: slice length mismatch")
	}
	idx := make([]int, len(conf))
	for i := range idx {
		idx[i] = i
	}
	// Descending confidence; cumErr[i] = errors among the i+1 most confident.
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case conf[a] > conf[b]:
			return -1
		case conf[a] < conf[b]:
			return 1
		}
		return 0
	})
	cumErr := make([]int, len(idx)+1)
	for i, j := range idx {
		cumErr[i+1] = cumErr[i]
		if !correct[j] {
			cumErr[i+1]++
		}
	}
	var out []RiskPoint
	n := 0
	for _, l := range Grid() {
		for n < len(idx) && conf[idx[n]] >= l {
			n++
		}
		out = append(out, RiskPoint{Lambda: l, Answered: n, Errors: cumErr[n]})
	}
	return out
}

// PValue returns the exact binomial (Clopper–Pearson) p-value of H0: risk > ε given errors
// among n answered: P(Binom(n, ε) ≤ errors). It is 1 when n = 0.
func PValue(errors, n int, eps float64) float64 {
	if n == 0 {
		return 1
	}
	return distuv.Binomial{N: float64(n), P: eps}.CDF(float64(errors))
}

// MinAnswered returns the smallest n at which zero errors among n answered rejects H0 at δ:
// the least n with (1 − ε)^n ≤ δ.
func MinAnswered(eps, delta float64) int {
	return int(math.Ceil(math.Log(delta)/math.Log1p(-eps) - 1e-9))
}

// Select runs fixed-sequence testing over curve (in its order, most conservative first) at
// risk ε and level δ and returns the last rejected λ, or 1 (answer nothing) when none is
// rejected. Thresholds that answer fewer than MinAnswered(ε, δ) questions are passed over
// rather than tested: they could not be rejected whatever their errors, and the choice depends
// on the confidences alone, not the labels, so the sequence stays fixed given them. It panics if
// ε or δ is not in (0, 1).
func Select(curve []RiskPoint, eps, delta float64) float64 {
	if !(eps > 0 && eps < 1 && delta > 0 && delta < 1) {
		panic("conformal: risk or level outside (0, 1)")
	}
	minN := MinAnswered(eps, delta)
	lambda := 1.0
	for _, pt := range curve {
		if pt.Answered < minN {
			continue
		}
		if PValue(pt.Errors, pt.Answered, eps) > delta {
			break
		}
		lambda = pt.Lambda
	}
	return lambda
}
