package jsonl

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
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

// DecodeExample decodes one labelled line into ex: with the Decoder when it takes the line,
// else with protojson (or, for the OpenAI format, encoding/json), whose error says what the
// line is not.
func DecodeExample(d *Decoder, line []byte, ex *calibrate.Example, f Format) error {
	if f == Plumb && d.Example(line, ex) == nil {
		return nil
	}
	m := new(plumbv1.LabeledExample) // only here: on the fast path nothing is allocated
	var err error
	if f == OpenAI {
		err = openAIExample(line, m)
	} else {
		err = protojson.Unmarshal(line, m)
	}
	if err != nil {
		return fmt.Errorf("not a LabeledExample %s: %w", f.what(), err)
	}
	*ex = service.ExampleFrom(m)
	return nil
}

// DecodeQuestion decodes one request line into q, as DecodeExample decodes a labelled one.
func DecodeQuestion(d *Decoder, line []byte, q *calibrate.Question, f Format) error {
	if f == Plumb && d.Question(line, q) == nil {
		return nil
	}
	m := new(plumbv1.ScoreRequest)
	var err error
	if f == OpenAI {
		err = openAIRequest(line, m)
	} else {
		err = protojson.Unmarshal(line, m)
	}
	if err != nil {
		return fmt.Errorf("not a ScoreRequest %s: %w", f.what(), err)
	}
	*q = service.QuestionFrom(m)
	return nil
}
