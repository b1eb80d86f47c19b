package calibrate

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/plumbhq/plumb/internal/fmath"
)

// Limits of one request.
const (
	MaxParaphrases = 64
	MaxTokens      = 100_000
	// LogprobSlack is the rounding allowed above 0 in a logprob and above 1 in a top_logprobs mass.
	LogprobSlack = 1e-6
)

// ErrorKind classifies a domain error; the server maps it to a status code.
type ErrorKind int

// The error kinds.
const (
	// InvalidInput: the request is malformed (codes.InvalidArgument).
	InvalidInput ErrorKind = iota + 1
	// NotFound: an unknown profile or version (codes.NotFound).
	NotFound
	// Exhausted: the request is larger than the limits (codes.ResourceExhausted).
	Exhausted
	// Precondition: the data cannot support the operation, e.g. too few examples to fit
	// (codes.FailedPrecondition).
	Precondition
)

// Error is a domain error that names the field at fault, e.g.
// "paraphrases[2].samples[0].tokens[7].logprob: positive logprob 0.3".
type Error struct {
	Kind  ErrorKind
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// KindOf returns the kind of a domain error in err's chain, or 0.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func invalid(field, format string, args ...any) *Error {
	return &Error{Kind: InvalidInput, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks a question against every request row of DESIGN.md's bad-input table, with the
// answer-equivalence mode of its policy (exact when unset). The error names the field.
func (q *Question) Validate() error {
	return q.validate(q.Policy.Equivalence)
}

func paraField(i int) string { return "paraphrases[" + strconv.Itoa(i) + "]" }

func (q *Question) validate(mode Equivalence) error { return q.validateInto(mode, nil, nil) }

// validateInto is validate that also appends each token's top_logprobs mass to masses (when
// not nil), in the order of the paraphrases, samples and tokens, and sets inOrder (when not
// nil) to whether every paraphrase lists its options' labels in paraphrases[0]'s order.
func (q *Question) validateInto(mode Equivalence, masses *[]float64, inOrder *bool) error {
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
	if q.Policy.Equivalence < EquivalenceDefault || q.Policy.Equivalence > EquivalenceEmbedding {
		return invalid("policy.equivalence", "unknown mode %d", q.Policy.Equivalence)
	}
	first := &q.Paraphrases[0]
	tokens, embedDim := 0, -1
	ordered := true
	for i := range q.Paraphrases {
		p := &q.Paraphrases[i]
		hasO, hasS := len(p.Options) > 0, len(p.Samples) > 0
		switch {
		case hasO && hasS:
			return invalid(paraField(i), "both options and samples; a paraphrase carries one kind")
		case !hasO && !hasS:
			return invalid(paraField(i), "neither options nor samples")
		case i > 0 && hasO != (len(first.Options) > 0):
			return invalid(paraField(i), "%s, but paraphrases[0] has %s: all paraphrases carry the same kind", kindName(hasO), kindName(!hasO))
		}
		switch p.Framing {
		case Neutral:
		case UserStance:
			if p.Stance == "" {
				return invalid(paraField(i)+".stance", "USER_STANCE wording without a stance")
			}
		default:
			return invalid(paraField(i)+".framing", "unknown framing %d", p.Framing)
		}
		if hasO {
			same, err := validateOptions(p, first, i)
			if err != nil {
				return err
			}
			ordered = ordered && same
			continue
		}
		for j := range p.Samples {
			s := &p.Samples[j]
			sf := func() string { return paraField(i) + ".samples[" + strconv.Itoa(j) + "]" }
			if s.Text == "" {
				return invalid(sf()+".text", "empty answer text")
			}
			if mode == EquivalenceEmbedding {
				if len(s.Embedding) == 0 {
					return invalid(sf()+".embedding", "missing; embedding equivalence needs one per sample")
				}
				if embedDim >= 0 && len(s.Embedding) != embedDim {
					return invalid(sf()+".embedding", "length %d, but earlier samples have %d", len(s.Embedding), embedDim)
				}
				embedDim = len(s.Embedding)
				var norm float64
				for e, v := range s.Embedding {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						return invalid(sf()+".embedding["+strconv.Itoa(e)+"]", "not finite")
					}
					norm += float64(v) * float64(v)
				}
				if norm == 0 {
					return invalid(sf()+".embedding", "zero vector")
				}
			}
			tokens += len(s.Tokens)
			if tokens > MaxTokens {
				return &Error{Kind: Exhausted, Field: "paraphrases", Msg: fmt.Sprintf("more than %d tokens in one request", MaxTokens)}
			}
			for t := range s.Tokens {
				mass, sub, msg := checkToken(&s.Tokens[t])
				if msg != "" {
					return invalid(sf()+".tokens["+strconv.Itoa(t)+"]"+sub, "%s", msg)
				}
				if masses != nil {
					*masses = append(*masses, mass)
				}
			}
		}
	}
	if inOrder != nil {
		*inOrder = ordered && len(first.Options) > 0
	}
	return nil
}

func kindName(options bool) string {
	if options {
		return "options"
	}
	return "samples"
}

// validateOptions checks paraphrase i's options and reports whether their labels are those of
// first (already checked) in the same order.
func validateOptions(p, first *Paraphrase, i int) (sameOrder bool, err error) {
	f := func() string { return paraField(i) }
	if len(p.Options) < 2 {
		return false, invalid(paraField(i)+".options", "%d option, at least 2", len(p.Options))
	}
	of := func(j int) string { return f() + ".options[" + strconv.Itoa(j) + "]" }
	// The usual case: the labels of paraphrases[0] (already checked) in the same order.
	sameOrder = p != first && len(p.Options) == len(first.Options)
	for j := range p.Options {
		o := &p.Options[j]
		if !finiteLogprob(o.Logprob) {
			return false, invalid(of(j)+".logprob", "%s", logprobFault(o.Logprob))
		}
		if sameOrder && sameLabel(o.Label, first.Options[j].Label) {
			continue
		}
		sameOrder = false
		if o.Label == "" {
			return false, invalid(of(j)+".label", "empty label")
		}
		for _, prev := range p.Options[:j] {
			if sameLabel(prev.Label, o.Label) {
				return false, invalid(of(j)+".label", "duplicate label %q", o.Label)
			}
		}
	}
	if sameOrder {
		return true, checkStance(p, f)
	}
	if p != first {
		if len(p.Options) != len(first.Options) {
			return false, invalid(paraField(i)+".options", "%d labels, but paraphrases[0] has %d: label sets differ", len(p.Options), len(first.Options))
		}
		for j := range p.Options {
			if indexOf(first.Options, p.Options[j].Label) < 0 {
				return false, invalid(paraField(i)+".options["+strconv.Itoa(j)+"].label", "label %q not among paraphrases[0]'s: label sets differ", p.Options[j].Label)
			}
		}
	}
	return p == first, checkStance(p, f)
}

func checkStance(p *Paraphrase, f func() string) error {
	if p.Framing == UserStance && indexOf(p.Options, p.Stance) < 0 {
		return invalid(f()+".stance", "stance %q is not one of the option labels", p.Stance)
	}
	return nil
}

func indexOf(opts []Option, label string) int {
	for i := range opts {
		if sameLabel(opts[i].Label, label) {
			return i
		}
	}
	return -1
}

func checkLogprob(v float64, field string) error {
	if m := logprobFault(v); m != "" {
		return invalid(field, "%s", m)
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
	return unsafe.StringData(a) == unsafe.StringData(b) || a == b
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

// checkToken returns the mass of a token's top_logprobs, and the sub-field and message of its
// first fault, or "", "". Paths are built only on a fault: this runs for every token of every
// request.
func checkToken(t *Token) (mass float64, field, msg string) {
	if !finiteLogprob(t.Logprob) {
		return 0, ".logprob", logprobFault(t.Logprob)
	}
	for i := range t.TopLogprobs {
		lp := t.TopLogprobs[i].Logprob
		if !finiteLogprob(lp) {
			return 0, ".top_logprobs[" + strconv.Itoa(i) + "].logprob", logprobFault(lp)
		}
		mass += fmath.Exp(lp)
	}
	if mass > 1+LogprobSlack {
		return 0, ".top_logprobs", fmt.Sprintf("probability mass %.6f exceeds 1", mass)
	}
	return mass, "", ""
}
