package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/datasets"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
	"github.com/plumbhq/plumb/simulate"
	"github.com/plumbhq/plumb/store"
)

// skippedLines returns how many lines a --keep-going command went past (exit status 2), or −1
// when err is not that.
func skippedLines(err error) int {
	var s errSkipped
	if errors.As(err, &s) {
		return s.lines
	}
	return -1
}

// plumb runs the CLI in-process and returns stdout and stderr.
func plumb(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

// subjectFile writes one MMLU subject's lines to a file and returns its path.
func subjectFile(t *testing.T, subject string) string {
	t.Helper()
	var b bytes.Buffer
	for _, q := range datasets.MMLU(t) {
		if subject == "" || q.Group == subject {
			b.Write(q.RawLine)
			b.WriteByte('\n')
		}
	}
	p := filepath.Join(t.TempDir(), subject+".jsonl")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFitDryRunJSONMatchesTable: `plumb fit --data SUBJECT --temperature none --confidence-map
// none --split 0,0.5,0.5 --alpha 0.1 --json --dry-run --seed S` prints only the protojson Report,
// and over 50 seeds its after.coverage and after.meanSetSize meet the engine issue's bounds for
// the subject (testdata/README.md table: mean size ≤ table + 0.05, coverage ≥ 0.885).
func TestFitDryRunJSONMatchesTable(t *testing.T) {
	for subject, table := range map[string]float64{"marketing": 2.4, "formal_logic": 3.7} {
		t.Run(subject, func(t *testing.T) {
			file := subjectFile(t, subject)
			store := filepath.Join(t.TempDir(), "plumb.db")
			const seeds = 50
			var size, cov float64
			for seed := 1; seed <= seeds; seed++ {
				out, stderr, err := plumb(t, "", "fit", "--data", file, "--temperature", "none", "--confidence-map", "none",
					"--split", "0,0.5,0.5", "--alpha", "0.1", "--json", "--dry-run", "--seed", fmt.Sprint(seed), "--store", store)
				if err != nil {
					t.Fatalf("seed %d: %v\n%s", seed, err, stderr)
				}
				var rep plumbv1.Report
				if err := protojson.Unmarshal([]byte(out), &rep); err != nil {
					t.Fatalf("stdout is not one protojson Report: %v\n%s", err, out)
				}
				// The JSON names are the lowerCamelCase ones users script against.
				if !strings.Contains(out, `"meanSetSize"`) {
					t.Fatalf("no after.meanSetSize in %s", out)
				}
				size += rep.GetAfter().GetMeanSetSize() / seeds
				cov += rep.GetAfter().GetCoverage() / seeds
			}
			t.Logf("%s: mean size %.3f (table %.1f), coverage %.3f", subject, size, table, cov)
			if size > table+0.05 || cov < 0.885 {
				t.Errorf("mean size %.3f (table %.1f + 0.05), coverage %.3f (≥ 0.885)", size, table, cov)
			}
			// A dry run stores nothing.
			if out, _, err := plumb(t, "", "profiles", "list", "--store", store); err != nil || strings.Count(out, "\n") != 1 {
				t.Fatalf("dry runs stored profiles: %q %v", out, err)
			}
		})
	}
}

// TestBadLines: a bad line is named by file and line; --keep-going skips it.
func TestBadLines(t *testing.T) {
	good := `{"paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.7}]}]}`
	in := filepath.Join(t.TempDir(), "req.jsonl")
	os.WriteFile(in, []byte(good+"\n"+good+"\n{not json\n"+good+"\n"), 0o644)
	db := filepath.Join(t.TempDir(), "plumb.db")
	_, _, err := plumb(t, "", "score", in, "--store", db)
	if err == nil || !strings.Contains(err.Error(), in+":3:") {
		t.Fatalf("bad line: %v, want %s:3:", err, in)
	}
	out, stderr, err := plumb(t, "", "score", "--keep-going", in, "--store", db)
	if skippedLines(err) != 1 || strings.Count(out, "\n") != 4 || !strings.Contains(stderr, in+":3:") {
		t.Fatalf("--keep-going: %v, %d lines out, stderr %q", err, strings.Count(out, "\n"), stderr)
	}
	// A request the engine refuses is named by its position and field.
	bad := `{"id":"q2","paraphrases":[{"options":[{"label":"A","logprob":0.5},{"label":"B","logprob":-1.7}]}]}`
	_, _, err = plumb(t, good+"\n"+bad+"\n", "score", "-", "--store", db)
	if err == nil || !strings.Contains(err.Error(), `<stdin>:2: request id "q2": InvalidArgument: paraphrases[0].options[0].logprob`) {
		t.Fatalf("refused request: %v", err)
	}
	// snake_case and OpenAI's field names are read as they are.
	snake := `{"id":"s","paraphrases":[{"samples":[{"text":"Paris","tokens":[{"token":"Paris","logprob":-0.1,"bytes":[80],"top_logprobs":[{"token":"Paris","logprob":-0.1,"bytes":[80]}]}]}]}]}`
	out, _, err = plumb(t, snake+"\n", "score", "--store", db)
	var resp plumbv1.ScoreResponse
	if err != nil || protojson.Unmarshal([]byte(out), &resp) != nil || resp.GetAnswer() != "Paris" {
		t.Fatalf("snake_case/OpenAI line: %v %s", err, out)
	}
}

// TestDemo: the demo prints its table and writes a report with a readable PNG.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	out, stderr, err := plumb(t, "", "demo", "--questions", "2000", "--report-dir", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{"ANSWER", "CONFIDENCE", "SET", "ACTION", "REASONS", "BADGE", "coverage"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	f, err := os.Open(filepath.Join(dir, "reliability.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 300 {
		t.Errorf("diagram is %v", b)
	}
	var rep map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	if err := json.Unmarshal(b, &rep); err != nil || rep["after"] == nil {
		t.Errorf("report.json: %v", err)
	}
	if md, _ := os.ReadFile(filepath.Join(dir, "report.md")); !bytes.Contains(md, []byte("| coverage |")) {
		t.Errorf("report.md lacks the table")
	}
}

// buildPlumb compiles the binary for subprocess tests, once per test run.
func buildPlumb(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "plumb-test-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "plumb")
		if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// TestFitKilled: a `plumb fit` killed with SIGKILL while it fits (when its --progress says the
// temperature stage has begun) leaves the previous active version readable and active, and no
// other.
func TestFitKilled(t *testing.T) {
	bin := buildPlumb(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "plumb.db")
	first := subjectFile(t, "")
	if out, err := exec.Command(bin, "fit", "--data", first, "--profile", "p", "--store", db, "--activate").CombinedOutput(); err != nil {
		t.Fatalf("first fit: %v\n%s", err, out)
	}
	// A second fit long enough that the kill lands while it fits: 40 000 simulated questions.
	big := filepath.Join(dir, "big.jsonl")
	f, _ := os.Create(big)
	sim := exec.Command(bin, "simulate", "--labeled", "--questions", "40000", "--seed", "3")
	sim.Stdout = f
	if err := sim.Run(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(bin, "fit", "--data", big, "--profile", "p", "--store", db, "--progress")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var said []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		said = append(said, sc.Text())
		if sc.Text() == "plumb fit: temperature" {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	io.Copy(io.Discard, stderr)
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("the fit finished before it was killed (%v); it said:\n%s", err, strings.Join(said, "\n"))
	}
	st, err := store.Open(db, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := st.Get(context.Background(), "p", 0)
	if err != nil || rec.Version != 1 || !rec.Active {
		t.Fatalf("after the kill: %+v, %v; want version 1 active", rec, err)
	}
	var p plumbv1.Profile
	if err := protoUnmarshal(rec.Data, &p); err != nil || !p.GetCalibrated() {
		t.Fatalf("version 1 unreadable: %v", err)
	}
	if list, _ := st.List(context.Background(), store.Page{Name: ""}); len(list) != 1 {
		t.Fatalf("%d versions after the kill, want 1", len(list))
	}
}

// TestScoreServerMatchesLocal: `plumb score` gives the same lines in-process and through a
// server, and `plumb profiles` manages versions through either.
func TestScoreServerMatchesLocal(t *testing.T) {
	bin := buildPlumb(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "plumb.db")
	data := subjectFile(t, "anatomy")
	if out, err := exec.Command(bin, "fit", "--data", data, "--profile", "anat", "--store", db, "--activate").CombinedOutput(); err != nil {
		t.Fatalf("fit: %v\n%s", err, out)
	}
	reqs := filepath.Join(dir, "reqs.jsonl")
	out, _ := exec.Command(bin, "simulate", "--questions", "50").Output()
	os.WriteFile(reqs, out, 0o644)
	local, err := exec.Command(bin, "score", "--profile", "anat", "--store", db, reqs).Output()
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--store", db)
	var serr syncBuffer
	srv.Stderr = &serr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	addr := waitAddr(t, &serr)
	remote, err := exec.Command(bin, "score", "--profile", "anat", "--server", addr, reqs).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(local, remote) || bytes.Count(local, []byte("\n")) != 50 {
		t.Fatalf("in-process and server outputs differ (%d vs %d bytes)", len(local), len(remote))
	}
	if out, err := exec.Command(bin, "profiles", "list", "--server", addr).CombinedOutput(); err != nil || !strings.Contains(string(out), "anat") {
		t.Fatalf("profiles list: %v %s", err, out)
	}
	// SIGTERM drains and exits cleanly.
	srv.Process.Signal(syscall.SIGTERM)
	if err := srv.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, serr.String())
	}
}

// TestEvalMatchesLibrary: `plumb eval --json` on a file of simulated questions (read in chunks
// over the cores, scored into shards, merged in order) reports exactly what the library's
// calibrate.Evaluate reports on the same questions in memory, under the uncalibrated default
// and under a profile fitted (adaptive temperature) by `plumb fit` on other questions. 20 000
// questions by default; PLUMB_EVAL_QUESTIONS=1000000 runs BENCHMARKS.md's million (about 3 GB
// of memory for the library's side).
func TestEvalMatchesLibrary(t *testing.T) {
	n := 20000
	if v := os.Getenv("PLUMB_EVAL_QUESTIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("PLUMB_EVAL_QUESTIONS=%q: want a positive count", v)
		}
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "plumb.db")
	write := func(name string, cfg simulate.Config) string {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(f)
		for ex := range simulate.All(&cfg) {
			if err := writeMessage(w, api.Labeled(&ex)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return f.Name()
	}
	file := write("eval.jsonl", simulate.Config{Questions: n, Seed: 12, Stance: 1})
	if _, stderr, err := plumb(t, "", "fit", "--data", write("fit.jsonl", simulate.Config{Questions: 5000, Seed: 13, Stance: 1}),
		"--profile", "sim", "--temperature", "adaptive", "--store", db); err != nil {
		t.Fatalf("fit: %v\n%s", err, stderr)
	}
	st, err := store.Open(db, 0)
	if err != nil {
		t.Fatal(err)
	}
	fitted, err := service.New(st).Profile(context.Background(), "sim", 0)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	exs, _ := simulate.Generate(&simulate.Config{Questions: n, Seed: 12, Stance: 1})
	for _, p := range []*calibrate.Profile{nil, fitted} {
		name := "default"
		if p != nil {
			name = p.Name
		}
		out, stderr, err := plumb(t, "", "eval", "--data", file, "--profile", name, "--json", "--store", db)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var got plumbv1.Report
		if err := protojson.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		want, err := calibrate.Evaluate(context.Background(), p, exs)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, api.Report(want)) {
			t.Fatalf("profile %s: plumb eval and calibrate.Evaluate differ:\n%v\n%v", name, &got, api.Report(want))
		}
	}
}

// TestEvalLines: in-process eval reads lines as the other commands do — blank lines skipped,
// CRLF endings and a last line without a newline taken, a line longer than the reader's 1 MiB
// chunks read whole — names a bad line (JSON or a refused example) by file and line, and with
// --keep-going skips the bad lines and reports on the rest exactly as the library does.
func TestEvalLines(t *testing.T) {
	exs, _ := simulate.Generate(&simulate.Config{Questions: 4, Seed: 3, Stance: 1})
	exs[2].Question.Paraphrases[0].Prompt = strings.Repeat("a long prompt ", 200000) // 2.8 MB
	line := func(i int) string {                                                     // compact, as writeLine writes it
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		if err := writeMessage(w, api.Labeled(&exs[i])); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		return strings.TrimSuffix(b.String(), "\n")
	}
	refused := strings.Replace(line(1), `"logprob":-`, `"logprob":`, 1) // a positive logprob
	text := line(0) + "\n\n{not json\n" + refused + "\n" + line(2) + "\r\n" + line(3)
	file := filepath.Join(t.TempDir(), "mixed.jsonl")
	os.WriteFile(file, []byte(text), 0o644)
	db := filepath.Join(t.TempDir(), "plumb.db")

	_, _, err := plumb(t, "", "eval", "--data", file, "--store", db)
	if err == nil || !strings.Contains(err.Error(), file+":3:") {
		t.Fatalf("bad JSON: %v, want %s:3:", err, file)
	}
	out, stderr, err := plumb(t, "", "eval", "--data", file, "--keep-going", "--json", "--store", db)
	if skippedLines(err) != 2 {
		t.Fatalf("--keep-going: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, file+":3:") || !strings.Contains(stderr, file+":4: InvalidArgument: request.paraphrases[") {
		t.Errorf("--keep-going stderr %q, want lines 3 and 4 named", stderr)
	}
	var got plumbv1.Report
	if err := protojson.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want, err := calibrate.Evaluate(context.Background(), nil, []calibrate.Example{exs[0], exs[2], exs[3]})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, api.Report(want)) {
		t.Fatalf("eval of the good lines differs from the library:\n%v\n%v", &got, api.Report(want))
	}
}

// TestFitMatchesLibrary: in-process `plumb fit` (the file decoded over the cores straight into
// the engine's types, in file order) reports what calibrate.Fit reports on the same examples;
// a bad line is named by file and line, and --keep-going skips it.
func TestFitMatchesLibrary(t *testing.T) {
	exs, _ := simulate.Generate(&simulate.Config{Questions: 3000, Seed: 21, Stance: 1})
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	for i := range exs {
		if err := writeMessage(w, api.Labeled(&exs[i])); err != nil {
			t.Fatal(err)
		}
		if i == 1499 {
			w.WriteString("{not json\n") // line 1501
		}
	}
	w.Flush()
	file := filepath.Join(t.TempDir(), "fit.jsonl")
	os.WriteFile(file, b.Bytes(), 0o644)
	db := filepath.Join(t.TempDir(), "plumb.db")
	if _, _, err := plumb(t, "", "fit", "--data", file, "--dry-run", "--store", db); err == nil || !strings.Contains(err.Error(), file+":1501:") {
		t.Fatalf("bad line: %v, want %s:1501:", err, file)
	}
	out, stderr, err := plumb(t, "", "fit", "--data", file, "--dry-run", "--json", "--keep-going", "--seed", "4", "--store", db)
	if skippedLines(err) != 1 || !strings.Contains(stderr, file+":1501:") {
		t.Fatalf("--keep-going: %v\n%s", err, stderr)
	}
	var got plumbv1.Report
	if err := protojson.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	_, rep, err := calibrate.Fit(context.Background(), exs, &calibrate.FitConfig{Name: "default", Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	want := api.Report(rep)
	if !proto.Equal(got.GetBefore(), want.GetBefore()) || !proto.Equal(got.GetAfter(), want.GetAfter()) || got.GetExamples() != want.GetExamples() {
		t.Fatalf("plumb fit and calibrate.Fit differ:\n%v\n%v", &got, want)
	}
}

// TestAuthHint: a server's Unauthenticated, through the CLI's wrapping, adds the flag and the
// variable that carry a token; other refusals (PermissionDenied names the role) add nothing.
func TestAuthHint(t *testing.T) {
	unauth := fmt.Errorf("in.jsonl: %w", api.Described(status.Error(codes.Unauthenticated, "invalid bearer token")))
	if got := unauth.Error(); got != "in.jsonl: Unauthenticated: invalid bearer token" {
		t.Errorf("message %q", got)
	}
	if hint := authHint(unauth); !strings.Contains(hint, "--token") || !strings.Contains(hint, "$PLUMB_TOKEN") {
		t.Errorf("hint %q does not name --token and $PLUMB_TOKEN", hint)
	}
	if hint := authHint(api.Described(status.Error(codes.PermissionDenied, "needs an admin token"))); hint != "" {
		t.Errorf("PermissionDenied hint %q, want none", hint)
	}
}

// TestFitIDRetry: `plumb fit --fit-id ID` run twice stores one version: the second run says the
// fit was stored before and stores nothing.
func TestFitIDRetry(t *testing.T) {
	file := subjectFile(t, "marketing")
	store := filepath.Join(t.TempDir(), "plumb.db")
	args := []string{"fit", "--data", file, "--profile", "m", "--fit-id", "run-42", "--activate", "--store", store}
	first, stderr, err := plumb(t, "", args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	again, stderr, err := plumb(t, "", args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(first, "profile m version 1 stored") || !strings.Contains(again, "profile m version 1 was stored by this fit id before") {
		t.Errorf("first run:\n%s\nretry:\n%s\nwant version 1 stored, then found", first, again)
	}
	if out, _, err := plumb(t, "", "profiles", "list", "--store", store); err != nil || strings.Count(out, "\n") != 2 {
		t.Errorf("profiles list after a retried fit: %q %v; want one version", out, err)
	}
}
