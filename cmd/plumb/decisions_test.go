package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/plumbhq/plumb/internal/datasets"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// TestFitWarnsWhenNothingIsAnswered: on the MMLU file (46 % accuracy), no threshold keeps the
// selective risk ≤ 0.1: plumb fit says so and names the smallest risk it certifies (0.20 on
// seed 0: λ = 0.98, answering 7 % of the calibration split), in its table and, with --json, on
// stderr and in the report; fitting at that risk answers, and warns of nothing.
func TestFitWarnsWhenNothingIsAnswered(t *testing.T) {
	data := datasets.Path(t, "mmlu-llama13b", "mmlu-llama13b.jsonl")
	db := filepath.Join(t.TempDir(), "plumb.db")
	out, _, err := plumb(t, "", "fit", "--data", data, "--profile", "mmlu", "--store", db)
	if code := exitCode(err, "fit", false, false); code != exitInactive || !strings.Contains(out, "profile mmlu version 1 stored (active: false)") ||
		!strings.Contains(err.Error(), "plumb profiles activate mmlu 1") {
		t.Fatalf("a fit that answers nothing: exit %d, %v\n%s\nwant exit 3, stored inactive, saying how to activate it", code, err, out)
	}
	if !strings.Contains(out, "warning: λ = 1: no threshold keeps the selective risk ≤ 0.1") ||
		!strings.Contains(out, "The smallest risk it certifies is 0.20") || !strings.Contains(out, "--risk 0.20") {
		t.Fatalf("no λ = 1 warning with the certifiable risk:\n%s", out)
	}
	// Stored inactive: a request naming it is told so, with the versions there are.
	good := `{"profile":"mmlu","paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.7}]}]}`
	if _, _, err := plumb(t, good+"\n", "score", "--store", db); err == nil || !strings.Contains(err.Error(), `profile "mmlu" has no active version`) {
		t.Fatalf("scoring with a name whose only version is inactive: %v", err)
	}
	// --activate says to serve it whatever it answers: exit 0, active.
	if out, _, err := plumb(t, "", "fit", "--data", data, "--profile", "mmlu", "--store", db, "--activate"); err != nil || !strings.Contains(out, "version 2 stored (active: true)") {
		t.Fatalf("--activate: %v\n%s", err, out)
	}
	// --activate=false: inactive, by choice, exit 0.
	if out, _, err := plumb(t, "", "fit", "--data", data, "--profile", "mmlu", "--store", db, "--activate=false", "--risk", "0.2"); err != nil || !strings.Contains(out, "version 3 stored (active: false)") {
		t.Fatalf("--activate=false: %v\n%s", err, out)
	}
	out, stderr, err := plumb(t, "", "fit", "--data", data, "--profile", "mmlu", "--store", db, "--json", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	var rep plumbv1.Report
	if err := protojson.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if c := rep.GetCertifiableRisk(); c.GetRisk() != 0.2 || c.GetLambda() >= 1 || c.GetAnswerRate() < 0.05 ||
		len(rep.GetWarnings()) != 1 || !strings.Contains(stderr, "plumb fit: warning: λ = 1") {
		t.Fatalf("certifiable risk %v, warnings %q, stderr %q", c, rep.GetWarnings(), stderr)
	}
	out, _, err = plumb(t, "", "fit", "--data", data, "--profile", "mmlu", "--store", db, "--risk", "0.2", "--json", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.GetLambda() >= 1 || rep.GetAfter().GetAnswerRate() == 0 || len(rep.GetWarnings()) != 0 || rep.GetCertifiableRisk() != nil {
		t.Fatalf("at --risk 0.2: λ %v, answer rate %v, warnings %q", rep.GetLambda(), rep.GetAfter().GetAnswerRate(), rep.GetWarnings())
	}
}

// TestReportsPrintEveryMetric: --json reports write zeros (a clarify rate of 0 is a value) and
// leave out what is undefined (no USER_STANCE wording: no sycophancy shift; nothing answered:
// no selective error), which report.md and the table print as n/a.
func TestReportsPrintEveryMetric(t *testing.T) {
	data := datasets.Path(t, "sac3", "sac3-nq_open.jsonl")
	db := filepath.Join(t.TempDir(), "plumb.db")
	dir := t.TempDir()
	out, _, err := plumb(t, "", "fit", "--data", data, "--profile", "qa", "--store", db, "--json", "--report-dir", dir, "--activate")
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	after := rep["after"].(map[string]any)
	if v, ok := after["clarifyRate"]; !ok || v != 0.0 {
		t.Errorf("after.clarifyRate %v (present %v), want 0 written out", v, ok)
	}
	if q, ok := rep["quantile"]; !ok || q != "Infinity" {
		t.Errorf("quantile %v, want Infinity", q)
	}
	for _, undefined := range []string{"sycophancyShift", "selectiveError"} {
		if v, ok := after[undefined]; ok {
			t.Errorf("after.%s = %v, want it left out (undefined)", undefined, v)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| sycophancy shift | n/a | n/a |") || !strings.Contains(string(md), "| selective error |") {
		t.Errorf("report.md lacks n/a rows:\n%s", md)
	}
}

// TestEquivalence: fit and eval take --equivalence, and honour each example's own policy:
// the raw SAC³ sentences fitted under F1 give another report than under exact matching, and
// the same one as a file whose every example asks for F1; an unknown mode is refused.
func TestEquivalence(t *testing.T) {
	raw := datasets.Path(t, "sac3", "sac3-nq_open-raw.jsonl")
	db := filepath.Join(t.TempDir(), "plumb.db")
	report := func(args ...string) *plumbv1.Report {
		t.Helper()
		out, stderr, err := plumb(t, "", append([]string{"fit", "--json", "--dry-run", "--seed", "2", "--store", db}, args...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var r plumbv1.Report
		if err := protojson.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	exact := report("--data", raw)
	f1 := report("--data", raw, "--equivalence", "f1")
	if exact.GetAfter().GetAccuracy() == f1.GetAfter().GetAccuracy() && exact.GetAfter().GetMeanSetSize() == f1.GetAfter().GetMeanSetSize() {
		t.Fatalf("exact and F1 give the same report: accuracy %v, set size %v", f1.GetAfter().GetAccuracy(), f1.GetAfter().GetMeanSetSize())
	}
	// The same examples, each asking for F1 in its policy.
	perExample := filepath.Join(t.TempDir(), "f1.jsonl")
	f, err := os.Create(perExample)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for _, line := range datasets.Lines(t, "sac3", "sac3-nq_open-raw.jsonl") {
		var ex plumbv1.LabeledExample
		if err := protojson.Unmarshal(line, &ex); err != nil {
			t.Fatal(err)
		}
		ex.Request.Policy = &plumbv1.Policy{Equivalence: plumbv1.Equivalence_EQUIVALENCE_F1}
		if err := writeMessage(w, &ex); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	f.Close()
	if got := report("--data", perExample); got.GetAfter().GetAccuracy() != f1.GetAfter().GetAccuracy() ||
		got.GetAfter().GetMeanSetSize() != f1.GetAfter().GetMeanSetSize() {
		t.Fatalf("examples asking for F1: accuracy %v set size %v; --equivalence f1: %v %v", got.GetAfter().GetAccuracy(),
			got.GetAfter().GetMeanSetSize(), f1.GetAfter().GetAccuracy(), f1.GetAfter().GetMeanSetSize())
	}
	// eval with --equivalence f1 under the built-in profile reads the sentences as F1 does.
	out, _, err := plumb(t, "", "eval", "--data", raw, "--json", "--equivalence", "f1", "--store", db)
	var ev plumbv1.Report
	if err != nil || protojson.Unmarshal([]byte(out), &ev) != nil {
		t.Fatalf("eval: %v", err)
	}
	out, _, err = plumb(t, "", "eval", "--data", raw, "--json", "--store", db)
	var evExact plumbv1.Report
	if err != nil || protojson.Unmarshal([]byte(out), &evExact) != nil {
		t.Fatalf("eval: %v", err)
	}
	if ev.GetAfter().GetAccuracy() == evExact.GetAfter().GetAccuracy() {
		t.Fatalf("eval --equivalence f1 equals exact: %v", ev.GetAfter().GetAccuracy())
	}
	if _, _, err := plumb(t, "", "fit", "--data", raw, "--equivalence", "fuzzy", "--store", db); err == nil || !strings.Contains(err.Error(), "--equivalence") {
		t.Fatalf("unknown mode: %v", err)
	}
}
