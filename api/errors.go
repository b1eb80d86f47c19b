package api

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// Fault is an error as the API answers it: a status code (google.rpc.Code, shared by gRPC and
// Connect), the field at fault (empty when none) and the whole message. Each transport renders a
// Fault once: a gRPC status with a google.rpc.BadRequest detail, a Connect error with the same,
// a stream's ItemError, or the CLI's "Code: message".
type Fault struct {
	Code  codes.Code
	Field string
	Msg   string
}

// codes of the engine's error kinds: the one table from which every transport takes them.
var kindCodes = map[calibrate.ErrorKind]codes.Code{
	calibrate.InvalidInput:   codes.InvalidArgument,
	calibrate.NotFound:       codes.NotFound,
	calibrate.Exhausted:      codes.ResourceExhausted,
	calibrate.Precondition:   codes.FailedPrecondition,
	calibrate.Unavailable:    codes.Unavailable,
	calibrate.DataLoss:       codes.DataLoss,
	calibrate.OutcomeUnknown: codes.Unknown,
	calibrate.Denied:         codes.PermissionDenied,
}

// FaultOf classifies err: an engine (or service) *calibrate.Error by its kind, a context's
// cancellation or deadline, a status error (a server's, through the client, or the transport's
// own: auth, rate limit) as it is, and anything else as Internal.
func FaultOf(err error) Fault {
	var e *calibrate.Error
	switch {
	case err == nil:
		return Fault{Code: codes.OK}
	case errors.As(err, &e):
		code, ok := kindCodes[e.Kind]
		if !ok {
			code = codes.Internal
		}
		return Fault{Code: code, Field: e.Field, Msg: e.Error()}
	case errors.Is(err, context.Canceled):
		return Fault{Code: codes.Canceled, Msg: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return Fault{Code: codes.DeadlineExceeded, Msg: err.Error()}
	}
	if st, ok := status.FromError(err); ok {
		f := Fault{Code: st.Code(), Msg: st.Message()}
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
				f.Field = br.GetFieldViolations()[0].GetField()
			}
		}
		return f
	}
	return Fault{Code: codes.Internal, Msg: err.Error()}
}

// Detail returns the google.rpc.BadRequest detail of a fault that names a field, else nil.
func (f Fault) Detail() *errdetails.BadRequest {
	if f.Field == "" {
		return nil
	}
	return &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: f.Field, Description: f.Msg}}}
}

// Status returns the fault as a gRPC status error (nil for OK).
func (f Fault) Status() error {
	if f.Code == codes.OK {
		return nil
	}
	st := status.New(f.Code, f.Msg)
	if d := f.Detail(); d != nil {
		if withDetail, err := st.WithDetails(d); err == nil {
			st = withDetail
		}
	}
	return st.Err()
}

// Describe renders an error as "Code: message", the same words whether it happened in this
// process or on a server.
func Describe(err error) string {
	f := FaultOf(err)
	if f.Code == codes.OK {
		return ""
	}
	return f.Code.String() + ": " + f.Msg
}

// Described returns err with Describe's words as its message; errors.As and status.Code still
// reach the error underneath.
func Described(err error) error {
	if err == nil {
		return nil
	}
	return &described{err}
}

type described struct{ err error }

func (d *described) Error() string { return Describe(d.err) }
func (d *described) Unwrap() error { return d.err }

// ItemError renders an error as the per-item error of a ScoreStream response.
func ItemError(err error) *plumbv1.ItemError {
	f := FaultOf(err)
	return &plumbv1.ItemError{Code: int32(f.Code), Field: f.Field, Message: f.Msg}
}

// invalid is the error of a value the API does not define, naming its field.
func invalid(field, format string, args ...any) error {
	return &calibrate.Error{Kind: calibrate.InvalidInput, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// within returns err with its field placed under prefix ("request." + field).
func within(prefix string, err error) error {
	var e *calibrate.Error
	if !errors.As(err, &e) {
		return err
	}
	return &calibrate.Error{Kind: e.Kind, Field: prefix + e.Field, Msg: e.Msg}
}
