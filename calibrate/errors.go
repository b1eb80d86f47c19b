package calibrate

import (
	"errors"
	"fmt"
)

// exhausted is the error of a request past a limit.
func exhausted(field, format string, args ...any) *Error {
	return &Error{Kind: Exhausted, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ErrorKind classifies a domain error; the service maps it to a status code.
type ErrorKind int

// The error kinds.
const (
	// InvalidInput: the request is malformed (codes.InvalidArgument).
	InvalidInput ErrorKind = iota + 1
	// NotFound: an unknown profile or version (codes.NotFound).
	NotFound
	// Exhausted: the request is larger than the limits (codes.ResourceExhausted).
	Exhausted
	// Precondition: the data cannot support the operation, e.g. too few examples to fit
	// (codes.FailedPrecondition).
	Precondition
	// Unavailable and DataLoss are never the engine's: the service gives them to its store's
	// faults (the store could not be reached; one stored record is damaged), so that every
	// error a front end answers is one type.
	Unavailable
	DataLoss
	// OutcomeUnknown is the service's too: a write whose commit the store could not confirm
	// (codes.Unknown: not Unavailable, which a client would retry into a second write).
	OutcomeUnknown
	// Denied is the service's too: a receipt that is forged, altered or expired
	// (codes.PermissionDenied).
	Denied
)

// Error is a domain error that names the field at fault, e.g.
// "paraphrases[2].samples[0].tokens[7].logprob: positive logprob 0.3".
type Error struct {
	Kind  ErrorKind
	Field string
	Msg   string
	// Err is the error this one words, if any (a store's, for the service): errors.Is and
	// errors.As see it.
	Err error
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of a domain error in err's chain, or 0.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func invalid(field, format string, args ...any) *Error {
	return &Error{Kind: InvalidInput, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Within returns err with its field placed under prefix ("examples[3]." + "request.…"): an
// error of a part, named in the whole. Errors that are no *Error are returned as they are.
func Within(prefix string, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	return &Error{Kind: e.Kind, Field: prefix + e.Field, Msg: e.Msg, Err: e.Err}
}
