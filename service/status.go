package service

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/store"
)

// codeOf maps the engine's error kinds to status codes.
var codeOf = map[calibrate.ErrorKind]codes.Code{
	calibrate.InvalidInput: codes.InvalidArgument,
	calibrate.NotFound:     codes.NotFound,
	calibrate.Exhausted:    codes.ResourceExhausted,
	calibrate.Precondition: codes.FailedPrecondition,
}

// Status converts an engine, store or context error to a gRPC status error with the field at
// fault (as an errdetails.BadRequest when there is one). A status error is returned as it is.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var de *calibrate.Error
	switch {
	case errors.As(err, &de):
		code, ok := codeOf[de.Kind]
		if !ok {
			code = codes.Internal
		}
		st := status.New(code, de.Error())
		if de.Field != "" {
			if d, e := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: de.Field, Description: de.Msg}}}); e == nil {
				st = d
			}
		}
		return st.Err()
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrReadOnly):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, store.ErrActive):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, store.ErrBadName):
		return status.Error(codes.InvalidArgument, "name: "+err.Error())
	case errors.Is(err, store.ErrDamaged):
		return status.Error(codes.DataLoss, err.Error())
	case errors.Is(err, store.ErrFull):
		return status.Error(codes.ResourceExhausted, store.ErrFull.Error())
	case errors.Is(err, store.ErrUnavailable):
		return status.Error(codes.Unavailable, store.ErrUnavailable.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// Describe renders an error as "Code: message", the same words whether it happened in this
// process or on a server.
func Describe(err error) string {
	if st, ok := status.FromError(Status(err)); ok && st.Code() != codes.OK {
		return st.Code().String() + ": " + st.Message()
	}
	return err.Error()
}

// ItemError converts an error to the per-item error of a stream: its status code, the field at
// fault and the message.
func ItemError(err error) *plumbv1.ItemError {
	st, _ := status.FromError(Status(err))
	item := &plumbv1.ItemError{Code: int32(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			item.Field = br.GetFieldViolations()[0].GetField()
		}
	}
	return item
}
