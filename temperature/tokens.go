package temperature

import (
	"math"

	"gonum.org/v1/gonum/optimize"
)

// Token is one generated token: its logprob, the logprobs of its top alternatives and the index
// of the chosen token among them (−1 when absent).
type Token struct {
	Logprob  float64
	Top      []float64
	ChosenAt int
}

// SampleConfidence returns tc = exp(mean over tokens of log p_t(token)) for one sample, and 1
// for a sample without tokens.
func SampleConfidence(tokens []Token, t float64) float64 {
	if len(tokens) == 0 {
		return 1
	}
	var s float64
	for _, tok := range tokens {
		s += TokenLogProb(tok.Logprob, tok.Top, tok.ChosenAt, t)
	}
	return math.Exp(s / float64(len(tokens)))
}

// Tokens holds labelled sampled answers for fitting a global temperature on the binary NLL of
// the token confidence against correctness: for each question, the samples of its chosen
// answer (each a token list) and whether that answer was right. The confidence of a question is
// the mean tc of its samples. The zero value is empty and ready to use.
type Tokens struct {
	qs []tokenQuestion
}

type tokenQuestion struct {
	samples [][]Token
	correct bool
}

// Add appends one question.
func (d *Tokens) Add(samples [][]Token, correct bool) {
	d.qs = append(d.qs, tokenQuestion{samples: samples, correct: correct})
}

// Len returns the number of questions.
func (d *Tokens) Len() int { return len(d.qs) }

// objective returns the mean binary NLL at log T = x and its derivative.
func (d *Tokens) objective(x float64) (float64, float64) {
	t := math.Exp(x)
	clamped := t < MinTemperature || t > MaxTemperature
	t = Clamp(t)
	var loss, grad float64
	for _, q := range d.qs {
		var c, dc float64
		for _, s := range q.samples {
			if len(s) == 0 {
				c++
				continue
			}
			var lp, dlp float64
			for _, tok := range s {
				l, dl := tokenLogProbGrad(tok.Logprob, tok.Top, tok.ChosenAt, t)
				lp += l
				dlp += dl
			}
			n := float64(len(s))
			tc := math.Exp(lp / n)
			c += tc
			dc += tc * dlp / n
		}
		ns := float64(len(q.samples))
		c, dc = c/ns, dc/ns
		c = math.Min(math.Max(c, 1e-12), 1-1e-12)
		if q.correct {
			loss -= math.Log(c)
			grad -= dc / c
		} else {
			loss -= math.Log(1 - c)
			grad += dc / (1 - c)
		}
	}
	n := float64(len(d.qs))
	if clamped {
		grad = 0
	}
	return loss / n, grad / n
}

// NLL returns the mean binary NLL of the token confidence at temperature t.
func (d *Tokens) NLL(t float64) float64 {
	v, _ := d.objective(math.Log(t))
	return v
}

// FitTokens returns the global temperature minimising the binary NLL of the token confidence
// against correctness, found in log T by L-BFGS with the analytic gradient.
func FitTokens(d *Tokens) (Model, error) {
	if d.Len() == 0 {
		return Model{}, ErrNoData
	}
	p := optimize.Problem{
		Func: func(x []float64) float64 { v, _ := d.objective(x[0]); return v },
		Grad: func(g, x []float64) { _, g[0] = d.objective(x[0]) },
	}
	res, err := optimize.Minimize(p, []float64{0}, &optimize.Settings{
		GradientThreshold: 1e-9,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-12, Relative: 1e-12, Iterations: 20},
		MajorIterations:   200,
	}, &optimize.LBFGS{})
	if err != nil && res == nil {
		return Model{}, err
	}
	return Global(Clamp(math.Exp(res.X[0]))), nil
}
