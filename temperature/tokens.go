package temperature

import (
	"math"

	"gonum.org/v1/gonum/optimize"

	"github.com/plumbhq/plumb/internal/fmath"
	"github.com/plumbhq/plumb/internal/parallel"
)

// Token is one generated token: its logprob, the logprobs of its top alternatives and the index
// of the chosen token among them (−1 when absent).
type Token struct {
	Logprob  float64
	Top      []float64
	ChosenAt int
}

// Tokens holds labelled sampled answers for fitting a global temperature on the binary NLL of
// the token confidence against correctness: for each question, the samples of its chosen
// answer (each a token list) and whether that answer was right. The confidence of a question is
// the mean tc of its samples. The zero value is empty and ready to use.
type Tokens struct {
	qs      []tokenQuestion
	samples []int     // per sample: its first token in toks; samples of q are qs[q].first..
	toks    []int     // per token: its first entry in entries; entries end at the next token's
	chosen  []float64 // per token: the chosen token's logprob
	entries []float64 // per token: the logprobs of its distribution (top, chosen if absent, log residual)
}

type tokenQuestion struct {
	first, n int // samples[first : first+n]
	correct  bool
}

// Add appends one question.
func (d *Tokens) Add(samples [][]Token, correct bool) {
	d.qs = append(d.qs, tokenQuestion{first: len(d.samples), n: len(samples), correct: correct})
	for _, s := range samples {
		d.samples = append(d.samples, len(d.toks))
		for _, tok := range s {
			d.toks = append(d.toks, len(d.entries))
			d.chosen = append(d.chosen, tok.Logprob)
			mass := 0.0
			if tok.ChosenAt < 0 {
				d.entries = append(d.entries, tok.Logprob)
				mass += fmath.Exp(tok.Logprob)
			}
			for _, l := range tok.Top {
				d.entries = append(d.entries, l)
				mass += fmath.Exp(l)
			}
			if r := 1 - mass; r > 1e-12 {
				d.entries = append(d.entries, fmath.Log(r))
			}
		}
	}
}

// Len returns the number of questions.
func (d *Tokens) Len() int { return len(d.qs) }

// tokenEnd returns the end of token i's entries.
func (d *Tokens) tokenEnd(i int) int {
	if i+1 < len(d.toks) {
		return d.toks[i+1]
	}
	return len(d.entries)
}

// sampleEnd returns the end of sample j's tokens.
func (d *Tokens) sampleEnd(j int) int {
	if j+1 < len(d.samples) {
		return d.samples[j+1]
	}
	return len(d.toks)
}

// objective returns the mean binary NLL at log T = x and its derivative, summed in ranges over
// the machine's cores.
func (d *Tokens) objective(x float64) (float64, float64) {
	t := fmath.Exp(x)
	clamped := t < MinTemperature || t > MaxTemperature
	t = Clamp(t)
	workers := parallel.Workers(len(d.qs), tokensGrain)
	sums := make([]float64, 2*workers)
	parallel.Ranges(len(d.qs), tokensGrain, func(w, lo, hi int) {
		sums[2*w], sums[2*w+1] = d.partial(t, lo, hi)
	})
	var loss, grad float64
	for w := range workers {
		loss += sums[2*w]
		grad += sums[2*w+1]
	}
	n := float64(len(d.qs))
	if clamped {
		grad = 0
	}
	return loss / n, grad / n
}

// tokensGrain is the fewest questions worth a goroutine of an objective evaluation.
const tokensGrain = 256

func (d *Tokens) partial(t float64, lo, hi int) (loss, grad float64) {
	inv := 1 / t
	for _, q := range d.qs[lo:hi] {
		var c, dc float64
		for j := q.first; j < q.first+q.n; j++ {
			ts, te := d.samples[j], d.sampleEnd(j)
			if ts == te {
				c++
				continue
			}
			var lp, dlp float64
			for i := ts; i < te; i++ {
				es := d.entries[d.toks[i]:d.tokenEnd(i)]
				m := d.chosen[i]
				for _, l := range es {
					m = math.Max(m, l)
				}
				var s, sl float64
				for _, l := range es {
					w := fmath.Exp((l - m) * inv)
					s += w
					sl += w * l
				}
				lp += (d.chosen[i]-m)*inv - fmath.Log(s)
				dlp += (sl/s - d.chosen[i]) * inv
			}
			n := float64(te - ts)
			tc := fmath.Exp(lp / n)
			c += tc
			dc += tc * dlp / n
		}
		ns := float64(q.n)
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
	return loss, grad
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
	c := newOnce(1, func(x, grad []float64) float64 {
		v, g := d.objective(x[0])
		grad[0] = g
		return v
	})
	res, err := optimize.Minimize(c.problem(), []float64{0}, lbfgsSettings(), &optimize.LBFGS{})
	if err != nil && res == nil {
		return Model{}, err
	}
	return Global(Clamp(fmath.Exp(res.X[0]))), nil
}
