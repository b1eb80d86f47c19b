package calibrate

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/plumbhq/plumb/conformal"
	"github.com/plumbhq/plumb/internal/parallel"
	"github.com/plumbhq/plumb/temperature"
)

// MinSplit is the fewest examples a split that a fit needs may have.
const MinSplit = 20

// FitConfig configures Fit. A nil *FitConfig means every default.
type FitConfig struct {
	Name          string             // profile name (default "default")
	Alpha         float64            // conformal miscoverage α (default 0.1)
	Temperature   temperature.Method // default auto
	ConfidenceMap MapMethod          // default auto
	Score         conformal.Score    // default LAC
	// Split is the tune / calibrate / report fractions (default 0.4, 0.4, 0.2). A zero tune
	// fraction needs Temperature none and ConfidenceMap none; a zero report fraction writes no
	// report metrics.
	Split    [3]float64
	Seed     uint64
	Risk     float64 // selective risk ε of the abstention threshold (default α)
	Delta    float64 // Learn-then-Test level δ (default 0.1)
	RiskMin  float64 // bounds a request's policy.risk may ask within (default [min(ε, 0.01), max(ε, 0.5)])
	RiskMax  float64
	MinGroup int // examples a Mondrian group needs for its own q̂ (default 100)
	// Equivalence is the answer equivalence of examples whose policy sets none (default exact).
	Equivalence Equivalence
	Sycophancy  float64 // sycophancy threshold (default 0.15)
	L2          float64 // confidence-map ridge penalty toward the identity map (default 1e-3)
	// Progress, when not nil, is called as each stage of the fit begins, with its name
	// ("prepare", "temperature", "confidence map", "conformal", "report"); an error it returns
	// stops the fit, which returns it (a caller's cancellation, say).
	Progress func(stage string) error
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

// grain is the fewest questions worth a goroutine of a fit's per-question work.
const grain = 256

// Fit fits a profile on labelled examples (docs/DESIGN.md "Fitting a profile") and returns it
// with its report: the examples are added over the machine's cores to a Fitter, which fits.
// It is deterministic for the same examples, config and seed, and stops with ctx's error when
// ctx is done. Errors: an *Error of kind InvalidInput naming the example and field, or
// Precondition when a needed split has fewer than MinSplit examples or no example's label
// matches one of its candidates.
func Fit(ctx context.Context, examples []Example, cfg *FitConfig) (*Profile, *Report, error) {
	f, err := NewFitter(cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := f.addAll(ctx, examples); err != nil {
		return nil, nil, err
	}
	return f.Fit(ctx)
}

// addAll adds examples over the machine's cores, in contiguous ranges merged in order. The
// error names the first example refused.
func (f *Fitter) addAll(ctx context.Context, examples []Example) error {
	shards := make([]*FitShard, parallel.Workers(len(examples), grain))
	errs := make([]error, len(shards))
	parallel.Ranges(len(examples), grain, func(w, lo, hi int) {
		sh := f.NewShard()
		shards[w] = sh
		for i := lo; i < hi; i++ {
			if err := sh.Add(ctx, &examples[i]); err != nil {
				errs[w] = Within("examples["+strconv.Itoa(i)+"].", err)
				return
			}
		}
	})
	for w, sh := range shards {
		if errs[w] != nil {
			return errs[w]
		}
		if err := f.Merge(sh); err != nil {
			return err
		}
	}
	return nil
}

// Fit fits a profile on the examples added (docs/DESIGN.md "Fitting a profile") and returns it
// with its report. It is deterministic for the same examples, config and seed, and stops with
// ctx's error when ctx is done. Errors: an *Error of kind Precondition when there are no
// examples, a needed split has fewer than MinSplit examples, or no example's label matches
// one of its candidates.
func (f *Fitter) Fit(ctx context.Context) (*Profile, *Report, error) {
	c := f.cfg
	if f.Len() == 0 {
		return nil, nil, &Error{Kind: Precondition, Field: "examples", Msg: "no examples"}
	}
	stage := func(name string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.Progress == nil {
			return nil
		}
		return c.Progress(name)
	}

	tune, cal, rep, err := f.split()
	if err != nil {
		return nil, nil, err
	}

	if err := stage("prepare"); err != nil {
		return nil, nil, err
	}
	if f.evidence == EvidenceClaims {
		return f.fitClaims(tune, cal, rep, stage)
	}
	p := Default()
	p.Name = c.Name
	p.Calibrated = true
	p.Evidence = f.evidence
	p.Alpha, p.Score, p.Equivalence, p.SycophancyThreshold = c.Alpha, c.Score, c.Equivalence, c.Sycophancy
	p.Risk, p.Delta, p.RiskMin, p.RiskMax = c.Risk, c.Delta, c.RiskMin, c.RiskMax
	p.RAPS = conformal.RAPSSettings{Lambda: 0.01, KReg: 1}

	if err := f.prepareSamples(ctx); err != nil {
		return nil, nil, err
	}
	items := f.items
	matched := false
	for i := range items {
		matched = matched || items[i].gold >= 0
	}
	if !matched {
		return nil, nil, &Error{Kind: Precondition, Field: "examples",
			Msg: "no example's label matches one of its candidates: check the labels against the option labels or sampled answers"}
	}

	// 1. Temperature and 2. confidence map on tune.
	if err := stage("temperature"); err != nil {
		return nil, nil, err
	}
	if err := fitTemperature(p, items, tune, c.Temperature); err != nil {
		return nil, nil, err
	}
	mapReason := ""
	p.MapMethod = MapNone
	if c.ConfidenceMap != MapNone {
		if err := stage("confidence map"); err != nil {
			return nil, nil, err
		}
		var err error
		if mapReason, err = fitMap(p, items, tune, c.ConfidenceMap, c.L2); err != nil {
			return nil, nil, err
		}
	}
	// 3. Conformal quantiles and 4. abstention threshold on calibrate.
	if err := stage("conformal"); err != nil {
		return nil, nil, err
	}
	fitConformal(p, items, cal, &c)
	warnings, certifiable := riskAdvice(p, len(cal))

	// 5. Report on the held-out split.
	if err := stage("report"); err != nil {
		return nil, nil, err
	}
	before := Default()
	before.Alpha, before.Equivalence, before.SycophancyThreshold = c.Alpha, c.Equivalence, c.Sycophancy
	ev := newEvaluator(before, p, c.Equivalence)
	ev.addItems(items, rep, f.evidence)
	r := ev.Report()
	r.Tune, r.Calibrate = len(tune), len(cal)
	r.MapReason, r.Warnings, r.Certifiable = mapReason, warnings, certifiable
	p.Report = r
	return p, r, nil
}

// split returns the seeded split of the examples into tune, calibrate and report, or the
// Precondition error of a needed split with fewer than MinSplit examples.
func (f *Fitter) split() (tune, cal, rep []int, err error) {
	c := &f.cfg
	n := f.Len()
	perm := rand.New(rand.NewPCG(c.Seed, 0x706c756d62)).Perm(n)
	nt := int(math.Round(float64(n) * c.Split[0]))
	nc := int(math.Round(float64(n) * c.Split[1]))
	nc = min(nc, n-nt)
	tune, cal, rep = perm[:nt], perm[nt:nt+nc], perm[nt+nc:]
	needTune := c.Temperature != temperature.MethodNone || c.ConfidenceMap != MapNone
	least := MinSplit
	if f.evidence == EvidenceClaims {
		// Long answers: the map needs MinSplit labelled claims (fitClaimMap counts them), the
		// threshold enough answers for its rank (a warning says when there are too few).
		needTune, least = c.ConfidenceMap != MapNone, 1
	}
	for _, need := range []struct {
		name  string
		idx   []int
		needs bool
	}{{"tune", tune, needTune}, {"calibrate", cal, true}, {"report", rep, c.Split[2] > 0}} {
		if need.needs && len(need.idx) < least {
			return nil, nil, nil, &Error{Kind: Precondition, Field: "examples",
				Msg: fmt.Sprintf("the %s split has %d examples, at least %d are needed (%d examples, split %v)", need.name, len(need.idx), least, n, c.Split)}
		}
	}
	return tune, cal, rep, nil
}

// fitConformal sets p's conformal quantiles (Mondrian, per group with enough examples) and its
// Learn-then-Test abstention threshold from the calibrate split cal, and keeps the risk curve.
func fitConformal(p *Profile, items []fitItem, cal []int, c *FitConfig) {
	scores := make([]float64, len(cal))
	groups := make([]string, len(cal))
	conf := make([]float64, len(cal))
	correct := make([]bool, len(cal))
	forEach(items, cal, p, func(s *scorer, a *analysis, j int, it *fitItem) {
		groups[j] = it.group
		conf[j] = a.confidence(p, &s.features)
		correct[j] = int(it.gold) == a.top
		scores[j] = s.calibrationScore(a, p, int(it.gold))
	})
	p.Quantiles = conformal.FitMondrian(scores, groups, c.Alpha, conformal.FiniteSample, c.MinGroup)
	p.CalibrationScores = keepScores(scores, c.Seed)
	p.Curve = conformal.RiskCurve(conf, correct)
	p.Lambda = conformal.Select(p.Curve, c.Risk, c.Delta)
}

// MaxCalibrationScores is the most calibration scores a profile keeps.
const MaxCalibrationScores = 2000

// keepScores returns scores ascending, or a uniform sample of MaxCalibrationScores of them (by
// seed): a sample of exchangeable scores is exchangeable with the rest.
func keepScores(scores []float64, seed uint64) []float64 {
	kept := slices.Clone(scores)
	if len(kept) > MaxCalibrationScores {
		rng := rand.New(rand.NewPCG(seed, 0x73636f726573))
		rng.Shuffle(len(kept), func(i, j int) { kept[i], kept[j] = kept[j], kept[i] })
		kept = kept[:MaxCalibrationScores]
	}
	slices.Sort(kept)
	return kept
}

// minAnswerRate is the share of calibration questions below which a threshold is said to
// answer (almost) nothing.
const minAnswerRate = 0.05

// riskAdvice says, when the fitted λ answers nothing or under 5 % of the n calibration
// questions, that it does, and finds the smallest risk ε = 0.01, 0.02, … that Learn-then-Test
// certifies on the stored curve with a threshold answering at least 5 % of them.
func riskAdvice(p *Profile, n int) ([]string, *CertifiableRisk) {
	rate := answerRate(p.Curve, p.Lambda, n)
	if p.Lambda < 1 && rate >= minAnswerRate {
		return nil, nil
	}
	warning := fmt.Sprintf("λ = 1: no threshold keeps the selective risk ≤ %.2g (δ = %.2g) on the calibration split, so this profile answers nothing",
		p.Risk, p.Delta)
	if p.Lambda < 1 {
		warning = fmt.Sprintf("λ = %.2f answers %.1f %% of the calibration split: keeping the selective risk ≤ %.2g (δ = %.2g) answers almost nothing",
			p.Lambda, 100*rate, p.Risk, p.Delta)
	}
	for pct := 1; pct < 100; pct++ {
		eps := float64(pct) / 100
		lambda := conformal.Select(p.Curve, eps, p.Delta)
		if r := answerRate(p.Curve, lambda, n); lambda < 1 && r >= minAnswerRate {
			warning += fmt.Sprintf(". The smallest risk it certifies is %.2f (λ = %.2f, answering %.0f %% of calibration questions): refit with --risk %.2f to answer at that risk",
				eps, lambda, 100*r, eps)
			return []string{warning}, &CertifiableRisk{Risk: eps, Lambda: lambda, AnswerRate: r}
		}
	}
	return []string{warning + ". No risk below 1 is certified with a useful threshold on this data"}, nil
}

// answerRate returns the share of the n calibration questions the curve says have c ≥ λ
// (none for λ = 1).
func answerRate(curve []conformal.RiskPoint, lambda float64, n int) float64 {
	if lambda >= 1 || n == 0 {
		return 0
	}
	for _, pt := range curve {
		if math.Abs(pt.Lambda-lambda) < 1e-9 {
			return float64(pt.Answered) / float64(n)
		}
	}
	return 0
}

// calibrationScore returns the nonconformity score of the true answer of a calibration question:
// 0 when it is k*, +Inf when the label names no pooled candidate. Every set holds k*, so a true
// k* is always covered; scoring it 0 makes {k : s(k) ≤ q̂} ∪ {k*} exactly the conformal set of
// this score, and q̂ its finite-sample quantile (scoring k* by s(k*) over-covers).
func (s *scorer) calibrationScore(a *analysis, p *Profile, gold int) float64 {
	switch {
	case gold == a.top:
		return 0
	case gold < 0 || gold >= a.e.kPool:
		return math.Inf(1)
	}
	kPool := a.e.kPool
	s.scores = grow(s.scores, kPool)
	s.order = grow(s.order, kPool)
	conformal.Scores(s.scores, a.pbar[:kPool], p.Score, &p.RAPS, s.order)
	return s.scores[gold]
}

// forEach analyses items[idx[j]] under p for every j over the machine's cores and calls f with
// the worker's scorer, the analysis, j and the item.
func forEach(items []fitItem, idx []int, p *Profile, f func(s *scorer, a *analysis, j int, it *fitItem)) {
	parallel.Ranges(len(idx), grain, func(_, lo, hi int) {
		s := new(scorer)
		for j := lo; j < hi; j++ {
			it := &items[idx[j]]
			s.after.analyze(it.load(&s.view), it.question(), p, nil)
			f(s, &s.after, j, it)
		}
	})
}

func fitTemperature(p *Profile, items []fitItem, tune []int, method temperature.Method) error {
	if method == temperature.MethodNone {
		p.TemperatureMethod = temperature.MethodNone
		return nil
	}
	if p.Evidence == EvidenceSamples {
		return fitTokenTemperature(p, items, tune)
	}
	// Options: the pooled NLL over tune examples whose gold is an option, in tune order
	// (already shuffled, so FitAuto's even and odd folds are random). The features are read at
	// T = 1, under the uncalibrated profile. The data is laid out once, then filled in place.
	adaptive := method != temperature.MethodGlobal
	d := &temperature.Pooled{}
	slot := make([]int32, len(tune))
	var questions, logits, features int
	for _, i := range tune {
		if it := &items[i]; it.gold >= 0 {
			questions++
			logits += bits.OnesCount64(it.use) * int(it.k)
			if adaptive {
				features += bits.OnesCount64(it.use) * temperature.FeatureDim
			}
		}
	}
	d.Grow(questions, logits, features)
	for j, i := range tune {
		slot[j] = -1
		if it := &items[i]; it.gold >= 0 {
			slot[j] = int32(d.Reserve(int(it.k), bits.OnesCount64(it.use), int(it.gold), adaptive))
		}
	}
	forEach(items, tune, builtin, func(_ *scorer, a *analysis, j int, it *fitItem) {
		if slot[j] < 0 {
			return
		}
		e := a.e
		logits, feats := d.Rows(int(slot[j]))
		for w, f := 0, 0; w < e.n; w++ {
			if !e.use[w] {
				continue
			}
			copy(logits[f*e.k:(f+1)*e.k], e.logits[w*e.k:(w+1)*e.k])
			if adaptive {
				temperature.FeaturesFromProbs(feats[f*temperature.FeatureDim:(f+1)*temperature.FeatureDim], a.dists[w*e.k:(w+1)*e.k], a.rowH[w], a.w)
			}
			f++
		}
	})
	var m temperature.Model
	var err error
	switch method {
	case temperature.MethodGlobal:
		m, err = temperature.FitGlobal(d)
	case temperature.MethodAdaptive:
		m, err = temperature.FitAdaptive(d, nil)
	default:
		m, method, err = temperature.FitAuto(d, nil)
	}
	if err != nil {
		return &Error{Kind: Precondition, Field: "examples", Msg: "temperature fit: " + err.Error()}
	}
	p.Temperature, p.TemperatureMethod = m, method
	return nil
}

// fitTokenTemperature fits the one token temperature of a samples profile on the binary NLL of
// the token confidence of k* against its correctness (adaptive and auto mean global here).
func fitTokenTemperature(p *Profile, items []fitItem, tune []int) error {
	per := make([][][]temperature.Token, len(tune))
	right := make([]bool, len(tune))
	forEach(items, tune, p, func(_ *scorer, a *analysis, j int, it *fitItem) {
		if a.tokens {
			per[j], right[j] = topTokens(a, it.question()), int(it.gold) == a.top
		}
	})
	d := &temperature.Tokens{}
	for j, toks := range per {
		if toks != nil {
			d.Add(toks, right[j])
		}
	}
	if d.Len() < MinSplit {
		p.TemperatureMethod = temperature.MethodNone
		return nil
	}
	m, err := temperature.FitTokens(d)
	if err != nil {
		return &Error{Kind: Precondition, Field: "examples", Msg: "temperature fit: " + err.Error()}
	}
	p.Temperature, p.TemperatureMethod = m, temperature.MethodGlobal
	return nil
}

// topTokens returns the tokens of the pooled samples of k*.
func topTokens(a *analysis, q *Question) [][]temperature.Token {
	e := a.e
	var out [][]temperature.Token
	idx := 0
	for w := range q.Paraphrases {
		for j := range q.Paraphrases[w].Samples {
			sm := &q.Paraphrases[w].Samples[j]
			if e.use[w] && e.assign[idx] == a.top && len(sm.Tokens) > 0 {
				toks := make([]temperature.Token, len(sm.Tokens))
				for t := range sm.Tokens {
					tok := &sm.Tokens[t]
					toks[t] = temperature.Token{Logprob: tok.Logprob, ChosenAt: -1}
					for i, tl := range tok.TopLogprobs {
						if toks[t].ChosenAt < 0 && tl.Token == tok.Token {
							toks[t].ChosenAt = i
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
