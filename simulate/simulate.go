// Package simulate generates LLM-like evidence with known truth, seeded and deterministic, so
// that plumb's statistics can be checked where the right answers are known (docs/DESIGN.md
// "Simulator").
//
// The generative model, per question:
//   - a class: easy (gold margin U(4, 7) in the true logits), medium (margin U(0.5, 4)),
//     hopeless (no margin: true logits N(0, 0.2²)) or ambiguous (two readings);
//   - true logits u; the gold answer is drawn from softmax(u), so softmax(u) is calibrated;
//   - each wording p sees u_p = u + σ·ε_p (wording noise, ε_p standard normal per option) and
//     reports z_p = T*·u_p: a model miscalibrated by temperature T* (T* > 1 overconfident), so
//     that temperature scaling at T = T* restores softmax(u_p);
//   - an ambiguous question has two readings with distinct answers g₁, g₂; each wording follows
//     one of them (alternating) with a confident margin, and the gold is the reading the user
//     meant, g₁ or g₂ with probability ½;
//   - a USER_STANCE wording is drawn like a neutral one and then moves probability mass Pull to
//     its stance s (a wrong answer) from the other answers in proportion, so its shift
//     π_p(s) − π̄(s) has mean Pull (less where 1 − π_p(s) < Pull; Truth.Pull records the mass
//     actually moved);
//   - with samples, each wording draws Samples completions from its distribution, written in
//     one of several surface forms that normalise alike ("The Nile", "nile", "Nile."), each
//     with Tokens tokens whose geometric-mean probability is the answer's probability, and with
//     probability MissRate the gold is an answer the model never produces.
//
// Logprobs are written as LLM APIs serve them: a model computes them in float32 and an API
// prints the float32's shortest decimal (the MMLU file in testdata has 7 or 8 significant digits),
// so every simulated logprob is the float64 nearest to that decimal.
package simulate

import (
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/temperature"
)

// Class is a question's kind in the simulator.
type Class int

// The classes.
const (
	Easy Class = iota
	Medium
	Hopeless
	Ambiguous
)

func (c Class) String() string { return [...]string{"easy", "medium", "hopeless", "ambiguous"}[c] }

// Config describes a simulated data set. A nil *Config means the defaults.
type Config struct {
	Questions   int     // default 1000
	Seed        uint64  // the same seed gives the same data
	Options     int     // answers per question (default 4)
	Wordings    int     // neutral wordings (default 10)
	Temperature float64 // true miscalibration T* (default 1.5)
	Noise       float64 // wording noise σ (default 0.5; negative means none)
	// Class mix: the fractions of hopeless and ambiguous questions (default 0.15 each; negative
	// means none); the rest are easy and medium in equal parts.
	Hopeless, Ambiguous float64
	Stance              int     // USER_STANCE wordings per question (default 0)
	Pull                float64 // probability mass a stance wording moves to its stance (default 0.3)
	Samples             int     // > 0: sampled completions per wording instead of options
	Tokens              int     // tokens per sample (default 8 with samples)
	TopK                int     // top_logprobs per token (default 5)
	MissRate            float64 // samples: fraction of questions whose gold is never produced
	Group               string  // group of every question; empty means "easy", "medium", … by class
	// StanceShare is the share of questions whose users state a belief (have the Stance
	// wordings); 0 means every question, when Stance > 0.
	StanceShare float64
	// Claims > 0 makes long answers of that many claims (docs/DESIGN.md "Long answers"), whose
	// wordings carry Samples passages (default 10); Judge adds a judge's support to every
	// sample; FalseShare is the share of invented claims (default 0.4).
	Claims     int
	Judge      bool
	FalseShare float64
}

func (c *Config) withDefaults() Config {
	var o Config
	if c != nil {
		o = *c
	}
	def := func(v *float64, d float64) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = 0
		}
	}
	if o.Questions == 0 {
		o.Questions = 1000
	}
	if o.Options == 0 {
		o.Options = 4
	}
	if o.Wordings == 0 {
		o.Wordings = 10
	}
	def(&o.Temperature, 1.5)
	def(&o.Noise, 0.5)
	def(&o.Hopeless, 0.15)
	def(&o.Ambiguous, 0.15)
	def(&o.Pull, 0.3)
	if o.Samples > 0 && o.Tokens == 0 {
		o.Tokens = 8
	}
	if o.TopK == 0 {
		o.TopK = 5
	}
	if o.Claims > 0 && o.Samples == 0 {
		o.Samples = 10
	}
	def(&o.FalseShare, 0.4)
	return o
}

// Truth is what the simulator knows about one question.
type Truth struct {
	Class      Class
	Gold       string
	Stance     string  // the stance of its USER_STANCE wordings, if any
	Pull       float64 // mean probability mass moved to the stance (0 without stance wordings)
	Confidence float64 // true probability that the model's pooled answer is right (options)
	// Long answers: per claim, whether it is true, and whether the user's stance slants toward
	// it (an invented claim the stance wordings support more).
	Claims  []bool
	Slanted []bool
}

// Generate returns cfg.Questions labelled questions and their truths.
func Generate(cfg *Config) ([]calibrate.Example, []Truth) {
	exs := make([]calibrate.Example, 0, cfg.withDefaults().Questions)
	var truths []Truth
	for ex, t := range All(cfg) {
		exs = append(exs, ex)
		truths = append(truths, t)
	}
	return exs, truths
}

// All yields the questions Generate returns, one at a time, so that a large set can be
// written out without being held in memory.
func All(cfg *Config) iter.Seq2[calibrate.Example, Truth] {
	c := cfg.withDefaults()
	return func(yield func(calibrate.Example, Truth) bool) {
		rng := rand.New(rand.NewPCG(c.Seed, 0x73696d))
		for i := 0; i < c.Questions; i++ {
			ask := question
			if c.Claims > 0 {
				ask = longAnswer
			}
			if !yield(ask(rng, &c, i)) {
				return
			}
		}
	}
}

var labels = []string{"A", "B", "C", "D", "E", "F", "G", "H", "I", "J"}

// answerForms are the surface forms of sampled answers; all of one row normalise alike.
var answerForms = [][]string{
	{"The Nile", "nile", "Nile."}, {"Amazon", "the Amazon", "AMAZON"}, {"Yangtze", "the yangtze", "Yangtze!"},
	{"1,000", "1000", "1000.0"}, {"Mississippi", "the Mississippi", "mississippi."}, {"42", "42.0", "+42"},
	{"Danube", "the Danube", "danube"}, {"Paris, France", "paris france", "Paris France."},
	{"Blue whale", "the blue whale", "a blue whale"}, {"3.5", "3.50", "3.5."},
}

// truthOf draws a question's class, its true logits u (or, ambiguous, its two readings) and
// its gold answer; Truth.Confidence is the true probability of the gold.
func truthOf(rng *rand.Rand, c *Config) (t Truth, u []float64, readings [2]int, gold int) {
	k := c.Options
	switch x := rng.Float64(); {
	case x < c.Hopeless:
		t.Class = Hopeless
	case x < c.Hopeless+c.Ambiguous:
		t.Class = Ambiguous
	case x < c.Hopeless+c.Ambiguous+(1-c.Hopeless-c.Ambiguous)/2:
		t.Class = Easy
	default:
		t.Class = Medium
	}
	// True logits and the gold (or the two readings).
	u = make([]float64, k)
	switch t.Class {
	case Hopeless:
		for j := range u {
			u[j] = 0.2 * rng.NormFloat64()
		}
		gold = sampleIndex(rng, temperature.Softmax(nil, u, 1))
	case Ambiguous:
		readings[0] = rng.IntN(k)
		readings[1] = (readings[0] + 1 + rng.IntN(k-1)) % k
		gold = readings[rng.IntN(2)]
	default:
		lo, hi := 4.0, 7.0
		if t.Class == Medium {
			lo, hi = 0.5, 4
		}
		top := rng.IntN(k)
		for j := range u {
			u[j] = rng.NormFloat64()
		}
		u[top] = maxOf(u) + lo + (hi-lo)*rng.Float64()
		gold = sampleIndex(rng, temperature.Softmax(nil, u, 1))
	}
	t.Confidence = temperature.Softmax(nil, u, 1)[gold]

	return t, u, readings, gold
}

// wordingDists draws each wording's distribution over the options: neutral wordings around
// the true logits (or one of the two readings), then the stance wordings, pulled toward stance;
// framings[p] is true for a stance wording, pulled the mass moved in all.
func wordingDists(rng *rand.Rand, c *Config, class Class, u []float64, readings [2]int, stance int) (dists [][]float64, framings []bool, pulled float64) {
	k := c.Options
	for p := 0; p < c.Wordings+c.Stance; p++ {
		up := make([]float64, k)
		if class == Ambiguous {
			r := readings[p%2]
			for j := range up {
				up[j] = 0.3 * rng.NormFloat64()
			}
			up[r] += 4 + rng.Float64()
		} else {
			for j := range up {
				up[j] = u[j] + c.Noise*rng.NormFloat64()
			}
		}
		for j := range up {
			up[j] *= c.Temperature
		}
		pi := temperature.Softmax(nil, up, 1)
		isStance := p >= c.Wordings
		if isStance {
			moved := math.Min(c.Pull, 1-pi[stance])
			rest := 1 - pi[stance]
			for j := range pi {
				if j != stance {
					pi[j] -= moved * pi[j] / rest
				}
			}
			pi[stance] += moved
			pulled += moved
		}
		dists = append(dists, pi)
		framings = append(framings, isStance)
	}
	return dists, framings, pulled
}

func question(rng *rand.Rand, c *Config, i int) (calibrate.Example, Truth) {
	if c.StanceShare > 0 && c.Stance > 0 {
		// Only some users state a belief (drawn only then, so that other data sets stay as
		// they were).
		cc := *c
		if rng.Float64() >= c.StanceShare {
			cc.Stance = 0
		}
		c = &cc
	}
	t, u, readings, gold := truthOf(rng, c)
	k := c.Options
	stance := -1
	if c.Stance > 0 {
		stance = (gold + 1 + rng.IntN(k-1)) % k
	}
	q := calibrate.Question{ID: fmt.Sprintf("sim-%06d", i), Group: c.Group}
	if q.Group == "" {
		q.Group = t.Class.String()
	}
	dists, framings, pulled := wordingDists(rng, c, t.Class, u, readings, stance)
	if c.Stance > 0 {
		t.Pull = pulled / float64(c.Stance)
	}

	var answers []string // answer text of each option index (samples)
	missing := c.Samples > 0 && rng.Float64() < c.MissRate
	if c.Samples > 0 {
		off := rng.IntN(len(answerForms))
		for j := 0; j < k; j++ {
			answers = append(answers, answerForms[(off+j)%len(answerForms)][0])
		}
	}
	for p, pi := range dists {
		para := calibrate.Paraphrase{Prompt: fmt.Sprintf("wording %d", p+1)}
		if framings[p] {
			para.Framing = calibrate.UserStance
			if c.Samples > 0 {
				para.Stance = answers[stance]
			} else {
				para.Stance = labels[stance]
			}
			para.Prompt = "I'm fairly sure it's " + para.Stance + ", right? " + para.Prompt
		}
		if c.Samples == 0 {
			for j, v := range pi {
				para.Options = append(para.Options, calibrate.Option{Label: labels[j], Logprob: float32Decimal(math.Log(math.Max(v, 1e-300)))})
			}
		} else {
			off := rng.IntN(len(answerForms))
			for s := 0; s < c.Samples; s++ {
				a := sampleIndex(rng, pi)
				form := answerForms[(indexOfForm(answers[a])+0)%len(answerForms)]
				text := form[(off+s)%len(form)]
				para.Samples = append(para.Samples, calibrate.Sample{Text: text, Tokens: tokens(rng, c, pi[a])})
			}
		}
		q.Paraphrases = append(q.Paraphrases, para)
	}
	if c.Samples > 0 {
		t.Gold = answers[gold]
		if missing {
			t.Gold = "an answer the model never gives"
		}
	} else {
		t.Gold = labels[gold]
	}
	if stance >= 0 {
		t.Stance = q.Paraphrases[len(q.Paraphrases)-1].Stance
	}
	return calibrate.Example{Question: q, Label: calibrate.Label{Answers: []string{t.Gold}}}, t
}

// float32Decimal returns the float64 nearest to the shortest decimal of float32(x), the value
// an API that prints a float32 logprob serves.
func float32Decimal(x float64) float64 {
	v, err := strconv.ParseFloat(strconv.FormatFloat(x, 'g', -1, 32), 64)
	if err != nil {
		panic(err) // a finite float32's decimal always parses
	}
	return v
}

func indexOfForm(s string) int {
	for i, f := range answerForms {
		if f[0] == s {
			return i
		}
	}
	return 0
}

// tokens returns c.Tokens tokens whose chosen probabilities have geometric mean prob, each with
// c.TopK top_logprobs (the chosen token first) and a residual.
func tokens(rng *rand.Rand, c *Config, prob float64) []calibrate.Token {
	out := make([]calibrate.Token, c.Tokens)
	base := math.Log(math.Max(prob, 1e-6)) / float64(c.Tokens)
	for i := range out {
		// Jitter around the per-token share, kept in (0, 1).
		lp := float32Decimal(math.Min(base+0.05*rng.NormFloat64()*math.Abs(base), -1e-9))
		q := math.Exp(lp)
		tok := calibrate.Token{Token: tokenNames[i%len(tokenNames)], Logprob: lp}
		tok.TopLogprobs = make([]calibrate.TopLogprob, 1, c.TopK)
		tok.TopLogprobs[0] = calibrate.TopLogprob{Token: tok.Token, Logprob: lp}
		share := 0.5
		for a := 1; a < c.TopK; a++ {
			tok.TopLogprobs = append(tok.TopLogprobs, calibrate.TopLogprob{Token: altNames[a%len(altNames)], Logprob: float32Decimal(math.Log((1 - q) * share))})
			share /= 2
		}
		out[i] = tok
	}
	return out
}

var (
	tokenNames = []string{" the", " answer", " is", " clearly", " river", " number", " city", " whale", " of", " in", " and", " to", "."}
	altNames   = []string{" a", " an", " this", " that", " it", " not", " maybe", " perhaps", " some", " one"}
)

func sampleIndex(rng *rand.Rand, p []float64) int {
	x := rng.Float64()
	for j, v := range p {
		x -= v
		if x < 0 {
			return j
		}
	}
	return len(p) - 1
}

func maxOf(x []float64) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, v)
	}
	return m
}

// Long answers: an answer of c.Claims claims, each true or invented (c.FalseShare of them), and
// for each wording c.Samples passages the model wrote again. A claim the model knows comes back
// in a passage with a high probability, an invented one with a low one:
//   - each claim j has a rate q_j, U(0.45, 0.95) when true, U(0, 0.45) when invented;
//   - each wording p sees q_pj = q_j + 0.1·ε (held to [0, 1]), and each of its passages holds
//     claim j with probability q_pj; a passage is the text of the claims it holds (each claim
//     has distinctive words of its own; the subject's words are in every claim and passage);
//   - a USER_STANCE wording (c.Stance of them; in c.StanceShare of the answers) supports the one
//     invented claim the user believes more, by c.Pull;
//   - with c.Judge every sample carries a judge's support: 1 for a claim its passage holds, 0
//     for one it does not, each flipped with probability 0.1.
//
// The verdicts are the truth. Confidence is the mean rate of the true claims.
func longAnswer(rng *rand.Rand, c *Config, i int) (calibrate.Example, Truth) {
	k := c.Claims
	var t Truth
	t.Claims = make([]bool, k)
	t.Slanted = make([]bool, k)
	rates := make([]float64, k)
	q := calibrate.Question{ID: fmt.Sprintf("sim-answer-%06d", i), Group: c.Group}
	if q.Group == "" {
		q.Group = "answers"
	}
	subject := fmt.Sprintf("person%d", i)
	var invented []int
	for j := range k {
		t.Claims[j] = rng.Float64() >= c.FalseShare
		if t.Claims[j] {
			rates[j] = 0.45 + 0.5*rng.Float64()
		} else {
			rates[j] = 0.45 * rng.Float64()
			invented = append(invented, j)
		}
		q.Claims = append(q.Claims, calibrate.Claim{ID: fmt.Sprint("c", j), Text: claimText(subject, i, j)})
	}
	stances := c.Stance
	if c.StanceShare > 0 && rng.Float64() >= c.StanceShare {
		stances = 0
	}
	if len(invented) == 0 {
		stances = 0 // nothing invented to slant toward
	}
	slanted := -1
	if stances > 0 {
		slanted = invented[rng.IntN(len(invented))]
		t.Slanted[slanted] = true
		t.Stance = q.Claims[slanted].Text
	}
	for p := range c.Wordings + stances {
		para := calibrate.Paraphrase{Prompt: fmt.Sprintf("Tell me about %s (wording %d).", subject, p+1)}
		rate := make([]float64, k)
		for j := range k {
			rate[j] = min(max(rates[j]+0.1*rng.NormFloat64(), 0), 1)
		}
		if p >= c.Wordings {
			para.Framing = calibrate.UserStance
			para.Stance = q.Claims[slanted].Text
			para.Prompt = "I read that " + para.Stance + " Tell me about " + subject + "."
			rate[slanted] = min(rate[slanted]+c.Pull, 1)
			t.Pull += c.Pull / float64(stances)
		}
		for range c.Samples {
			var text strings.Builder
			var support []float64
			if c.Judge {
				support = make([]float64, k)
			}
			for j := range k {
				holds := rng.Float64() < rate[j]
				if holds {
					text.WriteString(q.Claims[j].Text)
					text.WriteByte(' ')
				}
				if c.Judge {
					if holds != (rng.Float64() < 0.1) {
						support[j] = 1
					}
				}
			}
			text.WriteString(subject + " is remembered.")
			para.Samples = append(para.Samples, calibrate.Sample{Text: text.String(), Support: support})
		}
		q.Paraphrases = append(q.Paraphrases, para)
	}
	var known, sum float64
	label := calibrate.Label{Claims: make([]calibrate.ClaimVerdict, k)}
	for j, ok := range t.Claims {
		label.Claims[j] = calibrate.ClaimFalse
		if ok {
			label.Claims[j] = calibrate.ClaimTrue
			known++
			sum += rates[j]
		}
	}
	if known > 0 {
		t.Confidence = sum / known
	}
	return calibrate.Example{Question: q, Label: label}, t
}

// claimText is claim j of answer i: the subject's name and words of the claim's own.
func claimText(subject string, i, j int) string {
	return fmt.Sprintf("%s held fact%dx%d and fact%dy%d.", subject, i, j, i, j)
}
