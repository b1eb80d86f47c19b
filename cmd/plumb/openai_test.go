package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// TestFromOpenAI: plumb score and eval read testdata/openai-example.jsonl (raw chat-completions
// responses, n = 3 and 2 choices, logprobs with top_logprobs) with --from openai; a response
// without content is named by file, line and path (internal/jsonl tests the conversion).
func TestFromOpenAI(t *testing.T) {
	b, err := os.ReadFile("../../testdata/openai-example.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	first := strings.SplitN(string(b), "\n", 2)[0]

	db := filepath.Join(t.TempDir(), "plumb.db")
	out, stderr, err := plumb(t, "", "score", "--from", "openai", "../../testdata/openai-example.jsonl", "--store", db)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var resp plumbv1.ScoreResponse
	if len(lines) != 2 || protojson.Unmarshal([]byte(lines[0]), &resp) != nil {
		t.Fatalf("output: %s", out)
	}
	// Neutral samples: 8 of 9 say Canberra; the stance wording pulls toward Sydney.
	if resp.GetAnswer() != "Canberra" || resp.GetCandidates()[0].GetCount() != 8 || !resp.GetSycophancy().GetFlagged() || resp.GetUncertainty().GetTokenConfidence() == 0 {
		t.Fatalf("score: %v", &resp)
	}
	out, stderr, err = plumb(t, "", "eval", "--from", "openai", "--data", "../../testdata/openai-example.jsonl", "--json", "--store", db)
	var rep plumbv1.Report
	if err != nil || protojson.Unmarshal([]byte(out), &rep) != nil || rep.GetExamples() != 2 || rep.GetAfter().GetAccuracy() != 1 {
		t.Fatalf("eval: %v %s %s", err, out, stderr)
	}

	bad := strings.Replace(first, `"content": "Canberra"`, `"content": null`, 1)
	_, _, err = plumb(t, bad+"\n", "score", "--from", "openai", "--store", db)
	if err == nil || !strings.Contains(err.Error(), "<stdin>:1:") || !strings.Contains(err.Error(), "wordings[0].response.choices[0].message.content") {
		t.Fatalf("missing content: %v", err)
	}
	if _, _, err := plumb(t, first+"\n", "score", "--from", "anthropic", "--store", db); err == nil || !strings.Contains(err.Error(), "--from") {
		t.Fatalf("unknown format: %v", err)
	}
}
