package jsonl

import (
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// Format is the shape of an input file's lines.
type Format int

const (
	// Plumb: protojson of a LabeledExample or ScoreRequest per line. The default.
	Plumb Format = iota
	// OpenAI: a question's wordings with the raw chat-completions response of each
	// (openai.go).
	OpenAI
)

// ParseFormat reads a format's name as the --from flag takes it: "" (plumb's own lines) or
// "openai".
func ParseFormat(name string) (Format, error) {
	switch name {
	case "":
		return Plumb, nil
	case "openai":
		return OpenAI, nil
	}
	return 0, fmt.Errorf("--from %q: want openai, or nothing for plumb's own lines", name)
}

// what names the format in errors.
func (f Format) what() string {
	if f == OpenAI {
		return "in the --from openai format"
	}
	return "on one line (JSON Lines, protojson)"
}

// openAIKeys are top-level keys of the OpenAI shapes — a --from openai line, or a raw
// chat-completions response — that no plumb message has.
var openAIKeys = []string{"wordings", "choices", "object", "model", "usage"}

// hint returns advice for a line that did not decode as plumb's own but has the keys of the
// OpenAI shapes: give --from openai.
func hint(f Format, line []byte) string {
	if f != Plumb {
		return ""
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(line, &top) != nil {
		return ""
	}
	for _, k := range openAIKeys {
		if _, ok := top[k]; ok {
			if k != "wordings" {
				return fmt.Sprintf(" (the line has %q, as an OpenAI chat-completions response does: give each question's wordings with their responses, {\"wordings\": [{\"prompt\": …, \"response\": {…}}]}, and --from openai)", k)
			}
			return " (the line is in the OpenAI shape, {\"wordings\": [{\"response\": …}]}: add --from openai)"
		}
	}
	return ""
}

// DecodeExample decodes one labelled line into ex: with the Decoder when it takes the line,
// else with api.Decode (or, for the OpenAI format, encoding/json), whose error says what the
// line is not, or names its field.
func DecodeExample(d *Decoder, line []byte, ex *calibrate.Example, f Format) error {
	if f == Plumb && d.Example(line, ex) == nil {
		return nil
	}
	m := new(plumbv1.LabeledExample) // only here: on the fast path nothing is allocated
	if err := decodeMessage(line, m, f, "LabeledExample", openAIExample); err != nil {
		return err
	}
	var err error
	*ex, err = api.Example(m)
	return err
}

// DecodeQuestion decodes one request line into q, as DecodeExample decodes a labelled one.
func DecodeQuestion(d *Decoder, line []byte, q *calibrate.Question, f Format) error {
	if f == Plumb && d.Question(line, q) == nil {
		return nil
	}
	m := new(plumbv1.ScoreRequest)
	if err := decodeMessage(line, m, f, "ScoreRequest", openAIRequest); err != nil {
		return err
	}
	var err error
	*q, err = api.Question(m)
	return err
}

// decodeMessage decodes a line the Decoder did not take into m: plumb's own with api.Decode,
// which names the field at fault; the OpenAI format with openAI. An error that names no field
// says what the line is not, with a hint when it looks like the other format.
func decodeMessage[M proto.Message](line []byte, m M, f Format, what string, openAI func([]byte, M) error) error {
	var err error
	if f == OpenAI {
		err = openAI(line, m)
	} else {
		err = api.Decode(line, api.JSON, m)
	}
	if err == nil {
		return nil
	}
	h := hint(f, line)
	if e := (*calibrate.Error)(nil); h == "" && errors.As(err, &e) && e.Field != "" {
		return err
	}
	return fmt.Errorf("not a %s %s: %w%s", what, f.what(), err, h)
}
