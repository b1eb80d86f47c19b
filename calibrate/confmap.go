package calibrate

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/optimize"
	"gonum.org/v1/gonum/stat"

	"github.com/plumbhq/plumb/internal/fmath"
)

// MapMethod selects the confidence map of a fit, and says which one a profile kept.
type MapMethod int

const (
	// MapAuto keeps the simplest of none, Platt and logistic that no richer one beats in
	// cross-validated log loss on tune by more than two standard errors (mapData.choose). The
	// zero value: the default.
	MapAuto MapMethod = iota
	// MapNone keeps c = π̄(k*), the identity map.
	MapNone
	// MapPlatt fits c = σ(a + b·logit π̄(k*)) (Platt 1999): a map of the confidence alone,
	// which keeps the order of the confidences (when b > 0) and so their discrimination.
	MapPlatt
	// MapLogistic fits c = σ(w·f) on every feature f = [1, logit π̄(k*), W, √V(, logit tc(k*))].
	MapLogistic
)

var mapNames = [...]string{"auto", "none", "platt", "logistic"}

// String returns the map's name as the CLI and reports spell it.
func (m MapMethod) String() string {
	if m >= 0 && int(m) < len(mapNames) {
		return mapNames[m]
	}
	return "unknown"
}

// features returns how many of the features f the map uses (0: the identity map).
func (m MapMethod) features(all int) int {
	switch m {
	case MapPlatt:
		return 2
	case MapLogistic:
		return all
	}
	return 0
}

// mapData is the tune split as the confidence map sees it: each question's features and
// whether k* was right.
type mapData struct {
	feats [][]float64
	conf  []float64 // π̄(k*), the identity map's confidence
	ys    []float64
	dim   int // the length of the longest feature vector
}

// fitMap fits the profile's confidence map on tune (docs/DESIGN.md "Fitting a profile", step 2)
// and returns why it chose what it did.
func fitMap(p *Profile, items []fitItem, tune []int, method MapMethod, l2 float64) (string, error) {
	d := mapData{feats: make([][]float64, len(tune)), conf: make([]float64, len(tune)), ys: make([]float64, len(tune)), dim: 2}
	forEach(items, tune, p, func(_ *scorer, a *analysis, j int, it *fitItem) {
		d.feats[j] = a.features(nil)
		d.conf[j] = a.pbar[a.top]
		if int(it.gold) == a.top {
			d.ys[j] = 1
		}
	})
	for _, f := range d.feats {
		d.dim = max(d.dim, len(f))
	}
	reason := ""
	if method == MapAuto {
		method, reason = d.choose(l2)
	}
	p.MapMethod = method
	k := method.features(d.dim)
	if k == 0 {
		p.Map = nil
		return reason, nil
	}
	w, err := d.fit(k, l2, nil)
	if err != nil {
		return "", &Error{Kind: Precondition, Field: "examples", Msg: "confidence map fit: " + err.Error()}
	}
	p.Map = w
	return reason, nil
}

// eventsPerFeature is how many tune questions of the rarer outcome (right or wrong) auto wants
// per feature of the logistic map beyond its intercept (Peduzzi et al. 1996's ten events per
// variable of a logistic regression).
const eventsPerFeature = 10

// significance is how many standard errors of the per-question difference a richer map's
// cross-validated log loss must gain to be kept. Breiman et al. (1984) ask for one, but the
// naive standard error of a cross-validated difference underestimates its spread (Bengio and
// Grandvalet 2004: the folds share their questions), so plumb asks for two, about a one-sided
// test at 0.025.
const significance = 2

// choose picks the map by 2-fold cross-validation on the tune questions (even and odd
// positions, which the fit's seeded shuffle makes random): the candidates none, Platt and
// logistic in order of complexity, each kept over the simpler one chosen so far only when its
// held-out log loss is lower by more than significance standard errors of the per-question
// difference (after Breiman et al. 1984's one-standard-error rule). Platt scaling keeps the
// order of the confidences, so it cannot cost discrimination; the logistic map's other features
// can reorder them, and a map fitted on little data can improve the log loss of its own fold by
// chance while losing discrimination, so it is considered only when the tune split has
// eventsPerFeature questions of the rarer outcome per feature it adds. It returns the choice and
// the comparison in words.
func (d *mapData) choose(l2 float64) (MapMethod, string) {
	var right float64
	for _, y := range d.ys {
		right += y
	}
	rarer := int(min(right, float64(len(d.ys))-right))
	losses := map[MapMethod][]float64{}
	for _, m := range []MapMethod{MapNone, MapPlatt, MapLogistic} {
		losses[m] = d.crossValidated(m.features(d.dim), l2)
	}
	best := MapNone
	why := fmt.Sprintf("cross-validated log loss on tune: none %.4f, platt %.4f, logistic %.4f", mean(losses[MapNone]),
		mean(losses[MapPlatt]), mean(losses[MapLogistic]))
	for _, m := range []MapMethod{MapPlatt, MapLogistic} {
		if need := eventsPerFeature * (m.features(d.dim) - 1); m == MapLogistic && rarer < need {
			why += fmt.Sprintf("; %s not considered: %d tune questions of the rarer outcome, %d needed", m, rarer, need)
			continue
		}
		diff := make([]float64, len(losses[m]))
		for i := range diff {
			diff[i] = losses[best][i] - losses[m][i]
		}
		gain, se := stat.MeanStdDev(diff, nil)
		se /= math.Sqrt(float64(len(diff)))
		verdict := "is within"
		if gain > significance*se {
			verdict = "exceeds"
		}
		why += fmt.Sprintf("; %s's gain over %s, %.4f, %s two standard errors (2 × %.4f)", m, best, gain, verdict, se)
		if gain > significance*se {
			best = m
		}
	}
	return best, "kept " + best.String() + ": " + why
}

func mean(x []float64) float64 { return stat.Mean(x, nil) }

// crossValidated returns each tune question's log loss under the map of the first k features
// fitted on the other fold (k = 0: the identity map, c = π̄(k*)).
func (d *mapData) crossValidated(k int, l2 float64) []float64 {
	out := make([]float64, len(d.ys))
	for fold := range 2 {
		var train []int
		for i := range d.ys {
			if i%2 != fold {
				train = append(train, i)
			}
		}
		var w []float64
		if k > 0 {
			var err error
			if w, err = d.fit(k, l2, train); err != nil {
				w = identityMap(k)
			}
		}
		for i := fold; i < len(d.ys); i += 2 {
			c := d.conf[i]
			if k > 0 {
				c = sigmoid(d.linear(i, w))
			}
			out[i] = logLoss(c, d.ys[i])
		}
	}
	return out
}

// logLoss is the binary log loss of c for outcome y, c held to [1e-12, 1 − 1e-12].
func logLoss(c, y float64) float64 {
	c = min(max(c, 1e-12), 1-1e-12)
	switch y { // one logarithm for an outcome of 0 or 1: the other term is 0·log, which adds 0
	case 1:
		return -math.Log(c)
	case 0:
		return -math.Log(1 - c)
	}
	return -(y*math.Log(c) + (1-y)*math.Log(1-c))
}

// linear returns w·f of question i over the first len(w) features.
func (d *mapData) linear(i int, w []float64) float64 {
	var x float64
	for j, v := range d.feats[i] {
		if j < len(w) {
			x += w[j] * v
		}
	}
	return x
}

// identityMap returns the weights of c = π̄(k*) over k features: [0, 1, 0, …].
func identityMap(k int) []float64 {
	w := make([]float64, k)
	w[1] = 1
	return w
}

// fit fits the map on the first k features of the questions idx (nil: all) by L2-regularised
// logistic regression of 1[k* correct] (Platt 1999), by L-BFGS from the identity map, toward
// which the ridge pulls: with little data the map stays near the uncalibrated confidence
// instead of flattening toward the intercept.
func (d *mapData) fit(k int, l2 float64, idx []int) ([]float64, error) {
	if idx == nil {
		idx = make([]int, len(d.ys))
		for i := range idx {
			idx[i] = i
		}
	}
	nf := float64(len(idx))
	identity := identityMap(k)
	obj := func(w, grad []float64) float64 {
		var loss float64
		if grad != nil {
			clear(grad)
		}
		for _, i := range idx {
			x := d.linear(i, w)
			y := d.ys[i]
			// log(1 + e^x) − y·x, stably.
			loss += max(x, 0) + math.Log1p(fmath.Exp(-math.Abs(x))) - y*x
			if grad != nil {
				r := sigmoid(x) - y
				for j, v := range d.feats[i][:min(k, len(d.feats[i]))] {
					grad[j] += r * v
				}
			}
		}
		loss /= nf
		for j := 1; j < k; j++ {
			loss += 0.5 * l2 * (w[j] - identity[j]) * (w[j] - identity[j])
		}
		if grad != nil {
			for j := range grad {
				grad[j] /= nf
				if j > 0 {
					grad[j] += l2 * (w[j] - identity[j])
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
		return nil, err
	}
	return slices.Clone(res.X), nil
}
