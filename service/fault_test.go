package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/store"
)

// TestFaults: every engine, store and context error the service returns reaches a front end
// with its code (api.FaultOf), wrapped or not, and the field of an engine error is in the
// message and in a BadRequest detail.
func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code codes.Code
	}{
		{"invalid input", &calibrate.Error{Kind: calibrate.InvalidInput, Field: "x", Msg: "bad"}, codes.InvalidArgument},
		{"precondition", &calibrate.Error{Kind: calibrate.Precondition}, codes.FailedPrecondition},
		{"exhausted", &calibrate.Error{Kind: calibrate.Exhausted}, codes.ResourceExhausted},
		{"engine not found", &calibrate.Error{Kind: calibrate.NotFound}, codes.NotFound},
		{"store not found, wrapped", fmt.Errorf("get: %w", store.ErrNotFound), codes.NotFound},
		{"active", store.ErrActive, codes.FailedPrecondition},
		{"bad name", store.ErrBadName, codes.InvalidArgument},
		{"canceled", context.Canceled, codes.Canceled},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded},
		{"a status stays", status.Error(codes.Unavailable, "down"), codes.Unavailable},
		{"anything else", errors.New("disk on fire"), codes.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(api.FaultOf(fault(tc.err)).Status()); got != tc.code {
				t.Errorf("%v answers %v, want %v", tc.err, got, tc.code)
			}
		})
	}
	err := api.FaultOf(&calibrate.Error{Kind: calibrate.InvalidInput, Field: "paraphrases[2].stance", Msg: "bad"}).Status()
	if got := status.Convert(err).Message(); got != "paraphrases[2].stance: bad" {
		t.Errorf("message %q", got)
	}
	if f := api.FaultOf(err); f.Field != "paraphrases[2].stance" {
		t.Errorf("the BadRequest detail names %q", f.Field)
	}
	if item := api.ItemError(&calibrate.Error{Kind: calibrate.InvalidInput, Field: "f", Msg: "m"}); item.GetField() != "f" || codes.Code(item.GetCode()) != codes.InvalidArgument {
		t.Errorf("ItemError = %v", item)
	}
	if !errors.Is(fault(fmt.Errorf("get: %w", store.ErrNotFound)), store.ErrNotFound) {
		t.Error("a store fault given its kind no longer says which it was")
	}
}

// TestStoreFaults: the store's faults reach a client as codes a caller can act on, in
// words that name neither the server's paths nor a panic.
func TestStoreFaults(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("%w: profile %q version 2 does not decode", store.ErrDamaged, "p"), codes.DataLoss},
		{store.ErrFull, codes.ResourceExhausted},
		{store.ErrUnavailable, codes.Unavailable},
	} {
		st := status.Convert(api.FaultOf(fault(tc.err)).Status())
		if st.Code() != tc.code || strings.Contains(st.Message(), "/") {
			t.Errorf("Status(%v) = %v %q, want %v without a path", tc.err, st.Code(), st.Message(), tc.code)
		}
	}
}
