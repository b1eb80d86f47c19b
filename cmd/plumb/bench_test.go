package main

import (
	"testing"

	"github.com/valyala/fastjson"

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
