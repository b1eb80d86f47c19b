package main

import (
	"bufio"
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/jsonl"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
	"github.com/plumbhq/plumb/simulate"
	"github.com/plumbhq/plumb/store"
	"github.com/plumbhq/plumb/temperature"
)

// benchFiles returns 50 000 simulated option questions of 10 wordings as labelled lines and as
// request lines, held in memory, and an in-process backend whose store holds a profile "bench"
// fitted with adaptive temperature on other questions.
func benchFiles(b *testing.B) (labeled, requests []byte, l *local) {
	fitSet, _ := simulate.Generate(&simulate.Config{Questions: 10000, Seed: 6})
	p, _, err := calibrate.Fit(context.Background(), fitSet, &calibrate.FitConfig{Name: "bench", Temperature: temperature.MethodAdaptive})
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(filepath.Join(b.TempDir(), "plumb.db"), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	data, err := protoMarshal(api.ProfileMessage(p, nil))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Put(context.Background(), "bench", data, store.PutOptions{Activation: store.Activate}); err != nil {
		b.Fatal(err)
	}
	var lb, rb bytes.Buffer
	lw, rw := bufio.NewWriter(&lb), bufio.NewWriter(&rb)
	for ex := range simulate.All(&simulate.Config{Questions: benchQuestions, Seed: 5}) {
		ex.Question.Profile = "bench"
		if err := writeMessage(lw, api.Labeled(&ex)); err != nil {
			b.Fatal(err)
		}
		if err := writeMessage(rw, api.Request(&ex.Question)); err != nil {
			b.Fatal(err)
		}
	}
	lw.Flush()
	rw.Flush()
	return lb.Bytes(), rb.Bytes(), &local{svc: service.New(st), st: st}
}

const benchQuestions = 50000

// BenchmarkEvaluateFile: in-process plumb eval's pipeline (chunked reading, decoding and
// scoring over all cores, merging, the report) on the labelled lines. ns/question at -cpu 2 is
// the figure behind plumb eval's questions per second (1e9 / ns/question), without the disk.
// BenchmarkScoreFile: in-process plumb score's (decoding, scoring, writing each response) on
// the same questions as request lines.
func BenchmarkEvaluateFile(b *testing.B) {
	labeled, _, l := benchFiles(b)
	b.SetBytes(int64(len(labeled)))
	b.ResetTimer()
	for b.Loop() {
		in := &input{r: bytes.NewReader(labeled), opts: jsonl.Input{File: "bench"}}
		if _, err := l.evaluate(context.Background(), in, &plumbv1.EvaluateConfig{Profile: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchQuestions), "ns/question")
}

func BenchmarkScoreFile(b *testing.B) {
	_, requests, l := benchFiles(b)
	b.SetBytes(int64(len(requests)))
	b.ResetTimer()
	for b.Loop() {
		in := &input{r: bytes.NewReader(requests), opts: jsonl.Input{File: "bench"}}
		if err := l.score(context.Background(), in, &output{w: bufio.NewWriterSize(discard{}, 1<<16)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchQuestions), "ns/question")
}

// discard is io.Discard as a writer bufio can wrap without a type switch.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
