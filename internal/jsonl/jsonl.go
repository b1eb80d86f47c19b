// Package jsonl is plumb's one way in and out of JSON Lines files: an ordered pipeline that
// cuts a file into chunks of whole lines and works on them over the machine's cores (Stream),
// one decoder of plumb's lines straight into the engine's types with protojson as its
// fallback (Decoder, DecodeExample, DecodeQuestion), the OpenAI chat-completions input shape,
// and a direct encoder of ScoreResponse lines (AppendResponse).
//
// The Decoder takes the shape plumb's lines usually have — the protojson mapping of a
// LabeledExample or ScoreRequest with numbers as JSON numbers, enums by name or number, proto
// or lowerCamelCase field names — and refuses everything else with ErrUnsupported: an unknown
// field, a null, a number written as a string ("NaN", "1.5"), a repeated field, an escaped
// key, an unknown enum value. DecodeExample and DecodeQuestion send a refused line to
// api.Decode, which accepts exactly what the proto3 JSON mapping allows (strictly: no unknown
// field or enum name), checks the caps while it reads, and names the field of an error. What
// the Decoder accepts, it decodes as api.Decode followed by api.Example does; a test and a fuzz
// target check it. (The Decoder is a second path beside api.Decode for a measured reason:
// plumb eval reads a million lines in 3.4 s with it, and its lines are nearly all of its
// subset; BENCHMARKS.md.)
//
// A Decoder reuses the slices of the Example it decodes into and interns short strings
// (labels, prompts, answers, tokens), so decoding a line allocates nothing in the steady
// state but its id.
package jsonl

import (
	"errors"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// ErrUnsupported says a line is not in the decoder's subset (it may or may not be valid
// protojson).
var ErrUnsupported = errors.New("jsonl: line outside the fast decoder's subset")

// A Decoder decodes lines. The zero value is ready; a Decoder is not safe for concurrent use.
type Decoder struct {
	// Lean leaves out what scoring does not read: request ids and prompts are checked but
	// not kept. plumb eval sets it.
	Lean bool

	s       scanner
	strs    map[string]string
	answers []string
}

// internMax and internEntries bound the interned strings.
const (
	internMax     = 64
	internEntries = 1 << 13
)

// intern returns b as a string, shared with earlier equal short strings.
func (d *Decoder) intern(b []byte) string {
	if len(b) > internMax {
		return string(b)
	}
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	if d.strs == nil || len(d.strs) >= internEntries {
		d.strs = make(map[string]string, 256)
	}
	s := string(b)
	d.strs[s] = s
	return s
}

// reuse returns b as a string: old when it is equal (a reused element's previous value, often
// the same label as the line before), else interned. Short strings are compared byte by byte,
// cheaper than a call for a label.
func (d *Decoder) reuse(old string, b []byte) string {
	if len(old) == len(b) && len(b) <= 8 {
		for i := range b {
			if old[i] != b[i] {
				return d.intern(b)
			}
		}
		return old
	}
	if old == string(b) {
		return old
	}
	return d.intern(b)
}

// Question decodes one ScoreRequest line into q, reusing q's memory. On ErrUnsupported q holds
// a partial decoding.
func (d *Decoder) Question(line []byte, q *calibrate.Question) error {
	d.s.reset(line)
	resetQuestion(q)
	d.request(q)
	return d.finish()
}

// Example decodes one LabeledExample line into ex, reusing ex's memory. On ErrUnsupported ex
// holds a partial decoding.
func (d *Decoder) Example(line []byte, ex *calibrate.Example) error {
	s := &d.s
	s.reset(line)
	q := &ex.Question
	resetQuestion(q)
	ex.Label.Answers = ex.Label.Answers[:0]
	var seen uint32
	for ok := s.open('{', '}'); ok; ok = s.next('}') {
		switch string(s.key()) {
		case "request":
			if s.once(&seen, 1) {
				d.request(q)
			}
		case "label":
			if !s.once(&seen, 2) {
				break
			}
			var lseen uint32
			for ok := s.open('{', '}'); ok; ok = s.next('}') {
				if string(s.key()) != "answers" || !s.once(&lseen, 1) {
					s.bad = true
					break
				}
				for ok := s.open('[', ']'); ok; ok = s.next(']') {
					ex.Label.Answers = append(ex.Label.Answers, d.intern(s.str()))
				}
			}
		default:
			s.bad = true
		}
	}
	return d.finish()
}

func (d *Decoder) finish() error {
	if d.s.bad || !d.s.end() {
		return ErrUnsupported
	}
	return nil
}

func resetQuestion(q *calibrate.Question) {
	ps := q.Paraphrases[:0]
	*q = calibrate.Question{Paraphrases: ps}
}

// array reads a JSON array into list with one call of elem per element, reusing the elements
// beyond list's length (and their own slices) when its capacity allows.
func array[T any](d *Decoder, list []T, elem func(*Decoder, *T)) []T {
	list = list[:0]
	for ok := d.s.open('[', ']'); ok; ok = d.s.next(']') {
		if len(list) < cap(list) {
			list = list[:len(list)+1]
		} else {
			var zero T
			list = append(list, zero)
		}
		elem(d, &list[len(list)-1])
	}
	return list
}

// Field bits for repeated-field detection, per message.
const (
	fID = 1 << iota
	fProfile
	fGroup
	fParaphrases
	fPolicy
	fKind
	fVersion
)

func (d *Decoder) request(q *calibrate.Question) {
	s := &d.s
	var seen uint32
	for ok := s.open('{', '}'); ok; ok = s.next('}') {
		switch string(s.key()) {
		case "id":
			if s.once(&seen, fID) {
				if id := s.str(); !d.Lean {
					q.ID = string(id)
				}
			}
		case "profile":
			if s.once(&seen, fProfile) {
				q.Profile = d.intern(s.str())
			}
		case "group":
			if s.once(&seen, fGroup) {
				q.Group = d.intern(s.str())
			}
		case "kind":
			if s.once(&seen, fKind) {
				var ok bool
				if q.Kind, ok = api.QueryKindOf(plumbv1.QueryKind(s.enum(plumbv1.QueryKind_value))); !ok {
					s.bad = true
				}
			}
		case "profile_version", "profileVersion":
			if s.once(&seen, fVersion) {
				q.ProfileVersion = s.int64()
			}
		case "policy":
			if s.once(&seen, fPolicy) {
				d.policy(&q.Policy)
			}
		case "paraphrases":
			if s.once(&seen, fParaphrases) {
				q.Paraphrases = array(d, q.Paraphrases, (*Decoder).paraphrase)
			}
		default:
			s.bad = true
		}
	}
}

func (d *Decoder) policy(p *calibrate.Policy) {
	s := &d.s
	var seen uint32
	for ok := s.open('{', '}'); ok; ok = s.next('}') {
		switch string(s.key()) {
		case "risk":
			if s.once(&seen, 1) {
				p.Risk = s.float(64)
			}
		case "equivalence":
			if s.once(&seen, 2) {
				var ok bool
				if p.Equivalence, ok = api.EquivalenceOf(plumbv1.Equivalence(s.enum(plumbv1.Equivalence_value))); !ok {
					s.bad = true
				}
			}
		default:
			s.bad = true
		}
	}
}

func (d *Decoder) paraphrase(p *calibrate.Paraphrase) {
	*p = calibrate.Paraphrase{Options: p.Options[:0], Samples: p.Samples[:0]}
	if d.promptAndOptions(p) {
		return
	}
	s := &d.s
	var seen uint32
	for ok := s.open('{', '}'); ok; ok = s.next('}') {
		switch string(s.key()) {
		case "prompt":
			if s.once(&seen, 1) {
				if prompt := s.str(); !d.Lean {
					p.Prompt = d.intern(prompt)
				}
			}
		case "framing":
			if s.once(&seen, 2) {
				var ok bool
				if p.Framing, ok = api.FramingOf(plumbv1.Framing(s.enum(plumbv1.Framing_value))); !ok {
					s.bad = true
				}
			}
		case "stance":
			if s.once(&seen, 4) {
				p.Stance = d.intern(s.str())
			}
		case "options":
			if s.once(&seen, 8) {
				p.Options = d.options(p.Options)
			}
		case "samples":
			if s.once(&seen, 16) {
				p.Samples = array(d, p.Samples, (*Decoder).sample)
			}
		default:
			s.bad = true
		}
	}
}

// promptAndOptions reads a paraphrase of the usual shape, {"prompt":"…","options":[…]} (white
// space allowed), without looking its keys up; anything else it leaves to the field-by-field
// loop, consuming nothing.
func (d *Decoder) promptAndOptions(p *calibrate.Paraphrase) bool {
	s := &d.s
	at := s.i
	// Each piece compact first, then token by token.
	if !s.lit(`{"prompt":`) && !(s.char('{') && s.lit(`"prompt"`) && s.char(':')) {
		s.i = at
		return false
	}
	prompt := s.str()
	if s.bad || !s.lit(`,"options":`) && !(s.char(',') && s.lit(`"options"`) && s.char(':')) {
		s.i, s.bad = at, false
		return false
	}
	if !d.Lean {
		p.Prompt = d.intern(prompt)
	}
	if p.Options = d.options(p.Options); s.bad || !s.char('}') {
		s.i, s.bad = at, false
		p.Prompt, p.Options = "", p.Options[:0]
		return false
	}
	return true
}

// The shapes of options and top_logprobs entries.
var (
	optionShape = newStringNumberShape(`"label"`, `"logprob"`)
	topShape    = newStringNumberShape(`"token"`, `"logprob"`)
)

// options reads an options array into list, reusing its elements: array's loop, with the
// comma between options of the usual compact shape taken directly.
func (d *Decoder) options(list []calibrate.Option) []calibrate.Option {
	s := &d.s
	list = list[:0]
	for ok := s.open('[', ']'); ok; {
		if len(list) < cap(list) {
			list = list[:len(list)+1]
		} else {
			list = append(list, calibrate.Option{})
		}
		o := &list[len(list)-1]
		// The usual shape, {"label":…,"logprob":…}, read here without a call; anything else
		// field by field (option). A label of one byte equal to the element's previous one,
		// the usual case, is kept without a look-up.
		if label, lp, ok := s.stringNumber(&optionShape); ok {
			if len(label) != 1 || len(o.Label) != 1 || label[0] != o.Label[0] {
				o.Label = d.reuse(o.Label, label)
			}
			o.Logprob = lp
		} else {
			d.option(o)
		}
		if s.i < len(s.b) && s.b[s.i] == ',' {
			s.i++
			continue
		}
		ok = s.next(']')
	}
	return list
}

// option reads one option field by field: its shape is not the usual one, which options reads
// itself.
func (d *Decoder) option(o *calibrate.Option) {
	old := o.Label
	*o = calibrate.Option{}
	s := &d.s
	var seen uint32
	for ok := s.open('{', '}'); ok; ok = s.next('}') {
		switch string(s.key()) {
		case "label":
			if s.once(&seen, 1) {
				o.Label = d.reuse(old, s.str())
			}
		case "logprob":
			if s.once(&seen, 2) {
				o.Logprob = s.float(64)
			}
		default:
			s.bad = true
		}
	}
}

func (d *Decoder) sample(sm *calibrate.Sample) {
	*sm = calibrate.Sample{Tokens: sm.Tokens[:0], Embedding: sm.Embedding[:0]}
	s := &d.s
	var seen uint32
	for ok := s.open('{', '}'); ok; ok = s.next('}') {
		switch string(s.key()) {
		case "text":
			if s.once(&seen, 1) {
				sm.Text = d.intern(s.str())
			}
		case "embedding":
			if !s.once(&seen, 2) {
				break
			}
			for ok := s.open('[', ']'); ok; ok = s.next(']') {
				sm.Embedding = append(sm.Embedding, float32(s.float(32)))
			}
		case "tokens":
			if s.once(&seen, 4) {
				sm.Tokens = array(d, sm.Tokens, (*Decoder).token)
			}
		default:
			s.bad = true
		}
	}
}

func (d *Decoder) token(t *calibrate.Token) {
	*t = calibrate.Token{TopLogprobs: t.TopLogprobs[:0]}
	s := &d.s
	var seen uint32
	for ok := s.open('{', '}'); ok; ok = s.next('}') {
		switch string(s.key()) {
		case "token":
			if s.once(&seen, 1) {
				t.Token = d.intern(s.str())
			}
		case "logprob":
			if s.once(&seen, 2) {
				t.Logprob = s.float(64)
			}
		case "bytes":
			if s.once(&seen, 4) {
				d.bytes()
			}
		case "top_logprobs", "topLogprobs":
			if s.once(&seen, 8) {
				t.TopLogprobs = array(d, t.TopLogprobs, (*Decoder).top)
			}
		default:
			s.bad = true
		}
	}
}

func (d *Decoder) top(tl *calibrate.TopLogprob) {
	*tl = calibrate.TopLogprob{}
	s := &d.s
	if token, lp, ok := s.stringNumber(&topShape); ok {
		tl.Token, tl.Logprob = d.intern(token), lp
		return
	}
	var seen uint32
	for ok := s.open('{', '}'); ok; ok = s.next('}') {
		switch string(s.key()) {
		case "token":
			if s.once(&seen, 1) {
				tl.Token = d.intern(s.str())
			}
		case "logprob":
			if s.once(&seen, 2) {
				tl.Logprob = s.float(64)
			}
		case "bytes":
			if s.once(&seen, 4) {
				d.bytes()
			}
		default:
			s.bad = true
		}
	}
}

// bytes checks a token's UTF-8 bytes (int32s); the engine does not read them.
func (d *Decoder) bytes() {
	for ok := d.s.open('[', ']'); ok; ok = d.s.next(']') {
		d.s.int(32)
	}
}
