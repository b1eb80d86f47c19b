// Package calibrate is plumb's engine: it scores one question's evidence gathered over several
// wordings into a grounded confidence, a conformal prediction set and an action, and fits the
// versioned profiles that calibrate it. It composes the numeric packages temperature, ensemble
// and conformal and knows nothing of gRPC.
//
// Scoring (docs/DESIGN.md "Scoring one question"): per-wording distributions π_p (softmax of option
// logprobs at the profile's temperature, or the shares of answer clusters of sampled
// completions); the pool π̄ over neutral wordings and its answer k* = argmax π̄; the entropy split
// H(π̄) = A + W, the ensemble variance V = var_p π_p(k*) and the token confidence tc(k*); the
// grounded confidence c = σ(w·f), f = [1, logit π̄(k*), W, √V, logit tc(k*)] (Platt 1999 on
// ensemble features; c = π̄(k*) uncalibrated); the split-conformal set {k : s(k) ≤ q̂} ∪ {k*}; the
// sycophancy shift of USER_STANCE wordings; an action (ANSWER when c ≥ λ, CLARIFY when the doubt
// is the question's, ABSTAIN otherwise) and a badge.
//
// Fitting (docs/DESIGN.md "Fitting a profile"): a seeded split into tune / calibrate / report;
// temperature and confidence map on tune, conformal quantiles and the Learn-then-Test abstention
// threshold on calibrate, and a before/after report on the held-out report split.
package calibrate

import (
	"github.com/plumbhq/plumb/conformal"
	"github.com/plumbhq/plumb/temperature"
)

// Framing says whether a wording is neutral or carries the user's belief.
type Framing int

const (
	// Neutral wordings are pooled into the grounded confidence. The default.
	Neutral Framing = iota
	// UserStance wordings carry the user's belief in Stance; they are measured, never pooled
	// while a neutral wording exists.
	UserStance
)

// QueryKind is the caller's hint of what kind of question this is. It is recorded and echoed;
// it does not change the numbers.
type QueryKind int

// The query kinds.
const (
	QueryUnspecified QueryKind = iota
	QueryFactual
	QueryReasoning
	QueryOpinion
	QueryAdvice
)

// Equivalence selects how sampled answers are judged equal (see ensemble.Mode).
type Equivalence int

const (
	// EquivalenceDefault means the profile's mode (exact for the built-in profile).
	EquivalenceDefault Equivalence = iota
	EquivalenceExact
	EquivalenceF1
	EquivalenceEmbedding
)

var equivalenceNames = [...]string{"default", "exact", "f1", "embedding"}

// String returns the mode's name as the CLI spells it.
func (e Equivalence) String() string {
	if e >= 0 && int(e) < len(equivalenceNames) {
		return equivalenceNames[e]
	}
	return "unknown"
}

// Question is one thing asked, in 1..MaxParaphrases wordings, with the model's evidence for each.
type Question struct {
	ID             string
	Profile        string // profile name; empty means the active "default"
	ProfileVersion int64  // profile version; 0 means the active one
	Group          string // Mondrian group (e.g. the subject); empty means none
	Segment        string // the caller's segment (cohort, locale, surface) for monitors; empty means none
	Paraphrases    []Paraphrase
	Policy         Policy
	Kind           QueryKind
	// Claims, when not empty, make the question a long answer under judgement, a claim each;
	// its wordings then carry samples only: passages the model wrote for the same question.
	Claims []Claim
	// Adaptive, set by the service (never by a request), replaces the profile's conformal
	// quantile with Threshold: adaptive conformal inference's current threshold for the
	// question's profile version and segment.
	Adaptive  bool
	Threshold float64
}

// Claim is one claim of a long answer: a sentence or an atomic fact (the caller's split), and
// its embedding for the embedding support measure.
type Claim struct {
	ID        string
	Text      string
	Embedding []float32
}

// Policy is what a request may ask of the profile.
type Policy struct {
	// Risk is the selective risk ε the caller accepts; 0 means the profile's. It must lie within
	// the profile's bounds; it moves λ, never the confidence.
	Risk float64
	// Equivalence overrides the profile's answer-equivalence mode for samples.
	Equivalence Equivalence
}

// Paraphrase is one wording and the model's evidence for it: Options or Samples, not both.
type Paraphrase struct {
	Prompt  string
	Framing Framing
	Stance  string // the answer the user's wording favours (USER_STANCE only)
	Options []Option
	Samples []Sample
}

// Option is one answer of a closed set and its logprob.
type Option struct {
	Label   string
	Logprob float64
}

// Sample is one sampled completion: its (short, final) answer text, optional token logprobs in
// the OpenAI logprobs.content shape, an optional embedding, and an optional cluster key: the
// caller's own judgement of meaning (samples with the same non-empty key are one candidate
// whatever their text; labels and stances may name the key).
type Sample struct {
	Text      string
	Tokens    []Token
	Embedding []float32
	Cluster   string
	// Support, for a long answer, is how far the sample supports each claim, in claims order,
	// each in [0, 1]: the caller's judge. Nil: plumb measures it.
	Support []float64
	// Sentences are the embeddings of the sample's sentences, for the embedding support
	// measure of a long answer.
	Sentences [][]float32
}

// Token is one generated token with its logprob and top alternatives.
type Token struct {
	Token       string
	Logprob     float64
	TopLogprobs []TopLogprob
}

// TopLogprob is one alternative token.
type TopLogprob struct {
	Token   string
	Logprob float64
}

// Label holds the acceptable answers of a labelled question: the gold option label, or
// answers matched to sample clusters by the answer equivalence.
type Label struct {
	Answers []string
	// Claims is, for a long answer, whether each of its claims is true, in claims order.
	Claims []ClaimVerdict
}

// ClaimVerdict is whether one claim of a labelled long answer is true.
type ClaimVerdict int

// The verdicts.
const (
	// ClaimUnknown: unknown or subjective; not used to fit or evaluate.
	ClaimUnknown ClaimVerdict = iota
	ClaimTrue
	ClaimFalse
)

var verdictNames = [...]string{"unknown", "true", "false"}

func (v ClaimVerdict) String() string {
	if v >= 0 && int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "invalid"
}

// ClaimAction is what a product should do with one claim of a long answer.
type ClaimAction int

// The claim actions.
const (
	ClaimActionUnspecified ClaimAction = iota
	// Keep: within the profile's factuality guarantee (c > τ).
	Keep
	// Flag: outside it, but more likely true than not (c ≥ 0.5).
	Flag
	// Drop: more likely false.
	Drop
)

var claimActionNames = [...]string{"UNSPECIFIED", "KEEP", "FLAG", "DROP"}

func (a ClaimAction) String() string {
	if a >= 0 && int(a) < len(claimActionNames) {
		return claimActionNames[a]
	}
	return "UNKNOWN"
}

// SupportMeasure is how the support of a long answer's claims by the samples was measured.
type SupportMeasure int

// The support measures.
const (
	SupportUnspecified SupportMeasure = iota
	// SupportJudge: the caller's, Sample.Support.
	SupportJudge
	// SupportLexical: the claim's distinctive words found in the passage (ensemble.Lexicon).
	SupportLexical
	// SupportEmbedding: the claim's embedding against the passage's sentences'.
	SupportEmbedding
)

var supportNames = [...]string{"unspecified", "judge", "lexical", "embedding"}

func (m SupportMeasure) String() string {
	if m >= 0 && int(m) < len(supportNames) {
		return supportNames[m]
	}
	return "unknown"
}

// ClaimScore is the score of one claim of a long answer.
type ClaimScore struct {
	ID              string
	Confidence      float64 // the calibrated probability that the claim is true
	Action          ClaimAction
	Reasons         []Reason
	Support         float64 // the grounded support: the mean over neutral wordings of each wording's mean support
	WordingVariance float64 // the variance over neutral wordings of their mean supports
	SycophancyShift float64 // mean support under USER_STANCE wordings − the grounded support (0 without them)
}

// Example is one labelled question.
type Example struct {
	Question Question
	Label    Label
}

// Action is what the product should do with the answer.
type Action int

// The actions.
const (
	ActionUnspecified Action = iota
	Answer
	Clarify
	Abstain
)

// Reason is a machine-readable reason attached to a result.
type Reason int

// The reasons.
const (
	ReasonUnspecified Reason = iota
	// ReasonAlternativesPlausible: answered, but the prediction set holds two or more answers.
	ReasonAlternativesPlausible
	// ReasonWordingDependent: W ≥ ½H(π̄), the answer depends on how the question is worded.
	ReasonWordingDependent
	// ReasonMultipleReadings: two or more plausible answers while most wordings are confident.
	ReasonMultipleReadings
	// ReasonLowConfidence: the model does not know.
	ReasonLowConfidence
	// ReasonOpenSet: q̂ = ∞, the right answer is often not among the candidates.
	ReasonOpenSet
	// ReasonSycophancyRisk: the user's framing moves the model by at least the threshold.
	ReasonSycophancyRisk
	// ReasonNoNeutralWording: every wording carries a stance; all were pooled.
	ReasonNoNeutralWording
	// ReasonUncalibrated: the profile is the uncalibrated default.
	ReasonUncalibrated
	// ReasonClaimsDoubted: a long answer is answered with some of its claims not kept.
	ReasonClaimsDoubted
)

var reasonNames = [...]string{"UNSPECIFIED", "ALTERNATIVES_PLAUSIBLE", "WORDING_DEPENDENT",
	"MULTIPLE_READINGS", "LOW_CONFIDENCE", "OPEN_SET", "SYCOPHANCY_RISK", "NO_NEUTRAL_WORDING", "UNCALIBRATED",
	"CLAIMS_DOUBTED"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "UNKNOWN"
}

var actionNames = [...]string{"UNSPECIFIED", "ANSWER", "CLARIFY", "ABSTAIN"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "UNKNOWN"
}

// BadgeLevel is the UI badge's level.
type BadgeLevel int

// The badge levels.
const (
	BadgeUnspecified BadgeLevel = iota
	BadgeHigh
	BadgeMedium
	BadgeLow
	BadgeUncalibrated
)

var badgeNames = [...]string{"unspecified", "high", "medium", "low", "uncalibrated"}

func (b BadgeLevel) String() string {
	if int(b) < len(badgeNames) {
		return badgeNames[b]
	}
	return "unknown"
}

// Badge is what a product UI shows: a level and a label such as "85% · high".
type Badge struct {
	Level BadgeLevel
	Label string
}

// PredictionSet is the conformal set.
type PredictionSet struct {
	Answers    []string // the answers in the set, most probable first
	Threshold  float64  // q̂ used (+Inf when open)
	Alpha      float64  // miscoverage level
	Open       bool     // q̂ = ∞: the right answer may be none of the candidates
	Calibrated bool     // false: the uncalibrated top-mass set of the default profile
	Group      string   // the Mondrian group whose q̂ was used, empty for the global one
	Adaptive   bool     // q̂ is adaptive conformal inference's threshold, not the profile's
}

// Candidate is one distinct answer.
type Candidate struct {
	Answer          string
	Probability     float64 // π̄
	TokenConfidence float64 // mean tc of its pooled samples; 0 without tokens
	Count           int     // pooled samples in it (samples); pooled wordings whose top answer it is (options)
	// Nonconformity is its conformal score under a calibrated profile, as the calibration
	// questions were scored: 0 for the answer k*, s(k) for the others (0 when uncalibrated).
	Nonconformity float64
}

// Uncertainty holds the measurements behind the confidence, in nats where entropies.
type Uncertainty struct {
	Total           float64 // H(π̄)
	Aleatoric       float64 // A = mean H(π_p)
	Wording         float64 // W = H(π̄) − A
	Variance        float64 // V = var_p π_p(k*)
	TokenConfidence float64 // tc(k*); 0 without tokens
	SemanticEntropy float64 // entropy of pooled sample clusters (samples only)
	Sensitivity     float64 // max over neutral p of |c − c₋ₚ| (≥ 3 neutral wordings)
	Wordings        int     // wordings pooled
}

// Sycophancy measures the pull of USER_STANCE wordings.
type Sycophancy struct {
	Shift     float64 // mean π_p(stance) − π̄(stance)
	Wordings  int     // USER_STANCE wordings measured (unmatched ones at a shift of 0)
	Flagged   bool    // Shift ≥ Threshold
	Threshold float64
	// Unmatched counts the USER_STANCE wordings (samples only) whose stance matches none of the
	// sampled answers: the model never gave it, so they count with a shift of 0.
	Unmatched int
}

// ProfileRef names one profile version.
type ProfileRef struct {
	Name    string
	Version int64
}

// Result is the score of one question.
type Result struct {
	ID          string
	Answer      string
	Confidence  float64
	Calibrated  bool
	Action      Action
	Reasons     []Reason
	Set         PredictionSet
	Candidates  []Candidate // most probable first
	Uncertainty Uncertainty
	Sycophancy  Sycophancy
	Badge       Badge
	Profile     ProfileRef
	Lambda      float64 // the abstention threshold λ applied
	Risk        float64 // the risk ε it was chosen for
	// Claims are, for a long answer, the score of each claim in the question's order, and
	// SupportMeasure how their support was measured.
	Claims         []ClaimScore
	SupportMeasure SupportMeasure
	// ClaimSamples is, for a long answer, how many pooled samples its supports were measured
	// over (a feature of the claim map).
	ClaimSamples int
	// MapFeatures[:MapFeatureCount] are the confidence map's features of the answer
	// ([1, logit π̄(k*), W, √V] and, with tokens, logit tc(k*)): c = σ(Map · features) under a
	// profile with a map. Receipts carry them, so that a map can be refitted from outcomes.
	MapFeatures     [MaxMapFeatures]float64
	MapFeatureCount int
}

// MaxMapFeatures is the longest feature vector of the confidence map.
const MaxMapFeatures = 5

// Evidence is the kind of evidence a question or profile carries.
type Evidence int

// The evidence kinds.
const (
	EvidenceAny Evidence = iota // the default profile scores both
	EvidenceOptions
	EvidenceSamples
	EvidenceClaims // long answers: claims with sampled passages
)

var evidenceNames = [...]string{"any", "options", "samples", "claims"}

func (e Evidence) String() string {
	if e >= 0 && int(e) < len(evidenceNames) {
		return evidenceNames[e]
	}
	return "unknown"
}

// evidenceOf returns the kind of evidence a question carries (options when it has none).
func evidenceOf(q *Question) Evidence {
	if len(q.Claims) > 0 {
		return EvidenceClaims
	}
	if len(q.Paraphrases) > 0 && len(q.Paraphrases[0].Samples) > 0 {
		return EvidenceSamples
	}
	return EvidenceOptions
}

// Profile is a fitted, immutable calibration for one model×domain. The zero value is not
// usable; start from Default.
type Profile struct {
	Name        string
	Version     int64
	CreatedUnix int64
	Calibrated  bool
	Evidence    Evidence

	// Temperature of option logits (options) or of token logprobs (samples), and the method
	// that fitted it (none, global or adaptive; never auto).
	Temperature       temperature.Model
	TemperatureMethod temperature.Method
	// Map holds the confidence-map weights w of c = σ(w·f), over the first len(Map) features
	// (two: Platt scaling on [1, logit π̄(k*)]); nil means c = π̄(k*). MapMethod says which.
	Map       []float64
	MapMethod MapMethod

	Score     conformal.Score
	RAPS      conformal.RAPSSettings
	Alpha     float64
	Quantiles conformal.Mondrian
	// CalibrationScores are the calibration split's scores of the true answers, ascending (at
	// most MaxCalibrationScores, a uniform sample past that): the monitors' reference.
	CalibrationScores []float64

	// Lambda is the abstention threshold for Risk, chosen by Learn-then-Test at Delta from Curve.
	Lambda              float64
	Risk                float64
	Delta               float64
	RiskMin             float64 // the bounds a request's policy.risk must lie within
	RiskMax             float64
	Curve               []conformal.RiskPoint
	SycophancyThreshold float64 // a shift at least this large is flagged
	Equivalence         Equivalence

	// A claims profile (long answers): the claim confidence map's weights over the claim
	// features [1, logit support, √variance, log(1 + samples)] (nil: c = the support), the map
	// kept, and the conformal factuality threshold τ: a claim is kept when c > τ (+Inf: none
	// is). The default profile keeps claims with c > 0.5, without a guarantee.
	ClaimMap       []float64
	ClaimMapMethod MapMethod
	ClaimThreshold float64

	Report *Report
}

// Default returns the built-in uncalibrated profile: T = 1, c = π̄(k*), λ = 0.5, α = 0.1,
// sycophancy threshold 0.15, exact answer equivalence, the uncalibrated top-mass set.
func Default() *Profile {
	return &Profile{
		Name:                "default",
		Version:             0,
		TemperatureMethod:   temperature.MethodNone,
		MapMethod:           MapNone,
		Alpha:               0.1,
		Lambda:              0.5,
		Risk:                0.1,
		Delta:               0.1,
		RiskMin:             0.1,
		RiskMax:             0.1,
		SycophancyThreshold: 0.15,
		Equivalence:         EquivalenceExact,
		ClaimMapMethod:      MapNone,
		ClaimThreshold:      0.5,
	}
}

// builtin is the profile Score and NewEvaluator use for a nil *Profile. It is never modified.
var builtin = Default()
