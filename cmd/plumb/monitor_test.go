package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/client"
	"github.com/plumbhq/plumb/internal/datasets"
	"github.com/plumbhq/plumb/monitor"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// TestFeedbackLoop runs the loop with the CLI against a spawned `plumb serve
// --receipt-key-file --aci` (its sets are marked adaptive): fit on one MMLU subject, `plumb score --server` another's questions (each
// response carries a receipt), join the receipts with the labels into FeedbackRequest lines,
// `plumb feedback` them (twice: the second run stores nothing), and `plumb monitor --json` shows
// one monitor per segment with as many outcomes as were fed back. `--window 10` counts 10.
// `plumb fit --from-feedback` then stores an inactive version 2 refitted from them.
func TestFeedbackLoop(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "receipt.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serve(t, "--receipt-key-file", key, "--aci")
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
		if !resp.GetPredictionSet().GetAdaptive() {
			t.Fatalf("line %d: a set not marked adaptive from a server with --aci", i+1)
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

	// A refit from the outcomes: a second version, stored inactive, with a report.
	out, stderr, err = plumb(t, "", "fit", "--server", s.addr, "--from-feedback", "bio")
	if err != nil || !strings.Contains(out, "profile bio version 2 refitted from feedback and stored (active: false)") {
		t.Fatalf("fit --from-feedback: %v\n%s%s", err, out, stderr)
	}
	out, _, err = plumb(t, "", "profiles", "list", "--server", s.addr, "bio")
	if err != nil || strings.Count(out, "\n") != 3 {
		t.Errorf("profiles list after the refit: %v\n%s; want versions 1 and 2", err, out)
	}
}

// TestFeedbackFlood: 1 000 000 outcomes sent to a spawned `plumb serve` as 100 FeedbackStreams
// of 10 000 keep its peak resident memory under 200 MiB, and a monitor over all of them leaves
// its heap (anonymous RSS) under 200 MiB.
func TestFeedbackFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("sends a million outcomes")
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "receipt.key")
	key := []byte(strings.Repeat("cd", 32))
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	sg, err := monitor.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, "--receipt-key-file", keyFile)
	c, err := client.Dial(s.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	label := &plumbv1.Label{Answers: []string{"A"}}
	now := time.Now().Unix()
	n := 0
	for range 100 {
		stream, err := c.Monitor.FeedbackStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for range 10_000 {
			n++
			id := monitor.NewID(time.Now()) // as Score makes them
			r, err := sg.Sign(&plumbv1.ReceiptBody{Id: id[:], Profile: "default", IssuedUnix: now,
				Segment: []string{"web", "app"}[n%2], Answer: []string{"A", "B"}[n%3/2], Confidence: 0.7,
				PredictionSet: []string{"A", "B"}, Action: plumbv1.Action_ACTION_ANSWER, Risk: 0.1, Alpha: 0.1, Delta: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&plumbv1.FeedbackRequest{Receipt: r, Label: label}); err != nil {
				t.Fatal(err)
			}
		}
		if resp, err := stream.CloseAndRecv(); err != nil || resp.GetAccepted() != 10_000 {
			t.Fatalf("stream: %v, %v", resp, err)
		}
	}
	rss, peak := s.memory(t)
	t.Logf("after 1 000 000 outcomes: RSS %.0f MiB, peak %.0f MiB", rss, peak)
	mon, err := c.Monitor.GetMonitor(ctx, &plumbv1.GetMonitorRequest{Window: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, m := range mon.GetMonitors() {
		total += int(m.GetOutcomes())
	}
	// The heap (RssAnon) is what the monitor holds; bbolt maps the store file (about 320 MB
	// here) and the pages it reads count as RSS too, file-backed, which the kernel drops under
	// pressure.
	mem := s.status(t)
	anon, file := mem["RssAnon"], mem["RssFile"]
	t.Logf("monitor over %d outcomes: anonymous RSS %.0f MiB, file-backed %.0f MiB", total, anon, file)
	if total != 1_000_000 {
		t.Errorf("the monitors count %d outcomes, want 1 000 000", total)
	}
	if peak > 200 {
		t.Errorf("peak RSS %.0f MiB while 1 000 000 outcomes came in, want ≤ 200", peak)
	}
	if anon > 200 {
		t.Errorf("anonymous RSS %.0f MiB after a monitor over them, want ≤ 200", anon)
	}
}
