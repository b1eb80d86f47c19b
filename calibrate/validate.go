package calibrate

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/plumbhq/plumb/conformal"
	"github.com/plumbhq/plumb/internal/fmath"
	"github.com/plumbhq/plumb/temperature"
)

// Limits of one request. Past them a request is refused (ResourceExhausted, naming the limit)
// before any work that grows faster than its size: within them the slowest request scores in
// well under 2 s of CPU on 2 cores (BENCHMARKS.md), and work stops when the caller goes.
const (
	MaxParaphrases = 64
	// MaxOptions is the most options a wording may have.
	MaxOptions = 4096
	// MaxSamples is the most samples a request may have, over all its wordings.
	MaxSamples = 10_000
	// MaxPairwiseSamples is the most samples a request may have in F1 and embedding modes,
	// whose clustering compares each sample with every cluster so far.
	MaxPairwiseSamples = 1000
	// MaxTextBytes is the longest sample text, cluster key, option label or stance.
	MaxTextBytes = 4096
	// MaxTopLogprobs is the most top_logprobs a token may have (OpenAI serves at most 20).
	MaxTopLogprobs = 20
	// MaxEmbedding is the most dimensions an embedding may have.
	MaxEmbedding = 4096
	// MaxEmbeddingValues is the most samples × dimensions a request may have in embedding mode
	// (1 000 samples of 2 000 dimensions, 500 of 4 000), which compares every pair in the worst
	// case.
	MaxEmbeddingValues = 2_000_000
	MaxTokens          = 100_000
	// LogprobSlack is the rounding allowed above 0 in a logprob and above 1 in a top_logprobs mass.
	LogprobSlack = 1e-6
	// TopLogprobSlack is how far the chosen token's logprob in its top_logprobs may differ from
	// its own (two APIs' roundings of one number).
	TopLogprobSlack = 1e-4
)

// Validate checks a question against every request row of the bad-input table (docs/DESIGN.md),
// with the answer-equivalence mode of its policy (exact when unset). The error names the field.
func (q *Question) Validate() error {
	return q.validate(q.Policy.Equivalence)
}

// MaxSegment is the longest segment, in bytes.
const MaxSegment = 64

// checkSegment refuses a segment longer than MaxSegment or with a byte outside
// [A-Za-z0-9._:-]: segments label monitors and metrics, and must stay short and plain.
func checkSegment(s string) error {
	if len(s) > MaxSegment {
		return invalid("segment", "%d bytes, at most %d", len(s), MaxSegment)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return invalid("segment", "byte %d is %q: a segment is made of A-Z, a-z, 0-9 and . _ : -", i, c)
		}
	}
	return nil
}

func paraField(i int) string { return "paraphrases[" + strconv.Itoa(i) + "]" }

// validate is Validate with the answer-equivalence mode the question will be scored with.
func (q *Question) validate(mode Equivalence) error {
	n := len(q.Paraphrases)
	if n == 0 {
		return invalid("paraphrases", "no paraphrases: at least one wording is required")
	}
	if n > MaxParaphrases {
		return invalid("paraphrases", "%d paraphrases, at most %d", n, MaxParaphrases)
	}
	if !(q.Policy.Risk >= 0 && q.Policy.Risk < 1) {
		return invalid("policy.risk", "%v outside [0, 1)", q.Policy.Risk)
	}
	if err := checkSegment(q.Segment); err != nil {
		return err
	}
	if q.Policy.Equivalence < EquivalenceDefault || q.Policy.Equivalence > EquivalenceEmbedding {
		return invalid("policy.equivalence", "unknown mode %d", q.Policy.Equivalence)
	}
	if len(q.Claims) > 0 {
		return q.validateClaims()
	}
	samples := 0
	for i := range q.Paraphrases {
		p := &q.Paraphrases[i]
		if len(p.Options) > MaxOptions {
			return exhausted(paraField(i)+".options", "%d options, at most %d a wording", len(p.Options), MaxOptions)
		}
		samples += len(p.Samples)
	}
	if samples > MaxSamples {
		return exhausted("paraphrases", "%d samples, at most %d a request", samples, MaxSamples)
	}
	if mode == EquivalenceF1 || mode == EquivalenceEmbedding {
		if samples > MaxPairwiseSamples {
			return exhausted("paraphrases", "%d samples, at most %d a request in %s mode, which compares them with each other",
				samples, MaxPairwiseSamples, mode)
		}
	}
	first := &q.Paraphrases[0]
	options := len(first.Options) > 0
	var labels labelSet
	tokens, embedDim := 0, -1
	for i := range q.Paraphrases {
		p := &q.Paraphrases[i]
		hasO, hasS := len(p.Options) > 0, len(p.Samples) > 0
		switch {
		case hasO && hasS:
			return invalid(paraField(i), "both options and samples; a paraphrase carries one kind")
		case !hasO && !hasS:
			return invalid(paraField(i), "neither options nor samples")
		case hasO != options:
			return invalid(paraField(i), "%s, but paraphrases[0] has %s: all paraphrases carry the same kind", evidenceName(hasO), evidenceName(!hasO))
		}
		switch p.Framing {
		case Neutral:
		case UserStance:
			if p.Stance == "" {
				return invalid(paraField(i)+".stance", "USER_STANCE wording without a stance")
			}
			if len(p.Stance) > MaxTextBytes {
				return exhausted(paraField(i)+".stance", "%d bytes, at most %d", len(p.Stance), MaxTextBytes)
			}
		default:
			return invalid(paraField(i)+".framing", "unknown framing %d", p.Framing)
		}
		if hasO {
			if i == 0 {
				if err := labels.init(first.Options); err != nil {
					return err
				}
			}
			if err := labels.check(p, i); err != nil {
				return err
			}
			continue
		}
		if err := checkSamples(i, p, mode, samples, &tokens, &embedDim); err != nil {
			return err
		}
	}
	return nil
}

// checkSamples checks wording i's samples: their texts and keys within the caps, their
// embeddings in embedding mode (samples is the request's count, which caps the values), and
// their tokens, counted into *tokens over the request; *embedDim is the embeddings' length so
// far (−1 before the first).
func checkSamples(i int, p *Paraphrase, mode Equivalence, samples int, tokens, embedDim *int) error {
	for j := range p.Samples {
		s := &p.Samples[j]
		sf := func() string { return paraField(i) + ".samples[" + strconv.Itoa(j) + "]" }
		if s.Text == "" {
			return invalid(sf()+".text", "empty answer text")
		}
		if len(s.Text) > MaxTextBytes {
			return exhausted(sf()+".text", "%d bytes, at most %d: give the short final answer", len(s.Text), MaxTextBytes)
		}
		if len(s.Cluster) > MaxTextBytes {
			return exhausted(sf()+".cluster", "%d bytes, at most %d", len(s.Cluster), MaxTextBytes)
		}
		if mode == EquivalenceEmbedding {
			if err := checkEmbedding(s.Embedding, embedDim, sf); err != nil {
				return err
			}
			if samples**embedDim > MaxEmbeddingValues {
				return exhausted("paraphrases", "%d samples of %d dimensions, at most %d values a request in embedding mode",
					samples, *embedDim, MaxEmbeddingValues)
			}
		}
		*tokens += len(s.Tokens)
		if *tokens > MaxTokens {
			return exhausted("paraphrases", "more than %d tokens in one request", MaxTokens)
		}
		for t := range s.Tokens {
			if n := len(s.Tokens[t].TopLogprobs); n > MaxTopLogprobs {
				return exhausted(sf()+".tokens["+strconv.Itoa(t)+"].top_logprobs", "%d, at most %d", n, MaxTopLogprobs)
			}
			if sub, msg := checkToken(&s.Tokens[t]); msg != "" {
				return invalid(sf()+".tokens["+strconv.Itoa(t)+"]"+sub, "%s", msg)
			}
		}
	}
	return nil
}

func evidenceName(options bool) string {
	if options {
		return EvidenceOptions.String()
	}
	return EvidenceSamples.String()
}

// labelSet holds paraphrases[0]'s option labels, against which every paraphrase's options are
// checked: by a scan of the few labels a usual question has, by binary search in a sorted copy
// when there are many, so that checking stays near-linear in the number of options.
type labelSet struct {
	first  []Option
	sorted []string // nil when scanning
}

// scanLimit is the largest label count checked by scanning.
const scanLimit = 16

// init takes paraphrases[0]'s options, which must be at least two with distinct, non-empty
// labels.
func (l *labelSet) init(first []Option) error {
	if len(first) < 2 {
		return invalid(paraField(0)+".options", "%d option, at least 2", len(first))
	}
	l.first = first
	if len(first) > scanLimit {
		l.sorted = make([]string, len(first))
		for i := range first {
			l.sorted[i] = first[i].Label
		}
		slices.Sort(l.sorted)
	}
	return nil
}

// find returns the position of label among the first paraphrase's labels (in sorted order
// when sorting), or −1.
func (l *labelSet) find(label string) int {
	if l.sorted == nil {
		for i := range l.first {
			if sameLabel(l.first[i].Label, label) {
				return i
			}
		}
		return -1
	}
	if i, ok := slices.BinarySearch(l.sorted, label); ok {
		return i
	}
	return -1
}

// check validates paraphrase i's options: finite logprobs, non-empty labels, exactly
// paraphrases[0]'s label set (checked on paraphrases[0] itself for duplicates), and a stance
// among them.
func (l *labelSet) check(p *Paraphrase, i int) error {
	opts := p.Options
	of := func(j int) string { return paraField(i) + ".options[" + strconv.Itoa(j) + "]" }
	// The usual case: paraphrases[0]'s labels in the same order, which need no lookup.
	inOrder := i > 0 && len(opts) == len(l.first)
	for j := range opts {
		o := &opts[j]
		if !finiteLogprob(o.Logprob) {
			return invalid(of(j)+".logprob", "%s", logprobFault(o.Logprob))
		}
		inOrder = inOrder && sameLabel(o.Label, l.first[j].Label)
	}
	if !inOrder {
		if i > 0 && len(opts) != len(l.first) {
			return invalid(paraField(i)+".options", "%d labels, but paraphrases[0] has %d: label sets differ", len(opts), len(l.first))
		}
		var small uint64 // seen positions, when there are at most 64
		var seen []bool
		if len(opts) > 64 {
			seen = make([]bool, len(opts))
		}
		for j := range opts {
			label := opts[j].Label
			if label == "" {
				return invalid(of(j)+".label", "empty label")
			}
			if len(label) > MaxTextBytes {
				return exhausted(of(j)+".label", "%d bytes, at most %d", len(label), MaxTextBytes)
			}
			pos := l.find(label)
			if pos < 0 {
				// Only paraphrases after the first can name a label paraphrases[0] lacks.
				return invalid(of(j)+".label", "label %q not among paraphrases[0]'s: label sets differ", label)
			}
			dup := false
			if seen != nil {
				dup, seen[pos] = seen[pos], true
			} else {
				dup, small = small&(1<<pos) != 0, small|1<<pos
			}
			if dup {
				return invalid(of(j)+".label", "duplicate label %q", label)
			}
		}
	}
	if p.Framing == UserStance && l.find(p.Stance) < 0 {
		return invalid(paraField(i)+".stance", "stance %q is not one of the option labels", p.Stance)
	}
	return nil
}

// checkEmbedding checks one sample's embedding in embedding mode: present, of the length of
// the earlier ones (dim, −1 before the first), finite and not zero.
func checkEmbedding(e []float32, dim *int, field func() string) error {
	if len(e) == 0 {
		return invalid(field()+".embedding", "missing; embedding equivalence needs one per sample")
	}
	if len(e) > MaxEmbedding {
		return exhausted(field()+".embedding", "%d dimensions, at most %d", len(e), MaxEmbedding)
	}
	if *dim >= 0 && len(e) != *dim {
		return invalid(field()+".embedding", "length %d, but earlier samples have %d", len(e), *dim)
	}
	*dim = len(e)
	var norm float64
	for i, v := range e {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return invalid(field()+".embedding["+strconv.Itoa(i)+"]", "not finite")
		}
		norm += float64(v) * float64(v)
	}
	if norm == 0 {
		return invalid(field()+".embedding", "zero vector")
	}
	return nil
}

// finiteLogprob reports whether v is a logprob logprobFault finds nothing wrong with: finite
// and at most LogprobSlack (one comparison each way; NaN fails both).
func finiteLogprob(v float64) bool { return v <= LogprobSlack && v >= -math.MaxFloat64 }

// sameLabel is a == b without a call in the usual cases: one byte, or one string (the
// decoder interns labels).
func sameLabel(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 1 {
		return a[0] == b[0]
	}
	return a == b
}

func logprobFault(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN logprob"
	case math.IsInf(v, 0):
		return fmt.Sprintf("infinite logprob %v", v)
	case v > LogprobSlack:
		return fmt.Sprintf("positive logprob %v", v)
	}
	return ""
}

// checkToken returns the sub-field and message of a token's first fault, or "", "": a finite
// logprob of its own, finite top_logprobs whose probabilities sum to at most 1, and top_logprobs
// consistent with the chosen token: where they list it, at its own logprob; where they do not,
// none below it (it would have been among them). Paths are built only on a fault: this runs for
// every token of every request.
func checkToken(t *Token) (field, msg string) {
	if !finiteLogprob(t.Logprob) {
		return ".logprob", logprobFault(t.Logprob)
	}
	var mass float64
	listed, lowest := false, 0.0
	for i := range t.TopLogprobs {
		tl := &t.TopLogprobs[i]
		lp := tl.Logprob
		if !finiteLogprob(lp) {
			return ".top_logprobs[" + strconv.Itoa(i) + "].logprob", logprobFault(lp)
		}
		if tl.Token == t.Token && !listed {
			listed = true
			if math.Abs(lp-t.Logprob) > TopLogprobSlack {
				return ".top_logprobs[" + strconv.Itoa(i) + "].logprob", fmt.Sprintf("%v for the chosen token %q, whose own logprob is %v", lp, t.Token, t.Logprob)
			}
		}
		if i == 0 || lp < lowest {
			lowest = lp
		}
		mass += fmath.Exp(lp)
	}
	if !listed && len(t.TopLogprobs) > 0 && t.Logprob > lowest+TopLogprobSlack {
		return ".top_logprobs", fmt.Sprintf("the chosen token %q (logprob %v) is missing from them though they go down to %v", t.Token, t.Logprob, lowest)
	}
	if mass > 1+LogprobSlack {
		return ".top_logprobs", fmt.Sprintf("probability mass %.6f exceeds 1", mass)
	}
	return "", ""
}

// modeFor returns the answer equivalence of a question: its policy's, else def.
func modeFor(q *Question, def Equivalence) Equivalence {
	if q.Policy.Equivalence != EquivalenceDefault {
		return q.Policy.Equivalence
	}
	return def
}

// checkExample validates a labelled example under its policy's equivalence, else def. Its
// evidence must be *kind, which it sets when EvidenceAny: one profile scores one kind. Fields
// are relative to the example.
func checkExample(ex *Example, def Equivalence, kind *Evidence) error {
	if err := ex.Question.validate(modeFor(&ex.Question, def)); err != nil {
		return Within("request.", err)
	}
	got := evidenceOf(&ex.Question)
	if *kind == EvidenceAny {
		*kind = got
	}
	if got != *kind {
		return invalid("request.paraphrases", "%s, but earlier examples have %s: one profile scores one kind", got, *kind)
	}
	if got == EvidenceClaims {
		if len(ex.Label.Claims) != len(ex.Question.Claims) {
			return invalid("label.claims", "%d verdicts, want one per claim (%d)", len(ex.Label.Claims), len(ex.Question.Claims))
		}
		for j, v := range ex.Label.Claims {
			if v < ClaimUnknown || v > ClaimFalse {
				return invalid("label.claims["+strconv.Itoa(j)+"]", "unknown verdict %d", v)
			}
		}
		return nil
	}
	if len(ex.Label.Answers) == 0 {
		return invalid("label.answers", "no acceptable answer")
	}
	return nil
}

// check reports, naming the field, what makes a fit's config unusable.
func (c *FitConfig) check() error {
	for _, e := range []error{in01("config.alpha", c.Alpha), in01("config.risk", c.Risk), in01("config.delta", c.Delta),
		in01("config.risk_min", c.RiskMin), in01("config.risk_max", c.RiskMax), in01("config.sycophancy_threshold", c.Sycophancy)} {
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
	if c.Temperature < temperature.MethodAuto || c.Temperature > temperature.MethodAdaptive {
		return invalid("config.temperature", "unknown method %d", c.Temperature)
	}
	if c.ConfidenceMap < MapAuto || c.ConfidenceMap > MapLogistic {
		return invalid("config.confidence_map", "unknown map %d", c.ConfidenceMap)
	}
	if c.Score < conformal.LAC || c.Score > conformal.RAPS {
		return invalid("config.score", "unknown score %d", c.Score)
	}
	if c.Equivalence < EquivalenceDefault || c.Equivalence > EquivalenceEmbedding {
		return invalid("config.equivalence", "unknown mode %d", c.Equivalence)
	}
	if c.MinGroup < 1 {
		return invalid("config.min_group", "%d, at least 1", c.MinGroup)
	}
	return nil
}

// Check reports, naming the field, what makes p unusable: a profile read from a file, or from
// another store, is checked before it is stored or served. A profile Fit returns passes.
func (p *Profile) Check() error {
	switch {
	case p.Evidence < EvidenceAny || p.Evidence > EvidenceSamples:
		return invalid("evidence", "unknown evidence %d", p.Evidence)
	case p.Equivalence < EquivalenceDefault || p.Equivalence > EquivalenceEmbedding:
		return invalid("equivalence", "unknown mode %d", p.Equivalence)
	case p.Score < conformal.LAC || p.Score > conformal.RAPS:
		return invalid("score", "unknown score %d", p.Score)
	case p.MapMethod < MapAuto || p.MapMethod > MapLogistic:
		return invalid("confidence_map_method", "unknown map %d", p.MapMethod)
	}
	if n := len(p.Temperature.Theta); n != 0 && n != 1 && (n != temperature.FeatureDim || p.Evidence == EvidenceSamples) {
		return invalid("temperature", "%d parameters: want 1 (global) or %d (adaptive, options only)", n, temperature.FeatureDim)
	}
	for _, e := range []error{
		finite("temperature", p.Temperature.Theta...), finite("confidence_map", p.Map...),
		in01("alpha", p.Alpha), in01("risk", p.Risk), in01("delta", p.Delta), in01("risk_min", p.RiskMin),
		in01("risk_max", p.RiskMax), in01("sycophancy_threshold", p.SycophancyThreshold),
	} {
		if e != nil {
			return e
		}
	}
	if !(p.Lambda >= 0 && p.Lambda <= 1) {
		return invalid("lambda", "%v outside [0, 1]", p.Lambda)
	}
	if p.RiskMin > p.Risk || p.Risk > p.RiskMax {
		return invalid("risk", "%v outside its bounds [%v, %v]", p.Risk, p.RiskMin, p.RiskMax)
	}
	if q := p.Quantiles.Global; math.IsNaN(q) || q < 0 {
		return invalid("quantile", "%v: want a number ≥ 0 (or +Inf)", q)
	}
	for g, q := range p.Quantiles.Groups {
		if math.IsNaN(q) || q < 0 {
			return invalid("group_quantiles["+g+"]", "%v: want a number ≥ 0 (or +Inf)", q)
		}
	}
	if len(p.CalibrationScores) > MaxCalibrationScores {
		return invalid("calibration_scores", "%d scores, at most %d", len(p.CalibrationScores), MaxCalibrationScores)
	}
	for i, sc := range p.CalibrationScores {
		if math.IsNaN(sc) || sc < 0 || i > 0 && sc < p.CalibrationScores[i-1] {
			return invalid("calibration_scores["+strconv.Itoa(i)+"]", "%v: want numbers ≥ 0 (or +Inf), ascending", sc)
		}
	}
	for i, c := range p.Curve {
		if !(c.Lambda >= 0 && c.Lambda <= 1) || c.Answered < 0 || c.Errors < 0 || c.Errors > c.Answered {
			return invalid("risk_curve["+strconv.Itoa(i)+"]", "λ %v, %d answered, %d errors: not a point of a risk curve", c.Lambda, c.Answered, c.Errors)
		}
		// Learn-then-Test reads the curve in order, most conservative first: λ falls, and the
		// questions answered and the errors among them can only grow.
		if prev := p.Curve[max(i-1, 0)]; i > 0 && (c.Lambda >= prev.Lambda || c.Answered < prev.Answered || c.Errors < prev.Errors) {
			return invalid("risk_curve["+strconv.Itoa(i)+"]", "λ %v (%d answered, %d errors) after λ %v (%d, %d): a risk curve runs from the highest λ down, its counts growing",
				c.Lambda, c.Answered, c.Errors, prev.Lambda, prev.Answered, prev.Errors)
		}
	}
	// Every confidence the profile can produce is σ(w·f) over bounded features (a clipped
	// logit, divergences, variances and token confidences): with |w| ≤ MaxMapWeight the sum is
	// finite and σ of it lies in [0, 1]. Weights that large never come out of a fit.
	for _, m := range []struct {
		field string
		w     []float64
		n     int
	}{{"confidence_map", p.Map, 5}, {"claim_map", p.ClaimMap, 4}} {
		if len(m.w) > m.n {
			return invalid(m.field, "%d weights, at most %d", len(m.w), m.n)
		}
		for i, w := range m.w {
			if !(math.Abs(w) <= MaxMapWeight) {
				return invalid(m.field+"["+strconv.Itoa(i)+"]", "%v: a weight must be finite, at most %g in size", w, MaxMapWeight)
			}
		}
	}
	for i, t := range p.Temperature.Theta {
		if !(math.Abs(t) <= MaxLogTemperature) {
			return invalid("temperature["+strconv.Itoa(i)+"]", "%v: a log-temperature parameter must be finite, at most %g in size", t, MaxLogTemperature)
		}
	}
	if t := p.ClaimThreshold; !(t >= 0 && t <= 1) && !math.IsInf(t, 1) {
		return invalid("claim_threshold", "%v: want a number in [0, 1] (or +Inf: keep no claim)", t)
	}
	if r := p.RAPS; r.Lambda != 0 || r.KReg != 0 {
		if !(r.Lambda >= 0 && r.Lambda <= 1e3) || r.KReg < 0 {
			return invalid("raps", "λ %v, k_reg %d: want λ in [0, 1000] and k_reg ≥ 0", r.Lambda, r.KReg)
		}
	}
	return nil
}

// Bounds on a profile's parameters that Check enforces, far beyond what a fit produces, so that
// a profile from a file cannot make Score compute a non-finite number.
const (
	MaxMapWeight      = 1e6
	MaxLogTemperature = 50.0
)

// in01 refuses, naming field, a number outside the open interval (0, 1): a probability that a
// config or a profile needs strictly between.
func in01(field string, x float64) error {
	if !(x > 0 && x < 1) {
		return invalid(field, "%v outside (0, 1)", x)
	}
	return nil
}

// finite refuses, naming field, a number that is NaN or infinite.
func finite(field string, xs ...float64) error {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return invalid(field, "%v is not a finite number", x)
		}
	}
	return nil
}
