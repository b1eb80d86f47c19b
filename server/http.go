package server

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect"
	connectcors "connectrpc.com/cors"
	"github.com/rs/cors"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/proto/plumb/bench/v1/benchv1connect"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/proto/plumb/v1/plumbv1connect"
	"github.com/plumbhq/plumb/web"
)

// plumb's HTTP front end, for browsers, curl and anything without gRPC: the same two services
// through connect-go, which speaks the Connect protocol (JSON or binary bodies, unary calls as
// plain POSTs), gRPC-Web and gRPC, on a port of its own (--http-addr), so that grpc-go keeps the
// gRPC port to itself. Requests are decoded by api.Decode (codecs below), the RPCs are those of
// calls.go and rpcs.go, and every call passes the checks of checks.go through one Connect
// interceptor: one behaviour on both transports. Errors are Connect errors with the same code,
// message and google.rpc.BadRequest detail as gRPC's.
//
// Beside the API: /healthz (200 while the process answers), /readyz (200 while the health
// services say SERVING), /badge.js and /answer.js (the <plumb-badge> and <plumb-answer> web
// components) and / (a demo page).

// connectCodec is Connect's codec of one name ("proto" for binary bodies, gRPC and gRPC-Web;
// "json" for JSON bodies) that decodes plumb's requests with api.Decode.
type connectCodec struct {
	name string
	enc  api.Encoding
}

func (c connectCodec) Name() string { return c.name }

func (c connectCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, errors.New("server: not a protobuf message")
	}
	if c.enc == api.JSON {
		return protojson.Marshal(m)
	}
	return proto.Marshal(m)
}

func (c connectCodec) Unmarshal(data []byte, v any) error {
	if in, ok := v.(decodable); ok {
		in.decode(data, c.enc)
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return errors.New("server: not a protobuf message")
	}
	return api.Decode(data, c.enc, m)
}

// HTTPHandler returns the HTTP front end's handler.
func (s *Server) HTTPHandler() http.Handler {
	opts := []connect.HandlerOption{
		connect.WithInterceptors(httpInterceptor{s}),
		connect.WithCodec(connectCodec{"proto", api.Binary}),
		connect.WithCodec(connectCodec{"json", api.JSON}),
		connect.WithCodec(connectCodec{"json; charset=utf-8", api.JSON}),
		connect.WithReadMaxBytes(s.cfg.MaxMessageBytes),
		connect.WithSendMaxBytes(s.cfg.MaxMessageBytes),
		connect.WithCompression("gzip", newLimitedGzip(s.cfg.MaxMessageBytes), func() connect.Compressor { return gzip.NewWriter(io.Discard) }),
	}
	mux := http.NewServeMux()
	for _, r := range unaries {
		mux.Handle(r.httpHandler(s, opts))
	}
	mux.Handle(plumbv1connect.ConfidenceServiceScoreStreamProcedure, connect.NewBidiStreamHandler(plumbv1connect.ConfidenceServiceScoreStreamProcedure, s.httpScoreStream, opts...))
	mux.Handle(plumbv1connect.ProfileServiceFitProcedure, connect.NewClientStreamHandler(plumbv1connect.ProfileServiceFitProcedure, s.httpFit, opts...))
	mux.Handle(plumbv1connect.ProfileServiceEvaluateProcedure, connect.NewClientStreamHandler(plumbv1connect.ProfileServiceEvaluateProcedure, s.httpEvaluate, opts...))
	mux.Handle(plumbv1connect.MonitorServiceFeedbackStreamProcedure, connect.NewClientStreamHandler(plumbv1connect.MonitorServiceFeedbackStreamProcedure, s.httpFeedbackStream, opts...))
	if s.cfg.Baseline {
		mux.Handle(benchv1connect.NewBaselineServiceHandler(baselineHTTP{}, opts...))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.serving.Load() {
			http.Error(w, "not serving: the store cannot be reached and no profile is cached, or shutting down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(plumbv1.OpenAPI)
	})
	mux.Handle("GET /badge.js", web.Badge())
	mux.Handle("GET /answer.js", web.Answer())
	mux.Handle("GET /example-request.json", web.ExampleRequest())
	mux.Handle("GET /example-claims.json", web.ExampleClaims())
	mux.Handle("GET /{$}", web.Demo())
	var h http.Handler = mux
	if len(s.cfg.CORSOrigins) > 0 {
		h = cors.New(cors.Options{
			AllowedOrigins: s.cfg.CORSOrigins,
			AllowedMethods: connectcors.AllowedMethods(),
			AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization"),
			ExposedHeaders: connectcors.ExposedHeaders(),
			MaxAge:         7200,
		}).Handler(h)
	}
	return s.traceHTTP(deadlines(h, s.cfg.SendTimeout, s.cfg.ReceiveTimeout))
}

// ServeHTTP serves the HTTP front end on lis until ctx is done, then drains for up to
// ShutdownGrace. Connections are capped like gRPC's; HTTP/2 (h2c, or over TLS) carries streams.
func (s *Server) ServeHTTP(ctx context.Context, lis net.Listener) error {
	hs := &http.Server{
		Handler:           s.HTTPHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    headerListSize,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          int(s.cfg.MaxStreams),
			MaxReceiveBufferPerStream:     StreamWindow,
			MaxReceiveBufferPerConnection: ConnWindow,
		},
	}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	hs.Protocols.SetHTTP2(true)
	if s.cfg.HTTPTLS != nil {
		hs.TLSConfig = s.cfg.HTTPTLS.Clone()
	}
	l := newListener(lis, s.cfg.MaxConnections, s.cfg.MaxConnectionsPerAddress)
	s.httpLis.Store(l)
	hs.ConnState = func(c net.Conn, st http.ConnState) {
		// Active: a request is being read or served (HTTP/2: one or more); idle: none.
		switch st {
		case http.StateActive:
			l.busy(c.RemoteAddr().String(), 1)
		case http.StateIdle:
			l.busy(c.RemoteAddr().String(), -1)
		}
	}
	lis = l
	errc := make(chan error, 1)
	go func() {
		if hs.TLSConfig != nil {
			errc <- hs.ServeTLS(lis, "", "")
		} else {
			errc <- hs.Serve(lis)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// deadlines gives every write of a response a deadline of send from its start, so that a stream
// whose caller stops reading ends after send (the HTTP form of --send-timeout), and every read
// of a request body a deadline of receive, so that a body that stops coming ends its call. Once
// the body is read to its end the read deadline is lifted: HTTP/1's server keeps reading the
// connection in the background while a call runs, and a deadline left there would end a long
// Fit whose body came whole.
func deadlines(h http.Handler, send, receive time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if r.Body != nil && r.Body != http.NoBody {
			dr := &deadlineReader{ReadCloser: r.Body, rc: rc, d: receive}
			if r.ProtoMajor == 1 {
				dr.header = w.Header() // HTTP/2 ends the stream alone, not its connection
			}
			r.Body = dr
		}
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: rc, d: send}, r)
	})
}

type deadlineReader struct {
	io.ReadCloser
	rc     *http.ResponseController
	d      time.Duration
	header http.Header // HTTP/1: the response's, to close the connection after a timeout
	done   bool
}

// errReceiveTimeout is a body read that timed out; connect-go answers it DeadlineExceeded.
type errReceiveTimeout struct{ d time.Duration }

func (e errReceiveTimeout) Error() string {
	return fmt.Sprintf("the request body sent nothing for %v (--receive-timeout)", e.d)
}
func (errReceiveTimeout) Timeout() bool   { return true }
func (errReceiveTimeout) Temporary() bool { return false }
func (errReceiveTimeout) Unwrap() error   { return os.ErrDeadlineExceeded }

func (r *deadlineReader) Read(p []byte) (int, error) {
	if r.done {
		return r.ReadCloser.Read(p)
	}
	r.rc.SetReadDeadline(time.Now().Add(r.d))
	n, err := r.ReadCloser.Read(p)
	if err == io.EOF {
		// The whole body: lift the deadline. After any other error it stays, so that what
		// drains the body next fails at once rather than wait on a silent caller.
		r.done = true
		r.rc.SetReadDeadline(time.Time{})
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if r.header != nil {
			r.header.Set("Connection", "close") // what is left of the body will not come
		}
		err = errReceiveTimeout{r.d}
	}
	return n, err
}

type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Flush() {
	w.rc.SetWriteDeadline(time.Now().Add(w.d))
	w.rc.Flush()
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// httpInterceptor runs the checks of checks.go around every call of the HTTP front end.
type httpInterceptor struct{ s *Server }

func (i httpInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		s, method := i.s, req.Spec().Procedure
		began := time.Now()
		var resp connect.AnyResponse
		err := s.admit(method, req.Header().Get("Authorization"))
		if err == nil {
			err = s.guard(ctx, method, func() error {
				var herr error
				resp, herr = next(ctx, req)
				return herr
			})
		}
		if f := s.finish(ctx, "http", method, began, err); err != nil {
			return nil, connectError(f)
		}
		return resp, nil
	}
}

func (i httpInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i httpInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		s, method := i.s, conn.Spec().Procedure
		began := time.Now()
		err := s.admit(method, conn.RequestHeader().Get("Authorization"))
		if err == nil {
			err = s.guard(ctx, method, func() error { return next(ctx, conn) })
		}
		if f := s.finish(ctx, "http", method, began, err); err != nil {
			return connectError(f)
		}
		return nil
	}
}

// connectError renders a fault as a Connect error: the same code, message and
// google.rpc.BadRequest detail as the gRPC status.
func connectError(f api.Fault) error {
	out := connect.NewError(connect.Code(f.Code), errors.New(f.Msg))
	if d := f.Detail(); d != nil {
		if detail, err := connect.NewErrorDetail(d); err == nil {
			out.AddDetail(detail)
		}
	}
	return out
}

// recvHTTP returns a function that receives the requests of a Connect stream as recvGRPC does.
func recvHTTP[M any, P interface {
	*M
	proto.Message
}](receive func() (*incoming[M, P], error)) func() (P, error) {
	return func() (P, error) {
		in, err := receive()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, err
		}
		return in.get()
	}
}

func (s *Server) httpScoreStream(ctx context.Context, stream *connect.BidiStream[scoreIn, plumbv1.ScoreResponse]) error {
	cut := func() bool {
		l := s.httpLis.Load()
		return l != nil && l.cut(stream.Peer().Addr)
	}
	// A send that fails is a caller that left its responses unread past --send-timeout (the
	// write deadline) or went away: close its connection, or an HTTP/2 caller still sending
	// would wait forever on a stream whose handler has returned.
	send := func(r *plumbv1.ScoreResponse) error {
		err := stream.Send(r)
		if err != nil {
			cut()
		}
		return err
	}
	return s.scoreStream(ctx, recvHTTP(stream.Receive), send, cut)
}

// clientStream adapts a Connect client stream to a receive function.
func clientStream[M any](stream *connect.ClientStream[M]) func() (*M, error) {
	return func() (*M, error) {
		if stream.Receive() {
			return stream.Msg(), nil
		}
		if err := stream.Err(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
}

func (s *Server) httpFit(ctx context.Context, stream *connect.ClientStream[fitIn]) (*connect.Response[plumbv1.FitResponse], error) {
	resp, err := s.fit(ctx, recvHTTP(clientStream(stream)))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (s *Server) httpFeedbackStream(ctx context.Context, stream *connect.ClientStream[feedbackIn]) (*connect.Response[plumbv1.FeedbackResponse], error) {
	resp, err := s.feedbackStream(ctx, recvHTTP(clientStream(stream)))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (s *Server) httpEvaluate(ctx context.Context, stream *connect.ClientStream[evaluateIn]) (*connect.Response[plumbv1.Report], error) {
	rep, err := s.evaluate(ctx, recvHTTP(clientStream(stream)))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(rep), nil
}

// baselineHTTP is the no-op floor over HTTP, for bench/load.sh.
type baselineHTTP struct{}

func (baselineHTTP) Noop(context.Context, *connect.Request[plumbv1.ScoreRequest]) (*connect.Response[plumbv1.ScoreResponse], error) {
	return connect.NewResponse(&plumbv1.ScoreResponse{}), nil
}

var _ benchv1connect.BaselineServiceHandler = baselineHTTP{}
