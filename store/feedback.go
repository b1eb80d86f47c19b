package store

import (
	"context"
	"time"
)

// Feedback is one stored outcome of a scored answer: the id of its receipt (an outcome counts
// once), the profile it was scored under, when it arrived, and its data (a protobuf-encoded
// plumb.v1.Outcome).
type Feedback struct {
	ID       string
	Profile  string
	Received time.Time
	Data     []byte
	// ACI, when set, is the step of adaptive conformal inference this outcome takes: applied
	// with the outcome, in its transaction, and only when the outcome is new.
	ACI *ACIStep
}

// ACIKey names one adaptive threshold: a profile version × segment.
type ACIKey struct {
	Profile string
	Version int64
	Segment string
}

// ACIStep moves the threshold of Key by Delta, from Start when it has none, and holds it in
// [0, Max].
type ACIStep struct {
	Key          ACIKey
	Start, Delta float64
	Max          float64
}

// FeedbackStore keeps outcomes. The bbolt and PostgreSQL stores are FeedbackStores; a server of
// fixed profiles (ReadOnly) is not, and takes no feedback.
type FeedbackStore interface {
	// AddFeedback stores the outcomes whose ids are not stored yet, all or none, and returns how
	// many it stored; the others were stored before (by this call's earlier items too).
	AddFeedback(ctx context.Context, fs []Feedback) (int, error)
	// EachFeedback calls fn with the outcomes of profile (every profile's when empty) in the
	// order they arrived, until fn returns an error, which it returns.
	EachFeedback(ctx context.Context, profile string, fn func(Feedback) error) error
	// DropFeedback deletes the outcomes that arrived before t, and returns how many.
	DropFeedback(ctx context.Context, before time.Time) (int, error)
	// ACI returns every adaptive threshold.
	ACI(ctx context.Context) (map[ACIKey]float64, error)
}

// apply returns q moved by the step and held in [0, s.Max].
func (s *ACIStep) apply(q float64) float64 {
	return min(max(q+s.Delta, 0), s.Max)
}

// MaxFeedbackID is the longest outcome id, in bytes.
const MaxFeedbackID = 64
