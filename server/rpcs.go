package server

import (
	"context"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/proto/plumb/v1/plumbv1connect"
)

// rpc is one unary RPC of the API, defined once: what answers it, and how each transport
// hands it a request (grpcHandler, httpHandler).
type rpc struct {
	service, method string
	grpcHandler     grpc.MethodHandler
	httpHandler     func(s *Server, opts []connect.HandlerOption) (string, http.Handler)
}

// unary defines a unary RPC whose requests are M and which f answers.
func unary[M any, P interface {
	*M
	proto.Message
}, R any](service, method string, f func(s *Server, ctx context.Context, req P) (*R, error)) rpc {
	full := "/" + service + "/" + method
	answer := func(s *Server, ctx context.Context, in *incoming[M, P]) (*R, error) {
		req, err := in.get()
		if err != nil {
			return nil, err
		}
		return f(s, ctx, req)
	}
	return rpc{
		service: service,
		method:  method,
		grpcHandler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(incoming[M, P])
			if err := dec(in); err != nil {
				return nil, err
			}
			s := srv.(*Server)
			handler := func(ctx context.Context, _ any) (any, error) { return answer(s, ctx, in) }
			if icpt == nil {
				return handler(ctx, in)
			}
			return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, handler)
		},
		httpHandler: func(s *Server, opts []connect.HandlerOption) (string, http.Handler) {
			return full, connect.NewUnaryHandler(full, func(ctx context.Context, req *connect.Request[incoming[M, P]]) (*connect.Response[R], error) {
				resp, err := answer(s, ctx, req.Msg)
				if err != nil {
					return nil, err
				}
				return connect.NewResponse(resp), nil
			}, opts...)
		},
	}
}

// unaries are the API's unary RPCs.
var unaries = []rpc{
	unary(confidenceService, "Score", (*Server).score),
	unary(profileService, "GetProfile", func(s *Server, ctx context.Context, r *plumbv1.GetProfileRequest) (*plumbv1.GetProfileResponse, error) {
		return s.svc.GetProfile(ctx, r)
	}),
	unary(profileService, "ListProfiles", func(s *Server, ctx context.Context, r *plumbv1.ListProfilesRequest) (*plumbv1.ListProfilesResponse, error) {
		return s.svc.ListProfiles(ctx, r)
	}),
	unary(profileService, "ActivateProfile", func(s *Server, ctx context.Context, r *plumbv1.ActivateProfileRequest) (*plumbv1.ActivateProfileResponse, error) {
		return s.svc.ActivateProfile(ctx, r)
	}),
	unary(profileService, "DeleteProfile", func(s *Server, ctx context.Context, r *plumbv1.DeleteProfileRequest) (*plumbv1.DeleteProfileResponse, error) {
		return s.svc.DeleteProfile(ctx, r)
	}),
	unary(profileService, "ImportProfile", func(s *Server, ctx context.Context, r *plumbv1.ImportProfileRequest) (*plumbv1.ImportProfileResponse, error) {
		return s.svc.ImportProfile(ctx, r)
	}),
	unary(profileService, "Refit", func(s *Server, ctx context.Context, r *plumbv1.RefitRequest) (*plumbv1.FitResponse, error) {
		return s.svc.Refit(ctx, r)
	}),
	unary(monitorService, "Feedback", func(s *Server, ctx context.Context, r *plumbv1.FeedbackRequest) (*plumbv1.FeedbackResponse, error) {
		return s.svc.FeedbackOne(ctx, r)
	}),
	unary(monitorService, "GetMonitor", func(s *Server, ctx context.Context, r *plumbv1.GetMonitorRequest) (*plumbv1.GetMonitorResponse, error) {
		return s.svc.Monitor(ctx, r)
	}),
}

const (
	confidenceService = plumbv1connect.ConfidenceServiceName
	profileService    = plumbv1connect.ProfileServiceName
	monitorService    = plumbv1connect.MonitorServiceName
)
