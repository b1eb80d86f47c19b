package monitor

import (
	"encoding/binary"
	"math"
)

// The conformal test martingale: whether production's conformal scores are exchangeable with
// the calibration split's (Vovk, Nouretdinov and Gammerman 2003, "Testing exchangeability
// on-line"; Vovk, Gammerman and Shafer 2022, ch. 8).
//
// Each outcome's score z_t — of its truly acceptable answer, as the calibration questions were
// scored — gets the conformal p-value against the bag of every score before it, the
// calibration scores first:
//
//	p_t = (#{b : b > z_t} + θ_t (#{b : b = z_t} + 1)) / (|bag| + 1)
//
// with θ_t uniform in [0, 1) (read off the receipt's random id). When the calibration scores and
// the outcomes' are exchangeable, the p_t are independent and uniform, so each power martingale
// Π ε p_t^(ε−1), and their mixture over ε, is a test martingale: by Ville's inequality it ever
// reaches 1/δ with probability ≤ δ, however long it is watched. Scores larger than the
// calibration's (the model doing worse than when it was calibrated) make small p-values, and the
// martingale grows.
//
// Scores are read on a grid of 1/2048 up to 2 (LAC's and APS's scores are at most 1, RAPS's a
// little more), larger ones and +Inf in one last cell: a function of the scores, so the test
// stays exact, ties broken by θ.
const (
	cells     = 2 * 2048
	cellWidth = 1.0 / 2048
	epsilons  = 50 // the mixture's grid of ε: (k − ½)/50, k = 1…50
)

// epsilon are the mixture's ε, and logEpsilon their logs.
var epsilon, logEpsilon = func() (e, l [epsilons]float64) {
	for k := range e {
		e[k] = (float64(k) + 0.5) / epsilons
		l[k] = math.Log(e[k])
	}
	return e, l
}()

// exchange is one monitor's martingale: the bag's counts per cell in a Fenwick tree and the log
// of each power martingale.
type exchange struct {
	tree   [cells + 2]int32 // Fenwick tree over cells 0…cells (1-based)
	n      int              // the bag's size
	logM   [epsilons]float64
	max    float64 // the mixture's largest value
	logMax float64
	scored int // outcomes taken
}

func cellOf(z float64) int {
	if !(z < 2) { // +Inf, large scores (and NaN, which a receipt never carries)
		return cells
	}
	return int(z / cellWidth)
}

func (e *exchange) put(c int) {
	for i := c + 1; i < len(e.tree); i += i & -i {
		e.tree[i]++
	}
	e.n++
}

// atMost is how many of the bag lie in cells ≤ c.
func (e *exchange) atMost(c int) int {
	s := 0
	for i := c + 1; i > 0; i -= i & -i {
		s += int(e.tree[i])
	}
	return s
}

// newExchange starts a martingale whose bag holds the calibration scores.
func newExchange(reference []float64) *exchange {
	e := &exchange{max: 1}
	for _, z := range reference {
		e.put(cellOf(z))
	}
	return e
}

// add takes the next outcome's score z with tie-breaker θ ∈ [0, 1).
func (e *exchange) add(z, θ float64) {
	c := cellOf(z)
	le := e.atMost(c)
	equal := le
	if c > 0 {
		equal -= e.atMost(c - 1)
	}
	p := (float64(e.n-le) + θ*float64(equal+1)) / float64(e.n+1)
	p = max(p, 1e-300)
	lp := math.Log(p)
	top := math.Inf(-1)
	for k := range e.logM {
		e.logM[k] += logEpsilon[k] + (epsilon[k]-1)*lp
		top = max(top, e.logM[k])
	}
	// The mixture is at most its largest term: only then can it pass the largest value so far.
	if top >= e.logMax {
		if m := e.mixture(); m > e.max {
			e.max, e.logMax = m, math.Log(m)
		}
	}
	e.put(c)
	e.scored++
}

// mixture is the martingale now: the mean of the power martingales, summed from the largest.
func (e *exchange) mixture() float64 {
	top := math.Inf(-1)
	for _, l := range e.logM {
		top = max(top, l)
	}
	var sum float64
	for _, l := range e.logM {
		sum += math.Exp(l - top)
	}
	return math.Exp(top) * sum / epsilons
}

// tieOf is the tie-breaker θ of a receipt id: its last 8 bytes, random (NewID), as a number in
// [0, 1): uniform, and the same every time the monitor is computed.
func tieOf(id []byte) float64 {
	var b [8]byte
	copy(b[:], id[max(len(id)-8, 0):])
	return float64(binary.LittleEndian.Uint64(b[:])>>11) / (1 << 53)
}
