// Package datasets reads the real model outputs kept in the repository's testdata folder
// (testdata/README.md says where each comes from) for tests and benchmarks. It decodes with
// encoding/json alone and imports nothing of plumb, so that the numeric packages can test
// against real data without the engine.
package datasets

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Root returns the repository's testdata folder, found from the working directory upwards
// (go test runs in the package's folder).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("datasets: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Path returns the path of a file under testdata, e.g. Path(tb, "sac3", "sac3-prime.jsonl").
func Path(tb testing.TB, parts ...string) string {
	tb.Helper()
	root, err := Root()
	if err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

// MMLUQuestion is one line of mmlu-llama13b.jsonl: the option logprobs of each wording and
// the gold letter.
type MMLUQuestion struct {
	ID      string
	Group   string
	Labels  []string    // option labels, the same for every wording
	Logits  [][]float64 // [wording][option] logprobs
	Gold    int         // index of the gold label
	RawLine []byte      // the line as it is in the file
}

// MMLU reads testdata/mmlu-llama13b/mmlu-llama13b.jsonl, failing the test when it cannot.
func MMLU(tb testing.TB) []MMLUQuestion {
	tb.Helper()
	qs, err := ReadMMLU(Path(tb, "mmlu-llama13b", "mmlu-llama13b.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	return qs
}

type mmluLine struct {
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

// ReadMMLU parses the MMLU file at path.
func ReadMMLU(path string) ([]MMLUQuestion, error) {
	var out []MMLUQuestion
	err := eachLine(path, func(n int, b []byte) error {
		var l mmluLine
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		q := MMLUQuestion{ID: l.Request.ID, Group: l.Request.Group, Gold: -1, RawLine: b}
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
			return errors.New("gold label not among the options")
		}
		out = append(out, q)
		return nil
	})
	return out, err
}

// Lines returns the lines of a JSON Lines file under testdata, failing the test when it
// cannot read them.
func Lines(tb testing.TB, parts ...string) [][]byte {
	tb.Helper()
	var out [][]byte
	if err := eachLine(Path(tb, parts...), func(_ int, b []byte) error {
		out = append(out, b)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

// eachLine calls f with every line of the file (a copy of it) and its number.
func eachLine(path string, f func(n int, line []byte) error) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for n := 1; sc.Scan(); n++ {
		if err := f(n, append([]byte(nil), sc.Bytes()...)); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

// WikiBioPassage is one line of testdata/wikibio/wikibio-visible.jsonl: a GPT-3 biography
// split into sentences (the claims), the passages GPT-3 sampled for the same prompt, a judge's
// support of each sentence by each sample, and the human verdict of each sentence.
type WikiBioPassage struct {
	ID       string
	Claims   []string    // the sentences
	Samples  []string    // the sampled passages
	Support  [][]float64 // [sample][claim]: the judge's support
	Verdicts []string    // per claim: CLAIM_VERDICT_TRUE, CLAIM_VERDICT_FALSE or CLAIM_VERDICT_UNSPECIFIED
	RawLine  []byte
}

// WikiBio reads testdata/wikibio/wikibio-visible.jsonl, failing the test when it cannot.
func WikiBio(tb testing.TB) []WikiBioPassage {
	tb.Helper()
	var out []WikiBioPassage
	err := eachLine(Path(tb, "wikibio", "wikibio-visible.jsonl"), func(_ int, line []byte) error {
		var raw struct {
			Request struct {
				ID     string `json:"id"`
				Claims []struct {
					Text string `json:"text"`
				} `json:"claims"`
				Paraphrases []struct {
					Samples []struct {
						Text    string    `json:"text"`
						Support []float64 `json:"support"`
					} `json:"samples"`
				} `json:"paraphrases"`
			} `json:"request"`
			Label struct {
				Claims []string `json:"claims"`
			} `json:"label"`
		}
		if err := json.Unmarshal(line, &raw); err != nil {
			return err
		}
		p := WikiBioPassage{ID: raw.Request.ID, Verdicts: raw.Label.Claims, RawLine: line}
		for _, c := range raw.Request.Claims {
			p.Claims = append(p.Claims, c.Text)
		}
		for _, s := range raw.Request.Paraphrases[0].Samples {
			p.Samples = append(p.Samples, s.Text)
			p.Support = append(p.Support, s.Support)
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
