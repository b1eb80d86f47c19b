package api

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/conformal"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/temperature"
)

// table is an enum table as the test sees it: its API values, the name of each pair's engine
// value ("" when the engine type has no names), and the engine values as ints.
type table struct {
	name       string
	generated  map[int32]string // the generated *_name map
	api        []int32
	engineName []string
	engine     []int
	all        []int // every value the engine type defines
	prefix     string
}

func tableOf[P ~int32, E interface{ ~int }](t *enum[P, E], generated map[int32]string, prefix string, all []E, name func(E) string) table {
	out := table{name: t.field, generated: generated, prefix: prefix}
	for _, p := range t.pairs {
		out.api = append(out.api, int32(p.api))
		out.engine = append(out.engine, int(p.engine))
		n := ""
		if name != nil {
			n = name(p.engine)
		}
		out.engineName = append(out.engineName, n)
	}
	for _, e := range all {
		out.all = append(out.all, int(e))
	}
	return out
}

// upto returns the values 0, 1, … of an engine enum while name gives a known name.
func upto[E ~int](name func(E) string) []E {
	var out []E
	for e := E(0); !strings.EqualFold(name(e), "unknown"); e++ {
		out = append(out, e)
	}
	return out
}

// TestEnumTables: every enum table lists every value the generated code defines, no other, and
// every value of the engine's type; where the engine names its values, the API's name is the
// engine's, upper case, after the enum's prefix (REASON_ + LOW_CONFIDENCE). A value added to
// the proto, or to the engine, without a line in its table fails here.
func TestEnumTables(t *testing.T) {
	tables := []table{
		tableOf(framings, plumbv1.Framing_name, "", []calibrate.Framing{calibrate.Neutral, calibrate.UserStance}, nil),
		tableOf(queryKinds, plumbv1.QueryKind_name, "", []calibrate.QueryKind{calibrate.QueryUnspecified, calibrate.QueryFactual,
			calibrate.QueryReasoning, calibrate.QueryOpinion, calibrate.QueryAdvice}, nil),
		tableOf(equivalences, plumbv1.Equivalence_name, "EQUIVALENCE_", upto(calibrate.Equivalence.String), calibrate.Equivalence.String),
		tableOf(actions, plumbv1.Action_name, "ACTION_", upto(calibrate.Action.String), calibrate.Action.String),
		tableOf(reasons, plumbv1.Reason_name, "REASON_", upto(calibrate.Reason.String), calibrate.Reason.String),
		tableOf(badgeLevels, plumbv1.BadgeLevel_name, "BADGE_LEVEL_", upto(calibrate.BadgeLevel.String), calibrate.BadgeLevel.String),
		tableOf(evidences, plumbv1.Evidence_name, "EVIDENCE_", upto(calibrate.Evidence.String), calibrate.Evidence.String),
		tableOf(temperatureMethods, plumbv1.TemperatureMethod_name, "TEMPERATURE_METHOD_", upto(temperature.Method.String), temperature.Method.String),
		tableOf(confidenceMaps, plumbv1.ConfidenceMap_name, "CONFIDENCE_MAP_", upto(calibrate.MapMethod.String), calibrate.MapMethod.String),
		tableOf(scoreKinds, plumbv1.ScoreKind_name, "SCORE_KIND_", upto(conformal.Score.String), conformal.Score.String),
	}
	for _, tb := range tables {
		t.Run(tb.name, func(t *testing.T) {
			var generated []int32
			for v := range tb.generated {
				generated = append(generated, v)
			}
			listed := slices.Clone(tb.api)
			slices.Sort(generated)
			slices.Sort(listed)
			if !slices.Equal(generated, slices.Compact(listed)) || len(listed) != len(tb.api) {
				t.Errorf("API values listed %v, generated %v (each once)", tb.api, generated)
			}
			for _, e := range tb.all {
				if !slices.Contains(tb.engine, e) {
					t.Errorf("engine value %d is in no pair", e)
				}
			}
			for i, v := range tb.api {
				if tb.prefix == "" || v == 0 || tb.engineName[i] == "" {
					continue
				}
				if want := tb.prefix + strings.ToUpper(tb.engineName[i]); tb.generated[v] != want {
					t.Errorf("%s pairs with the engine's %q: want %s", tb.generated[v], tb.engineName[i], want)
				}
			}
		})
	}
}

// TestUnknownEnumValues: a value the API does not define is refused naming its field, in every
// message that converts.
func TestUnknownEnumValues(t *testing.T) {
	req := func(f func(*plumbv1.ScoreRequest)) *plumbv1.ScoreRequest {
		r := &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{{}, {}, {}}}
		f(r)
		return r
	}
	for _, tc := range []struct {
		name, field string
		convert     func() error
	}{
		{"framing", "paraphrases[2].framing", func() error {
			_, err := Question(req(func(r *plumbv1.ScoreRequest) { r.Paraphrases[2].Framing = 99 }))
			return err
		}},
		{"kind", "kind", func() error { _, err := Question(req(func(r *plumbv1.ScoreRequest) { r.Kind = 99 })); return err }},
		{"policy", "policy.equivalence", func() error {
			_, err := Question(req(func(r *plumbv1.ScoreRequest) { r.Policy = &plumbv1.Policy{Equivalence: -1} }))
			return err
		}},
		{"example", "request.paraphrases[0].framing", func() error {
			_, err := Example(&plumbv1.LabeledExample{Request: req(func(r *plumbv1.ScoreRequest) { r.Paraphrases[0].Framing = 3 })})
			return err
		}},
		{"fit temperature", "config.temperature", func() error { _, err := FitConfig(&plumbv1.FitConfig{Temperature: 9}); return err }},
		{"fit map", "config.confidence_map", func() error { _, err := FitConfig(&plumbv1.FitConfig{ConfidenceMap: 9}); return err }},
		{"fit score", "config.score", func() error { _, err := FitConfig(&plumbv1.FitConfig{Score: 9}); return err }},
		{"fit equivalence", "config.equivalence", func() error { _, err := FitConfig(&plumbv1.FitConfig{Equivalence: 99}); return err }},
		{"fit split", "config.split", func() error { _, err := FitConfig(&plumbv1.FitConfig{Split: []float64{0.5, 0.5}}); return err }},
		{"profile evidence", "evidence", func() error { _, err := Profile(&plumbv1.Profile{Evidence: 7}); return err }},
		{"profile auto temperature", "temperature_method", func() error {
			_, err := Profile(&plumbv1.Profile{TemperatureMethod: plumbv1.TemperatureMethod_TEMPERATURE_METHOD_AUTO})
			return err
		}},
		{"profile auto map", "confidence_map_method", func() error {
			_, err := Profile(&plumbv1.Profile{ConfidenceMapMethod: plumbv1.ConfidenceMap_CONFIDENCE_MAP_AUTO})
			return err
		}},
		{"profile score", "score", func() error { _, err := Profile(&plumbv1.Profile{Score: 5}); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.convert()
			f := FaultOf(err)
			if f.Code.String() != "InvalidArgument" || f.Field != tc.field {
				t.Fatalf("%v (%v on %q), want InvalidArgument on %s", err, f.Code, f.Field, tc.field)
			}
		})
	}
}

// fill sets every field of m, recursively, to a value that is not the default: numbers 3 and
// 0.25, strings named after their field, true, one element of every list and map, and for an
// enum the value pick chooses (the highest the API defines, by default).
func fill(m protoreflect.Message, pick func(protoreflect.FieldDescriptor) protoreflect.EnumNumber) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.ContainingOneof() != nil && !fd.ContainingOneof().IsSynthetic() {
			continue // the test sets one of a oneof itself
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			mp.Set(protoreflect.ValueOfString("k").MapKey(), scalar(fd.MapValue(), pick))
		case fd.IsList():
			l := m.Mutable(fd).List()
			if fd.Message() != nil {
				e := l.NewElement()
				fill(e.Message(), pick)
				l.Append(e)
			} else {
				l.Append(scalar(fd, pick))
			}
		case fd.Message() != nil:
			if fd.Message().FullName().Parent() == "google.protobuf" {
				continue // a well-known type (Timestamp): set by the test where it matters
			}
			fill(m.Mutable(fd).Message(), pick)
		default:
			m.Set(fd, scalar(fd, pick))
		}
	}
}

func scalar(fd protoreflect.FieldDescriptor, pick func(protoreflect.FieldDescriptor) protoreflect.EnumNumber) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		if n := pick(fd); n != 0 {
			return protoreflect.ValueOfEnum(n)
		}
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(vals.Len() - 1).Number())
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(3)
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(3)
	case protoreflect.Uint64Kind:
		return protoreflect.ValueOfUint64(3)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(0.25)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(0.25)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(string(fd.Name()))
	}
	panic(fmt.Sprintf("fill: no value for a %v", fd.Kind()))
}

func highest(protoreflect.FieldDescriptor) protoreflect.EnumNumber { return 0 }

// clearFields clears fields of m, named by their paths from m ("paraphrases.samples.tokens.bytes"),
// in every element of the lists on the way.
func clearFields(m protoreflect.Message, paths ...string) {
	for _, p := range paths {
		clearPath(m, strings.Split(p, "."))
	}
}

func clearPath(m protoreflect.Message, names []string) {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(names[0]))
	if fd == nil {
		panic("clearFields: no field " + names[0] + " in " + string(m.Descriptor().FullName()))
	}
	if len(names) == 1 {
		m.Clear(fd)
		return
	}
	if !m.Has(fd) {
		return
	}
	if fd.IsList() {
		l := m.Get(fd).List()
		for i := range l.Len() {
			clearPath(l.Get(i).Message(), names[1:])
		}
		return
	}
	clearPath(m.Get(fd).Message(), names[1:])
}

// TestRequestRoundTrip: a ScoreRequest and a LabeledExample with every field set come back
// equal from the engine's types, but for the fields the engine does not keep (the tokens'
// bytes, which the API accepts so that OpenAI's objects fit, and the other framing value that
// reads as neutral). A proto field added without its conversion fails here.
func TestRequestRoundTrip(t *testing.T) {
	var r plumbv1.ScoreRequest
	fill(r.ProtoReflect(), highest)
	clearFields(r.ProtoReflect(), "paraphrases.samples.tokens.bytes", "paraphrases.samples.tokens.top_logprobs.bytes")
	q, err := Question(&r)
	if err != nil {
		t.Fatal(err)
	}
	if back := Request(&q); !proto.Equal(&r, back) {
		t.Errorf("ScoreRequest round trip:\n got %v\nwant %v", back, &r)
	}
	ex := &plumbv1.LabeledExample{Request: &r, Label: &plumbv1.Label{Answers: []string{"a", "b"},
		Claims: []plumbv1.ClaimVerdict{plumbv1.ClaimVerdict_CLAIM_VERDICT_FALSE, plumbv1.ClaimVerdict_CLAIM_VERDICT_TRUE}}}
	var full plumbv1.LabeledExample
	fill(full.ProtoReflect(), highest)
	if got, want := fieldNames(ex.ProtoReflect()), fieldNames(full.ProtoReflect()); !slices.Equal(got, want) {
		t.Fatalf("the example sets %v; LabeledExample has %v", got, want)
	}
	e, err := Example(ex)
	if err != nil {
		t.Fatal(err)
	}
	if back := Labeled(&e); !proto.Equal(ex, back) {
		t.Errorf("LabeledExample round trip:\n got %v\nwant %v", back, ex)
	}
}

// fieldNames lists the fields set in m, recursively, as paths.
func fieldNames(m protoreflect.Message) []string {
	var out []string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		out = append(out, string(fd.Name()))
		if fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
			for _, sub := range fieldNames(v.Message()) {
				out = append(out, string(fd.Name())+"."+sub)
			}
		}
		return true
	})
	slices.Sort(out)
	return out
}

// TestProfileRoundTrip: a Profile with every field set comes back equal from the engine's
// Profile, but for what the engine does not keep: the report (the engine's is written, never
// read back), the config a fit was given, the store's active flag and a listing's error.
func TestProfileRoundTrip(t *testing.T) {
	var m plumbv1.Profile
	fill(m.ProtoReflect(), func(fd protoreflect.FieldDescriptor) protoreflect.EnumNumber {
		if fd.Name() == "temperature_method" {
			return protoreflect.EnumNumber(plumbv1.TemperatureMethod_TEMPERATURE_METHOD_ADAPTIVE)
		}
		return 0
	})
	m.CreateTime = nil
	clearFields(m.ProtoReflect(), "report", "config", "active", "error")
	p, err := Profile(&m)
	if err != nil {
		t.Fatal(err)
	}
	if back := ProfileMessage(p, nil); !proto.Equal(&m, back) {
		t.Errorf("Profile round trip:\n got %v\nwant %v", back, &m)
	}
}

// fillGo sets every field of the struct v points to, recursively, to a value that is not zero:
// numbers 1 (a valid value of every engine enum), strings "x", one element of every slice and
// map, a value for every pointer; funcs stay nil.
func fillGo(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fillGo(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillGo(v.Field(i))
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fillGo(s.Index(0))
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fillGo(k)
		fillGo(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(0.5)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	}
}

// unset returns the paths of the fields of m, recursively, that are not set, but for those
// named in except.
func unset(m protoreflect.Message, prefix string, except map[string]bool) []string {
	var out []string
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := prefix + string(fd.Name())
		if except[name] {
			continue
		}
		if !m.Has(fd) {
			out = append(out, name)
			continue
		}
		if fd.Message() != nil && !fd.IsMap() && fd.Message().FullName().Parent() != "google.protobuf" {
			if fd.IsList() {
				out = append(out, unset(m.Get(fd).List().Get(0).Message(), name+".", except)...)
			} else {
				out = append(out, unset(m.Get(fd).Message(), name+".", except)...)
			}
		}
	}
	return out
}

// TestResponseAndReportSetEveryField: a Result and a Report with every field set fill every
// field of the ScoreResponse and the Report, but for a response's error (the stream's, for a
// refused request) and its receipt (the server's, signed with its key: monitor.Signer). A proto
// field added without its conversion fails here.
func TestResponseAndReportSetEveryField(t *testing.T) {
	var r calibrate.Result
	fillGo(reflect.ValueOf(&r))
	if missing := unset(Response(&r).ProtoReflect(), "", map[string]bool{"error": true, "receipt": true}); len(missing) > 0 {
		t.Errorf("ScoreResponse fields the conversion leaves unset: %v", missing)
	}
	var rep calibrate.Report
	fillGo(reflect.ValueOf(&rep))
	if missing := unset(Report(&rep).ProtoReflect(), "", nil); len(missing) > 0 {
		t.Errorf("Report fields the conversion leaves unset: %v", missing)
	}
}

// TestFitConfigSetsEveryField: a FitConfig with every field set fills every field of the
// engine's, but for what only a caller in Go sets (Progress, L2) and what the service, not the
// engine, reads (dry_run, activate).
func TestFitConfigSetsEveryField(t *testing.T) {
	var c plumbv1.FitConfig
	fill(c.ProtoReflect(), func(fd protoreflect.FieldDescriptor) protoreflect.EnumNumber {
		if fd.Name() == "temperature" {
			return protoreflect.EnumNumber(plumbv1.TemperatureMethod_TEMPERATURE_METHOD_GLOBAL) // auto is the engine's zero
		}
		return 0
	})
	c.Split = []float64{0.2, 0.3, 0.5}
	got, err := FitConfig(&c)
	if err != nil {
		t.Fatal(err)
	}
	v := reflect.ValueOf(got)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if name == "Progress" || name == "L2" {
			continue
		}
		if v.Field(i).IsZero() {
			t.Errorf("FitConfig.%s is not set from the API's", name)
		}
	}
}

// TestReportCountsAreNumbers: protojson prints a 64-bit integer as a JSON string, so a report's
// counts are 32-bit (a number in JSON); only a version, an identifier, may be 64-bit.
func TestReportCountsAreNumbers(t *testing.T) {
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		for i := 0; i < md.Fields().Len(); i++ {
			f := md.Fields().Get(i)
			switch f.Kind() {
			case protoreflect.Int64Kind, protoreflect.Uint64Kind, protoreflect.Sint64Kind,
				protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
				if f.Name() != "version" {
					t.Errorf("%s is 64-bit: a JSON string in a report", f.FullName())
				}
			case protoreflect.MessageKind:
				walk(f.Message())
			}
		}
	}
	walk((&plumbv1.Report{}).ProtoReflect().Descriptor())
	if len(seen) < 4 {
		t.Fatalf("walked %d messages from Report", len(seen))
	}
}
