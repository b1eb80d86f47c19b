package temperature

import (
	"errors"
	"math"
	"slices"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/optimize"

	"github.com/plumbhq/plumb/internal/fmath"
	"github.com/plumbhq/plumb/internal/parallel"
)

// ErrNoData is returned by the fits when they are given no questions.
var ErrNoData = errors.New("temperature: no data to fit")

// Pooled holds labelled questions for fitting a temperature on the pooled NLL. Each question
// has n wordings of K logits each (the option logprobs), the features φ of each wording and the
// index of the gold option. The zero value is empty and ready to use.
type Pooled struct {
	qs       []pooledQuestion
	logits   []float64
	features []float64
}

type pooledQuestion struct {
	k, n, label int
	logits      int // offset into logits (n·k values)
	features    int // offset into features (n·FeatureDim values)
}

// Add appends one question: logits holds n wordings of k logits each, row-major; features holds
// the FeatureDim features of each wording (nil for global-only data, which then cannot be fitted
// adaptively); label is the gold option's index. It panics on inconsistent lengths.
func (d *Pooled) Add(k int, logits, features []float64, label int) {
	if k < 2 || len(logits) == 0 || len(logits)%k != 0 || label < 0 || label >= k {
		panic("temperature: bad pooled question")
	}
	n := len(logits) / k
	if features != nil && len(features) != n*FeatureDim {
		panic("temperature: feature length mismatch")
	}
	d.qs = append(d.qs, pooledQuestion{k: k, n: n, label: label, logits: len(d.logits), features: -1})
	d.logits = append(d.logits, logits...)
	if features != nil {
		d.qs[len(d.qs)-1].features = len(d.features)
		d.features = append(d.features, features...)
	}
}

// Len returns the number of questions.
func (d *Pooled) Len() int { return len(d.qs) }

// Reserve appends a question of n wordings × k options with gold option label, whose logits
// (and features, when withFeatures) are filled in later through Rows; it returns the question's
// index. Grow first when the sizes are known, so that the data is allocated once.
func (d *Pooled) Reserve(k, n, label int, withFeatures bool) int {
	if k < 2 || n < 1 || label < 0 || label >= k {
		panic("temperature: bad pooled question")
	}
	q := pooledQuestion{k: k, n: n, label: label, logits: len(d.logits), features: -1}
	d.logits = append(d.logits, make([]float64, n*k)...)
	if withFeatures {
		q.features = len(d.features)
		d.features = append(d.features, make([]float64, n*FeatureDim)...)
	}
	d.qs = append(d.qs, q)
	return len(d.qs) - 1
}

// Grow makes room for questions more questions holding logits logits and features features in
// all, so that as many Adds or Reserves allocate nothing.
func (d *Pooled) Grow(questions, logits, features int) {
	d.qs = slices.Grow(d.qs, questions)
	d.logits = slices.Grow(d.logits, logits)
	d.features = slices.Grow(d.features, features)
}

// Rows returns question i's logits (n×k, row-major) and features (n×FeatureDim, nil without),
// to be filled in; questions may be filled concurrently.
func (d *Pooled) Rows(i int) (logits, features []float64) {
	q := d.qs[i]
	logits = d.logits[q.logits : q.logits+q.n*q.k]
	if q.features >= 0 {
		features = d.features[q.features : q.features+q.n*FeatureDim]
	}
	return logits, features
}

// Subset returns the questions at the given indices: a view sharing d's logits and features,
// to be read, never added to.
func (d *Pooled) Subset(idx []int) *Pooled {
	s := &Pooled{qs: make([]pooledQuestion, len(idx)), logits: d.logits[:len(d.logits):len(d.logits)],
		features: d.features[:len(d.features):len(d.features)]}
	for j, i := range idx {
		s.qs[j] = d.qs[i]
	}
	return s
}

// NLL returns the mean pooled negative log-likelihood −mean log π̄_T(y) under model m.
func (d *Pooled) NLL(m Model) float64 {
	theta := m.Theta
	if len(theta) == 0 {
		theta = []float64{0}
	}
	v, _ := d.objective(theta, nil, 0)
	return v
}

// objective returns the mean pooled NLL at theta plus l2/2·|θ_{1:}|² (the intercept is not
// penalised) and, when grad is not nil, fills grad with its gradient. The questions are summed
// in ranges over the machine's cores.
func (d *Pooled) objective(theta, grad []float64, l2 float64) (float64, []float64) {
	dim := len(theta)
	workers := parallel.Workers(len(d.qs), pooledGrain)
	losses := make([]float64, workers)
	grads := make([]float64, workers*dim)
	parallel.Ranges(len(d.qs), pooledGrain, func(w, lo, hi int) {
		losses[w] = d.partial(theta, grads[w*dim:(w+1)*dim], lo, hi, grad != nil)
	})
	n := float64(len(d.qs))
	var loss float64
	if grad != nil {
		clear(grad)
	}
	for w, l := range losses {
		loss += l
		if grad != nil {
			floats.Add(grad, grads[w*dim:(w+1)*dim])
		}
	}
	loss /= n
	for i := 1; i < dim; i++ {
		loss += 0.5 * l2 * theta[i] * theta[i]
	}
	if grad != nil {
		floats.Scale(1/n, grad)
		for i := 1; i < dim; i++ {
			grad[i] += l2 * theta[i]
		}
	}
	return loss, grad
}

// pooledGrain is the fewest questions worth a goroutine of an objective evaluation.
const pooledGrain = 1024

// partial sums the loss of questions [lo, hi) and adds their gradient to g.
func (d *Pooled) partial(theta, g []float64, lo, hi int, wantGrad bool) float64 {
	dim := len(theta)
	var probs []float64
	var dq []float64 = make([]float64, dim)
	// Global scaling: one temperature for every wording.
	t0 := fmath.Exp(theta[0])
	clamped0 := t0 < MinTemperature || t0 > MaxTemperature
	t0 = Clamp(t0)
	var loss float64
	for _, q := range d.qs[lo:hi] {
		if cap(probs) < q.k {
			probs = make([]float64, q.k)
		}
		probs = probs[:q.k]
		for i := range dq {
			dq[i] = 0
		}
		var pbar float64
		for p := 0; p < q.n; p++ {
			z := d.logits[q.logits+p*q.k : q.logits+(p+1)*q.k]
			var phi []float64
			t, clamped := t0, clamped0
			if dim > 1 {
				phi = d.features[q.features+p*FeatureDim : q.features+(p+1)*FeatureDim]
				t = fmath.Exp(floats.Dot(theta, phi))
				clamped = t < MinTemperature || t > MaxTemperature
				t = Clamp(t)
			}
			Softmax(probs, z, t)
			py := probs[q.label]
			pbar += py
			if !wantGrad || clamped {
				continue
			}
			// ∂π_p(y)/∂log T = −π_p(y)(u_y − Σ_j π_j u_j), u = z/T.
			var mean float64
			for j, pj := range probs {
				mean += pj * z[j]
			}
			dlt := -py * (z[q.label] - mean) / t
			if dim == 1 {
				dq[0] += dlt
			} else {
				floats.AddScaled(dq, dlt, phi)
			}
		}
		pbar /= float64(q.n)
		pbar = math.Max(pbar, 1e-300)
		loss -= fmath.Log(pbar)
		if wantGrad {
			floats.AddScaled(g, -1/(pbar*float64(q.n)), dq)
		}
	}
	return loss
}

// Settings controls a temperature fit. A nil *Settings means the defaults.
type Settings struct {
	// L2 is the ridge penalty on the non-intercept coefficients of adaptive scaling
	// (default 1e-3). Global scaling is not penalised.
	L2 float64
	// MinImprovement is the relative NLL improvement adaptive scaling must show over global
	// scaling in cross-validation for FitAuto to choose it (default 0.005).
	MinImprovement float64
}

func (s *Settings) orDefault() Settings {
	out := Settings{L2: 1e-3, MinImprovement: 0.005}
	if s != nil {
		if s.L2 > 0 {
			out.L2 = s.L2
		}
		if s.MinImprovement > 0 {
			out.MinImprovement = s.MinImprovement
		}
	}
	return out
}

// FitGlobal returns the single temperature minimising the pooled NLL, found in log T by
// L-BFGS with the analytic gradient.
func FitGlobal(d *Pooled) (Model, error) {
	return fit(d, []float64{0}, 0)
}

// FitAdaptive returns log T(φ) = θ·φ minimising the pooled NLL plus (L2/2)|θ_{1:}|², by
// L-BFGS with the analytic gradient, started from the global fit. Every question must have
// been added with features.
func FitAdaptive(d *Pooled, s *Settings) (Model, error) {
	g, err := FitGlobal(d)
	if err != nil {
		return Model{}, err
	}
	return fitAdaptiveFrom(d, g, s)
}

func fitAdaptiveFrom(d *Pooled, g Model, s *Settings) (Model, error) {
	set := s.orDefault()
	for _, q := range d.qs {
		if q.features < 0 {
			panic("temperature: adaptive fit on questions without features")
		}
	}
	init := make([]float64, FeatureDim)
	init[0] = g.Theta[0]
	return fit(d, init, set.L2)
}

func fit(d *Pooled, init []float64, l2 float64) (Model, error) {
	if d.Len() == 0 {
		return Model{}, ErrNoData
	}
	c := newOnce(len(init), func(x, grad []float64) float64 {
		v, _ := d.objective(x, grad, l2)
		return v
	})
	res, err := optimize.Minimize(c.problem(), init, lbfgsSettings(), &optimize.LBFGS{})
	if err != nil && res == nil {
		return Model{}, err
	}
	// Minimize reports an error when it stops on a line-search failure at the optimum's
	// floating-point floor; the location it returns is still the best found.
	theta := append([]float64(nil), res.X...)
	if len(theta) == 1 {
		theta[0] = math.Log(Clamp(fmath.Exp(theta[0])))
	}
	return Model{Theta: theta}, nil
}

// once evaluates an objective and its gradient together and keeps the last point: gonum's
// optimizers ask for the value and then the gradient at the same point, and both come from
// one pass over the data.
type once struct {
	f       func(x, grad []float64) float64
	x, grad []float64
	v       float64
	have    bool
}

func newOnce(dim int, f func(x, grad []float64) float64) *once {
	return &once{f: f, x: make([]float64, dim), grad: make([]float64, dim)}
}

func (o *once) at(x []float64) {
	if o.have && floats.Equal(x, o.x) {
		return
	}
	o.v = o.f(x, o.grad)
	copy(o.x, x)
	o.have = true
}

func (o *once) problem() optimize.Problem {
	return optimize.Problem{
		Func: func(x []float64) float64 { o.at(x); return o.v },
		Grad: func(grad, x []float64) { o.at(x); copy(grad, o.grad) },
	}
}

// lbfgsSettings stops L-BFGS at a gradient norm of 1e-7 or when the objective has not moved by
// 1e-10 for three iterations (on REFERENCE.md's data the global T lands within 1e-6 of scipy's
// bounded scalar search).
func lbfgsSettings() *optimize.Settings {
	return &optimize.Settings{
		GradientThreshold: 1e-7,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-10, Relative: 1e-10, Iterations: 3},
		MajorIterations:   500,
	}
}

// Method names a temperature-scaling method.
type Method int

const (
	// MethodAuto fits global and adaptive scaling and keeps adaptive only where 2-fold
	// cross-validation prefers it (FitAuto). The zero value: the default of a fit.
	MethodAuto Method = iota
	// MethodNone keeps T = 1.
	MethodNone
	// MethodGlobal fits one temperature.
	MethodGlobal
	// MethodAdaptive fits log T = θ·φ.
	MethodAdaptive
)

var methodNames = [...]string{"auto", "none", "global", "adaptive"}

// String returns the method's name as the CLI and reports spell it.
func (m Method) String() string {
	if m >= 0 && int(m) < len(methodNames) {
		return methodNames[m]
	}
	return "unknown"
}

// CVLimit caps the questions FitAuto cross-validates on; the chosen method is then fitted on
// all of them.
const CVLimit = 20000

// FitAuto chooses between global and adaptive scaling by 2-fold cross-validation on d (the
// folds are the even and odd positions among d's first CVLimit questions, so shuffle d first), choosing adaptive only when
// its held-out NLL is below global's by at least MinImprovement (relative), and returns the
// chosen method refitted on all of d.
func FitAuto(d *Pooled, s *Settings) (Model, Method, error) {
	set := s.orDefault()
	if d.Len() < 4 {
		m, err := FitGlobal(d)
		return m, MethodGlobal, err
	}
	// The choice needs no more than CVLimit questions: the folds take the first CVLimit.
	var even, odd []int
	for i := 0; i < min(d.Len(), CVLimit); i++ {
		if i%2 == 0 {
			even = append(even, i)
		} else {
			odd = append(odd, i)
		}
	}
	folds := [2]*Pooled{d.Subset(even), d.Subset(odd)}
	var nllG, nllA float64
	for f := 0; f < 2; f++ {
		train, test := folds[f], folds[1-f]
		g, err := FitGlobal(train)
		if err != nil {
			return Model{}, MethodNone, err
		}
		a, err := fitAdaptiveFrom(train, g, &set)
		if err != nil {
			return Model{}, MethodNone, err
		}
		nllG += test.NLL(g) * float64(test.Len())
		nllA += test.NLL(a) * float64(test.Len())
	}
	if nllA <= nllG*(1-set.MinImprovement) {
		m, err := FitAdaptive(d, &set)
		return m, MethodAdaptive, err
	}
	m, err := FitGlobal(d)
	return m, MethodGlobal, err
}
