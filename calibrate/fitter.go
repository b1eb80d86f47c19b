package calibrate

import (
	"context"
	"strconv"
	"strings"
	"unsafe"

	"github.com/plumbhq/plumb/internal/parallel"
)

// A Fitter collects the labelled examples of one fit as they arrive and fits a profile on them.
// It holds an options example in compact form — its logprobs in canonical label order, a
// bitmask of pooled wordings, its gold candidate, and its label set and group shared with every
// other example that has them (about 450 bytes for 10 wordings × 4 options) — so a fit streamed
// from a file or a gRPC stream never holds the examples themselves. A samples example is held
// whole: its token logprobs are read again by the temperature fit.
//
// Examples are added through shards (NewShard, FitShard.Add), which may be filled on their own
// goroutines, and merged in order (Merge), as an Evaluator's are. A Fitter is not safe for
// concurrent use; each shard is used by one goroutine at a time.
type Fitter struct {
	cfg      FitConfig
	evidence Evidence
	items    []fitItem
	bytes    int64
}

// NewFitter returns an empty Fitter for cfg (nil: every default); the error names a bad
// config field.
func NewFitter(cfg *FitConfig) (*Fitter, error) {
	c := cfg.withDefaults()
	if err := c.check(); err != nil {
		return nil, err
	}
	return &Fitter{cfg: c, evidence: EvidenceAny}, nil
}

// Len returns the number of examples added.
func (f *Fitter) Len() int { return len(f.items) }

// Bytes returns an estimate of the memory the added examples hold, for a caller that caps it.
func (f *Fitter) Bytes() int64 { return f.bytes }

// A FitShard is a run of examples added on one goroutine, to be merged into its Fitter in order.
type FitShard struct {
	f        *Fitter
	evidence Evidence
	items    []fitItem
	bytes    int64
	prep     prepared
	labels   map[string][]string // label sets, sorted, by their labels joined
	groups   map[string]string
}

// NewShard returns an empty shard of f.
func (f *Fitter) NewShard() *FitShard {
	return &FitShard{f: f, evidence: f.evidence, labels: map[string][]string{}, groups: map[string]string{}}
}

// Len returns the number of examples the shard holds.
func (sh *FitShard) Len() int { return len(sh.items) }

// Add validates ex and adds it to the shard. An invalid example is not added; the error is an
// *Error whose field is relative to the example (request.paraphrases[0]…, label.answers). A
// samples example is kept as it is: ex must not change afterwards.
func (sh *FitShard) Add(ctx context.Context, ex *Example) error {
	if err := checkExample(ex, sh.f.cfg.Equivalence, &sh.evidence); err != nil {
		return err
	}
	q := &ex.Question
	mode := modeFor(q, sh.f.cfg.Equivalence)
	it := fitItem{group: sh.intern(q.Group), gold: -1}
	if sh.evidence == EvidenceClaims {
		// The support does not depend on the profile: measured once, kept compact.
		c, err := newClaimPassage(ctx, ex)
		if err != nil {
			return err
		}
		it.claims = c
		sh.items = append(sh.items, it)
		sh.bytes += int64(unsafe.Sizeof(it)+unsafe.Sizeof(*c)) + int64(len(c.rows))*int64(unsafe.Sizeof(claimRow{}))
		return nil
	}
	if sh.evidence == EvidenceSamples {
		// Prepared when the fit starts, over every core: clustering can be the costly part.
		it.sample = &fitSample{ex: ex}
		sh.items = append(sh.items, it)
		sh.bytes += int64(unsafe.Sizeof(it)+unsafe.Sizeof(fitSample{})) + exampleBytes(ex)
		return nil
	}
	if err := sh.prep.prepare(ctx, q, mode); err != nil {
		return err
	}
	it.compact(&sh.prep, sh.labelSet(sh.prep.labels))
	it.gold = int32(sh.prep.gold(&ex.Label, mode))
	sh.items = append(sh.items, it)
	sh.bytes += int64(unsafe.Sizeof(it)) + int64(8*len(it.logits)+4*len(it.stance))
	return nil
}

// Merge appends the shard's examples to f and empties the shard for reuse. A shard whose
// evidence differs from the examples merged before is refused, and none of its examples is
// merged.
func (f *Fitter) Merge(sh *FitShard) error {
	if len(sh.items) == 0 {
		return nil
	}
	if f.evidence != EvidenceAny && sh.evidence != f.evidence {
		return invalid("examples["+strconv.Itoa(f.Len())+"].request.paraphrases", "%s, but earlier examples have %s: one profile scores one kind", sh.evidence, f.evidence)
	}
	f.evidence = sh.evidence
	f.items = append(f.items, sh.items...)
	f.bytes += sh.bytes
	clear(sh.items)
	sh.items, sh.bytes = sh.items[:0], 0
	sh.evidence = f.evidence
	return nil
}

// intern returns group, shared with the shard's earlier examples of that group.
func (sh *FitShard) intern(group string) string {
	if group == "" {
		return ""
	}
	if g, ok := sh.groups[group]; ok {
		return g
	}
	g := strings.Clone(group)
	sh.groups[g] = g
	sh.bytes += int64(len(g)) + 64
	return g
}

// labelSet returns a copy of the sorted labels, shared with the shard's earlier examples that
// have the same ones.
func (sh *FitShard) labelSet(labels []string) []string {
	var b strings.Builder
	for _, l := range labels {
		b.WriteString(strconv.Itoa(len(l)))
		b.WriteByte(':')
		b.WriteString(l)
	}
	key := b.String()
	if set, ok := sh.labels[key]; ok {
		return set
	}
	set := make([]string, len(labels))
	for i, l := range labels {
		set[i] = strings.Clone(l)
	}
	sh.labels[key] = set
	sh.bytes += int64(2*len(key)) + int64(16*len(set)) + 64
	return set
}

// fitItem is one labelled example as a fit holds it. An options example is held compact, as
// the fields of its prepared form no profile changes; a samples example whole, with its
// prepared form once the fit has prepared it.
type fitItem struct {
	group     string
	gold      int32 // −1: the label names no pooled candidate
	n, k      int32
	noNeutral bool
	use       uint64    // bit p: wording p is pooled (MaxParaphrases ≤ 64)
	labels    []string  // sorted; shared
	logits    []float64 // n×k, as prepared
	stance    []int32   // per wording, as prepared; nil when every wording is neutral
	sample    *fitSample
	claims    *claimPassage // a long answer: its claims' supports and verdicts
}

// fitSample is a samples example and its prepared form.
type fitSample struct {
	ex   *Example
	prep prepared
}

// compact keeps e, an options question's prepared form, in it, with labels for e's labels.
func (it *fitItem) compact(e *prepared, labels []string) {
	it.n, it.k, it.noNeutral, it.labels = int32(e.n), int32(e.k), e.noNeutral, labels
	it.logits = append([]float64(nil), e.logits[:e.n*e.k]...)
	for i, u := range e.use[:e.n] {
		if u {
			it.use |= 1 << i
		}
	}
	for i, s := range e.stance[:e.n] {
		if s != -1 && it.stance == nil {
			it.stance = make([]int32, e.n)
			for j := range it.stance {
				it.stance[j] = -1
			}
		}
		if it.stance != nil {
			it.stance[i] = int32(s)
		}
	}
}

// load returns the item's prepared form: a samples example's own, or an options example's
// rebuilt in view, which then shares the item's memory and must never be prepared into.
func (it *fitItem) load(view *prepared) *prepared {
	if it.sample != nil {
		return &it.sample.prep
	}
	n, k := int(it.n), int(it.k)
	view.kind = EvidenceOptions
	view.n, view.k, view.kPool, view.noNeutral = n, k, k, it.noNeutral
	view.labels, view.logits = it.labels, it.logits
	view.use = grow(view.use, n)
	view.stance = grow(view.stance, n)
	view.pooled = 0
	for i := range n {
		view.use[i] = it.use>>i&1 == 1
		if view.use[i] {
			view.pooled++
		}
		view.stance[i] = -1
		if it.stance != nil {
			view.stance[i] = int(it.stance[i])
		}
	}
	return view
}

// question returns a samples example's question (nil for an options example, whose analysis
// needs none).
func (it *fitItem) question() *Question {
	if it.sample == nil {
		return nil
	}
	return &it.sample.ex.Question
}

// prepareSamples prepares the samples examples, over the machine's cores, and finds their gold
// candidates. It stops with ctx's error.
func (f *Fitter) prepareSamples(ctx context.Context) error {
	if f.evidence != EvidenceSamples {
		return nil
	}
	parallel.Ranges(len(f.items), grain, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			s := f.items[i].sample
			q := &s.ex.Question
			mode := modeFor(q, f.cfg.Equivalence)
			if s.prep.prepare(ctx, q, mode) != nil {
				return // ctx is done: the caller says so
			}
			f.items[i].gold = int32(s.prep.gold(&s.ex.Label, mode))
		}
	})
	return ctx.Err()
}

// exampleBytes estimates the memory a decoded example holds.
func exampleBytes(ex *Example) int64 {
	q := &ex.Question
	n := int64(unsafe.Sizeof(*ex)) + int64(len(q.ID)+len(q.Group)+len(q.Profile))
	for _, a := range ex.Label.Answers {
		n += 16 + int64(len(a))
	}
	for i := range q.Paraphrases {
		p := &q.Paraphrases[i]
		n += int64(unsafe.Sizeof(*p)) + int64(len(p.Stance))
		n += int64(len(p.Options)) * int64(unsafe.Sizeof(Option{}))
		for j := range p.Options {
			n += int64(len(p.Options[j].Label))
		}
		for j := range p.Samples {
			s := &p.Samples[j]
			n += int64(unsafe.Sizeof(*s)) + int64(len(s.Text)+len(s.Cluster)) + int64(len(s.Embedding))*int64(unsafe.Sizeof(s.Embedding[0]))
			for t := range s.Tokens {
				tok := &s.Tokens[t]
				n += int64(unsafe.Sizeof(*tok)) + int64(len(tok.Token)) + int64(len(tok.TopLogprobs))*int64(unsafe.Sizeof(TopLogprob{}))
				for _, tl := range tok.TopLogprobs {
					n += int64(len(tl.Token))
				}
			}
		}
	}
	return n
}
