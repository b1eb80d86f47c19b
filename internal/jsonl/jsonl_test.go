package jsonl

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/datasets"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/simulate"
)

// agree decodes b with d into ex and with api.Decode followed by api.Example (the reference),
// and fails when the decoder accepts what the reference refuses or decodes it differently. It
// reports whether the decoder took the line.
func agree(t *testing.T, d *Decoder, ex *calibrate.Example, b []byte) bool {
	t.Helper()
	var m plumbv1.LabeledExample
	serr := api.Decode(b, api.JSON, &m)
	if err := d.Example(b, ex); err != nil {
		return false
	}
	var want calibrate.Example
	if serr == nil {
		want, serr = api.Example(&m)
	}
	if serr != nil {
		t.Fatalf("decoder accepted what the reference refuses (%v): %s", serr, b)
	}
	// Compare as protobuf messages: nil and empty slices are the same there, as they are to
	// the engine.
	if got, wantMsg := api.Labeled(ex), api.Labeled(&want); !proto.Equal(got, wantMsg) {
		t.Fatalf("decoder and protojson differ on %s:\ngot  %v\nwant %v", b, got, wantMsg)
	}
	if ex.Question.Group != want.Question.Group || ex.Question.Policy != want.Question.Policy {
		t.Fatalf("group or policy differ on %s", b)
	}
	return true
}

// marshalLine writes ex as protojson without white space (protojson itself adds some at
// random, differently in each build).
func marshalLine(tb testing.TB, ex *calibrate.Example) []byte {
	tb.Helper()
	b, err := protojson.Marshal(api.Labeled(ex))
	if err != nil {
		tb.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}

// spaced puts a space after every colon and comma outside strings: the line Python's
// json.dumps writes by default.
func spaced(b []byte) []byte {
	var out []byte
	in, esc := false, false
	for _, c := range b {
		out = append(out, c)
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case !in && (c == ':' || c == ','):
			out = append(out, ' ')
		}
	}
	return out
}

// TestAgreesWithProtojson: every line of the MMLU file in testdata and simulated options and
// samples (tokens, stance wordings) are taken and decoded as protojson decodes them, with
// one Decoder and one Example reused across all of them (as plumb eval does).
func TestAgreesWithProtojson(t *testing.T) {
	var d Decoder
	var ex calibrate.Example
	for _, q := range datasets.MMLU(t) {
		if !agree(t, &d, &ex, q.RawLine) {
			t.Fatalf("decoder refused an MMLU line: %s", q.RawLine)
		}
	}
	for _, cfg := range []simulate.Config{
		{Questions: 50, Stance: 2},
		{Questions: 50, Samples: 4, Tokens: 3, TopK: 2, Stance: 1},
		{Questions: 20, Wordings: 3},
		{Questions: 50, Samples: 6, Stance: 1},
	} {
		exs, _ := simulate.Generate(&cfg)
		for i := range exs {
			exs[i].Question.Policy = calibrate.Policy{Risk: 0.05 * float64(i%3), Equivalence: calibrate.Equivalence(i % 4)}
			exs[i].Question.Kind = calibrate.QueryKind(i % 5)
			b := marshalLine(t, &exs[i])
			for _, line := range [][]byte{b, spaced(b)} {
				if !agree(t, &d, &ex, line) {
					t.Fatalf("decoder refused a simulated line: %s", line)
				}
			}
		}
	}
}

// TestSubset: hand-written lines at the edges of the subset.
func TestSubset(t *testing.T) {
	for _, tc := range []struct {
		line string
		fast bool
	}{
		{`{"request":{"id":"a","profile_version":3,"policy":{"risk":0.05,"equivalence":"EQUIVALENCE_F1"},"paraphrases":[{"framing":2,"stance":"B","options":[{"label":"A","logprob":-1},{"label":"B","logprob":-0.5}]}]}}`, true},
		{`{"request":{"id":"a","profileVersion":3,"kind":"QUERY_KIND_FACTUAL","paraphrases":[{"samples":[{"text":"x","embedding":[1,0.5,3.4028235e38],"tokens":[{"token":"x","logprob":-0.1,"bytes":[120],"topLogprobs":[{"token":"x","logprob":-0.1,"bytes":[120]}]}]}]}]},"label":{"answers":["x","y"]}}`, true},
		{" \t{ \"label\" : { \"answers\" : [ ] } , \"request\" : { } }\r\n", true},
		{`{"request":{"id":"caf\u00e9 \"q\" \\ \/ \b\f\n\r\t \ud83d\ude00","group":"日本語"}}`, true},
		{`{"request":{"paraphrases":[{"prompt":"x","framing":"FRAMING_NEUTRAL","options":[]}]}}`, true},
		{`{"request":{"paraphrases":[{"options":[{"label":"A","logprob":-0},{"label":"B","logprob":-1E-3},{"label":"C","logprob":-12.5e+2}]}]}}`, true},
		{`{}`, true},
		// The compact option path's edges: fractions of 1, 8, 9, 14 and 15 digits, a point at
		// the end of a word, an exponent right after the digits, labels of several bytes and
		// with characters it leaves to the general path, an option at the line's very end.
		{`{"request":{"paraphrases":[{"options":[{"label":"A","logprob":-0.5},{"label":"B","logprob":-0.12345678},{"label":"C","logprob":-0.123456789},{"label":"D","logprob":-1.23456789012345},{"label":"E","logprob":-1.234567890123456}]}]}}`, true},
		{`{"request":{"paraphrases":[{"options":[{"label":"A","logprob":-0.12345678e-3},{"label":"B","logprob":-1.5E2},{"label":"C","logprob":-1.00000000000000000001},{"label":"D","logprob":2.5},{"label":"E","logprob":-10.5}]}]}}`, true},
		{`{"request":{"paraphrases":[{"options":[{"label":"(a) yes","logprob":-0.25},{"label":"x\"y","logprob":-0.5},{"label":"it's!","logprob":-0.75},{"label":"","logprob":-1.0}]}]}}`, true},
		{`{"request":{"paraphrases":[{"options":[{"label":"A","logprob":-0.5,"x":1}]}]}}`, false},
		{`{"request":{"paraphrases":[{"options":[{"label":"A","logprob":-0.5`, false},
		{`{"request":{"paraphrases":[{"options":[{"label":"A","logprob":-0.}]}]}}`, false},
		{`{"request":{"id":"a","unknown":1}}`, false},
		{`{"request":{"id":"a","id":"b"}}`, false},
		{`{"request":{"profile_version":1,"profileVersion":2}}`, false},
		{`{"request":{"id":null}}`, false},
		{`{"request":{"paraphrases":[{"options":[{"label":"A","logprob":"NaN"}]}]}}`, false},
		{`{"request":{"paraphrases":[{"options":[{"label":"A","logprob":"-1.5"}]}]}}`, false},
		{`{"request":{"profile_version":"3"}}`, true}, // protojson writes int64s as strings
		{`{"request":{"profile_version":"-0"}}`, true},
		{`{"request":{"profile_version":"1e1"}}`, false},
		{`{"request":{"profile_version":" 12"}}`, false},
		{`{"request":{"profile_version":"012"}}`, false},
		{`{"request":{"profile_version":"9223372036854775808"}}`, false},
		{`{"request":{"profile_version":3.0}}`, false},
		{`{"request":{"paraphrases":[{"options":[{"label":"A","logprob":1e400}]}]}}`, false},
		{`{"request":{"paraphrases":[{"samples":[{"embedding":[1e39]}]}]}}`, false},
		{`{"request":{"paraphrases":[{"options":[{"label":"A","logprob":01}]}]}}`, false},
		{`{"request":{"paraphrases":[{"options":[{"label":"A","logprob":-.5}]}]}}`, false},
		{`{"request":{"paraphrases":[{"framing":"FRAMING_SIDEWAYS"}]}}`, false},
		{`{"request":{"paraphrases":[{"framing":7}]}}`, false},
		{`{"request":{"id":"\ud800"}}`, false},
		{`{"request":{"id":"\ud800\u0041"}}`, false},
		{`{"request":{"id":"a\u00"}}`, false},
		{"{\"request\":{\"id\":\"a\tb\"}}", false},
		{"{\"request\":{\"id\":\"\xff\"}}", false},
		{`{"\u0072equest":{}}`, false},
		{`{"request":{}} x`, false},
		{`{"request":{},}`, false},
		{`{"request":{}`, false},
		{`[1,2]`, false},
		{``, false},
	} {
		t.Run(tc.line, func(t *testing.T) {
			var d Decoder
			var ex calibrate.Example
			if got := agree(t, &d, &ex, []byte(tc.line)); got != tc.fast {
				t.Errorf("decoder took %s: %v, want %v", tc.line, got, tc.fast)
			}
		})
	}
}

// TestReuse: decoding a short line after a long one leaves nothing of the long one behind.
func TestReuse(t *testing.T) {
	exs, _ := simulate.Generate(&simulate.Config{Questions: 2, Samples: 3, Tokens: 4, TopK: 3, Stance: 2})
	long := marshalLine(t, &exs[0])
	short := []byte(`{"request":{"paraphrases":[{"samples":[{"text":"x"}]}]},"label":{"answers":["x"]}}`)
	var d Decoder
	var ex calibrate.Example
	for _, b := range [][]byte{long, short, long, short} {
		if !agree(t, &d, &ex, b) {
			t.Fatalf("refused %s", b)
		}
	}
}

// TestLean: a lean decoder drops ids and prompts and nothing else.
func TestLean(t *testing.T) {
	exs, _ := simulate.Generate(&simulate.Config{Questions: 1, Stance: 1})
	b := marshalLine(t, &exs[0])
	d := Decoder{Lean: true}
	var got calibrate.Example
	if err := d.Example(b, &got); err != nil {
		t.Fatal(err)
	}
	want := exs[0]
	want.Question.ID = ""
	for i := range want.Question.Paraphrases {
		want.Question.Paraphrases[i].Prompt = ""
	}
	if !proto.Equal(api.Labeled(&got), api.Labeled(&want)) {
		t.Fatalf("lean decoding differs:\n%v\n%v", api.Labeled(&got), api.Labeled(&want))
	}
}

// TestAllocations: decoding a simulated options line with a warm decoder allocates nothing
// (lean) or only the id.
func TestAllocations(t *testing.T) {
	exs, _ := simulate.Generate(&simulate.Config{Questions: 1, Stance: 2})
	b := marshalLine(t, &exs[0])
	for _, lean := range []bool{true, false} {
		d := Decoder{Lean: lean}
		var ex calibrate.Example
		if err := d.Example(b, &ex); err != nil {
			t.Fatal(err)
		}
		got := testing.AllocsPerRun(100, func() { d.Example(b, &ex) })
		want := 1.0
		if lean {
			want = 0
		}
		if got != want {
			t.Errorf("lean=%v: %v allocations per line, want %v", lean, got, want)
		}
	}
}

// FuzzDecoder: the decoder never panics, and whatever it accepts protojson decodes to the
// same example. Run: go test ./internal/jsonl -run '^$' -fuzz FuzzDecoder -fuzztime 1m
func FuzzDecoder(f *testing.F) {
	f.Add([]byte(`{"request":{"id":"q","paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.7}]}]},"label":{"answers":["A"]}}`))
	f.Add([]byte(`{"request":{"paraphrases":[{"framing":"FRAMING_USER_STANCE","stance":"Paris","samples":[{"text":"Paris","tokens":[{"token":"Paris","logprob":-0.1,"top_logprobs":[{"token":"Paris","logprob":-0.1,"bytes":[80]}]}]}]}]}}`))
	f.Add([]byte(`{"request":{"policy":{"risk":0.2,"equivalence":3},"kind":1,"profileVersion":2,"paraphrases":[{"samples":[{"text":"x\u00e9\n","embedding":[0.5,-1e-3]}]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Decoder
		var ex calibrate.Example
		agree(t, &d, &ex, b)
		// Decoding again into the used example gives the same result.
		agree(t, &d, &ex, b)
		if strings.Contains(string(b), `"id"`) {
			d.Lean = true
			d.Example(b, &ex)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	for _, cfg := range []struct {
		name string
		sim  simulate.Config
	}{
		{"options=4x10", simulate.Config{Questions: 1, Stance: 2}},
		{"samples=5x10x32x5", simulate.Config{Questions: 1, Wordings: 5, Samples: 10, Tokens: 32, TopK: 5}},
	} {
		exs, _ := simulate.Generate(&cfg.sim)
		line := marshalLine(b, &exs[0])
		for _, form := range []struct {
			name string
			line []byte
		}{{"jsonl", line}, {"jsonl-spaced", spaced(line)}} {
			b.Run(cfg.name+"/"+form.name, func(b *testing.B) {
				d := Decoder{Lean: true}
				var ex calibrate.Example
				b.SetBytes(int64(len(form.line)))
				b.ReportAllocs()
				for b.Loop() {
					if err := d.Example(form.line, &ex); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(cfg.name+"/protojson", func(b *testing.B) {
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				var m plumbv1.LabeledExample
				if err := protojson.Unmarshal(line, &m); err != nil {
					b.Fatal(err)
				}
				api.Example(&m)
			}
		})
	}
}

// TestFloat: numbers read by the scanner equal strconv.ParseFloat's, bit for bit, for random
// values written in the forms APIs print (shortest float32 and float64 decimals, fixed and
// exponent notation, integers), where the scanner computes some itself (Clinger's exact case)
// and hands the rest to strconv.
func TestFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var texts []string
	for range 200000 {
		x := -math.Exp(rng.NormFloat64() * 8)
		switch rng.IntN(6) {
		case 0:
			texts = append(texts, strconv.FormatFloat(x, 'g', -1, 32))
		case 1:
			texts = append(texts, strconv.FormatFloat(x, 'g', -1, 64))
		case 2:
			texts = append(texts, strconv.FormatFloat(x, 'f', rng.IntN(25), 64))
		case 3:
			texts = append(texts, strconv.FormatFloat(x, 'e', rng.IntN(22), 64))
		case 4:
			texts = append(texts, strconv.FormatInt(rng.Int64N(1<<62)-1<<61, 10))
		default:
			texts = append(texts, strconv.FormatFloat(-x, 'E', -1, 32))
		}
	}
	texts = append(texts, "0", "-0", "9007199254740993", "9007199254740992e-22", "1e22", "1e23",
		"123456789012345678901234567890", "0.000000000000000000000000000001", "18446744073709551615",
		"18446744073709551616", "4.9e-324", "2e-324", "1.7976931348623157e308")
	var s scanner
	for _, text := range texts {
		want, err := strconv.ParseFloat(text, 64)
		s.reset([]byte(text))
		got := s.float(64)
		if err != nil {
			if !s.bad {
				t.Errorf("%s: scanner took what strconv refuses (%v)", text, err)
			}
			continue
		}
		if s.bad || math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("%s: scanner %v (bad %v), strconv %v", text, got, s.bad, want)
		}
	}
}

// TestPrefixes: every proper prefix of valid lines (options and samples, compact and spaced)
// is refused without a panic, wherever it cuts a token.
func TestPrefixes(t *testing.T) {
	var d Decoder
	var ex calibrate.Example
	for _, cfg := range []simulate.Config{{Questions: 1, Wordings: 2, Stance: 1}, {Questions: 1, Wordings: 1, Samples: 2, Tokens: 2, TopK: 2}} {
		exs, _ := simulate.Generate(&cfg)
		b := marshalLine(t, &exs[0])
		for _, line := range [][]byte{b, spaced(b)} {
			for n := range len(line) {
				if d.Example(line[:n:n], &ex) == nil {
					t.Fatalf("took a prefix: %s", line[:n])
				}
			}
			if !agree(t, &d, &ex, line) {
				t.Fatalf("refused %s", line)
			}
		}
	}
}

// TestQuestionAgrees: request lines (simulated, with ids, profiles, versions, policies and
// stance wordings) decode as api.Decode followed by api.Question does, and lines the decoder
// refuses reach api.Decode through DecodeQuestion, which names the field at fault or what the
// line is not.
func TestQuestionAgrees(t *testing.T) {
	exs, _ := simulate.Generate(&simulate.Config{Questions: 40, Samples: 3, Tokens: 2, TopK: 2, Stance: 1})
	var d Decoder
	var q calibrate.Question
	for i := range exs {
		exs[i].Question.Profile, exs[i].Question.ProfileVersion = "p", int64(i%3)
		exs[i].Question.Policy = calibrate.Policy{Risk: 0.05 * float64(i%3), Equivalence: calibrate.Equivalence(i % 4)}
		b, err := protojson.Marshal(api.Request(&exs[i].Question))
		if err != nil {
			t.Fatal(err)
		}
		var m plumbv1.ScoreRequest
		if err := protojson.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if err := d.Question(b, &q); err != nil {
			t.Fatalf("decoder refused %s", b)
		}
		want, err := api.Question(&m)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(api.Request(&q), api.Request(&want)) {
			t.Fatalf("decoder and protojson differ on %s", b)
		}
	}
	if err := DecodeQuestion(&d, []byte(`{"paraphrases":[{"options":[{"label":"A","logprob":"-1"}]}]}`), &q, Plumb); err != nil || q.Paraphrases[0].Options[0].Logprob != -1 {
		t.Fatalf("a number as a string goes to protojson, which takes it: %v", err)
	}
	if err := DecodeQuestion(&d, []byte(`{"paraphrases":[{"options":[]}],"polcy":{}}`), &q, Plumb); err == nil || err.Error() != `polcy: unknown field "polcy" of plumb.v1.ScoreRequest` {
		t.Fatalf("unknown field: %v", err)
	}
	if err := DecodeQuestion(&d, []byte(`{"paraphrases":[{"framing":"FRAMING_USER_STANCE_"}]}`), &q, Plumb); err == nil || !strings.HasPrefix(err.Error(), `paraphrases[0].framing: unknown Framing value`) {
		t.Fatalf("unknown enum name: %v", err)
	}
	if err := DecodeQuestion(&d, []byte(`{"wordings":[]}`), &q, Plumb); err == nil || !strings.Contains(err.Error(), "not a ScoreRequest") || !strings.Contains(err.Error(), "--from openai") {
		t.Fatalf("the OpenAI shape: %v", err)
	}
}
