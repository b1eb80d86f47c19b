package calibrate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"gonum.org/v1/gonum/optimize"

	"github.com/plumbhq/plumb/conformal"
	"github.com/plumbhq/plumb/ensemble"
	"github.com/plumbhq/plumb/internal/fmath"
	"github.com/plumbhq/plumb/temperature"
)

// TemperatureChoice selects the temperature scaling of a fit.
type TemperatureChoice int

const (
	// TemperatureAuto picks global or adaptive by 2-fold cross-validation. The default.
	TemperatureAuto TemperatureChoice = iota
	TemperatureNone
	TemperatureGlobal
	TemperatureAdaptive
)

// MapChoice selects the confidence map of a fit.
type MapChoice int

const (
	// MapLogistic fits c = σ(w·f) by L2 logistic regression. The default.
	MapLogistic MapChoice = iota
	// MapNone keeps c = π̄(k*).
	MapNone
)

// MinSplit is the fewest examples a split that a fit needs may have.
const MinSplit = 20

// FitConfig configures Fit. A nil *FitConfig means every default.
type FitConfig struct {
	Name          string            // profile name (default "default")
	Alpha         float64           // conformal miscoverage α (default 0.1)
	Temperature   TemperatureChoice // default auto
	ConfidenceMap MapChoice         // default logistic
	Score         conformal.Score   // default LAC
	// Split is the tune / calibrate / report fractions (default 0.4, 0.4, 0.2). A zero tune
	// fraction needs Temperature none and ConfidenceMap none; a zero report fraction writes no
	// report metrics.
	Split       [3]float64
	Seed        uint64
	Risk        float64 // selective risk ε of the abstention threshold (default α)
	Delta       float64 // Learn-then-Test level δ (default 0.1)
	RiskMin     float64 // bounds a request's policy.risk may ask within (default [min(ε, 0.01), max(ε, 0.5)])
	RiskMax     float64
	MinGroup    int // examples a Mondrian group needs for its own q̂ (default 100)
	Equivalence Equivalence
	Sycophancy  float64 // sycophancy threshold (default 0.15)
	L2          float64 // confidence-map ridge penalty toward the identity map (default 1e-3)
}

func (c *FitConfig) withDefaults() FitConfig {
	var out FitConfig
	if c != nil {
		out = *c
	}
	if out.Name == "" {
		out.Name = "default"
	}
	if out.Alpha == 0 {
		out.Alpha = 0.1
	}
	if out.Split == [3]float64{} {
		out.Split = [3]float64{0.4, 0.4, 0.2}
	}
	if out.Risk == 0 {
		out.Risk = out.Alpha
	}
	if out.Delta == 0 {
		out.Delta = 0.1
	}
	if out.RiskMin == 0 {
		out.RiskMin = math.Min(out.Risk, 0.01)
	}
	if out.RiskMax == 0 {
		out.RiskMax = math.Max(out.Risk, 0.5)
	}
	if out.MinGroup == 0 {
		out.MinGroup = 100
	}
	if out.Equivalence == EquivalenceDefault {
		out.Equivalence = EquivalenceExact
	}
	if out.Sycophancy == 0 {
		out.Sycophancy = 0.15
	}
	if out.L2 == 0 {
		out.L2 = 1e-3
	}
	return out
}

func (c *FitConfig) check() error {
	in01 := func(field string, v float64) error {
		if !(v > 0 && v < 1) {
			return invalid("config."+field, "%v outside (0, 1)", v)
		}
		return nil
	}
	for _, e := range []error{in01("alpha", c.Alpha), in01("risk", c.Risk), in01("delta", c.Delta),
		in01("risk_min", c.RiskMin), in01("risk_max", c.RiskMax), in01("sycophancy_threshold", c.Sycophancy)} {
		if e != nil {
			return e
		}
	}
	if c.RiskMin > c.Risk || c.Risk > c.RiskMax {
		return invalid("config.risk", "%v outside its bounds [%v, %v]", c.Risk, c.RiskMin, c.RiskMax)
	}
	var sum float64
	for i, f := range c.Split {
		if !(f >= 0 && f <= 1) {
			return invalid("config.split", "fraction %d is %v, outside [0, 1]", i, f)
		}
		sum += f
	}
	if math.Abs(sum-1) > 1e-6 {
		return invalid("config.split", "fractions sum to %v, not 1", sum)
	}
	if c.Split[1] == 0 {
		return invalid("config.split", "the calibrate fraction must be positive")
	}
	if c.Temperature < TemperatureAuto || c.Temperature > TemperatureAdaptive {
		return invalid("config.temperature", "unknown method %d", c.Temperature)
	}
	if c.ConfidenceMap < MapLogistic || c.ConfidenceMap > MapNone {
		return invalid("config.confidence_map", "unknown map %d", c.ConfidenceMap)
	}
	if c.Score < conformal.LAC || c.Score > conformal.RAPS {
		return invalid("config.score", "unknown score %d", c.Score)
	}
	if c.MinGroup < 1 {
		return invalid("config.min_group", "%d, at least 1", c.MinGroup)
	}
	return nil
}

// Fit fits a profile on labelled examples (DESIGN.md "Fitting a profile") and returns it with
// its report. It is deterministic for the same examples, config and seed. Errors: an *Error of
// kind InvalidInput naming the example and field, or Precondition when a needed split has fewer
// than MinSplit examples or no example's label matches one of its candidates.
func Fit(examples []Example, cfg *FitConfig) (*Profile, *Report, error) {
	c := cfg.withDefaults()
	if err := c.check(); err != nil {
		return nil, nil, err
	}
	if err := validateExamples(examples, 0, c.Equivalence); err != nil {
		return nil, nil, err
	}
	samples := len(examples[0].Question.Paraphrases[0].Samples) > 0

	// Seeded split.
	n := len(examples)
	perm := rand.New(rand.NewPCG(c.Seed, 0x706c756d62)).Perm(n)
	nt := int(math.Round(float64(n) * c.Split[0]))
	nc := int(math.Round(float64(n) * c.Split[1]))
	nc = min(nc, n-nt)
	tune, cal, rep := perm[:nt], perm[nt:nt+nc], perm[nt+nc:]
	needTune := c.Temperature != TemperatureNone || c.ConfidenceMap != MapNone
	for _, need := range []struct {
		name  string
		idx   []int
		needs bool
	}{{"tune", tune, needTune}, {"calibrate", cal, true}, {"report", rep, c.Split[2] > 0}} {
		if need.needs && len(need.idx) < MinSplit {
			return nil, nil, &Error{Kind: Precondition, Field: "examples",
				Msg: fmt.Sprintf("the %s split has %d examples, at least %d are needed (%d examples, split %v)", need.name, len(need.idx), MinSplit, n, c.Split)}
		}
	}

	p := Default()
	p.Name = c.Name
	p.Calibrated = true
	p.Evidence = EvidenceOptions
	if samples {
		p.Evidence = EvidenceSamples
	}
	p.Alpha, p.Score, p.Equivalence, p.Syco = c.Alpha, c.Score, c.Equivalence, c.Sycophancy
	p.Risk, p.Delta, p.RiskMin, p.RiskMax = c.Risk, c.Delta, c.RiskMin, c.RiskMax
	p.RAPS = conformal.RAPSSettings{Lambda: 0.01, KReg: 1}

	// Gold candidates are fixed by the clustering, which no fitted parameter changes.
	gold := make([]int, n)
	matched := 0
	parallel(n, func(s *analysis, i int) {
		s.analyze(p, &examples[i].Question, c.Equivalence)
		gold[i] = s.gold(&examples[i].Label, c.Equivalence)
	})
	for _, g := range gold {
		if g >= 0 {
			matched++
		}
	}
	if matched == 0 {
		return nil, nil, &Error{Kind: Precondition, Field: "examples",
			Msg: "no example's label matches one of its candidates: check the labels against the option labels or sampled answers"}
	}

	// 1. Temperature on tune.
	if err := fitTemperature(p, examples, tune, gold, c); err != nil {
		return nil, nil, err
	}
	// 2. Confidence map on tune.
	if c.ConfidenceMap == MapLogistic {
		if err := fitMap(p, examples, tune, gold, c); err != nil {
			return nil, nil, err
		}
	}
	// 3. Conformal quantiles and 4. abstention threshold on calibrate.
	scores := make([]float64, len(cal))
	groups := make([]string, len(cal))
	conf := make([]float64, len(cal))
	correct := make([]bool, len(cal))
	parallel(len(cal), func(s *analysis, j int) {
		i := cal[j]
		q := &examples[i].Question
		s.analyze(p, q, c.Equivalence)
		groups[j] = q.Group
		conf[j] = s.confidence(p)
		correct[j] = gold[i] == s.top
		// The set always holds k*, so a true k* is always covered: its score is 0. The set
		// {k : s(k) ≤ q̂} ∪ {k*} is then exactly the conformal set of this score, and q̂ its
		// finite-sample quantile (scoring k* by s(k*) instead over-covers).
		scores[j] = math.Inf(1)
		if g := gold[i]; g == s.top {
			scores[j] = 0
		} else if g >= 0 && g < s.kPool {
			s.scores = grow(s.scores, s.kPool)
			s.ord = grow(s.ord, s.kPool)
			conformal.Scores(s.scores, s.pbar[:s.kPool], p.Score, &p.RAPS, s.ord)
			scores[j] = s.scores[g]
		}
	})
	p.Quantiles = conformal.FitMondrian(scores, groups, c.Alpha, conformal.FiniteSample, c.MinGroup)
	p.Curve = conformal.RiskCurve(conf, correct)
	p.Lambda = conformal.Select(p.Curve, c.Risk, c.Delta)

	// 5. Report on the held-out split.
	before := Default()
	before.Alpha, before.Equivalence, before.Syco = c.Alpha, c.Equivalence, c.Sycophancy
	ev := newEvaluator(before, p, c.Equivalence)
	if err := ev.add(examples, rep, gold); err != nil {
		return nil, nil, err
	}
	r := ev.Report()
	r.Tune, r.Calibrate = len(tune), len(cal)
	p.Report = r
	return p, r, nil
}

// validateExamples validates examples whose first is examples[offset] of the whole input.
func validateExamples(examples []Example, offset int, mode Equivalence) error {
	if len(examples) == 0 {
		return &Error{Kind: Precondition, Field: "examples", Msg: "no examples"}
	}
	samples := len(examples[0].Question.Paraphrases) > 0 && len(examples[0].Question.Paraphrases[0].Samples) > 0
	for i := range examples {
		ex := &examples[i]
		f := "examples[" + strconv.Itoa(offset+i) + "]"
		if err := ex.Question.validate(mode); err != nil {
			e := err.(*Error)
			return &Error{Kind: e.Kind, Field: f + ".request." + e.Field, Msg: e.Msg}
		}
		if s := len(ex.Question.Paraphrases[0].Samples) > 0; s != samples {
			return invalid(f+".request.paraphrases", "%s, but examples[%d] has %s: one profile scores one kind", kindName(!s), offset, kindName(s))
		}
		if len(ex.Label.Answers) == 0 {
			return invalid(f+".label.answers", "no acceptable answer")
		}
	}
	return nil
}

// gold returns the pooled candidate the label names, or −1.
func (s *analysis) gold(l *Label, mode Equivalence) int {
	for _, a := range l.Answers {
		if !s.samples {
			for k, lab := range s.labels {
				if lab == a {
					return k
				}
			}
			continue
		}
		na := ensemble.Normalize(a)
		for i, it := range s.items {
			if s.assign[i] >= s.kPool {
				continue
			}
			if it.Norm == na || mode == EquivalenceF1 && ensemble.TokenF1(it.Norm, na) >= ensemble.F1Threshold {
				return s.assign[i]
			}
		}
	}
	return -1
}

// parallel runs f(s, i) for i in [0, n) over the machine's cores, each worker with its own
// scratch.
func parallel(n int, f func(s *analysis, i int)) {
	workers := min(runtime.GOMAXPROCS(0), max(n/256, 1))
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := new(analysis)
			for i := lo; i < hi; i++ {
				f(s, i)
			}
		}()
	}
	wg.Wait()
}

func fitTemperature(p *Profile, examples []Example, tune, gold []int, c FitConfig) error {
	if c.Temperature == TemperatureNone {
		p.TemperatureMethod = temperature.None
		return nil
	}
	if p.Evidence == EvidenceSamples {
		// Token temperature: global only (one scalar on the binary NLL of tc).
		d := &temperature.Tokens{}
		var mu sync.Mutex
		parallel(len(tune), func(s *analysis, j int) {
			i := tune[j]
			q := &examples[i].Question
			s.analyze(p, q, c.Equivalence)
			if !s.tokens {
				return
			}
			toks := s.topTokens(q)
			mu.Lock()
			d.Add(toks, gold[i] == s.top)
			mu.Unlock()
		})
		if d.Len() < MinSplit {
			p.TemperatureMethod = temperature.None
			return nil
		}
		m, err := temperature.FitTokens(d)
		if err != nil {
			return &Error{Kind: Precondition, Field: "examples", Msg: "temperature fit: " + err.Error()}
		}
		p.Temperature, p.TemperatureMethod = m, temperature.GlobalMethod
		return nil
	}
	// Options: the pooled NLL over tune examples whose gold is an option. Questions are
	// added in tune order (already shuffled), so FitAuto's even/odd folds are random.
	type row struct {
		k             int
		logits, feats []float64
		label         int
	}
	rows := make([]row, len(tune))
	adaptive := c.Temperature != TemperatureGlobal
	parallel(len(tune), func(s *analysis, j int) {
		i := tune[j]
		if gold[i] < 0 {
			return
		}
		q := &examples[i].Question
		id := Default()
		s.analyze(id, q, c.Equivalence)
		var logits, feats []float64
		for w := range q.Paraphrases {
			if !s.use[w] {
				continue
			}
			start := len(logits)
			for kk := 0; kk < s.k; kk++ {
				logits = append(logits, q.Paraphrases[w].Options[s.order[w*s.k+kk]].Logprob)
			}
			if adaptive {
				feats = append(feats, temperature.AdaptiveFeatures(nil, logits[start:], s.w)...)
			}
		}
		rows[j] = row{k: s.k, logits: logits, feats: feats, label: gold[i]}
	})
	d := &temperature.Pooled{}
	for _, r := range rows {
		if r.k > 0 {
			d.Add(r.k, r.logits, r.feats, r.label)
		}
	}
	var m temperature.Model
	method := temperature.GlobalMethod
	var err error
	switch c.Temperature {
	case TemperatureGlobal:
		m, err = temperature.FitGlobal(d)
	case TemperatureAdaptive:
		m, err = temperature.FitAdaptive(d, nil)
		method = temperature.AdaptiveMethod
	default:
		m, method, err = temperature.FitAuto(d, nil)
	}
	if err != nil {
		return &Error{Kind: Precondition, Field: "examples", Msg: "temperature fit: " + err.Error()}
	}
	p.Temperature, p.TemperatureMethod = m, method
	return nil
}

// topTokens returns the tokens of the pooled samples in the chosen cluster.
func (s *analysis) topTokens(q *Question) [][]temperature.Token {
	var out [][]temperature.Token
	idx := 0
	for w := range q.Paraphrases {
		for j := range q.Paraphrases[w].Samples {
			sm := &q.Paraphrases[w].Samples[j]
			if s.use[w] && s.assign[idx] == s.top && len(sm.Tokens) > 0 {
				toks := make([]temperature.Token, len(sm.Tokens))
				for t := range sm.Tokens {
					tok := &sm.Tokens[t]
					toks[t] = temperature.Token{Logprob: tok.Logprob, ChosenAt: -1}
					for a, tl := range tok.TopLogprobs {
						if toks[t].ChosenAt < 0 && tl.Token == tok.Token {
							toks[t].ChosenAt = a
						}
						toks[t].Top = append(toks[t].Top, tl.Logprob)
					}
				}
				out = append(out, toks)
			}
			idx++
		}
	}
	return out
}

// fitMap fits the confidence map σ(w·f) by L2-regularised logistic regression of 1[k* correct]
// on f, by L-BFGS from w = [0, 1, 0, 0(, 0)] (which is c = π̄(k*) up to clipping).
func fitMap(p *Profile, examples []Example, tune, gold []int, c FitConfig) error {
	feats := make([][]float64, len(tune))
	ys := make([]float64, len(tune))
	dim := 4
	parallel(len(tune), func(s *analysis, j int) {
		i := tune[j]
		s.analyze(p, &examples[i].Question, c.Equivalence)
		var tc float64
		if s.tokens {
			tc = s.tc[s.top]
		}
		feats[j] = mapFeatures(nil, s.pbar[s.top], s.clip(), s.w, s.v, tc, s.tokens)
		if gold[i] == s.top {
			ys[j] = 1
		}
	})
	for _, f := range feats {
		dim = max(dim, len(f))
	}
	nf := float64(len(tune))
	// The ridge pulls toward the identity map w₀ = [0, 1, 0, 0(, 0)], σ(logit π̄(k*)) = π̄(k*):
	// with little data the map stays near the uncalibrated confidence instead of flattening
	// toward the intercept.
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
			loss += 0.5 * c.L2 * (w[d] - identity[d]) * (w[d] - identity[d])
		}
		if grad != nil {
			for d := range grad {
				grad[d] /= nf
				if d > 0 {
					grad[d] += c.L2 * (w[d] - identity[d])
				}
			}
		}
		return loss
	}
	init := slices.Clone(identity)
	res, err := optimize.Minimize(optimize.Problem{
		Func: func(w []float64) float64 { return obj(w, nil) },
		Grad: func(g, w []float64) { obj(w, g) },
	}, init, &optimize.Settings{
		GradientThreshold: 1e-7,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-10, Relative: 1e-10, Iterations: 3},
		MajorIterations:   500,
	}, &optimize.LBFGS{})
	if err != nil && res == nil {
		return &Error{Kind: Precondition, Field: "examples", Msg: "confidence map fit: " + err.Error()}
	}
	p.Map = append([]float64(nil), res.X...)
	return nil
}

// scoreRecord scores one labelled example under p and returns its metrics record.
func (s *analysis) scoreRecord(p *Profile, ex *Example, gold int, mode Equivalence) record {
	q := &ex.Question
	s.analyze(p, q, mode)
	if gold == -2 {
		gold = s.gold(&ex.Label, mode)
	}
	var set PredictionSet
	o := s.decide(p, q, p.Lambda, &set)
	rec := record{conf: o.c, correct: gold == s.top, size: int32(o.size), action: int8(o.action),
		agree: int8(s.splitHalf()), shift: o.shift, hasStance: o.stances > 0}
	for _, k := range s.rank[:o.size] {
		if k == gold {
			rec.covered = true
		}
	}
	return rec
}

// splitHalf returns 1 when the pools of the first and second half of the pooled wordings agree
// on k*, 0 when not, and −1 with fewer than 4 pooled wordings.
func (s *analysis) splitHalf() int {
	if s.pooled < 4 {
		return -1
	}
	s.scores = grow(s.scores, 2*s.kPool)
	a, b := s.scores[:s.kPool], s.scores[s.kPool:]
	seen := 0
	for i := 0; i < s.n; i++ {
		if !s.use[i] {
			continue
		}
		dst := a
		if seen >= s.pooled/2 {
			dst = b
		}
		for k := range dst {
			dst[k] += s.dists[i*s.k+k]
		}
		seen++
	}
	if ensemble.Argmax(a) == ensemble.Argmax(b) {
		return 1
	}
	return 0
}

func methodName(m temperature.Method) string {
	return [...]string{"none", "global", "adaptive", "auto"}[m]
}
