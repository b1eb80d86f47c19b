package ensemble

import (
	"context"
	"math"
	"math/bits"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Support of a long answer's claims by sampled passages (docs/DESIGN.md "Long answers").
//
// A claim that the model states with knowledge comes back when the model writes the passage
// again; an invented one changes from sample to sample (SelfCheckGPT, Manakul et al. 2023).
// Without a judge of the caller's, plumb measures how far a sample supports a claim lexically:
// the share of the claim's content words (its words but the commonest function words) found in
// the sample, each word weighted by its inverse document frequency among the reference samples,
// so that the words every sample shares — the subject's name, the topic — weigh little and a
// claim's distinctive words, a date, a place, a title, decide:
//
//	support(j, m) = Σ_{t ∈ T_j} w_t · 1[t ∈ sample m] / Σ_{t ∈ T_j} w_t,   w_t = log((N + 1) / (df_t + ½))
//
// with T_j the claim's content words, N the reference samples and df_t how many hold t. A word
// of the claim that no reference sample holds weighs most: it is the claim's own invention.
// On the visible WikiBio set (GPT-3 biographies, 20 samples each) it ranks false sentences with
// AUC-PR 0.887 and AUROC 0.729, where the plain share of the claim's words (w_t = 1) ranks them
// 0.863 and 0.680 and an LLM judge's mean support 0.881 and 0.768 (testdata/wikibio).
//
// The reference samples are the neutral wordings' (the caller names them): the weights of the
// words do not depend on the stance wordings, so that adding them moves no neutral support.

// Words returns the content words of a text: Unicode NFKC, lower case, the runs of letters and
// digits, without the commonest English function words; a text of function words alone keeps
// them.
func Words(text string) []string {
	return appendWords(nil, text)
}

func appendWords(dst []string, text string) []string {
	if !isASCII(text) {
		text = norm.NFKC.String(text)
	}
	start := len(dst)
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			i += n
			continue
		}
		j := i + n
		for j < len(text) {
			r, n := utf8.DecodeRuneInString(text[j:])
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				break
			}
			j += n
		}
		dst = append(dst, strings.ToLower(text[i:j]))
		i = j
	}
	// The content words, in order; all of them when every one is a function word.
	kept := start
	for _, w := range dst[start:] {
		if !functionWords[w] {
			dst[kept] = w
			kept++
		}
	}
	if kept > start {
		return dst[:kept]
	}
	return dst
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// functionWords are the commonest English function words, which say nothing of a claim's
// content.
var functionWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an the and or but if of at by for with about against between into through during
		before after above below to from up down in out on off over under again further then once here there when where
		why how all any both each few more most other some such no nor not only own same so than too very can will just
		should now i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
		herself it its itself they them their theirs themselves what which who whom this that these those am is are was were
		be been being have has had having do does did doing would could also as s t`) {
		m[w] = true
	}
	return m
}()

// A Lexicon indexes the words of sampled passages, so that the lexical support of many claims
// by every passage is measured in one pass over each claim's words. It is built for one
// request and not safe for concurrent use.
type Lexicon struct {
	ids   map[string]int32
	holds []uint64        // word id × words: the bit of sample m is set when it holds the word
	df    []int32         // per word: the reference samples that hold it
	words int             // uint64 words per word's bits
	n     int             // samples indexed
	refs  int             // of which reference samples
	ws    []string        // scratch
	seen  map[string]bool // scratch: a claim's words counted
}

// NewLexicon indexes samples, of which the first refs are the reference samples whose word
// frequencies weigh the words (the neutral wordings'). It stops with ctx's error, looking at it
// every 256 samples.
func NewLexicon(ctx context.Context, samples []string, refs int) (*Lexicon, error) {
	if refs > len(samples) {
		panic("ensemble: more reference samples than samples")
	}
	x := &Lexicon{ids: map[string]int32{}, n: len(samples), refs: refs, words: (len(samples) + 63) / 64}
	for m, s := range samples {
		if m%256 == 255 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		x.ws = appendWords(x.ws[:0], s)
		for _, w := range x.ws {
			id, ok := x.ids[w]
			if !ok {
				id = int32(len(x.df))
				x.ids[w] = id
				x.df = append(x.df, 0)
				x.holds = append(x.holds, make([]uint64, x.words)...)
			}
			held := x.holds[int(id)*x.words:]
			if held[m/64]&(1<<(m%64)) == 0 {
				held[m/64] |= 1 << (m % 64)
				if m < refs {
					x.df[id]++
				}
			}
		}
	}
	return x, nil
}

// Support fills dst (one value per sample, in the order indexed) with the lexical support of a
// claim by each sample, and returns it. A claim without a word is supported by none.
func (x *Lexicon) Support(dst []float64, claim string) []float64 {
	if len(dst) != x.n {
		panic("ensemble: support length mismatch")
	}
	clear(dst)
	x.ws = appendWords(x.ws[:0], claim)
	if x.seen == nil {
		x.seen = map[string]bool{}
	}
	clear(x.seen)
	var total float64
	n1 := float64(x.refs + 1)
	for _, w := range x.ws {
		if x.seen[w] {
			continue // a word counted once
		}
		x.seen[w] = true
		id, ok := x.ids[w]
		df := 0
		if ok {
			df = int(x.df[id])
		}
		wt := math.Log(n1 / (float64(df) + 0.5))
		total += wt
		if !ok {
			continue // no sample holds it
		}
		for k, b := range x.holds[int(id)*x.words : int(id+1)*x.words] {
			for b != 0 {
				m := k*64 + bits.TrailingZeros64(b)
				dst[m] += wt
				b &= b - 1
			}
		}
	}
	if total > 0 {
		inv := 1 / total
		for m := range dst {
			dst[m] *= inv
		}
	}
	return dst
}
