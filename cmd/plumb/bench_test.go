package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/server"
	"github.com/plumbhq/plumb/simulate"
)

// BenchmarkDecode: one LabeledExample line (10 + 2 wordings × 4 options, ~2.3 KB, as
// `plumb simulate --labeled --stance 2` writes it) by the fast decoder and by protojson.
func BenchmarkDecode(b *testing.B) {
	exs, _ := simulate.Generate(&simulate.Config{Questions: 1, Stance: 2})
	line, _ := marshal.Marshal(server.LabeledFrom(&exs[0]))
	b.Run("fast", func(b *testing.B) {
		var p fastjson.Parser
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		for b.Loop() {
			var m plumbv1.LabeledExample
			if err := decodeFast(&p, line, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protojson", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		for b.Loop() {
			var m plumbv1.LabeledExample
			if err := unmarshal.Unmarshal(line, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEvaluateFile: in-process plumb eval's pipeline (chunked reading, decoding and
// scoring over all cores, merging, the report) on 50 000 simulated option questions of 10
// wordings held in memory, under a profile fitted with adaptive temperature on other
// questions. ns/question at -cpu 2 is the figure behind plumb eval's questions per second
// (1e9 / ns/question), without the disk.
func BenchmarkEvaluateFile(b *testing.B) {
	fitSet, _ := simulate.Generate(&simulate.Config{Questions: 10000, Seed: 6})
	p, _, err := calibrate.Fit(fitSet, &calibrate.FitConfig{Temperature: calibrate.TemperatureAdaptive})
	if err != nil {
		b.Fatal(err)
	}
	var data bytes.Buffer
	w := bufio.NewWriter(&data)
	const n = 50000
	for ex := range simulate.All(&simulate.Config{Questions: n, Seed: 5}) {
		if err := writeLine(w, server.LabeledFrom(&ex)); err != nil {
			b.Fatal(err)
		}
	}
	w.Flush()
	b.SetBytes(int64(data.Len()))
	b.ResetTimer()
	for b.Loop() {
		if _, err := evaluateFile(context.Background(), p, bytes.NewReader(data.Bytes()), "bench", inputOptions{}, io.Discard, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/question")
}
