package calibrate

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/optimize"

	"github.com/plumbhq/plumb/internal/fmath"
)

// fitMap fits the confidence map c = σ(w·f) by L2-regularised logistic regression of
// 1[k* correct] on the features f (Platt 1999), by L-BFGS from the identity map
// w₀ = [0, 1, 0, 0(, 0)], σ(logit π̄(k*)) = π̄(k*), toward which the ridge pulls: with little
// data the map stays near the uncalibrated confidence instead of flattening toward the
// intercept.
func fitMap(p *Profile, items []fitItem, tune []int, l2 float64) error {
	feats := make([][]float64, len(tune))
	ys := make([]float64, len(tune))
	forEach(items, tune, p, func(_ *scorer, a *analysis, j int, it *fitItem) {
		feats[j] = a.features(nil)
		if it.gold == a.top {
			ys[j] = 1
		}
	})
	dim := 4
	for _, f := range feats {
		dim = max(dim, len(f))
	}
	nf := float64(len(tune))
	identity := make([]float64, dim)
	identity[1] = 1
	obj := func(w, grad []float64) float64 {
		var loss float64
		if grad != nil {
			clear(grad)
		}
		for j, f := range feats {
			var x float64
			for d, v := range f {
				x += w[d] * v
			}
			// log(1 + e^x) − y·x, stably.
			loss += max(x, 0) + math.Log1p(fmath.Exp(-math.Abs(x))) - ys[j]*x
			if grad != nil {
				r := sigmoid(x) - ys[j]
				for d, v := range f {
					grad[d] += r * v
				}
			}
		}
		loss /= nf
		for d := 1; d < dim; d++ {
			loss += 0.5 * l2 * (w[d] - identity[d]) * (w[d] - identity[d])
		}
		if grad != nil {
			for d := range grad {
				grad[d] /= nf
				if d > 0 {
					grad[d] += l2 * (w[d] - identity[d])
				}
			}
		}
		return loss
	}
	res, err := optimize.Minimize(optimize.Problem{
		Func: func(w []float64) float64 { return obj(w, nil) },
		Grad: func(g, w []float64) { obj(w, g) },
	}, slices.Clone(identity), &optimize.Settings{
		GradientThreshold: 1e-7,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-10, Relative: 1e-10, Iterations: 3},
		MajorIterations:   500,
	}, &optimize.LBFGS{})
	if err != nil && res == nil {
		return &Error{Kind: Precondition, Field: "examples", Msg: "confidence map fit: " + err.Error()}
	}
	p.Map = slices.Clone(res.X)
	return nil
}
