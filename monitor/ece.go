package monitor

import (
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/plumbhq/plumb/calibrate"
)

// Resamples is how many resamples the ECE's bootstrap interval draws.
const Resamples = 500

// eceBins hold, per reliability bin (calibrate.Bins equal-width bins, as reports use), the count,
// Σd and Σd² of d = confidence − correctness: all that the ECE and its bootstrap read.
type eceBins [calibrate.Bins]struct {
	n     int
	s, ss float64
}

func (e *eceBins) add(conf float64, correct bool) {
	b := &e[calibrate.BinOf(conf)]
	d := conf - b2f(correct)
	b.n++
	b.s += d
	b.ss += d * d
}

func (e *eceBins) total() int {
	n := 0
	for b := range e {
		n += e[b].n
	}
	return n
}

// ece is Σ_b (n_b/N)|mean d_b| = Σ_b |Σd_b| / N; NaN with no outcome, as in reports.
func (e *eceBins) ece() float64 {
	var sum float64
	for b := range e {
		sum += math.Abs(e[b].s)
	}
	return sum / float64(e.total())
}

// brier is Σd² / N.
func (e *eceBins) brier() float64 {
	var sum float64
	for b := range e {
		sum += e[b].ss
	}
	return sum / float64(e.total())
}

// gap is the calibration gap, mean confidence minus accuracy: Σd / N.
func (e *eceBins) gap() float64 {
	var sum float64
	for b := range e {
		sum += e[b].s
	}
	return sum / float64(e.total())
}

// interval is an interval for the population's ECE at level 1 − δ, given the bins' counts,
// clipped to [0, 1]:
//
//	[ê − Q, ê + Q],   Q = the 1 − δ quantile of Σ_b (n_b/N)|ε_b|,   ε_b ~ N(0, σ²_b/n_b)
//
// By the triangle inequality the window's ECE ê is within Σ_b (n_b/N)|ĝ_b − g_b| of the
// population's, where ĝ_b − g_b is bin b's error in its mean gap, normal by the central limit
// theorem with the bin's variance σ²_b of confidence − correctness (0.25, a Bernoulli's largest,
// for a bin of under 10). Q, that sum's quantile, is drawn Resamples times. Unlike a bootstrap
// of ê, which misses a calibrated population's ECE of 0 in most windows (ê is biased upward and
// its resamples more so), it holds at 0 and at every ECE; it is conservative where the gaps are
// far from 0. NaN, NaN with no outcome.
func (e *eceBins) interval(δ float64, seed uint64) (lo, hi float64) {
	n := e.total()
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	var w, se [calibrate.Bins]float64
	for b := range e {
		nb := float64(e[b].n)
		if nb == 0 {
			continue
		}
		v := 0.25
		if e[b].n >= 10 {
			μ := e[b].s / nb
			v = max(e[b].ss-nb*μ*μ, 0) / (nb - 1)
		}
		w[b], se[b] = nb/float64(n), math.Sqrt(v/nb)
	}
	unit := distuv.Normal{Mu: 0, Sigma: 1, Src: rand.NewPCG(seed, 0x9e3779b97f4a7c15)}
	sums := make([]float64, Resamples)
	for r := range sums {
		for b := range e {
			if w[b] > 0 {
				sums[r] += w[b] * math.Abs(se[b]*unit.Rand())
			}
		}
	}
	slices.Sort(sums)
	q := stat.Quantile(1-δ, stat.Empirical, sums, nil)
	est := e.ece()
	return max(est-q, 0), min(est+q, 1)
}
