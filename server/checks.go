package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plumbhq/plumb/api"
)

// What every call passes, whatever its transport, in this order (docs/DESIGN.md "The server"):
// the call is timed and counted and logged when it ends (finish); its bearer token and role are
// checked, then the rate limit (admit); the handler runs, a panic in it becoming Internal
// (guard); and its error, whatever it is, is classified once (api.FaultOf) for the transport to
// render. gRPC's interceptors and the HTTP front end's Connect interceptor are thin adapters of
// these: one definition of each rule, which the transport conformance suite checks on every
// protocol.

// exempt reports whether a method needs no token and passes no rate limit check of its own:
// health and reflection, which probes and grpcurl call.
func exempt(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.") || strings.HasPrefix(method, "/grpc.reflection.")
}

// admit checks a call of the full method name ("/package.Service/Method") with the value of its
// authorization header: the bearer token and its role (when the server has tokens), then the
// rate limit. The error is a status: Unauthenticated, PermissionDenied or ResourceExhausted.
func (s *Server) admit(method, authorization string) error {
	if exempt(method) {
		return nil
	}
	if len(s.cfg.Tokens) > 0 {
		scheme, tok, ok := strings.Cut(authorization, " ")
		if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
			return status.Error(codes.Unauthenticated, "a bearer token is required: authorization: Bearer TOKEN")
		}
		if err := s.permit(tok, method); err != nil {
			return err
		}
	}
	if s.limit != nil && !s.limit.Allow() {
		return status.Error(codes.ResourceExhausted, "rate limit exceeded: retry later")
	}
	return nil
}

// guard runs f, turning a panic in it into an Internal error (logged with its stack) so that the
// server lives on.
func (s *Server) guard(ctx context.Context, method string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.cfg.Logger.ErrorContext(ctx, "panic in handler", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "internal error: %v", p)
		}
	}()
	return f()
}

// finish classifies the error of a call (nil: OK), counts it and logs it, and returns the
// fault for the transport to render.
func (s *Server) finish(ctx context.Context, transport, method string, began time.Time, err error) api.Fault {
	f := api.FaultOf(err)
	took := time.Since(began)
	s.calls.handled.WithLabelValues(transport, method, f.Code.String()).Inc()
	s.calls.seconds.WithLabelValues(transport, method).Observe(took.Seconds())
	level := slog.LevelInfo
	if f.Code == codes.Internal || f.Code == codes.Unknown || f.Code == codes.DataLoss {
		level = slog.LevelError
	}
	s.cfg.Logger.Log(ctx, level, "finished call", "protocol", transport, "method", method, "code", f.Code.String(), "duration", took)
	return f
}

// limiter is the server's rate limit, shared by both transports.
type limiter = rate.Limiter
