package calibrate

import (
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Evaluator accumulates a report of a profile (and of the uncalibrated default, as "before")
// on labelled examples. It keeps two 32-byte records per question and nothing of the questions,
// so an evaluation of millions streams in bounded memory. Examples come in batches (Add), or
// are scored on the caller's goroutines into Shards that are merged in order (NewShard,
// Merge); an Evaluator itself is not safe for concurrent use.
type Evaluator struct {
	before, after *Profile
	mode          Equivalence
	kind          Evidence // of the examples so far (EvidenceAny before the first)
	rb, ra        recordLog
	groups        []string
	index         map[string]int32
}

// NewEvaluator returns an empty evaluation of p (nil means Default()).
func NewEvaluator(p *Profile) *Evaluator {
	if p == nil {
		p = Default()
	}
	before := Default()
	before.Alpha, before.Equivalence, before.Syco = p.Alpha, p.Equivalence, p.Syco
	return newEvaluator(before, p, p.Equivalence)
}

func newEvaluator(before, after *Profile, mode Equivalence) *Evaluator {
	return &Evaluator{before: before, after: after, mode: mode, kind: after.Evidence, index: map[string]int32{}}
}

// Len returns the number of questions added.
func (e *Evaluator) Len() int { return e.ra.n }

// A Shard scores examples for its Evaluator on one goroutine; Evaluator.Merge adds them. Each
// goroutine of a parallel evaluation has its own Shard.
type Shard struct {
	e      *Evaluator
	s      analysis
	kind   Evidence
	rb, ra []record
	groups []string
}

// NewShard returns an empty shard of e. It may be used on another goroutine than e's.
func (e *Evaluator) NewShard() *Shard { return &Shard{e: e, kind: e.kind} }

// Len returns the number of examples the shard holds.
func (sh *Shard) Len() int { return len(sh.ra) }

// Add validates ex and scores it. An invalid example is not added; the error is an *Error
// whose field is relative to the example (request.paraphrases[0]…, label.answers).
func (sh *Shard) Add(ex *Example) error {
	if err := sh.s.check(&ex.Question, sh.e.mode); err != nil {
		e := err.(*Error)
		return &Error{Kind: e.Kind, Field: "request." + e.Field, Msg: e.Msg}
	}
	kind := kindOf(ex)
	if sh.kind == EvidenceAny {
		sh.kind = kind
	}
	if kind != sh.kind {
		return invalid("request.paraphrases", "%s, but earlier examples have %s: one profile scores one kind", kind, sh.kind)
	}
	if len(ex.Label.Answers) == 0 {
		return invalid("label.answers", "no acceptable answer")
	}
	if err := checkEvidence(sh.e.after, &ex.Question); err != nil {
		de := err.(*Error)
		de.Field = "request." + de.Field
		return de
	}
	sh.add(ex, -2)
	return nil
}

// add scores a valid example with gold candidate gold (−2: found from the label).
func (sh *Shard) add(ex *Example, gold int) {
	e := sh.e
	sh.rb = append(sh.rb, sh.s.scoreRecord(e.before, ex, gold, e.mode))
	sh.s.again(e.before.Temperature.At(nil) == 1 && e.after.Temperature.Adaptive())
	sh.ra = append(sh.ra, sh.s.scoreRecord(e.after, ex, gold, e.mode))
	sh.groups = append(sh.groups, ex.Question.Group)
}

// Merge appends the shard's examples, in the order the shard took them, and empties the shard
// for reuse. It refuses a shard whose examples are of the other kind than those merged before
// (the error names the shard's first example, examples[Len()]); nothing is merged then.
func (e *Evaluator) Merge(sh *Shard) error {
	defer sh.reset()
	if sh.Len() == 0 {
		return nil
	}
	if e.kind == EvidenceAny {
		e.kind = sh.kind
	}
	if sh.kind != e.kind {
		return invalid("examples["+strconv.Itoa(e.Len())+"].request.paraphrases", "%s, but earlier examples have %s: one profile scores one kind", sh.kind, e.kind)
	}
	for j, g := range sh.groups {
		gi := int32(-1)
		if g != "" {
			var ok bool
			if gi, ok = e.index[g]; !ok {
				gi = int32(len(e.groups))
				g = strings.Clone(g)
				e.index[g] = gi
				e.groups = append(e.groups, g)
			}
		}
		sh.rb[j].group, sh.ra[j].group = gi, gi
	}
	e.rb.add(sh.rb)
	e.ra.add(sh.ra)
	return nil
}

func (sh *Shard) reset() {
	sh.rb, sh.ra, sh.groups = sh.rb[:0], sh.ra[:0], sh.groups[:0]
	clear(sh.groups[:cap(sh.groups)])
	sh.kind = sh.e.kind
}

// Add validates a batch and scores it over the machine's cores. Errors name the example by its
// position in the whole evaluation (examples[Len()+i]); a refused batch adds nothing.
func (e *Evaluator) Add(exs []Example) error {
	if len(exs) == 0 {
		return nil
	}
	if err := validateExamples(exs, e.Len(), e.mode); err != nil {
		return err
	}
	for i := range exs {
		if err := checkEvidence(e.after, &exs[i].Question); err != nil {
			de := err.(*Error)
			de.Field = "examples[" + strconv.Itoa(e.Len()+i) + "].request." + de.Field
			return de
		}
	}
	return e.add(exs, nil, nil)
}

// add scores exs[idx[j]] (all of exs when idx is nil) with gold candidates gold[idx[j]] (found
// from the labels when gold is nil): contiguous runs over the machine's cores, merged in order.
func (e *Evaluator) add(exs []Example, idx, gold []int) error {
	n := len(exs)
	if idx != nil {
		n = len(idx)
	}
	workers := min(runtime.GOMAXPROCS(0), max(n/256, 1))
	shards := make([]*Shard, workers)
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range shards {
		sh := e.NewShard()
		sh.kind = kindOf(&exs[0]) // all of exs are of one kind (validated)
		shards[w] = sh
		wg.Go(func() {
			for j := w * chunk; j < min((w+1)*chunk, n); j++ {
				i := j
				if idx != nil {
					i = idx[j]
				}
				g := -2
				if gold != nil {
					g = gold[i]
				}
				sh.add(&exs[i], g)
			}
		})
	}
	wg.Wait()
	for _, sh := range shards {
		if err := e.Merge(sh); err != nil {
			return err
		}
	}
	return nil
}

func kindOf(ex *Example) Evidence {
	if len(ex.Question.Paraphrases) > 0 && len(ex.Question.Paraphrases[0].Samples) > 0 {
		return EvidenceSamples
	}
	return EvidenceOptions
}

// Report summarises what was added, before and after concurrently.
func (e *Evaluator) Report() *Report {
	p := e.after
	r := &Report{
		Examples:          e.Len(),
		Profile:           ProfileRef{Name: p.Name, Version: p.Version},
		Curve:             p.Curve,
		Map:               p.Map,
		Alpha:             p.Alpha,
		Quantile:          p.Quantiles.Global,
		Lambda:            p.Lambda,
		Risk:              p.Risk,
		TemperatureMethod: methodName(p.TemperatureMethod),
		Temperature:       p.Temperature.Theta,
	}
	rank := make([]int, len(e.groups)) // group index → position in name order
	names := slices.Clone(e.groups)
	slices.Sort(names)
	for pos, g := range names {
		rank[e.index[g]] = pos
	}
	var before, after []GroupReport
	var wg sync.WaitGroup
	wg.Go(func() { r.Before, r.BinsBefore, before = e.side(&e.rb, rank, names) })
	r.After, r.BinsAfter, after = e.side(&e.ra, rank, names)
	wg.Wait()
	for i := range after {
		after[i].Before = before[i].After
	}
	r.Groups = after
	return r
}

// side summarises one side (before or after): all questions, and each group in name order
// (rank maps a group's index to its position in names). One pass tallies the sums; the
// rank-based metrics sort the scores once (a radix sort), and a counting sort by group, which
// keeps that order, gives each group's.
func (e *Evaluator) side(log *recordLog, rank []int, names []string) (Metrics, []Bin, []GroupReport) {
	var all tally
	groups := make([]tally, len(rank))
	sorted := make([]scored, 0, log.n)
	for i, r := range log.all() {
		all.add(r)
		g := len(rank) // none
		if r.group >= 0 {
			g = rank[r.group]
			groups[g].add(r)
		}
		sorted = append(sorted, newScored(r.conf, g, i, r.correct))
	}
	// Two buffers: the sort's scratch, then the grouping's output.
	other := make([]scored, len(sorted))
	if s := sortPositions(sorted, other); len(s) > 0 && &s[0] != &sorted[0] {
		sorted, other = s, sorted
	}
	m, bins := all.metrics(sorted)

	grouped, counts := byGroup(sorted, other, len(rank))
	reports := make([]GroupReport, len(groups))
	for g, n := range counts {
		reports[g].Group = names[g]
		reports[g].After, _ = groups[g].metrics(grouped[:n])
		grouped = grouped[n:]
	}
	return m, bins, reports
}

// Evaluate scores labelled examples under profile p (and the uncalibrated default as
// "before") and reports; it writes nothing. Errors are as for Fit's validation.
func Evaluate(p *Profile, examples []Example) (*Report, error) {
	e := NewEvaluator(p)
	if len(examples) == 0 {
		return nil, &Error{Kind: Precondition, Field: "examples", Msg: "no examples"}
	}
	if err := e.Add(examples); err != nil {
		return nil, err
	}
	return e.Report(), nil
}
