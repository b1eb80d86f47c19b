package jsonl

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/simulate"
)

// protojsonLine is the reference AppendResponse is checked against: protojson's bytes with
// their spacing removed by encoding/json.
func protojsonLine(t testing.TB, m proto.Message) ([]byte, error) {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// sameAsProtojson fails unless AppendResponse writes r as protojson does, or both refuse it.
func sameAsProtojson(t *testing.T, r *plumbv1.ScoreResponse) {
	t.Helper()
	want, werr := protojsonLine(t, r)
	got, gerr := AppendResponse([]byte("prefix"), r)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("protojson error %v, AppendResponse error %v, on %v", werr, gerr, r)
	}
	if werr != nil {
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("AppendResponse differs from protojson:\n got %s\nwant %s", got[len("prefix"):], want)
	}
}

// TestAppendResponse: responses to simulated questions (options and samples, stance wordings,
// the uncalibrated default and fitted profiles, with and without Mondrian groups, refused
// requests) are written exactly as protojson writes them.
func TestAppendResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  simulate.Config
		fit  bool
	}{
		{"options default", simulate.Config{Questions: 200, Seed: 1, Stance: 1}, false},
		{"options fitted", simulate.Config{Questions: 600, Seed: 2, Stance: 2}, true},
		{"samples default", simulate.Config{Questions: 100, Seed: 3, Samples: 5, Wordings: 4, Tokens: 3, Stance: 1}, false},
		{"samples fitted, unseen golds", simulate.Config{Questions: 600, Seed: 4, Samples: 5, Wordings: 4, Tokens: 3, MissRate: 0.3}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exs, _ := simulate.Generate(&tc.cfg)
			var p *calibrate.Profile
			if tc.fit {
				var err error
				if p, _, err = calibrate.Fit(context.Background(), exs, nil); err != nil {
					t.Fatal(err)
				}
				p.Name, p.Version = "sim", 3
			}
			for i := range exs[:100] {
				res, err := calibrate.Score(context.Background(), p, &exs[i].Question)
				if err != nil {
					t.Fatal(err)
				}
				sameAsProtojson(t, api.Response(&res))
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		_, err := calibrate.Score(context.Background(), nil, &calibrate.Question{ID: "q\t\"1\""})
		sameAsProtojson(t, &plumbv1.ScoreResponse{Id: "q\t\"1\"", Error: api.ItemError(err)})
	})
}

// responseFrom builds a ScoreResponse, well-formed or not, from fuzz bytes: strings with
// escapes, control characters, non-ASCII and invalid UTF-8; every kind of float (±0, ±Inf,
// NaN, tiny, huge); enum values with and without names; nil and empty messages.
func responseFrom(data []byte) *plumbv1.ScoreResponse {
	r := &reader{b: data}
	str := func() string {
		return [...]string{"", "Paris", "a\"b\\c", "tab\there\nnew", "\x00\x1f\x7f", "ünïcödé ✓", "\xff\xfe", "\u2028</script>&"}[r.byte()%8]
	}
	num := func() float64 {
		switch r.byte() % 4 {
		case 0:
			return 0
		case 1:
			return [...]float64{math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), 1e-7, 1e21, 123456789.125, -2.5e-300}[r.byte()%8]
		}
		return r.float()
	}
	m := &plumbv1.ScoreResponse{Id: str(), Answer: str(), Confidence: num(), Action: plumbv1.Action(r.byte() % 6),
		Calibrated: r.byte()%2 == 0, Lambda: num(), Risk: num()}
	for range r.byte() % 4 {
		m.Reasons = append(m.Reasons, plumbv1.Reason(r.byte()%11))
	}
	if r.byte()%3 != 0 {
		m.PredictionSet = &plumbv1.PredictionSet{Threshold: num(), Alpha: num(), Open: r.byte()%2 == 0, Calibrated: r.byte()%2 == 0, Group: str(), Adaptive: r.byte()%2 == 0}
		for range r.byte() % 3 {
			m.PredictionSet.Answers = append(m.PredictionSet.Answers, str())
		}
	}
	for range r.byte() % 3 {
		m.Candidates = append(m.Candidates, &plumbv1.Candidate{Answer: str(), Probability: num(), TokenConfidence: num(), Count: int32(r.byte()) - 100})
	}
	if r.byte()%3 != 0 {
		m.Uncertainty = &plumbv1.Uncertainty{Total: num(), Aleatoric: num(), Wording: num(), Variance: num(),
			TokenConfidence: num(), SemanticEntropy: num(), Sensitivity: num(), Wordings: int32(r.byte())}
	}
	if r.byte()%3 != 0 {
		m.Sycophancy = &plumbv1.Sycophancy{Shift: num(), Wordings: int32(r.byte()), Flagged: r.byte()%2 == 0, Threshold: num(), Unmatched: int32(r.byte()) - 128}
	}
	if r.byte()%3 != 0 {
		m.Badge = &plumbv1.Badge{Level: plumbv1.BadgeLevel(r.byte() % 7), Label: str()}
	}
	if r.byte()%3 != 0 {
		m.Profile = &plumbv1.ProfileRef{Name: str(), Version: int64(binary.LittleEndian.Uint64(append(r.take(8), make([]byte, 8)...)))}
	}
	if r.byte()%4 == 0 {
		m.Error = &plumbv1.ItemError{Code: int32(r.byte()) - 3, Field: str(), Message: str()}
	}
	if r.byte()%2 == 0 {
		m.Receipt = str()
	}
	return m
}

// reader turns fuzz bytes into values.
type reader struct{ b []byte }

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) take(n int) []byte {
	n = min(n, len(r.b))
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) float() float64 {
	return math.Float64frombits(binary.LittleEndian.Uint64(append(r.take(8), make([]byte, 8)...)))
}

// FuzzAppendResponse: whatever the message, AppendResponse writes protojson's bytes, or refuses
// what protojson refuses. Run: go test ./internal/jsonl -run '^$' -fuzz FuzzAppendResponse
func FuzzAppendResponse(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a"))
	f.Add(bytes.Repeat([]byte{1, 7, 2, 3, 5}, 40))
	f.Add(bytes.Repeat([]byte{6, 1, 1, 255, 0, 128}, 30))
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsProtojson(t, responseFrom(data))
	})
}

// TestAppendResponseSeeds runs the fuzz target's corpus of shapes over many derived inputs, so
// that `go test` covers what the fuzzer starts from.
func TestAppendResponseSeeds(t *testing.T) {
	for i := range 3000 {
		b := make([]byte, 120)
		for j := range b {
			b[j] = byte(i*31 + j*j*7 + j>>1)
		}
		sameAsProtojson(t, responseFrom(b))
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	exs, _ := simulate.Generate(&simulate.Config{Questions: 1, Stance: 2})
	res, err := calibrate.Score(context.Background(), nil, &exs[0].Question)
	if err != nil {
		b.Fatal(err)
	}
	m := api.Response(&res)
	b.Run("direct", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = AppendResponse(buf[:0], m)
		}
	})
	b.Run("protojson+compact", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			protojsonLine(b, m)
		}
	})
}

// TestAppendResponseEveryField: a ScoreResponse with every field set, recursively (strings with
// characters to escape, repeated fields of two elements, every enum's highest value), is written
// as protojson writes it: a field added to the API that the encoder does not write fails here.
func TestAppendResponseEveryField(t *testing.T) {
	var r plumbv1.ScoreResponse
	fillAll(r.ProtoReflect())
	sameAsProtojson(t, &r)
	var missing []string
	r.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		missing = append(missing, string(fd.Name()))
		return true
	})
	if len(missing) != r.ProtoReflect().Descriptor().Fields().Len() {
		t.Fatalf("the filled response sets only %v", missing)
	}
}

// fillAll sets every field of m, recursively.
func fillAll(m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		value := func() protoreflect.Value {
			switch fd.Kind() {
			case protoreflect.BoolKind:
				return protoreflect.ValueOfBool(true)
			case protoreflect.EnumKind:
				vals := fd.Enum().Values()
				return protoreflect.ValueOfEnum(vals.Get(vals.Len() - 1).Number())
			case protoreflect.Int32Kind:
				return protoreflect.ValueOfInt32(-7)
			case protoreflect.Int64Kind:
				return protoreflect.ValueOfInt64(1 << 40)
			case protoreflect.DoubleKind:
				return protoreflect.ValueOfFloat64(1e-7)
			case protoreflect.StringKind:
				return protoreflect.ValueOfString(string(fd.Name()) + " \"é\"\t")
			}
			panic(fmt.Sprintf("fillAll: a %v", fd.Kind()))
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range 2 {
				if fd.Message() != nil {
					e := l.NewElement()
					fillAll(e.Message())
					l.Append(e)
				} else {
					l.Append(value())
				}
			}
		case fd.Message() != nil:
			fillAll(m.Mutable(fd).Message())
		default:
			m.Set(fd, value())
		}
	}
}
