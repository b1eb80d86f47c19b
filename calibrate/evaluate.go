package calibrate

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/plumbhq/plumb/ensemble"
	"github.com/plumbhq/plumb/internal/parallel"
)

// Evaluator accumulates a report of a profile (and of the uncalibrated default, as "before")
// on labelled examples. It keeps two 32-byte records per question and nothing of the questions,
// so an evaluation of millions streams in bounded memory. Examples are scored into shards
// (NewShard, Shard.Add), which may be filled on their own goroutines, and merged in order
// (Merge); an Evaluator itself is not safe for concurrent use.
type Evaluator struct {
	before, after *Profile
	mode          Equivalence // of examples whose policy sets none
	evidence      Evidence    // of the examples so far (EvidenceAny before the first)
	rb, ra        recordLog
	groups        []string
	index         map[string]int32
	// Long answers: a record per claim, and the answers recorded.
	claims   []claimRecord
	passages int
}

// NewEvaluator returns an empty evaluation of p (nil means Default()). mode is the answer
// equivalence of examples whose policy sets none; EquivalenceDefault means the profile's.
func NewEvaluator(p *Profile, mode Equivalence) *Evaluator {
	if p == nil {
		p = builtin
	}
	if mode == EquivalenceDefault {
		mode = p.Equivalence
	}
	before := Default()
	before.Alpha, before.Equivalence, before.SycophancyThreshold = p.Alpha, mode, p.SycophancyThreshold
	return newEvaluator(before, p, mode)
}

// newEvaluator returns an empty evaluation of after against before, which must have no
// temperature: its analysis of a question is the one at T = 1 an adaptive temperature reads
// its features from.
func newEvaluator(before, after *Profile, mode Equivalence) *Evaluator {
	if before.Temperature.At(nil) != 1 {
		panic("calibrate: the profile evaluated before has a temperature")
	}
	return &Evaluator{before: before, after: after, mode: mode, evidence: after.Evidence, index: map[string]int32{}}
}

// Len returns the number of questions added.
func (e *Evaluator) Len() int { return e.ra.n + e.passages }

// Bytes returns the memory the evaluation holds for its examples: two records each (before and
// after), for a caller that caps it.
func (e *Evaluator) Bytes() int64 { return int64(e.Len()) * 2 * int64(unsafe.Sizeof(record{})) }

// A Shard scores examples for its Evaluator on one goroutine; Evaluator.Merge adds them. Each
// goroutine of a parallel evaluation has its own Shard.
type Shard struct {
	e        *Evaluator
	s        scorer
	evidence Evidence
	rb, ra   []record
	groups   []string
	claims   []claimRecord // long answers: passage counts from 0 in the shard
	passages int
}

// NewShard returns an empty shard of e. It may be used on another goroutine than e's.
func (e *Evaluator) NewShard() *Shard { return &Shard{e: e, evidence: e.evidence} }

// Len returns the number of examples the shard holds.
func (sh *Shard) Len() int { return len(sh.ra) + sh.passages }

// Add validates ex and scores it. An invalid example is not added; the error is an *Error
// whose field is relative to the example (request.paraphrases[0]…, label.answers). It stops,
// with ctx's error, when ctx is done.
func (sh *Shard) Add(ctx context.Context, ex *Example) error {
	if err := checkExample(ex, sh.e.mode, &sh.evidence); err != nil {
		return err
	}
	mode := modeFor(&ex.Question, sh.e.mode)
	if err := checkEvidence(sh.e.after, &ex.Question); err != nil {
		return Within("request.", err)
	}
	if sh.evidence == EvidenceClaims {
		cp, err := newClaimPassage(ctx, ex)
		if err != nil {
			return err
		}
		sh.claims = appendClaims(sh.claims, cp, sh.e.before, sh.e.after, sh.passages)
		sh.passages++
		return nil
	}
	if err := sh.s.prep.prepare(ctx, &ex.Question, mode); err != nil {
		return err
	}
	sh.add(&sh.s.prep, &ex.Question, ex.Question.Group, sh.s.prep.gold(&ex.Label, mode))
	return nil
}

// add scores a prepared question with gold candidate gold, before and after: the analysis
// before is at T = 1, which the analysis after reads when its temperature is adaptive.
func (sh *Shard) add(e *prepared, q *Question, group string, gold int) {
	s := &sh.s
	s.before.analyze(e, q, sh.e.before, nil)
	s.after.analyze(e, q, sh.e.after, &s.before)
	sh.rb = append(sh.rb, s.record(&s.before, sh.e.before, group, gold))
	sh.ra = append(sh.ra, s.record(&s.after, sh.e.after, group, gold))
	sh.groups = append(sh.groups, group)
}

// record scores an analysed question under p into its metrics record.
func (s *scorer) record(a *analysis, p *Profile, group string, gold int) record {
	o := s.decide(a, p, group, p.Lambda)
	return record{conf: o.c, correct: gold == a.top, size: int32(o.size), action: int8(o.action),
		agree: int8(s.wordingAgreement(a)), shift: o.shift, hasStance: o.stances > 0,
		covered: gold >= 0 && gold < len(s.inSet) && s.inSet[gold]}
}

// wordingAgreement returns 1 when the pools of the first and the second half of the pooled
// wordings agree on k*, 0 when not, and −1 with fewer than 4 pooled wordings.
func (s *scorer) wordingAgreement(a *analysis) int {
	e := a.e
	if e.pooled < 4 {
		return -1
	}
	s.halves = grow(s.halves, 2*e.kPool)
	first, second := s.halves[:e.kPool], s.halves[e.kPool:]
	seen := 0
	for i := 0; i < e.n; i++ {
		if !e.use[i] {
			continue
		}
		dst := first
		if seen >= e.pooled/2 {
			dst = second
		}
		for k := range dst {
			dst[k] += a.dists[i*e.k+k]
		}
		seen++
	}
	if ensemble.Argmax(first) == ensemble.Argmax(second) {
		return 1
	}
	return 0
}

// Merge appends the shard's examples, in the order the shard took them, and empties the shard
// for reuse. It refuses a shard whose examples are of the other kind than those merged before
// (the error names the shard's first example, examples[Len()]); nothing is merged then.
func (e *Evaluator) Merge(sh *Shard) error {
	defer sh.reset()
	if sh.Len() == 0 {
		return nil
	}
	if e.evidence == EvidenceAny {
		e.evidence = sh.evidence
	}
	if sh.evidence != e.evidence {
		return invalid("examples["+strconv.Itoa(e.Len())+"].request.paraphrases", "%s, but earlier examples have %s: one profile scores one kind", sh.evidence, e.evidence)
	}
	for _, c := range sh.claims {
		c.passage += int32(e.passages)
		e.claims = append(e.claims, c)
	}
	e.passages += sh.passages
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
	sh.claims, sh.passages = sh.claims[:0], 0
	clear(sh.groups[:cap(sh.groups)])
	sh.evidence = sh.e.evidence
}

// addItems scores the fit's prepared items[idx[j]], in order.
func (e *Evaluator) addItems(items []fitItem, idx []int, evidence Evidence) {
	if len(idx) == 0 {
		return
	}
	// The fit's evaluator expects the items' evidence: merging cannot fail.
	_ = e.scoreRanges(context.Background(), len(idx), evidence, func(sh *Shard, j int) error {
		it := &items[idx[j]]
		sh.add(it.load(&sh.s.view), it.question(), it.group, int(it.gold))
		return nil
	})
}

// scoreRanges scores n valid examples of one kind of evidence with add, in contiguous ranges
// over the machine's cores, each range into its own shard, merged in order. Examples of another
// kind than those merged before are refused, and none is merged; so are all when add fails
// (ctx is done).
func (e *Evaluator) scoreRanges(ctx context.Context, n int, evidence Evidence, add func(sh *Shard, j int) error) error {
	if e.evidence != EvidenceAny && evidence != e.evidence {
		return invalid("examples["+strconv.Itoa(e.Len())+"].request.paraphrases", "%s, but earlier examples have %s: one profile scores one kind", evidence, e.evidence)
	}
	shards := make([]*Shard, parallel.Workers(n, grain))
	for w := range shards {
		shards[w] = e.NewShard()
		shards[w].evidence = evidence
	}
	errs := make([]error, len(shards))
	parallel.Ranges(n, grain, func(w, lo, hi int) {
		for j := lo; j < hi && errs[w] == nil; j++ {
			errs[w] = add(shards[w], j)
		}
	})
	for _, err := range errs {
		if err != nil {
			for _, sh := range shards {
				sh.reset()
			}
			return err
		}
	}
	for _, sh := range shards {
		if err := e.Merge(sh); err != nil {
			return err
		}
	}
	return nil
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
		TemperatureMethod: p.TemperatureMethod.String(),
		MapMethod:         p.MapMethod.String(),
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
	if e.evidence == EvidenceClaims {
		r.Examples = e.passages
		r.Claims = e.claimReport()
	}
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
// "before") over the machine's cores and reports; it writes nothing. Errors name the example
// (examples[i].request…); it stops with ctx's error when ctx is done.
func Evaluate(ctx context.Context, p *Profile, examples []Example) (*Report, error) {
	e := NewEvaluator(p, EquivalenceDefault)
	if len(examples) == 0 {
		return nil, &Error{Kind: Precondition, Field: "examples", Msg: "no examples"}
	}
	err := e.scoreRanges(ctx, len(examples), evidenceOf(&examples[0].Question), func(sh *Shard, j int) error {
		if err := sh.Add(ctx, &examples[j]); err != nil {
			return Within("examples["+strconv.Itoa(j)+"].", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e.Report(), nil
}
