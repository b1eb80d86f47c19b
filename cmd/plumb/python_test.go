package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/plumbhq/plumb/client"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// python3 returns the interpreter's path. Without one the test skips, unless
// PLUMB_REQUIRE_PYTHON=1 (set by .ci/run, which installs Debian's python3), when it fails.
func python3(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("python3"); err == nil {
		return p
	}
	if os.Getenv("PLUMB_REQUIRE_PYTHON") == "1" {
		t.Fatal("no python3 (PLUMB_REQUIRE_PYTHON=1): apt-get install python3")
	}
	t.Skip("no python3: apt-get install python3; PLUMB_REQUIRE_PYTHON=1 fails instead")
	return ""
}

// TestPythonClient runs clients/python's tests (standard library only) against a real `plumb
// serve` with tokens: fit, evaluate, list, score, errors naming their field, roles. It then
// scores the same held-out requests over gRPC and checks that the Python client read the same
// answers, confidences and actions from the HTTP API.
func TestPythonClient(t *testing.T) {
	py := python3(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("score py-score-token\nadmin py-admin-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "receipt.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("5e", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serve(t, "--http-addr", "127.0.0.1:0", "--auth-tokens", tokens, "--receipt-key-file", key)
	base := s.httpBase(t)

	out, err := exec.Command(buildPlumb(t), "simulate", "--labeled", "--questions", "700", "--seed", "11", "--samples", "0").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSpace(string(out)), "\n")
	fitData, heldData := filepath.Join(dir, "fit.jsonl"), filepath.Join(dir, "held.jsonl")
	os.WriteFile(fitData, []byte(strings.Join(lines[:600], "")), 0o644)
	os.WriteFile(heldData, []byte(strings.Join(lines[600:], "")+"\n"), 0o644)
	scores := filepath.Join(dir, "scores.jsonl")

	cmd := exec.Command(py, "-m", "unittest", "-v", "test_plumb_client")
	cmd.Dir = filepath.Join("..", "..", "clients", "python")
	cmd.Env = append(os.Environ(), "PLUMB_HTTP="+base, "PLUMB_SCORE_TOKEN=py-score-token",
		"PLUMB_ADMIN_TOKEN=py-admin-token", "PLUMB_FIT_DATA="+fitData, "PLUMB_HELD_DATA="+heldData,
		"PLUMB_OUT="+scores, "PYTHONDONTWRITEBYTECODE=1")
	res, err := cmd.CombinedOutput()
	t.Logf("python3 -m unittest:\n%s", res)
	if err != nil {
		t.Fatalf("the Python client's tests failed: %v", err)
	}

	// The same requests over gRPC.
	c := dial(t, s.addr, &client.Options{Token: "py-score-token"})
	f, err := os.Open(scores)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for i := 600; sc.Scan(); i++ {
		var got struct {
			ID, Answer, Action string
			Confidence         float64
		}
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		var ex plumbv1.LabeledExample
		if err := protojson.Unmarshal([]byte(lines[i]), &ex); err != nil {
			t.Fatal(err)
		}
		req := ex.GetRequest()
		req.Profile = "py"
		want, err := c.Score(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != want.GetId() || got.Answer != want.GetAnswer() || got.Confidence != want.GetConfidence() || got.Action != want.GetAction().String() {
			t.Errorf("line %d: Python read %+v, gRPC says %s %s %v %s", i+1, got, want.GetId(), want.GetAnswer(), want.GetConfidence(), want.GetAction())
		}
		n++
	}
	if n != len(lines)-600 {
		t.Fatalf("Python wrote %d scores, want %d", n, len(lines)-600)
	}

	// examples/ask_and_score.py, offline on its recording, builds the request that `plumb score
	// --from openai` builds from the same responses: the two scores are equal.
	ex := exec.Command(py, filepath.Join("..", "..", "examples", "ask_and_score.py"), "--json", "--plumb", base,
		"--plumb-token", "py-score-token", "--recorded", filepath.Join("..", "..", "examples", "recorded", "capital-au.json"),
		filepath.Join("..", "..", "examples", "capital-au.json"))
	ex.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "OPENAI_API_KEY=")
	exOut, err := ex.Output()
	if err != nil {
		t.Fatalf("examples/ask_and_score.py: %v\n%s", err, exOut)
	}
	first, _, _ := strings.Cut(string(mustRead(t, filepath.Join("..", "..", "testdata", "openai-example.jsonl"))), "\n")
	sc2 := exec.Command(buildPlumb(t), "score", "--from", "openai", "--server", s.addr, "--token", "py-score-token")
	sc2.Stdin = strings.NewReader(first + "\n")
	goOut, err := sc2.Output()
	if err != nil {
		t.Fatalf("plumb score --from openai: %v", err)
	}
	var fromPy, fromGo plumbv1.ScoreResponse
	if err := protojson.Unmarshal(exOut, &fromPy); err != nil {
		t.Fatalf("the example printed %q: %v", exOut, err)
	}
	if err := protojson.Unmarshal(goOut, &fromGo); err != nil {
		t.Fatal(err)
	}
	if fromPy.GetAnswer() != "Canberra" || fromPy.GetConfidence() != fromGo.GetConfidence() || fromPy.GetAction() != fromGo.GetAction() ||
		fromPy.GetSycophancy().GetShift() != fromGo.GetSycophancy().GetShift() {
		t.Errorf("the example scored %s %v %s shift %v; plumb score --from openai: %s %v %s shift %v",
			fromPy.GetAnswer(), fromPy.GetConfidence(), fromPy.GetAction(), fromPy.GetSycophancy().GetShift(),
			fromGo.GetAnswer(), fromGo.GetConfidence(), fromGo.GetAction(), fromGo.GetSycophancy().GetShift())
	}
	t.Logf("the example: %s %.4f %s, sycophancy shift %+.3f", fromPy.GetAnswer(), fromPy.GetConfidence(), fromPy.GetAction(), fromPy.GetSycophancy().GetShift())
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
