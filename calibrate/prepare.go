package calibrate

import (
	"context"
	"slices"

	"github.com/plumbhq/plumb/ensemble"
)

// prepared is a valid question in the form every profile scores it from: its options' logprobs
// in one canonical label order (optionsForm), or its samples clustered into candidates
// (samplesForm); kind says which of the two is filled. It depends on the question and the
// answer-equivalence mode only, so an evaluation prepares a question once and scores it under
// two profiles. Its slices are reused from one question to the next.
type prepared struct {
	kind      Evidence // EvidenceOptions or EvidenceSamples
	n, k      int      // wordings; candidates (with samples, every cluster)
	kPool     int      // candidates that pooled wordings gave, numbered first (options: k)
	use       []bool   // per wording: pooled
	pooled    int
	noNeutral bool  // no wording is neutral, so all of them are pooled
	stance    []int // per wording: the candidate its stance names, −1 for a neutral wording, k for a stance that is no candidate

	optionsForm
	samplesForm
}

// optionsForm is the prepared form of a question of options.
type optionsForm struct {
	labels  []string  // the labels in sorted order
	logits  []float64 // n×k: wording p's logprob of labels[j] at p*k+j
	firstAt []int     // scratch: the position in labels of the first wording's option j
}

// samplesForm is the prepared form of a question of samples.
type samplesForm struct {
	items  []ensemble.Item // per sample, in question order: its normalised text and key
	keys   []string        // per sample, in question order: its cluster key normalised ("" without)
	assign []int           // per sample, in question order: its candidate
	count  []int           // n×k: wording p's samples in candidate j
	size   []int           // per wording: its samples
	tokens []bool          // per wording: its samples carry tokens
	// maxSamples is the most samples a pooled wording has.
	maxSamples int
	answers    []string // per candidate: its most frequent raw text
	raw        []string // scratch: pooled samples' texts
	rawTo      []int    // scratch: their candidates
}

// sampled reports whether the question is of samples.
func (e *prepared) sampled() bool { return e.kind == EvidenceSamples }

// grow returns s with length n and every element zero, reusing its memory when it can.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// prepare puts q, which must be valid, into canonical form for answer-equivalence mode. Only
// the clustering of samples in F1 and embedding modes can take long; it stops with ctx's error.
func (e *prepared) prepare(ctx context.Context, q *Question, mode Equivalence) error {
	e.n = len(q.Paraphrases)
	e.kind = evidenceOf(q)
	e.use = grow(e.use, e.n)
	e.pooled = 0
	for i := range q.Paraphrases {
		if q.Paraphrases[i].Framing == Neutral {
			e.use[i] = true
			e.pooled++
		}
	}
	e.noNeutral = e.pooled == 0
	if e.noNeutral {
		for i := range e.use {
			e.use[i] = true
		}
		e.pooled = e.n
	}
	e.stance = grow(e.stance, e.n)
	if e.sampled() {
		return e.prepareSamples(ctx, q, mode)
	}
	e.prepareOptions(q)
	return nil
}

// prepareOptions sorts the labels and lays every wording's logprobs out in that order.
func (e *prepared) prepareOptions(q *Question) {
	first := q.Paraphrases[0].Options
	k := len(first)
	e.k, e.kPool = k, k
	e.labels = grow(e.labels, k)
	for j := range first {
		e.labels[j] = first[j].Label
	}
	if k <= scanLimit {
		// Insertion sort: few labels, no allocation.
		for i := 1; i < k; i++ {
			for j := i; j > 0 && e.labels[j] < e.labels[j-1]; j-- {
				e.labels[j], e.labels[j-1] = e.labels[j-1], e.labels[j]
			}
		}
	} else {
		slices.Sort(e.labels)
	}
	// Where each of the first wording's options sits in that order: the other wordings usually
	// list their options in the same order, and then need no search.
	e.firstAt = grow(e.firstAt, k)
	for j := range first {
		e.firstAt[j] = e.position(first[j].Label)
	}
	e.logits = grow(e.logits, e.n*k)
	labels, firstAt := e.labels[:k], e.firstAt[:k] // locals of length k: fewer bounds checks
	for i := range q.Paraphrases {
		para := &q.Paraphrases[i]
		row := e.logits[i*k : (i+1)*k : (i+1)*k]
		opts := para.Options
		if len(opts) != k {
			panic("calibrate: a wording's options are not the first's") // validation refuses it
		}
		for j := range opts {
			o := &opts[j]
			at := firstAt[j]
			if l := labels[at]; len(l) != 1 || len(o.Label) != 1 || l[0] != o.Label[0] {
				if !sameLabel(l, o.Label) {
					at = e.position(o.Label)
				}
			}
			row[at] = o.Logprob
		}
		e.stance[i] = -1
		if para.Framing == UserStance {
			e.stance[i] = e.position(para.Stance)
		}
	}
}

// position returns the index of label among the sorted labels, which hold it.
func (e *prepared) position(label string) int {
	if len(e.labels) <= scanLimit {
		for j := range e.labels {
			if sameLabel(e.labels[j], label) {
				return j
			}
		}
		return -1
	}
	j, _ := slices.BinarySearch(e.labels, label)
	return j
}

func modeOf(e Equivalence) ensemble.Mode {
	switch e {
	case EquivalenceF1:
		return ensemble.F1
	case EquivalenceEmbedding:
		return ensemble.Embedding
	}
	return ensemble.Exact
}

// prepareSamples clusters every sample, neutral wordings' first, and counts each wording's
// samples per candidate.
func (e *prepared) prepareSamples(ctx context.Context, q *Question, mode Equivalence) error {
	total := 0
	for i := range q.Paraphrases {
		total += len(q.Paraphrases[i].Samples)
	}
	e.items = grow(e.items, total)
	e.keys = grow(e.keys, total)
	e.assign = grow(e.assign, total)
	idx := 0
	for i := range q.Paraphrases {
		for j := range q.Paraphrases[i].Samples {
			if idx%256 == 255 && ctx.Err() != nil {
				return ctx.Err()
			}
			s := &q.Paraphrases[i].Samples[j]
			e.items[idx] = ensemble.Item{Norm: ensemble.Normalize(s.Text), Embedding: s.Embedding, Key: s.Cluster, Late: !e.use[i]}
			if s.Cluster != "" {
				e.keys[idx] = ensemble.Normalize(s.Cluster)
			}
			idx++
		}
	}
	m := modeOf(mode)
	var err error
	if e.k, err = ensemble.Cluster(ctx, e.assign, e.items, m); err != nil {
		return err
	}
	// Neutral clusters are numbered first: the pooled candidates are 0..kPool−1.
	e.kPool = 0
	for i, it := range e.items {
		if !it.Late {
			e.kPool = max(e.kPool, e.assign[i]+1)
		}
	}
	e.count = grow(e.count, e.n*e.k)
	e.size = grow(e.size, e.n)
	e.tokens = grow(e.tokens, e.n)
	e.maxSamples = 0
	idx = 0
	for i := range q.Paraphrases {
		para := &q.Paraphrases[i]
		for j := range para.Samples {
			e.count[i*e.k+e.assign[idx]]++
			e.tokens[i] = e.tokens[i] || len(para.Samples[j].Tokens) > 0
			idx++
		}
		e.size[i] = len(para.Samples)
		if e.use[i] {
			e.maxSamples = max(e.maxSamples, e.size[i])
		}
		e.stance[i] = -1
		if para.Framing == UserStance {
			e.stance[i] = e.findCandidate(para.Stance, m, false)
		}
	}
	// A candidate's answer is its most frequent raw text among pooled samples (any sample for
	// candidates only stance wordings gave).
	e.raw, e.rawTo = e.raw[:0], e.rawTo[:0]
	idx = 0
	for i := range q.Paraphrases {
		for j := range q.Paraphrases[i].Samples {
			if e.use[i] {
				e.raw = append(e.raw, q.Paraphrases[i].Samples[j].Text)
				e.rawTo = append(e.rawTo, e.assign[idx])
			}
			idx++
		}
	}
	e.answers = append(e.answers[:0], ensemble.Representative(e.raw, e.rawTo, e.kPool)...)
	if e.k > e.kPool {
		e.raw, e.rawTo = e.raw[:0], e.rawTo[:0]
		idx = 0
		for i := range q.Paraphrases {
			for j := range q.Paraphrases[i].Samples {
				e.raw = append(e.raw, q.Paraphrases[i].Samples[j].Text)
				e.rawTo = append(e.rawTo, e.assign[idx])
				idx++
			}
		}
		e.answers = append(e.answers, ensemble.Representative(e.raw, e.rawTo, e.k)[e.kPool:]...)
	}
	return nil
}

// findCandidate returns the candidate of the first sample (of a pooled candidate, when
// pooledOnly) whose cluster key or text the answer names — the key normalised alike, the text
// under mode — or e.k when it names none.
func (e *prepared) findCandidate(answer string, m ensemble.Mode, pooledOnly bool) int {
	na := ensemble.Normalize(answer)
	for i, it := range e.items {
		if pooledOnly && e.assign[i] >= e.kPool {
			continue
		}
		if e.keys[i] != "" && e.keys[i] == na || it.Norm == na || m == ensemble.F1 && ensemble.TokenF1(it.Norm, na) >= ensemble.F1Threshold {
			return e.assign[i]
		}
	}
	return e.k
}

// gold returns the pooled candidate a label names, or −1: an option label, or an answer that
// matches a pooled sample under mode.
func (e *prepared) gold(l *Label, mode Equivalence) int {
	for _, a := range l.Answers {
		if !e.sampled() {
			if j, ok := slices.BinarySearch(e.labels, a); ok {
				return j
			}
			continue
		}
		if c := e.findCandidate(a, modeOf(mode), true); c < e.kPool {
			return c
		}
	}
	return -1
}

// candidate returns candidate j's answer: its label, or its cluster's representative text.
func (e *prepared) candidate(j int) string {
	if e.sampled() {
		return e.answers[j]
	}
	return e.labels[j]
}
