// Package mmlu loads the shared real-data file ../shared/data/mmlu-llama13b/mmlu-llama13b.jsonl
// (LLaMA-13B on MMLU under 10 prompts, Kumar et al. 2023) for tests. It decodes the file with
// encoding/json alone so that the numeric packages can test against it without the engine.
package mmlu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Question is one line of the file: the option logprobs of each wording and the gold letter.
type Question struct {
	ID      string
	Group   string
	Labels  []string    // option labels, the same for every wording
	Logits  [][]float64 // [wording][option] logprobs
	Gold    int         // index of the gold label
	RawLine []byte      // the line as it is in the file
}

// Path returns the location of the shared data file: $PLUMB_DATA when set, else
// ../shared/data/mmlu-llama13b/mmlu-llama13b.jsonl relative to the module root.
func Path() (string, error) {
	if p := os.Getenv("PLUMB_DATA"); p != "" {
		return filepath.Join(p, "mmlu-llama13b", "mmlu-llama13b.jsonl"), nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "data", "mmlu-llama13b", "mmlu-llama13b.jsonl"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("mmlu: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Load reads the whole file. When it is missing the test is skipped, except under CI=true
// where a missing file fails the test (shared/data/README.md).
func Load(tb testing.TB) []Question {
	tb.Helper()
	path, err := Path()
	if err != nil {
		tb.Fatal(err)
	}
	qs, err := Read(path)
	if errors.Is(err, os.ErrNotExist) && os.Getenv("CI") != "true" {
		tb.Skipf("shared data not found at %s (set PLUMB_DATA or place ../shared beside the module)", path)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return qs
}

type line struct {
	Request struct {
		ID          string `json:"id"`
		Group       string `json:"group"`
		Paraphrases []struct {
			Options []struct {
				Label   string  `json:"label"`
				Logprob float64 `json:"logprob"`
			} `json:"options"`
		} `json:"paraphrases"`
	} `json:"request"`
	Label struct {
		Answers []string `json:"answers"`
	} `json:"label"`
}

// Read parses the file at path.
func Read(path string) ([]Question, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Question
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for n := 1; sc.Scan(); n++ {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		q := Question{ID: l.Request.ID, Group: l.Request.Group, Gold: -1, RawLine: append([]byte(nil), sc.Bytes()...)}
		for p, para := range l.Request.Paraphrases {
			z := make([]float64, len(para.Options))
			for i, o := range para.Options {
				z[i] = o.Logprob
				if p == 0 {
					q.Labels = append(q.Labels, o.Label)
					if len(l.Label.Answers) > 0 && o.Label == l.Label.Answers[0] {
						q.Gold = i
					}
				}
			}
			q.Logits = append(q.Logits, z)
		}
		if q.Gold < 0 {
			return nil, fmt.Errorf("%s:%d: gold label not among the options", path, n)
		}
		out = append(out, q)
	}
	return out, sc.Err()
}
