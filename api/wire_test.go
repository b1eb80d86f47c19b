package api

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// field appends field num of a message as wire bytes: a message or string (bytes), or a varint.
func field(b []byte, num protowire.Number, v any) []byte {
	switch v := v.(type) {
	case []byte:
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, v)
	case string:
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, v)
	case int:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(v))
	}
	panic("field")
}

func repeat(n int, b []byte) []byte { return bytes.Repeat(b, n) }

func option(label string) []byte { return field(nil, 1, label) }

// TestDecodeRefuses: the bad inputs of docs/DESIGN.md's table that a message's bytes can carry,
// in binary protobuf and in JSON, are refused with the same code and the same field; caps bind
// at the first element past them.
func TestDecodeRefuses(t *testing.T) {
	opts := field(nil, 4, option("A")) // one option in a paraphrase
	para := func(b []byte) []byte { return field(nil, 4, b) }
	sample := func(b []byte) []byte { return para(field(nil, 5, b)) }
	bigText := strings.Repeat("x", 16<<10+1) // past a passage's cap (a short answer's, 4 096, is validation's)
	for _, tc := range []struct {
		name   string
		binary []byte
		json   string
		code   string
		field  string
	}{
		{"invalid UTF-8 in a label", para(field(nil, 4, field(nil, 1, "\xff"))),
			`{"paraphrases":[{"options":[{"label":"` + "\xff" + `"}]}]}`, "InvalidArgument", "paraphrases[0].options[0].label"},
		{"invalid UTF-8 in a sample's text", append(para(opts), sample(field(nil, 1, "ok\xc3"))...),
			`{"paraphrases":[{"options":[{"label":"A"}]},{"samples":[{"text":"ok` + "\xc3" + `"}]}]}`, "InvalidArgument", "paraphrases[1].samples[0].text"},
		{"an unknown field", field(para(opts), 40, "x"), `{"paraphrases":[{"options":[{"label":"A"}]}],"#40":[]}`, "InvalidArgument", "#40"},
		{"an unknown nested field", para(field(opts, 9, 1)), `{"paraphrases":[{"options":[{"label":"A"}],"#9":"FRAMING_NEUTRAL"}]}`, "InvalidArgument", "paraphrases[0].#9"},
		{"a misspelt field", nil, `{"paraphrases":[{"options":[{"label":"A"}],"framingg":"FRAMING_NEUTRAL"}]}`, "InvalidArgument", "paraphrases[0].framingg"},
		{"an unknown framing number", para(field(opts, 2, 7)), `{"paraphrases":[{"options":[{"label":"A"}],"framing":7}]}`, "InvalidArgument", "paraphrases[0].framing"},
		{"an unknown framing name", nil, `{"paraphrases":[{"options":[{"label":"A"}],"framing":"FRAMING_USER_STANCE_"}]}`, "InvalidArgument", "paraphrases[0].framing"},
		{"an unknown kind", field(para(opts), 6, 99), `{"paraphrases":[{"options":[{"label":"A"}]}],"kind":99}`, "InvalidArgument", "kind"},
		{"an unknown equivalence", field(para(opts), 5, field(nil, 2, 9)), `{"paraphrases":[{"options":[{"label":"A"}]}],"policy":{"equivalence":"EQUIVALENCE_FUZZY"}}`, "InvalidArgument", "policy.equivalence"},
		{"65 wordings", repeat(65, para(nil)), `{"paraphrases":[` + strings.Repeat(`{},`, 64) + `{}]}`, "InvalidArgument", "paraphrases"},
		{"4 097 options", para(repeat(4097, opts)), `{"paraphrases":[{"options":[` + strings.Repeat(`{"label":"A"},`, 4096) + `{"label":"A"}]}]}`, "ResourceExhausted", "paraphrases[0].options"},
		{"10 001 samples", para(repeat(10001, field(nil, 5, []byte{}))), `{"paraphrases":[{"samples":[` + strings.Repeat(`{},`, 10000) + `{}]}]}`, "ResourceExhausted", "paraphrases"},
		{"21 top_logprobs", sample(field(nil, 2, repeat(21, field(nil, 3, field(nil, 1, "t"))))),
			`{"paraphrases":[{"samples":[{"tokens":[{"top_logprobs":[` + strings.Repeat(`{"token":"t"},`, 20) + `{"token":"t"}]}]}]}]}`, "ResourceExhausted", "paraphrases[0].samples[0].tokens[0].top_logprobs"},
		{"a text of 16 385 bytes", sample(field(nil, 1, bigText)), `{"paraphrases":[{"samples":[{"text":"` + bigText + `"}]}]}`, "ResourceExhausted", "paraphrases[0].samples[0].text"},
		{"a text of 16 385 bytes, escaped", nil, `{"paraphrases":[{"samples":[{"text":"` + strings.Repeat(`\u00e9`, 8<<10) + `x"}]}]}`, "ResourceExhausted", "paraphrases[0].samples[0].text"},
		{"257 claims", repeat(257, field(nil, 8, field(nil, 2, "c"))), `{"claims":[` + strings.Repeat(`{"text":"c"},`, 256) + `{"text":"c"}]}`, "ResourceExhausted", "claims"},
		{"4 097 embedding dimensions", sample(field(nil, 3, make([]byte, 4*4097))),
			`{"paraphrases":[{"samples":[{"embedding":[` + strings.Repeat(`0,`, 4096) + `0]}]}]}`, "ResourceExhausted", "paraphrases[0].samples[0].embedding"},
		{"a singular field given 17 times", append(para(opts), repeat(17, field(nil, 2, "p"))...),
			`{"paraphrases":[{"options":[{"label":"A"}]}],"profile":"p","profile":"p"}`, "InvalidArgument", "profile"},
		{"one field under both its names", nil,
			`{"paraphrases":[{"options":[{"label":"A"}]}],"profileVersion":1,"profile_version":2}`, "InvalidArgument", "profile_version"},
		{"a nested singular field given 17 times", para(append(opts, repeat(17, field(nil, 3, "B"))...)),
			`{"paraphrases":[{"options":[{"label":"A"}],"stance":"B","stance":"B"}]}`, "InvalidArgument", "paraphrases[0].stance"},
		{"not JSON", nil, `{"paraphrases":[`, "InvalidArgument", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(enc string, err error) {
				t.Helper()
				f := FaultOf(err)
				want := tc.field
				if f.Code.String() != tc.code || f.Field != want {
					t.Errorf("%s: %v (%v on %q), want %s on %q", enc, err, f.Code, f.Field, tc.code, want)
				}
			}
			if tc.binary != nil {
				check("binary", Decode(tc.binary, Binary, new(plumbv1.ScoreRequest)))
			}
			check("json", Decode([]byte(tc.json), JSON, new(plumbv1.ScoreRequest)))
		})
	}
}

// TestDecodeMergesFewRepeats: protobuf merges a singular field given more than once (a message
// sent as concatenated parts); up to 16 times, Decode takes it as proto.Unmarshal does.
func TestDecodeMergesFewRepeats(t *testing.T) {
	b := field(nil, 4, field(nil, 4, option("A")))
	for i := range 16 {
		b = field(b, 2, "p"+strings.Repeat("x", i))
	}
	var got plumbv1.ScoreRequest
	if err := Decode(b, Binary, &got); err != nil || got.GetProfile() != "p"+strings.Repeat("x", 15) {
		t.Errorf("16 parts: %v, profile %q; want the last part's profile", err, got.GetProfile())
	}
}

// TestDecodeReadsWhatTheDecoderReads: what Decode accepts it decodes as proto.Unmarshal and
// protojson.Unmarshal do; escaped strings count their bytes once unescaped.
func TestDecodeReadsWhatTheDecoderReads(t *testing.T) {
	var r plumbv1.ScoreRequest
	fill(r.ProtoReflect(), highest)
	r.Paraphrases[0].Samples[0].Text = "caf\u00e9 \"quoted\" \\ \U0001F600"
	b, _ := proto.Marshal(&r)
	var got plumbv1.ScoreRequest
	if err := Decode(b, Binary, &got); err != nil || !proto.Equal(&got, &r) {
		t.Fatalf("binary: %v\n%v", err, &got)
	}
	j, _ := protojson.Marshal(&r)
	got.Reset()
	if err := Decode(j, JSON, &got); err != nil || !proto.Equal(&got, &r) {
		t.Fatalf("json: %v\n%v", err, &got)
	}
	escaped := []byte(`{"paraphrases":[{"samples":[{"text":"` + strings.Repeat(`\u00e9`, 8<<10) + `"}]}]}`) // 16 384 bytes
	if err := Decode(escaped, JSON, new(plumbv1.ScoreRequest)); err != nil {
		t.Fatalf("16 384 bytes once unescaped: %v", err)
	}
	for _, s := range []string{`"\ud83d\ude00"`, `"a\nb"`, `"\u0041"`, `"plain"`} {
		var want string
		protojson.Unmarshal([]byte(`{"text":`+s+`}`), &plumbv1.Sample{})
		var m plumbv1.Sample
		protojson.Unmarshal([]byte(`{"text":`+s+`}`), &m)
		want = m.GetText()
		if n := new(walk).unquotedLen([]byte(s)); n != len(want) {
			t.Errorf("unquotedLen(%s) = %d, want %d", s, n, len(want))
		}
	}
}

// TestDecodeWorkBeforeCaps: the attack of issue 21, a 16 MiB request of empty wordings (8 M of
// them in binary, 5.6 M as JSON), is refused at the 65th wording having built nothing: what
// refusing it allocates is measured against the 16 MiB that decoding it whole would take.
func TestDecodeWorkBeforeCaps(t *testing.T) {
	size := 16 << 20
	bin := repeat(size/2, field(nil, 4, []byte{}))
	js := []byte(`{"paraphrases":[` + strings.Repeat(`{},`, size/3) + `{}]}`)
	for _, tc := range []struct {
		name string
		data []byte
		enc  Encoding
	}{{"binary", bin, Binary}, {"json", js, JSON}} {
		var err error
		var m plumbv1.ScoreRequest
		allocated := testing.AllocsPerRun(1, func() { err = Decode(tc.data, tc.enc, &m) })
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		Decode(tc.data, tc.enc, &m)
		runtime.ReadMemStats(&after)
		bytes := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d bytes refused with %.0f allocations, %d bytes", tc.name, len(tc.data), allocated, bytes)
		if f := FaultOf(err); f.Field != "paraphrases" || len(m.GetParaphrases()) != 0 {
			t.Fatalf("%s: %v, want paraphrases and nothing decoded", tc.name, err)
		}
		if bytes > 1<<20 {
			t.Errorf("%s: refusing allocated %d bytes, want < 1 MiB", tc.name, bytes)
		}
	}
}
