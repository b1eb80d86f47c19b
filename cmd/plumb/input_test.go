package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// TestScoreKeepGoingKeepsLines: under --keep-going, `plumb score` writes one line for every
// input line, in and out of process alike: a line that does not decode gets an error object
// naming its file and line, a refused request its error and field (it used to drop the line,
// so the output no longer matched the input line for line).
func TestScoreKeepGoingKeepsLines(t *testing.T) {
	good := `{"id":"a","paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.7}]}]}`
	refused := `{"id":"r","paraphrases":[{"options":[{"label":"A","logprob":0.5},{"label":"B","logprob":-1.7}]}]}`
	in := filepath.Join(t.TempDir(), "req.jsonl")
	os.WriteFile(in, []byte("{not json\n"+good+"\n"+refused+"\n\n"+good+"\n[1]\n"), 0o644)
	local, stderr, err := plumb(t, "", "score", "--keep-going", in, "--store", filepath.Join(t.TempDir(), "plumb.db"))
	if skippedLines(err) != 3 { // two that do not decode, one refused
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, line := range []string{in + ":1:", in + ":6:"} {
		if !strings.Contains(stderr, line) {
			t.Errorf("stderr does not name %s: %s", line, stderr)
		}
	}
	s := serve(t)
	remote, stderr, err := plumb(t, "", "score", "--keep-going", in, "--server", s.addr)
	if skippedLines(err) != 3 {
		t.Fatalf("--server: %v\n%s", err, stderr)
	}
	if remote != local {
		t.Fatalf("in process:\n%s\nthrough the server:\n%s", local, remote)
	}
	lines := strings.Split(strings.TrimSuffix(local, "\n"), "\n")
	if len(lines) != 5 { // the blank line is not a request
		t.Fatalf("%d output lines for 5 requests:\n%s", len(lines), local)
	}
	for i, want := range []struct {
		id, field, message string
		code               codes.Code
	}{
		{"", "", in + ":1:", codes.InvalidArgument},
		{"a", "", "", codes.OK},
		{"r", "paraphrases[0].options[0].logprob", "", codes.InvalidArgument},
		{"a", "", "", codes.OK},
		{"", "", in + ":6:", codes.InvalidArgument},
	} {
		var r plumbv1.ScoreResponse
		if err := protojson.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		e := r.GetError()
		if r.GetId() != want.id || codes.Code(e.GetCode()) != want.code || e.GetField() != want.field || !strings.Contains(e.GetMessage(), want.message) {
			t.Errorf("line %d: %s", i+1, lines[i])
		}
	}
}

// TestFitKeepGoingNamesLines: an example the engine refuses stops `plumb fit` naming its file
// and line (it used to name an example index); under --keep-going it is skipped like a line
// that does not decode, and the fit goes on.
func TestFitKeepGoingNamesLines(t *testing.T) {
	data, _ := os.ReadFile(subjectFile(t, "anatomy"))
	lines := strings.SplitAfter(string(data), "\n")
	refused := strings.Replace(lines[4], `"logprob":-`, `"logprob":`, 1) // a positive logprob
	if refused == lines[4] {
		t.Fatal("no logprob to make positive")
	}
	file := filepath.Join(t.TempDir(), "fit.jsonl")
	os.WriteFile(file, []byte(strings.Join(lines[:4], "")+refused+"{oops\n"+strings.Join(lines[5:], "")), 0o644)
	db := filepath.Join(t.TempDir(), "plumb.db")
	_, _, err := plumb(t, "", "fit", "--data", file, "--store", db, "--activate")
	if err == nil || !strings.Contains(err.Error(), file+":5:") || !strings.Contains(err.Error(), "logprob") {
		t.Fatalf("refused example: %v, want %s:5: naming the logprob", err, file)
	}
	out, stderr, err := plumb(t, "", "fit", "--data", file, "--store", db, "--keep-going", "--activate")
	if skippedLines(err) != 2 || !strings.Contains(out, "version 1 stored") {
		t.Fatalf("--keep-going: %v\n%s%s", err, out, stderr)
	}
	for _, line := range []string{file + ":5:", file + ":6:"} {
		if !strings.Contains(stderr, line) {
			t.Errorf("stderr does not name %s: %s", line, stderr)
		}
	}
}

// TestReportDirCheckedFirst: a --report-dir that cannot be made fails before anything is
// fitted or stored (it used to fail after the version was stored and activated).
func TestReportDirCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	os.WriteFile(notADir, []byte("x"), 0o644)
	db := filepath.Join(dir, "plumb.db")
	_, _, err := plumb(t, "", "fit", "--data", subjectFile(t, "anatomy"), "--store", db, "--report-dir", filepath.Join(notADir, "sub"))
	if err == nil || !strings.Contains(err.Error(), "--report-dir") {
		t.Fatalf("fit: %v, want a --report-dir error", err)
	}
	out, _, err := plumb(t, "", "profiles", "list", "--store", db)
	if err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("a version was stored: %v\n%s", err, out)
	}
}

// TestInputFiles: a byte-order mark before the first line is read past; a directory named as
// input is said to be one (it used to be reported as Internal).
func TestInputFiles(t *testing.T) {
	good := `{"id":"a","paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.7}]}]}`
	dir := t.TempDir()
	bom := filepath.Join(dir, "bom.jsonl")
	os.WriteFile(bom, []byte("\uFEFF"+good+"\n"), 0o644)
	db := filepath.Join(dir, "plumb.db")
	if out, stderr, err := plumb(t, "", "score", bom, "--store", db); err != nil || !strings.Contains(out, `"id":"a"`) {
		t.Fatalf("a file with a byte-order mark: %v\n%s%s", err, out, stderr)
	}
	for _, args := range [][]string{{"score", dir}, {"fit", "--data", dir}, {"eval", "--data", dir}} {
		_, _, err := plumb(t, "", append(args, "--store", db)...)
		if err == nil || !strings.Contains(err.Error(), "is a directory") || strings.Contains(err.Error(), "Internal") {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// TestServeRefusesBadSettings: `plumb serve` refuses flags out of range and a busy address
// before it makes a store file (it used to start with --max-message-bytes -1 and refuse every
// call, and to create its store on a busy address before failing).
func TestServeRefusesBadSettings(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-message-bytes", "-1"}, "--max-message-bytes"},
		{[]string{"--max-connections", "0"}, "--max-connections"},
		{[]string{"--send-timeout", "0s"}, "--send-timeout"},
		{[]string{"--client-ca", "ca.pem"}, "--client-ca needs --tls-cert"},
		{[]string{"--addr", busy.Addr().String()}, "--addr"},
	} {
		db := filepath.Join(t.TempDir(), "plumb.db")
		_, _, err := plumb(t, "", append([]string{"serve", "--addr", "127.0.0.1:0", "--store", db}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v: %v, want an error naming %s", tc.args, err, tc.want)
		}
		if _, err := os.Stat(db); !os.IsNotExist(err) {
			t.Errorf("serve %v made its store file", tc.args)
		}
	}
}

// TestRemoteSamples: fits and scores of sampled answers (tokens and top_logprobs included) give
// the same through a server as in process. The lines' messages are sent while later lines are
// decoded: a message that shared the decoder's memory failed to marshal ("size mismatch").
func TestRemoteSamples(t *testing.T) {
	bin := buildPlumb(t)
	dir := t.TempDir()
	labeled := filepath.Join(dir, "labeled.jsonl")
	reqs := filepath.Join(dir, "reqs.jsonl")
	for file, args := range map[string][]string{
		labeled: {"simulate", "--labeled", "--questions", "600", "--seed", "2", "--samples", "6", "--wordings", "4", "--tokens", "8"},
		reqs:    {"simulate", "--questions", "300", "--seed", "3", "--samples", "6", "--wordings", "4", "--tokens", "8"},
	} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(file, out, 0o644)
	}
	s := serve(t)
	db := filepath.Join(dir, "plumb.db")
	fit := func(where ...string) *plumbv1.Report {
		out, stderr, err := plumb(t, "", append([]string{"fit", "--data", labeled, "--dry-run", "--json", "--seed", "5"}, where...)...)
		if err != nil {
			t.Fatalf("fit %v: %v\n%s", where, err, stderr)
		}
		var r plumbv1.Report
		if err := protojson.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	if local, remote := fit("--store", db), fit("--server", s.addr); !proto.Equal(local, remote) {
		t.Fatal("the fit through the server reports other figures than in process")
	}
	local, _, err := plumb(t, "", "score", reqs, "--store", db)
	if err != nil {
		t.Fatal(err)
	}
	remote, stderr, err := plumb(t, "", "score", reqs, "--server", s.addr)
	if err != nil || remote != local || strings.Count(remote, "\n") != 300 {
		t.Fatalf("score through the server (%v): %d lines, same as in process: %v\n%s", err, strings.Count(remote, "\n"), remote == local, stderr)
	}
}
