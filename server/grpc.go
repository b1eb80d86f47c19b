package server

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	protov2 "google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// plumb's gRPC front end: grpc-go, with service descriptions of plumb's own whose handlers take
// requests as incoming values that the codec fills with api.Decode, and one interceptor of each
// kind that runs the checks of checks.go. The generated descriptions' names and file are kept,
// so that reflection and every gRPC client see the API of plumb.proto.

// codec is grpc-go's proto codec, which decodes plumb's requests (incoming) with api.Decode:
// a request that does not decode is that request's error, never a transport failure.
type codec struct{ encoding.CodecV2 }

func newCodec() codec { return codec{encoding.GetCodecV2(proto.Name)} }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	in, ok := v.(decodable)
	if !ok {
		return c.CodecV2.Unmarshal(data, v) // health, reflection, the baseline
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	in.decode(buf.ReadOnlyData(), api.Binary)
	return nil
}

// services returns the gRPC descriptions of the API's two services.
func services() []*grpc.ServiceDesc {
	descs := map[string]*grpc.ServiceDesc{
		confidenceService: {ServiceName: confidenceService, HandlerType: (*any)(nil), Metadata: plumbv1.ConfidenceService_ServiceDesc.Metadata,
			Streams: []grpc.StreamDesc{{StreamName: "ScoreStream", Handler: grpcScoreStream, ServerStreams: true, ClientStreams: true}}},
		profileService: {ServiceName: profileService, HandlerType: (*any)(nil), Metadata: plumbv1.ProfileService_ServiceDesc.Metadata,
			Streams: []grpc.StreamDesc{
				{StreamName: "Fit", Handler: grpcFit, ClientStreams: true},
				{StreamName: "Evaluate", Handler: grpcEvaluate, ClientStreams: true},
			}},
		monitorService: {ServiceName: monitorService, HandlerType: (*any)(nil), Metadata: plumbv1.MonitorService_ServiceDesc.Metadata,
			Streams: []grpc.StreamDesc{{StreamName: "FeedbackStream", Handler: grpcFeedbackStream, ClientStreams: true}}},
	}
	for _, r := range unaries {
		d := descs[r.service]
		d.Methods = append(d.Methods, grpc.MethodDesc{MethodName: r.method, Handler: r.grpcHandler})
	}
	return []*grpc.ServiceDesc{descs[confidenceService], descs[profileService], descs[monitorService]}
}

// recvGRPC returns a function that receives the requests of a gRPC stream: a message, the error
// it did not decode with, or the transport's error (io.EOF at the end).
func recvGRPC[M any, P interface {
	*M
	protov2.Message
}](stream grpc.ServerStream) func() (P, error) {
	return func() (P, error) {
		in := new(incoming[M, P])
		if err := stream.RecvMsg(in); err != nil {
			return nil, err
		}
		return in.get()
	}
}

func grpcScoreStream(srv any, stream grpc.ServerStream) error {
	s := srv.(*Server)
	ctx := stream.Context()
	cut := func() bool {
		p, ok := peer.FromContext(ctx)
		l := s.lis.Load()
		return ok && l != nil && l.cut(p.Addr.String())
	}
	send := func(r *plumbv1.ScoreResponse) error { return stream.SendMsg(r) }
	return s.scoreStream(ctx, recvGRPC[plumbv1.ScoreRequest](stream), send, cut)
}

func grpcFit(srv any, stream grpc.ServerStream) error {
	resp, err := srv.(*Server).fit(stream.Context(), recvGRPC[plumbv1.FitRequest](stream))
	if err != nil {
		return err
	}
	return stream.SendMsg(resp)
}

func grpcFeedbackStream(srv any, stream grpc.ServerStream) error {
	resp, err := srv.(*Server).feedbackStream(stream.Context(), recvGRPC[plumbv1.FeedbackRequest](stream))
	if err != nil {
		return err
	}
	return stream.SendMsg(resp)
}

func grpcEvaluate(srv any, stream grpc.ServerStream) error {
	rep, err := srv.(*Server).evaluate(stream.Context(), recvGRPC[plumbv1.EvaluateRequest](stream))
	if err != nil {
		return err
	}
	return stream.SendMsg(rep)
}

// authorization returns the authorization metadata of a gRPC call.
func authorization(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// unaryInterceptor runs the checks of checks.go around a unary call.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	began := time.Now()
	err = s.admit(info.FullMethod, authorization(ctx))
	if err == nil {
		err = s.guard(ctx, info.FullMethod, func() error {
			var herr error
			resp, herr = handler(ctx, req)
			return herr
		})
	}
	f := s.finish(ctx, "grpc", info.FullMethod, began, err)
	if err != nil {
		return nil, f.Status()
	}
	return resp, nil
}

// streamInterceptor runs the checks of checks.go around a streaming call.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	began := time.Now()
	err := s.admit(info.FullMethod, authorization(ctx))
	if err == nil {
		err = s.guard(ctx, info.FullMethod, func() error { return handler(srv, ss) })
	}
	return s.finish(ctx, "grpc", info.FullMethod, began, err).Status()
}
