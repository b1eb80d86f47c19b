package main

import (
	"testing"

	"github.com/valyala/fastjson"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/internal/datasets"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/server"
	"github.com/plumbhq/plumb/simulate"
)

// agree checks that when the fast decoder accepts a line, protojson accepts it too and gives
// the same message. It reports whether the fast path took the line.
func agree(t *testing.T, b []byte, newMsg func() proto.Message) bool {
	t.Helper()
	var p fastjson.Parser
	fast, slow := newMsg(), newMsg()
	ferr := decodeFast(&p, b, fast)
	serr := unmarshal.Unmarshal(b, slow)
	if ferr != nil {
		return false
	}
	if serr != nil {
		t.Fatalf("fast decoder accepted what protojson refuses (%v): %s", serr, b)
	}
	if !proto.Equal(fast, slow) {
		t.Fatalf("fast and protojson decoders differ on %s:\nfast %v\nslow %v", b, fast, slow)
	}
	return true
}

func labeledMsg() proto.Message { return new(plumbv1.LabeledExample) }
func requestMsg() proto.Message { return new(plumbv1.ScoreRequest) }

// TestFastDecoderAgrees: on the MMLU file in testdata, simulated options and samples (with tokens,
// stance wordings) and hand-written variants, the fast path decodes the line exactly as
// protojson does.
func TestFastDecoderAgrees(t *testing.T) {
	for _, q := range datasets.MMLU(t) {
		if !agree(t, q.RawLine, labeledMsg) {
			t.Fatalf("fast path refused an MMLU line: %s", q.RawLine)
		}
	}
	for _, cfg := range []simulate.Config{{Questions: 50, Stance: 2}, {Questions: 50, Samples: 4, Tokens: 3, Stance: 1}} {
		exs, _ := simulate.Generate(&cfg)
		for i := range exs {
			b, _ := marshal.Marshal(server.LabeledFrom(&exs[i]))
			if !agree(t, b, labeledMsg) {
				t.Fatalf("fast path refused a simulated line: %s", b)
			}
		}
	}
	for _, tc := range []struct {
		line string
		fast bool
	}{
		{`{"id":"a","profile_version":3,"policy":{"risk":0.05,"equivalence":"EQUIVALENCE_F1"},"paraphrases":[{"framing":2,"stance":"B","options":[{"label":"A","logprob":-1},{"label":"B","logprob":-0.5}]}]}`, true},
		{`{"id":"a","profileVersion":3,"kind":"QUERY_KIND_FACTUAL","paraphrases":[{"samples":[{"text":"x","embedding":[1,0.5],"tokens":[{"token":"x","logprob":-0.1,"bytes":[120],"topLogprobs":[{"token":"x","logprob":-0.1,"bytes":[120]}]}]}]}]}`, true},
		{`{"id":"a","unknown":1}`, false},
		{`{"id":"a","id":"b"}`, false},
		{`{"id":null}`, false},
		{`{"paraphrases":[{"options":[{"label":"A","logprob":"NaN"}]}]}`, false},
		{`{"profile_version":"3"}`, false},
		{`{"paraphrases":[{"options":[{"label":"A","logprob":1e400}]}]}`, false},
		{`{"paraphrases":[{"framing":"FRAMING_SIDEWAYS"}]}`, false},
		{`[1,2]`, false},
	} {
		if got := agree(t, []byte(tc.line), requestMsg); got != tc.fast {
			t.Errorf("fast path took %s: %v, want %v", tc.line, got, tc.fast)
		}
	}
}

// FuzzFastDecoder: the fast decoder never panics, and whatever it accepts protojson decodes to
// the same message. Run: go test ./cmd/plumb -run '^$' -fuzz FuzzFastDecoder -fuzztime 1m
func FuzzFastDecoder(f *testing.F) {
	f.Add([]byte(`{"request":{"id":"q","paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.7}]}]},"label":{"answers":["A"]}}`))
	f.Add([]byte(`{"request":{"paraphrases":[{"framing":"FRAMING_USER_STANCE","stance":"Paris","samples":[{"text":"Paris","tokens":[{"token":"Paris","logprob":-0.1,"top_logprobs":[{"token":"Paris","logprob":-0.1}]}]}]}]}}`))
	f.Add([]byte(`{"request":{"policy":{"risk":0.2},"profileVersion":2,"paraphrases":[{"samples":[{"text":"x","embedding":[0.5,-1]}]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		agree(t, b, labeledMsg)
		agree(t, b, requestMsg)
	})
}
