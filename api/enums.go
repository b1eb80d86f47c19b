package api

import (
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/conformal"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/temperature"
)

// pair is one API enum value and the engine value it means.
type pair[P ~int32, E comparable] struct {
	api    P
	engine E
}

// enum maps one API enum to the engine's. Reading an API value takes the pair that lists it;
// writing an engine value takes the first pair that lists it, so the order of the pairs says
// how an engine value is written (Neutral as FRAMING_UNSPECIFIED, which protojson leaves out;
// LAC as SCORE_KIND_LAC). A test checks every table against the generated *_name map: every
// API value is listed, and every engine value.
type enum[P ~int32, E comparable] struct {
	field string // the proto enum's name, for errors and tests
	pairs []pair[P, E]
}

// toEngine returns the engine value of API value v, and whether there is one.
func (t *enum[P, E]) toEngine(v P) (E, bool) {
	for _, p := range t.pairs {
		if p.api == v {
			return p.engine, true
		}
	}
	var zero E
	return zero, false
}

// toAPI returns how engine value e is written.
func (t *enum[P, E]) toAPI(e E) P {
	for _, p := range t.pairs {
		if p.engine == e {
			return p.api
		}
	}
	return 0 // unreachable for the engine values the test covers
}

// read converts API value v of the field at path, or returns an InvalidArgument error naming it.
func (t *enum[P, E]) read(path string, v P) (E, error) {
	e, ok := t.toEngine(v)
	if !ok {
		return e, invalid(path, "unknown %s value %d", t.field, v)
	}
	return e, nil
}

var framings = &enum[plumbv1.Framing, calibrate.Framing]{"Framing", []pair[plumbv1.Framing, calibrate.Framing]{
	{plumbv1.Framing_FRAMING_UNSPECIFIED, calibrate.Neutral},
	{plumbv1.Framing_FRAMING_NEUTRAL, calibrate.Neutral},
	{plumbv1.Framing_FRAMING_USER_STANCE, calibrate.UserStance},
}}

var queryKinds = &enum[plumbv1.QueryKind, calibrate.QueryKind]{"QueryKind", []pair[plumbv1.QueryKind, calibrate.QueryKind]{
	{plumbv1.QueryKind_QUERY_KIND_UNSPECIFIED, calibrate.QueryUnspecified},
	{plumbv1.QueryKind_QUERY_KIND_FACTUAL, calibrate.QueryFactual},
	{plumbv1.QueryKind_QUERY_KIND_REASONING, calibrate.QueryReasoning},
	{plumbv1.QueryKind_QUERY_KIND_OPINION, calibrate.QueryOpinion},
	{plumbv1.QueryKind_QUERY_KIND_ADVICE, calibrate.QueryAdvice},
}}

var equivalences = &enum[plumbv1.Equivalence, calibrate.Equivalence]{"Equivalence", []pair[plumbv1.Equivalence, calibrate.Equivalence]{
	{plumbv1.Equivalence_EQUIVALENCE_UNSPECIFIED, calibrate.EquivalenceDefault},
	{plumbv1.Equivalence_EQUIVALENCE_EXACT, calibrate.EquivalenceExact},
	{plumbv1.Equivalence_EQUIVALENCE_F1, calibrate.EquivalenceF1},
	{plumbv1.Equivalence_EQUIVALENCE_EMBEDDING, calibrate.EquivalenceEmbedding},
}}

var actions = &enum[plumbv1.Action, calibrate.Action]{"Action", []pair[plumbv1.Action, calibrate.Action]{
	{plumbv1.Action_ACTION_UNSPECIFIED, calibrate.ActionUnspecified},
	{plumbv1.Action_ACTION_ANSWER, calibrate.Answer},
	{plumbv1.Action_ACTION_CLARIFY, calibrate.Clarify},
	{plumbv1.Action_ACTION_ABSTAIN, calibrate.Abstain},
}}

var reasons = &enum[plumbv1.Reason, calibrate.Reason]{"Reason", []pair[plumbv1.Reason, calibrate.Reason]{
	{plumbv1.Reason_REASON_UNSPECIFIED, calibrate.ReasonUnspecified},
	{plumbv1.Reason_REASON_ALTERNATIVES_PLAUSIBLE, calibrate.ReasonAlternativesPlausible},
	{plumbv1.Reason_REASON_WORDING_DEPENDENT, calibrate.ReasonWordingDependent},
	{plumbv1.Reason_REASON_MULTIPLE_READINGS, calibrate.ReasonMultipleReadings},
	{plumbv1.Reason_REASON_LOW_CONFIDENCE, calibrate.ReasonLowConfidence},
	{plumbv1.Reason_REASON_OPEN_SET, calibrate.ReasonOpenSet},
	{plumbv1.Reason_REASON_SYCOPHANCY_RISK, calibrate.ReasonSycophancyRisk},
	{plumbv1.Reason_REASON_NO_NEUTRAL_WORDING, calibrate.ReasonNoNeutralWording},
	{plumbv1.Reason_REASON_UNCALIBRATED, calibrate.ReasonUncalibrated},
	{plumbv1.Reason_REASON_CLAIMS_DOUBTED, calibrate.ReasonClaimsDoubted},
}}

var badgeLevels = &enum[plumbv1.BadgeLevel, calibrate.BadgeLevel]{"BadgeLevel", []pair[plumbv1.BadgeLevel, calibrate.BadgeLevel]{
	{plumbv1.BadgeLevel_BADGE_LEVEL_UNSPECIFIED, calibrate.BadgeUnspecified},
	{plumbv1.BadgeLevel_BADGE_LEVEL_HIGH, calibrate.BadgeHigh},
	{plumbv1.BadgeLevel_BADGE_LEVEL_MEDIUM, calibrate.BadgeMedium},
	{plumbv1.BadgeLevel_BADGE_LEVEL_LOW, calibrate.BadgeLow},
	{plumbv1.BadgeLevel_BADGE_LEVEL_UNCALIBRATED, calibrate.BadgeUncalibrated},
}}

var evidences = &enum[plumbv1.Evidence, calibrate.Evidence]{"Evidence", []pair[plumbv1.Evidence, calibrate.Evidence]{
	{plumbv1.Evidence_EVIDENCE_UNSPECIFIED, calibrate.EvidenceAny},
	{plumbv1.Evidence_EVIDENCE_OPTIONS, calibrate.EvidenceOptions},
	{plumbv1.Evidence_EVIDENCE_SAMPLES, calibrate.EvidenceSamples},
	{plumbv1.Evidence_EVIDENCE_CLAIMS, calibrate.EvidenceClaims},
}}

var claimVerdicts = &enum[plumbv1.ClaimVerdict, calibrate.ClaimVerdict]{"ClaimVerdict", []pair[plumbv1.ClaimVerdict, calibrate.ClaimVerdict]{
	{plumbv1.ClaimVerdict_CLAIM_VERDICT_UNSPECIFIED, calibrate.ClaimUnknown},
	{plumbv1.ClaimVerdict_CLAIM_VERDICT_TRUE, calibrate.ClaimTrue},
	{plumbv1.ClaimVerdict_CLAIM_VERDICT_FALSE, calibrate.ClaimFalse},
}}

var claimActions = &enum[plumbv1.ClaimAction, calibrate.ClaimAction]{"ClaimAction", []pair[plumbv1.ClaimAction, calibrate.ClaimAction]{
	{plumbv1.ClaimAction_CLAIM_ACTION_UNSPECIFIED, calibrate.ClaimActionUnspecified},
	{plumbv1.ClaimAction_CLAIM_ACTION_KEEP, calibrate.Keep},
	{plumbv1.ClaimAction_CLAIM_ACTION_FLAG, calibrate.Flag},
	{plumbv1.ClaimAction_CLAIM_ACTION_DROP, calibrate.Drop},
}}

var supportMeasures = &enum[plumbv1.SupportMeasure, calibrate.SupportMeasure]{"SupportMeasure", []pair[plumbv1.SupportMeasure, calibrate.SupportMeasure]{
	{plumbv1.SupportMeasure_SUPPORT_MEASURE_UNSPECIFIED, calibrate.SupportUnspecified},
	{plumbv1.SupportMeasure_SUPPORT_MEASURE_JUDGE, calibrate.SupportJudge},
	{plumbv1.SupportMeasure_SUPPORT_MEASURE_LEXICAL, calibrate.SupportLexical},
	{plumbv1.SupportMeasure_SUPPORT_MEASURE_EMBEDDING, calibrate.SupportEmbedding},
}}

// temperatureMethods: unset is auto in a FitConfig. A profile's own method is never auto, and
// an unset one reads as none (Profile).
var temperatureMethods = &enum[plumbv1.TemperatureMethod, temperature.Method]{"TemperatureMethod", []pair[plumbv1.TemperatureMethod, temperature.Method]{
	{plumbv1.TemperatureMethod_TEMPERATURE_METHOD_NONE, temperature.MethodNone},
	{plumbv1.TemperatureMethod_TEMPERATURE_METHOD_GLOBAL, temperature.MethodGlobal},
	{plumbv1.TemperatureMethod_TEMPERATURE_METHOD_ADAPTIVE, temperature.MethodAdaptive},
	{plumbv1.TemperatureMethod_TEMPERATURE_METHOD_AUTO, temperature.MethodAuto},
	{plumbv1.TemperatureMethod_TEMPERATURE_METHOD_UNSPECIFIED, temperature.MethodAuto},
}}

// confidenceMaps: unset is auto in a FitConfig. A profile's own map is never auto, and an unset
// one is that of a version stored before profiles said (Profile).
var confidenceMaps = &enum[plumbv1.ConfidenceMap, calibrate.MapMethod]{"ConfidenceMap", []pair[plumbv1.ConfidenceMap, calibrate.MapMethod]{
	{plumbv1.ConfidenceMap_CONFIDENCE_MAP_NONE, calibrate.MapNone},
	{plumbv1.ConfidenceMap_CONFIDENCE_MAP_PLATT, calibrate.MapPlatt},
	{plumbv1.ConfidenceMap_CONFIDENCE_MAP_LOGISTIC, calibrate.MapLogistic},
	{plumbv1.ConfidenceMap_CONFIDENCE_MAP_AUTO, calibrate.MapAuto},
	{plumbv1.ConfidenceMap_CONFIDENCE_MAP_UNSPECIFIED, calibrate.MapAuto},
}}

var scoreKinds = &enum[plumbv1.ScoreKind, conformal.Score]{"ScoreKind", []pair[plumbv1.ScoreKind, conformal.Score]{
	{plumbv1.ScoreKind_SCORE_KIND_LAC, conformal.LAC},
	{plumbv1.ScoreKind_SCORE_KIND_APS, conformal.APS},
	{plumbv1.ScoreKind_SCORE_KIND_RAPS, conformal.RAPS},
	{plumbv1.ScoreKind_SCORE_KIND_UNSPECIFIED, conformal.LAC},
}}

// The names the CLI's flags take for the enums of a FitConfig: the engine's own names (auto,
// none, global, adaptive; auto, none, platt, logistic; exact, f1, embedding), so that a flag and
// a report spell a method alike.

// ParseTemperature returns the API value of a temperature method named as the engine names it.
func ParseTemperature(name string) (plumbv1.TemperatureMethod, bool) {
	return parse(temperatureMethods, name, temperature.Method.String)
}

// ParseConfidenceMap returns the API value of a confidence map named as the engine names it.
func ParseConfidenceMap(name string) (plumbv1.ConfidenceMap, bool) {
	return parse(confidenceMaps, name, calibrate.MapMethod.String)
}

// ParseScore returns the API value of a conformal score named as the engine names it (lac, aps,
// raps).
func ParseScore(name string) (plumbv1.ScoreKind, bool) {
	return parse(scoreKinds, name, conformal.Score.String)
}

// ParseEquivalence returns the API value of an answer-equivalence mode (exact, f1, embedding).
func ParseEquivalence(name string) (plumbv1.Equivalence, bool) {
	if name == calibrate.EquivalenceDefault.String() {
		return 0, false // "default" is the absence of a choice, not a name to give
	}
	return parse(equivalences, name, calibrate.Equivalence.String)
}

func parse[P ~int32, E comparable](t *enum[P, E], name string, str func(E) string) (P, bool) {
	for _, p := range t.pairs {
		if p.api != 0 && str(p.engine) == name {
			return p.api, true
		}
	}
	return 0, false
}

// FramingOf, QueryKindOf and EquivalenceOf convert one enum value of a request, and report
// whether the API defines it: for a decoder that reads requests straight into the engine's
// types (internal/jsonl), through the same tables as Question.

func FramingOf(v plumbv1.Framing) (calibrate.Framing, bool) { return framings.toEngine(v) }

func QueryKindOf(v plumbv1.QueryKind) (calibrate.QueryKind, bool) { return queryKinds.toEngine(v) }

func EquivalenceOf(v plumbv1.Equivalence) (calibrate.Equivalence, bool) {
	return equivalences.toEngine(v)
}
