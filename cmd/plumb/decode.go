package main

import (
	"errors"
	"math"
	"unicode/utf8"

	"github.com/valyala/fastjson"
	"google.golang.org/protobuf/proto"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// The fast decoder reads the common shape of plumb's JSONL lines — numbers as JSON numbers,
// enums by name or number, proto or lowerCamelCase field names — with fastjson into the proto
// messages, about 2.7 times faster than protojson (BenchmarkDecode). Anything else (an unknown
// field, a null, a number written as a string, "NaN", a repeated key) makes it give up, and the
// line goes to protojson, which accepts exactly what the proto3 JSON mapping allows and words
// the errors. A fuzz test checks that whenever the fast path succeeds it agrees with protojson.

// errSlowPath sends a line to protojson.
var errSlowPath = errors.New("decode: not in the fast decoder's subset")

// decodeLine decodes one line into m (a *plumbv1.ScoreRequest or *plumbv1.LabeledExample).
func decodeLine(p *fastjson.Parser, b []byte, m proto.Message) error {
	if err := decodeFast(p, b, m); err == nil {
		return nil
	}
	proto.Reset(m)
	return unmarshal.Unmarshal(b, m)
}

func decodeFast(p *fastjson.Parser, b []byte, m proto.Message) error {
	v, err := p.ParseBytes(b)
	if err != nil {
		return errSlowPath
	}
	switch m := m.(type) {
	case *plumbv1.ScoreRequest:
		return request(v, m)
	case *plumbv1.LabeledExample:
		return labeled(v, m)
	}
	return errSlowPath
}

// fields calls f for each key of an object value; any other value, and a repeated key (which
// protojson refuses), is the slow path.
func fields(v *fastjson.Value, f func(key string, v *fastjson.Value) error) error {
	o, err := v.Object()
	if err != nil {
		return errSlowPath
	}
	var ferr error
	var seen [8]string
	keys := seen[:0]
	o.Visit(func(k []byte, v *fastjson.Value) {
		if ferr != nil {
			return
		}
		key := string(k)
		for _, s := range keys {
			if s == key {
				ferr = errSlowPath
				return
			}
		}
		keys = append(keys, key)
		ferr = f(key, v)
	})
	return ferr
}

func str(v *fastjson.Value) (string, error) {
	if v.Type() != fastjson.TypeString {
		return "", errSlowPath
	}
	b := v.GetStringBytes()
	if !utf8.Valid(b) {
		return "", errSlowPath
	}
	return string(b), nil
}

// strictNumber reports whether a number value is written as JSON's grammar allows
// (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?); fastjson also takes forms like 000.
func strictNumber(v *fastjson.Value) bool {
	if v.Type() != fastjson.TypeNumber {
		return false
	}
	var buf [32]byte
	b := v.MarshalTo(buf[:0])
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - j
	}
	start := i
	if n := digits(); n == 0 || n > 1 && b[start] == '0' {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

func num(v *fastjson.Value) (float64, error) {
	if !strictNumber(v) {
		return 0, errSlowPath
	}
	f, err := v.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, errSlowPath
	}
	return f, nil
}

func integer(v *fastjson.Value) (int64, error) {
	if !strictNumber(v) {
		return 0, errSlowPath
	}
	return v.Int64()
}

func boolean(v *fastjson.Value) (bool, error) {
	switch v.Type() {
	case fastjson.TypeTrue:
		return true, nil
	case fastjson.TypeFalse:
		return false, nil
	}
	return false, errSlowPath
}

// enum reads an enum by name (as protojson does) or by number.
func enum(v *fastjson.Value, names map[string]int32) (int32, error) {
	switch v.Type() {
	case fastjson.TypeString:
		if n, ok := names[string(v.GetStringBytes())]; ok {
			return n, nil
		}
	case fastjson.TypeNumber:
		if !strictNumber(v) {
			return 0, errSlowPath
		}
		n, err := v.Int()
		if err == nil && int(int32(n)) == n {
			return int32(n), nil
		}
	}
	return 0, errSlowPath
}

func array(v *fastjson.Value, f func(v *fastjson.Value) error) error {
	a, err := v.Array()
	if err != nil {
		return errSlowPath
	}
	for _, x := range a {
		if err := f(x); err != nil {
			return err
		}
	}
	return nil
}

func labeled(v *fastjson.Value, m *plumbv1.LabeledExample) error {
	return fields(v, func(k string, v *fastjson.Value) error {
		switch k {
		case "request":
			m.Request = new(plumbv1.ScoreRequest)
			return request(v, m.Request)
		case "label":
			m.Label = new(plumbv1.Label)
			return fields(v, func(k string, v *fastjson.Value) error {
				if k != "answers" {
					return errSlowPath
				}
				return array(v, func(v *fastjson.Value) error {
					s, err := str(v)
					m.Label.Answers = append(m.Label.Answers, s)
					return err
				})
			})
		}
		return errSlowPath
	})
}

func request(v *fastjson.Value, m *plumbv1.ScoreRequest) error {
	return fields(v, func(k string, v *fastjson.Value) (err error) {
		switch k {
		case "id":
			m.Id, err = str(v)
		case "profile":
			m.Profile, err = str(v)
		case "group":
			m.Group, err = str(v)
		case "kind":
			var e int32
			e, err = enum(v, plumbv1.QueryKind_value)
			m.Kind = plumbv1.QueryKind(e)
		case "profile_version", "profileVersion":
			m.ProfileVersion, err = integer(v)
		case "policy":
			m.Policy = new(plumbv1.Policy)
			err = fields(v, func(k string, v *fastjson.Value) (err error) {
				switch k {
				case "risk":
					m.Policy.Risk, err = num(v)
				case "equivalence":
					var e int32
					e, err = enum(v, plumbv1.Equivalence_value)
					m.Policy.Equivalence = plumbv1.Equivalence(e)
				default:
					err = errSlowPath
				}
				return err
			})
		case "paraphrases":
			err = array(v, func(v *fastjson.Value) error {
				p := new(plumbv1.Paraphrase)
				m.Paraphrases = append(m.Paraphrases, p)
				return paraphrase(v, p)
			})
		default:
			err = errSlowPath
		}
		return err
	})
}

func paraphrase(v *fastjson.Value, p *plumbv1.Paraphrase) error {
	return fields(v, func(k string, v *fastjson.Value) (err error) {
		switch k {
		case "prompt":
			p.Prompt, err = str(v)
		case "stance":
			p.Stance, err = str(v)
		case "framing":
			var e int32
			e, err = enum(v, plumbv1.Framing_value)
			p.Framing = plumbv1.Framing(e)
		case "options":
			a, aerr := v.Array()
			if aerr != nil {
				return errSlowPath
			}
			opts := make([]plumbv1.Option, len(a))
			p.Options = make([]*plumbv1.Option, len(a))
			for i, x := range a {
				o := &opts[i]
				p.Options[i] = o
				if err := fields(x, func(k string, v *fastjson.Value) (err error) {
					switch k {
					case "label":
						o.Label, err = str(v)
					case "logprob":
						o.Logprob, err = num(v)
					default:
						err = errSlowPath
					}
					return err
				}); err != nil {
					return err
				}
			}
		case "samples":
			err = array(v, func(v *fastjson.Value) error {
				s := new(plumbv1.Sample)
				p.Samples = append(p.Samples, s)
				return sample(v, s)
			})
		default:
			err = errSlowPath
		}
		return err
	})
}

func sample(v *fastjson.Value, s *plumbv1.Sample) error {
	return fields(v, func(k string, v *fastjson.Value) (err error) {
		switch k {
		case "text":
			s.Text, err = str(v)
		case "embedding":
			err = array(v, func(v *fastjson.Value) error {
				f, err := num(v)
				if math.Abs(f) > math.MaxFloat32 {
					return errSlowPath
				}
				s.Embedding = append(s.Embedding, float32(f))
				return err
			})
		case "tokens":
			err = array(v, func(v *fastjson.Value) error {
				t := new(plumbv1.Token)
				s.Tokens = append(s.Tokens, t)
				return fields(v, func(k string, v *fastjson.Value) (err error) {
					switch k {
					case "token":
						t.Token, err = str(v)
					case "logprob":
						t.Logprob, err = num(v)
					case "bytes":
						t.Bytes, err = bytesOf(v)
					case "top_logprobs", "topLogprobs":
						err = array(v, func(v *fastjson.Value) error {
							tl := new(plumbv1.TopLogprob)
							t.TopLogprobs = append(t.TopLogprobs, tl)
							return fields(v, func(k string, v *fastjson.Value) (err error) {
								switch k {
								case "token":
									tl.Token, err = str(v)
								case "logprob":
									tl.Logprob, err = num(v)
								case "bytes":
									tl.Bytes, err = bytesOf(v)
								default:
									err = errSlowPath
								}
								return err
							})
						})
					default:
						err = errSlowPath
					}
					return err
				})
			})
		default:
			err = errSlowPath
		}
		return err
	})
}

func bytesOf(v *fastjson.Value) ([]int32, error) {
	var out []int32
	err := array(v, func(v *fastjson.Value) error {
		n, err := integer(v)
		if err != nil || int64(int32(n)) != n {
			return errSlowPath
		}
		out = append(out, int32(n))
		return nil
	})
	return out, err
}
