package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// ErrInvalidUTF8 is returned for a string that is not valid UTF-8, which proto3 strings must be.
var ErrInvalidUTF8 = errors.New("jsonl: string field with invalid UTF-8")

// AppendResponse appends r as one line of JSON, without white space and with a final newline:
// the bytes protojson.Marshal writes for r with its spacing removed (a test checks it), written
// directly, since `plumb score` writes one per request.
func AppendResponse(dst []byte, r *plumbv1.ScoreResponse) ([]byte, error) {
	w := writer{b: dst}
	w.open()
	w.str("id", r.GetId())
	w.str("answer", r.GetAnswer())
	w.double("confidence", r.GetConfidence())
	w.enum("action", int32(r.GetAction()), plumbv1.Action_name)
	w.reasons(r.GetReasons())
	w.predictionSet(r.GetPredictionSet())
	w.candidates(r.GetCandidates())
	w.uncertainty(r.GetUncertainty())
	w.sycophancy(r.GetSycophancy())
	if b := r.GetBadge(); b != nil {
		w.key("badge")
		w.open()
		w.enum("level", int32(b.GetLevel()), plumbv1.BadgeLevel_name)
		w.str("label", b.GetLabel())
		w.close()
	}
	if p := r.GetProfile(); p != nil {
		w.key("profile")
		w.open()
		w.str("name", p.GetName())
		if v := p.GetVersion(); v != 0 {
			w.key("version")
			w.b = append(w.b, '"')
			w.b = strconv.AppendInt(w.b, v, 10)
			w.b = append(w.b, '"')
		}
		w.close()
	}
	w.boolean("calibrated", r.GetCalibrated())
	w.double("lambda", r.GetLambda())
	w.double("risk", r.GetRisk())
	if e := r.GetError(); e != nil {
		w.key("error")
		w.open()
		w.int32("code", e.GetCode())
		w.str("field", e.GetField())
		w.str("message", e.GetMessage())
		w.close()
	}
	w.claims(r.GetClaims())
	w.enum("supportMeasure", int32(r.GetSupportMeasure()), plumbv1.SupportMeasure_name)
	w.str("receipt", r.GetReceipt())
	w.close()
	if w.err != nil {
		return dst, w.err
	}
	return append(w.b, '\n'), nil
}

func (w *writer) claims(cs []*plumbv1.ClaimScore) {
	if len(cs) == 0 {
		return
	}
	w.key("claims")
	w.b = append(w.b, '[')
	for i, c := range cs {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.open()
		w.str("id", c.GetId())
		w.double("confidence", c.GetConfidence())
		w.enum("action", int32(c.GetAction()), plumbv1.ClaimAction_name)
		w.reasons(c.GetReasons())
		w.double("support", c.GetSupport())
		w.double("wordingVariance", c.GetWordingVariance())
		w.double("sycophancyShift", c.GetSycophancyShift())
		w.close()
	}
	w.b = append(w.b, ']')
}

// reasons writes a list of reasons, when there are any.
func (w *writer) reasons(rs []plumbv1.Reason) {
	if len(rs) == 0 {
		return
	}
	w.key("reasons")
	w.b = append(w.b, '[')
	for i, x := range rs {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.enumValue(int32(x), plumbv1.Reason_name)
	}
	w.b = append(w.b, ']')
}

func (w *writer) predictionSet(s *plumbv1.PredictionSet) {
	if s == nil {
		return
	}
	w.key("predictionSet")
	w.open()
	w.strs("answers", s.GetAnswers())
	w.double("threshold", s.GetThreshold())
	w.double("alpha", s.GetAlpha())
	w.boolean("open", s.GetOpen())
	w.boolean("calibrated", s.GetCalibrated())
	w.str("group", s.GetGroup())
	w.boolean("adaptive", s.GetAdaptive())
	w.close()
}

func (w *writer) candidates(cs []*plumbv1.Candidate) {
	if len(cs) == 0 {
		return
	}
	w.key("candidates")
	w.b = append(w.b, '[')
	for i, c := range cs {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.first = true
		w.open()
		w.str("answer", c.GetAnswer())
		w.double("probability", c.GetProbability())
		w.double("tokenConfidence", c.GetTokenConfidence())
		w.int32("count", c.GetCount())
		w.close()
	}
	w.b = append(w.b, ']')
}

func (w *writer) uncertainty(u *plumbv1.Uncertainty) {
	if u == nil {
		return
	}
	w.key("uncertainty")
	w.open()
	w.double("total", u.GetTotal())
	w.double("aleatoric", u.GetAleatoric())
	w.double("wording", u.GetWording())
	w.double("variance", u.GetVariance())
	w.double("tokenConfidence", u.GetTokenConfidence())
	w.double("semanticEntropy", u.GetSemanticEntropy())
	w.double("sensitivity", u.GetSensitivity())
	w.int32("wordings", u.GetWordings())
	w.close()
}

func (w *writer) sycophancy(s *plumbv1.Sycophancy) {
	if s == nil {
		return
	}
	w.key("sycophancy")
	w.open()
	w.double("shift", s.GetShift())
	w.int32("wordings", s.GetWordings())
	w.boolean("flagged", s.GetFlagged())
	w.double("threshold", s.GetThreshold())
	w.int32("unmatched", s.GetUnmatched())
	w.close()
}

// writer writes one JSON object's members as protojson does: a proto3 field with implicit
// presence only when it is set (not zero, empty or false), a message field when it is not nil.
type writer struct {
	b     []byte
	first bool // no member written yet in the current object
	err   error
}

func (w *writer) open() {
	w.b = append(w.b, '{')
	w.first = true
}

func (w *writer) close() {
	w.b = append(w.b, '}')
	w.first = false
}

func (w *writer) key(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *writer) str(k, v string) {
	if v != "" {
		w.key(k)
		w.value(v)
	}
}

func (w *writer) strs(k string, vs []string) {
	if len(vs) == 0 {
		return
	}
	w.key(k)
	w.b = append(w.b, '[')
	for i, v := range vs {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.value(v)
	}
	w.b = append(w.b, ']')
}

func (w *writer) boolean(k string, v bool) {
	if v {
		w.key(k)
		w.b = append(w.b, "true"...)
	}
}

func (w *writer) int32(k string, v int32) {
	if v != 0 {
		w.key(k)
		w.b = strconv.AppendInt(w.b, int64(v), 10)
	}
}

// double writes a float64 field: set when its bits are not all zero (so −0 is written).
func (w *writer) double(k string, v float64) {
	if math.Float64bits(v) == 0 {
		return
	}
	w.key(k)
	switch {
	case math.IsNaN(v):
		w.b = append(w.b, `"NaN"`...)
		return
	case math.IsInf(v, 1):
		w.b = append(w.b, `"Infinity"`...)
		return
	case math.IsInf(v, -1):
		w.b = append(w.b, `"-Infinity"`...)
		return
	}
	// encoding/json's number format, which protojson follows: exponent notation outside
	// [1e-6, 1e21), with a one-digit negative exponent not padded.
	format := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	w.b = strconv.AppendFloat(w.b, v, format, -1, 64)
	if n := len(w.b); format == 'e' && n >= 4 && w.b[n-4] == 'e' && w.b[n-3] == '-' && w.b[n-2] == '0' {
		w.b[n-2] = w.b[n-1]
		w.b = w.b[:n-1]
	}
}

func (w *writer) enum(k string, v int32, names map[int32]string) {
	if v != 0 {
		w.key(k)
		w.enumValue(v, names)
	}
}

// enumValue writes an enum by its name, or by its number when it has none.
func (w *writer) enumValue(v int32, names map[int32]string) {
	if name, ok := names[v]; ok {
		w.b = append(w.b, '"')
		w.b = append(w.b, name...)
		w.b = append(w.b, '"')
		return
	}
	w.b = strconv.AppendInt(w.b, int64(v), 10)
}

// The two-character escapes of JSON strings, which the encoder writes and the scanner reads:
// escapeLetter[c] is the letter after the backslash that stands for byte c, unescaped[l] the
// byte the letter l stands for (0: none). JSON also reads \/ for '/', which no encoder needs.
var escapeLetter, unescaped = func() (enc, dec [256]byte) {
	for _, e := range [...]struct{ raw, letter byte }{{'"', '"'}, {'\\', '\\'}, {'\b', 'b'}, {'\f', 'f'}, {'\n', 'n'}, {'\r', 'r'}, {'\t', 't'}} {
		enc[e.raw], dec[e.letter] = e.letter, e.raw
	}
	dec['/'] = '/'
	return enc, dec
}()

// value writes a string with protojson's escapes: '"', '\\' and control characters, the latter
// as \b, \f, \n, \r, \t or \u00XX; other text as it is. Invalid UTF-8 is an error.
func (w *writer) value(s string) {
	w.b = append(w.b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 && w.err == nil {
				w.err = ErrInvalidUTF8
			}
			i += n
			continue
		}
		if c >= ' ' && c != '"' && c != '\\' {
			i++
			continue
		}
		w.b = append(w.b, s[start:i]...)
		w.b = append(w.b, '\\')
		if letter := escapeLetter[c]; letter != 0 {
			w.b = append(w.b, letter)
		} else {
			w.b = append(w.b, 'u')
			w.b = append(w.b, "0000"[1+(bits.Len32(uint32(c))-1)/4:]...)
			w.b = strconv.AppendUint(w.b, uint64(c), 16)
		}
		i++
		start = i
	}
	w.b = append(w.b, s[start:]...)
	w.b = append(w.b, '"')
}

// AppendMessage appends m as one line of protojson without white space, for the messages that
// have no direct encoder (plumb simulate's lines). protojson varies its spacing on purpose from
// build to build; the line is compacted so that plumb writes the same bytes from every build.
func AppendMessage(dst []byte, m proto.Message) ([]byte, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return dst, err
	}
	out := bytes.NewBuffer(dst)
	if err := json.Compact(out, b); err != nil {
		return dst, err
	}
	return append(out.Bytes(), '\n'), nil
}
