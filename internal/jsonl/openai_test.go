package jsonl

import (
	"strings"
	"testing"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/datasets"
)

// TestFromOpenAI: the first line of testdata/openai-example.jsonl (raw chat-completions
// responses, n = 3 choices with logprobs and top_logprobs) becomes sample wordings with their
// tokens; a response without content is named by its path.
func TestFromOpenAI(t *testing.T) {
	first := datasets.Lines(t, "openai-example.jsonl")[0]
	var ex calibrate.Example
	if err := DecodeExample(new(Decoder), first, &ex, OpenAI); err != nil {
		t.Fatal(err)
	}
	q := ex.Question
	if len(q.Paraphrases) != 4 || ex.Label.Answers[0] != "Canberra" {
		t.Fatalf("converted %d wordings, label %v", len(q.Paraphrases), ex.Label)
	}
	stance := q.Paraphrases[3]
	if stance.Framing != calibrate.UserStance || stance.Stance != "Sydney" || len(stance.Samples) != 3 {
		t.Fatalf("stance wording: %+v", stance)
	}
	tok := q.Paraphrases[0].Samples[0].Tokens[0]
	if tok.Token != "Can" || len(tok.TopLogprobs) != 3 || tok.TopLogprobs[0].Token != "Can" {
		t.Fatalf("first token: %+v", tok)
	}
	var asRequest calibrate.Question
	if err := DecodeQuestion(new(Decoder), first, &asRequest, OpenAI); err != nil || len(asRequest.Paraphrases) != 4 {
		t.Fatalf("as a request: %v", err)
	}

	bad := strings.Replace(string(first), `"content": "Canberra"`, `"content": null`, 1)
	err := DecodeExample(new(Decoder), []byte(bad), &ex, OpenAI)
	if err == nil || !strings.Contains(err.Error(), "wordings[0].response.choices[0].message.content") {
		t.Fatalf("missing content: %v", err)
	}
	unlabeled := strings.Replace(string(first), `"label"`, `"x-label"`, 1)
	if err := DecodeExample(new(Decoder), []byte(unlabeled), &ex, OpenAI); err == nil || !strings.Contains(err.Error(), "label") {
		t.Fatalf("no label: %v", err)
	}
	if _, err := ParseFormat("anthropic"); err == nil || !strings.Contains(err.Error(), "--from") {
		t.Fatalf("unknown format: %v", err)
	}
}
