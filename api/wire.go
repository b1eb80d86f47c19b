package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/plumbhq/plumb/calibrate"
)

// Encoding is how a message arrives: binary protobuf (gRPC, Connect binary, gRPC-Web) or
// protojson (Connect JSON, plumb's JSON Lines files).
type Encoding int

const (
	Binary Encoding = iota
	JSON
)

// Decode reads one message of the API from data, checking it as it reads, before it builds
// anything: the caps of a request (calibrate's Max* limits: wordings, options, samples, tokens,
// top_logprobs, embedding dimensions, text bytes), bind at the first element past them; a string
// that is not UTF-8, a field the message does not have and an enum value the API does not
// define are refused. Every refusal is a *calibrate.Error naming the field
// (paraphrases[2].samples[0].text) — InvalidInput, or Exhausted past a cap — so that every
// transport and the CLI answer one bad input alike. The cost of a refusal is a walk of the
// bytes up to the fault: no object is built for a request past a cap.
//
// JSON is read as protojson reads it (proto or lowerCamelCase names, enums by name or number,
// null for a default), strictly: an unknown field or enum name is an error, never dropped.
func Decode(data []byte, enc Encoding, m proto.Message) error {
	d := m.ProtoReflect().Descriptor()
	w := &walk{totals: map[protoreflect.FullName]int{}}
	var err error
	if enc == JSON {
		err = w.checkJSON(data, d)
	} else {
		err = w.binary(data, d)
	}
	if err != nil && !errors.Is(err, errSyntax) {
		return err
	}
	// Malformed input (errSyntax) is left to the decoder, which words what is wrong with it.
	if enc == JSON {
		err = protojson.Unmarshal(data, m)
	} else {
		err = proto.Unmarshal(data, m)
	}
	if err != nil {
		return &calibrate.Error{Kind: calibrate.InvalidInput, Msg: fmt.Sprintf("does not decode as %s: %v", d.FullName(), err)}
	}
	return nil
}

// limit is a cap on a repeated field (the most elements of one message's field, or of the
// request's whole count) or on a string's bytes.
type limit struct {
	kind  calibrate.ErrorKind
	each  int    // elements of this field in one message (0: none)
	total int    // elements of this field in the whole request (0: none)
	field string // the field named by a total's error (the request's "paraphrases")
	what  string // "options a wording"
}

// limits of the API's messages, by field, from calibrate's caps.
var limits = map[protoreflect.FullName]limit{
	"plumb.v1.ScoreRequest.paraphrases": {kind: calibrate.InvalidInput, each: calibrate.MaxParaphrases, what: "paraphrases"},
	"plumb.v1.Paraphrase.options":       {kind: calibrate.Exhausted, each: calibrate.MaxOptions, what: "options a wording"},
	"plumb.v1.Paraphrase.samples":       {kind: calibrate.Exhausted, total: calibrate.MaxSamples, field: "paraphrases", what: "samples a request"},
	"plumb.v1.Sample.tokens":            {kind: calibrate.Exhausted, total: calibrate.MaxTokens, field: "paraphrases", what: "tokens a request"},
	"plumb.v1.Token.top_logprobs":       {kind: calibrate.Exhausted, each: calibrate.MaxTopLogprobs, what: "top_logprobs a token"},
	"plumb.v1.Sample.embedding":         {kind: calibrate.Exhausted, each: calibrate.MaxEmbedding, what: "embedding dimensions"},
	// A sample's text is a short answer (4 096 bytes, which validation checks) or, in a long
	// answer, a passage.
	"plumb.v1.Sample.text":         {kind: calibrate.Exhausted, each: calibrate.MaxPassageBytes, what: "bytes"},
	"plumb.v1.Sample.support":      {kind: calibrate.Exhausted, each: calibrate.MaxClaims, what: "supports a sample"},
	"plumb.v1.Sample.sentences":    {kind: calibrate.Exhausted, total: maxSentences, field: "paraphrases", what: "sentence embeddings a request"},
	"plumb.v1.Vector.values":       {kind: calibrate.Exhausted, each: calibrate.MaxEmbedding, what: "embedding dimensions"},
	"plumb.v1.ScoreRequest.claims": {kind: calibrate.Exhausted, each: calibrate.MaxClaims, what: "claims a request"},
	"plumb.v1.Claim.text":          {kind: calibrate.Exhausted, each: calibrate.MaxTextBytes, what: "bytes"},
	"plumb.v1.Claim.id":            {kind: calibrate.Exhausted, each: calibrate.MaxTextBytes, what: "bytes"},
	"plumb.v1.Claim.embedding":     {kind: calibrate.Exhausted, each: calibrate.MaxEmbedding, what: "embedding dimensions"},
	"plumb.v1.Sample.cluster":      {kind: calibrate.Exhausted, each: calibrate.MaxTextBytes, what: "bytes"},
	"plumb.v1.Option.label":        {kind: calibrate.Exhausted, each: calibrate.MaxTextBytes, what: "bytes"},
	"plumb.v1.Paraphrase.stance":   {kind: calibrate.Exhausted, each: calibrate.MaxTextBytes, what: "bytes"},
}

// maxSentences is the most sentence embeddings a request may carry (their values are capped by
// calibrate.MaxEmbeddingValues; this bounds the vectors built before validation counts them).
const maxSentences = 100_000

// request is the message whose totals are counted: each starts them anew.
const request = "plumb.v1.ScoreRequest"

// path is where a walk is: its fields and, for repeated ones, the element's index. It is
// rendered only for an error.
type path []step

type step struct {
	name  protoreflect.Name
	index int // −1: a singular field
}

func (p path) String() string {
	var b strings.Builder
	for i, s := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(string(s.name))
		if s.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// walk is what a check carries: where it is and the request's totals.
type walk struct {
	at       path
	totals   map[protoreflect.FullName]int
	unquoted []byte // scratch of unquotedLen
}

func (w *walk) fail(kind calibrate.ErrorKind, format string, args ...any) error {
	return &calibrate.Error{Kind: kind, Field: w.at.String(), Msg: fmt.Sprintf(format, args...)}
}

// count counts element n (0-based) of repeated field fd, against its caps.
func (w *walk) count(fd protoreflect.FieldDescriptor, n int) error {
	l, ok := limits[fd.FullName()]
	if !ok {
		return nil
	}
	if l.each > 0 && n >= l.each {
		w.at[len(w.at)-1].index = -1 // the list, as validation names it
		return w.fail(l.kind, "more than %d %s, at most %d", l.each, l.what, l.each)
	}
	if l.total > 0 {
		w.totals[fd.FullName()]++
		if t := w.totals[fd.FullName()]; t > l.total {
			return &calibrate.Error{Kind: l.kind, Field: l.field, Msg: fmt.Sprintf("more than %d %s, at most %d", l.total, l.what, l.total)}
		}
	}
	return nil
}

// text checks a string field's value: UTF-8, and its bytes against a cap (n: its length once
// unescaped).
func (w *walk) text(fd protoreflect.FieldDescriptor, n int, valid bool) error {
	if !valid {
		return w.fail(calibrate.InvalidInput, "invalid UTF-8: strings must be UTF-8")
	}
	if l, ok := limits[fd.FullName()]; ok && n > l.each {
		return w.fail(l.kind, "%d %s, at most %d", n, l.what, l.each)
	}
	return nil
}

// enumValue checks that number n is a value of fd's enum.
func (w *walk) enumValue(fd protoreflect.FieldDescriptor, n int64) error {
	if fd.Enum().Values().ByNumber(protoreflect.EnumNumber(n)) == nil {
		return w.fail(calibrate.InvalidInput, "unknown %s value %d", fd.Enum().Name(), n)
	}
	return nil
}

func (w *walk) enter(d protoreflect.MessageDescriptor) {
	if d.FullName() == request {
		clear(w.totals)
	}
}

// maxCounted is the field numbers whose elements binary counts (plumb's messages use fewer).
const maxCounted = 64

// maxRepeats is the most times binary takes a field that is not repeated (protobuf merges them:
// a message sent as concatenated parts); past it the message is refused.
const maxRepeats = 16

func (w *walk) binary(b []byte, d protoreflect.MessageDescriptor) error {
	w.enter(d)
	var counts [maxCounted]int
	malformed := func() error { return errSyntax }
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed()
		}
		b = b[n:]
		fd := d.Fields().ByNumber(num)
		if fd == nil {
			// A field without a name here: "#N" in its path.
			w.at = append(w.at, step{protoreflect.Name("#" + strconv.Itoa(int(num))), -1})
			return w.fail(calibrate.InvalidInput, "unknown field number %d of %s", num, d.FullName())
		}
		index := -1
		packed := typ == protowire.BytesType && fd.IsList() && fd.Kind() != protoreflect.StringKind &&
			fd.Kind() != protoreflect.BytesKind && fd.Kind() != protoreflect.MessageKind
		if fd.IsList() && num < maxCounted {
			index = counts[num]
		}
		w.at = append(w.at, step{fd.Name(), index})
		if !fd.IsList() && !fd.IsMap() && num < maxCounted {
			// Protobuf merges a field given twice; given millions of times it is only work.
			if counts[num]++; counts[num] > maxRepeats {
				return w.fail(calibrate.InvalidInput, "given more than %d times: a field that is not repeated is given once", maxRepeats)
			}
		}
		if index >= 0 && !packed {
			if err := w.count(fd, index); err != nil {
				return err
			}
			counts[num]++
		}
		switch {
		case typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed()
			}
			b = b[n:]
			if err := w.binaryBytes(fd, v, &counts); err != nil {
				return err
			}
		case fd.Kind() == protoreflect.EnumKind && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return malformed()
			}
			b = b[n:]
			if err := w.enumValue(fd, int64(int32(v))); err != nil {
				return err
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return malformed()
			}
			b = b[n:]
		}
		w.at = w.at[:len(w.at)-1]
	}
	return nil
}

// binaryBytes checks the value of a length-delimited field: a message, a string, or a packed
// list of scalars.
func (w *walk) binaryBytes(fd protoreflect.FieldDescriptor, v []byte, counts *[maxCounted]int) error {
	switch {
	case fd.IsMap():
		return w.binaryMapEntry(fd, v)
	case fd.Kind() == protoreflect.MessageKind:
		return w.binary(v, fd.Message())
	case fd.Kind() == protoreflect.StringKind:
		return w.text(fd, len(v), utf8.Valid(v))
	case fd.Kind() == protoreflect.BytesKind:
		return nil
	case fd.IsList():
		// A packed list: its elements counted at once.
		n, size := 0, 0
		switch fd.Kind() {
		case protoreflect.FloatKind, protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
			size = 4
		case protoreflect.DoubleKind, protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
			size = 8
		}
		if size > 0 {
			if len(v)%size != 0 {
				return errSyntax
			}
			n = len(v) / size
		} else {
			for len(v) > 0 {
				x, m := protowire.ConsumeVarint(v)
				if m < 0 {
					return errSyntax
				}
				if fd.Kind() == protoreflect.EnumKind {
					w.at[len(w.at)-1].index = counts[fd.Number()] + n // the element, as JSON names it
					if err := w.enumValue(fd, int64(int32(x))); err != nil {
						return err
					}
				}
				v = v[m:]
				n++
			}
		}
		num := fd.Number()
		first := counts[num]
		if l, ok := limits[fd.FullName()]; ok && l.each > 0 && first+n > l.each {
			w.at[len(w.at)-1].index = -1 // the list, as validation names it
			return w.fail(l.kind, "more than %d %s, at most %d", l.each, l.what, l.each)
		}
		counts[num] += n
		return nil
	}
	return errSyntax
}

// binaryMapEntry checks one entry of a map field: its key and value as the fields 1 and 2 of
// the entry's message.
func (w *walk) binaryMapEntry(fd protoreflect.FieldDescriptor, v []byte) error {
	return w.binary(v, fd.Message())
}

// checkJSON walks protojson message data of descriptor d. Malformed JSON, or JSON of another
// shape than the message's, is errSyntax. Strings are read as they are (AllowInvalidUTF8) so
// that the walk names the field of one that is not UTF-8.
func (w *walk) checkJSON(data []byte, d protoreflect.MessageDescriptor) error {
	dec := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))
	err := w.jsonMessage(dec, d)
	if err == nil {
		if _, e := dec.ReadToken(); e != io.EOF {
			err = errSyntax
		}
	}
	var se *jsontext.SyntacticError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errSyntax
	}
	return err
}

// errSyntax is input that is malformed, or of the wrong JSON kind for its field.
var errSyntax = errors.New("api: malformed input")

// wellKnown reports whether a message has a JSON form of its own (Timestamp as a string, …),
// which the walk leaves to protojson.
func wellKnown(d protoreflect.MessageDescriptor) bool {
	return d.FullName().Parent() == "google.protobuf"
}

func (w *walk) jsonMessage(dec *jsontext.Decoder, d protoreflect.MessageDescriptor) error {
	if dec.PeekKind() == 'n' {
		_, err := dec.ReadToken()
		return err
	}
	if wellKnown(d) {
		return dec.SkipValue()
	}
	if tok, err := dec.ReadToken(); err != nil {
		return err
	} else if tok.Kind() != '{' {
		return errSyntax
	}
	w.enter(d)
	fields := d.Fields()
	var seen [maxCounted]bool
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		name := tok.String()
		fd := fields.ByJSONName(name)
		if fd == nil {
			fd = fields.ByTextName(name)
		}
		if fd == nil {
			w.at = append(w.at, step{protoreflect.Name(name), -1})
			if len(name) > 64 || !utf8.ValidString(name) {
				w.at[len(w.at)-1].name = "…"
			}
			return w.fail(calibrate.InvalidInput, "unknown field %q of %s", truncate(name), d.FullName())
		}
		w.at = append(w.at, step{fd.Name(), -1})
		if n := fd.Number(); n < maxCounted {
			if seen[n] {
				return w.fail(calibrate.InvalidInput, "given twice: a field is given once in JSON (under either of its names)")
			}
			seen[n] = true
		}
		if err := w.jsonField(dec, fd); err != nil {
			return err
		}
		w.at = w.at[:len(w.at)-1]
	}
	_, err := dec.ReadToken() // '}'
	return err
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func (w *walk) jsonField(dec *jsontext.Decoder, fd protoreflect.FieldDescriptor) error {
	switch {
	case dec.PeekKind() == 'n':
		_, err := dec.ReadToken()
		return err
	case fd.IsMap():
		if tok, err := dec.ReadToken(); err != nil {
			return err
		} else if tok.Kind() != '{' {
			return errSyntax
		}
		for dec.PeekKind() != '}' {
			if _, err := dec.ReadToken(); err != nil { // the key: protojson checks its form
				return err
			}
			if err := w.jsonValue(dec, fd.MapValue()); err != nil {
				return err
			}
		}
		_, err := dec.ReadToken()
		return err
	case fd.IsList():
		if tok, err := dec.ReadToken(); err != nil {
			return err
		} else if tok.Kind() != '[' {
			return errSyntax
		}
		last := len(w.at) - 1
		for i := 0; dec.PeekKind() != ']'; i++ {
			w.at[last].index = i
			if err := w.count(fd, i); err != nil {
				return err
			}
			if err := w.jsonValue(dec, fd); err != nil {
				return err
			}
		}
		w.at[last].index = -1
		_, err := dec.ReadToken()
		return err
	}
	return w.jsonValue(dec, fd)
}

// jsonValue checks one value of field fd (an element, for a list).
func (w *walk) jsonValue(dec *jsontext.Decoder, fd protoreflect.FieldDescriptor) error {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return w.jsonMessage(dec, fd.Message())
	case protoreflect.StringKind:
		if dec.PeekKind() != '"' {
			return errSyntax
		}
		v, err := dec.ReadValue()
		if err != nil {
			return err
		}
		return w.text(fd, w.unquotedLen(v), utf8.Valid(v))
	case protoreflect.EnumKind:
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		switch tok.Kind() {
		case '"':
			name := tok.String()
			if fd.Enum().Values().ByName(protoreflect.Name(name)) == nil {
				return w.fail(calibrate.InvalidInput, "unknown %s value %q", fd.Enum().Name(), truncate(name))
			}
			return nil
		case '0':
			n := tok.Float()
			if n != float64(int32(n)) {
				return w.fail(calibrate.InvalidInput, "%s value %v is not an enum number", fd.Enum().Name(), n)
			}
			return w.enumValue(fd, int64(n))
		}
		return errSyntax
	}
	return dec.SkipValue() // numbers, booleans, bytes: protojson checks their form
}

// unquotedLen returns the length in bytes of JSON string value v once unescaped.
func (w *walk) unquotedLen(v []byte) int {
	if bytes.IndexByte(v, '\\') < 0 {
		return len(v) - 2
	}
	var err error
	if w.unquoted, err = jsontext.AppendUnquote(w.unquoted[:0], v); err != nil {
		return len(v) // malformed: protojson words it
	}
	return len(w.unquoted)
}
