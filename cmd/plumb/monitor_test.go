package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/internal/datasets"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// TestFeedbackLoop runs the loop with the CLI against a spawned `plumb serve
// --receipt-key-file`: fit on one MMLU subject, `plumb score --server` another's questions (each
// response carries a receipt), join the receipts with the labels into FeedbackRequest lines,
// `plumb feedback` them (twice: the second run stores nothing), and `plumb monitor --json` shows
// one monitor per segment with as many outcomes as were fed back. `--window 10` counts 10.
func TestFeedbackLoop(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "receipt.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serve(t, "--receipt-key-file", key)
	if out, stderr, err := plumb(t, "", "fit", "--server", s.addr, "--data", subjectFile(t, "high_school_biology"), "--profile", "bio", "--risk", "0.3", "--activate"); err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	var reqs bytes.Buffer
	var labels []*plumbv1.Label
	for _, q := range datasets.MMLU(t) {
		if q.Group != "marketing" {
			continue
		}
		var ex plumbv1.LabeledExample
		if err := protojson.Unmarshal(q.RawLine, &ex); err != nil {
			t.Fatal(err)
		}
		r := proto.CloneOf(ex.GetRequest())
		r.Profile = "bio"
		r.Segment = []string{"web", "mobile"}[len(labels)%2]
		b, _ := protojson.Marshal(r)
		reqs.Write(append(b, '\n'))
		labels = append(labels, ex.GetLabel())
	}
	out, stderr, err := plumb(t, reqs.String(), "score", "--server", s.addr, "-")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var fb bytes.Buffer
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var resp plumbv1.ScoreResponse
		if err := protojson.Unmarshal([]byte(line), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.GetReceipt() == "" {
			t.Fatalf("line %d: no receipt from a server with a receipt key", i+1)
		}
		b, _ := protojson.Marshal(&plumbv1.FeedbackRequest{Receipt: resp.GetReceipt(), Label: labels[i], Source: plumbv1.FeedbackSource_FEEDBACK_SOURCE_GROUND_TRUTH})
		fb.Write(append(b, '\n'))
	}
	file := filepath.Join(dir, "feedback.jsonl")
	if err := os.WriteFile(file, fb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	n := len(labels)
	for run, want := range []string{"stored, 0 duplicates", "0 outcomes stored"} {
		out, stderr, err := plumb(t, "", "feedback", "--server", s.addr, file)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("feedback run %d: %q %v %s; want %q", run+1, out, err, stderr, want)
		}
	}
	out, stderr, err = plumb(t, "", "monitor", "--server", s.addr, "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var mon plumbv1.GetMonitorResponse
	if err := protojson.Unmarshal([]byte(out), &mon); err != nil {
		t.Fatalf("monitor --json: %v\n%s", err, out)
	}
	total := 0
	for _, m := range mon.GetMonitors() {
		total += int(m.GetOutcomes())
		if m.GetProfile() != "bio" || m.GetVersion() != 1 || (m.GetSegment() != "web" && m.GetSegment() != "mobile") {
			t.Errorf("a monitor of %s@%d segment %q; want bio@1, web or mobile", m.GetProfile(), m.GetVersion(), m.GetSegment())
		}
	}
	if len(mon.GetMonitors()) != 2 || total != n {
		t.Errorf("%d monitors with %d outcomes, want 2 with %d", len(mon.GetMonitors()), total, n)
	}
	for _, key := range []string{`"selectiveRisk"`, `"riskBound"`, `"riskLowerBound"`, `"answerRate"`, `"sycophancyRate"`, `"ece"`, `"coverage"`} {
		if !strings.Contains(out, key) {
			t.Errorf("monitor --json has no %s", key)
		}
	}
	out, _, err = plumb(t, "", "monitor", "--server", s.addr, "--profile", "bio", "--window", "10")
	if err != nil || strings.Count(out, "\n") != 3 || !strings.Contains(out, "  10  ") {
		t.Errorf("monitor --window 10: %v\n%s", err, out)
	}
}
