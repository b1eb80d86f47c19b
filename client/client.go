// Package client is the Go client of plumb's gRPC API: dialling with keepalive, retries of
// Unavailable on idempotent calls and default deadlines, typed helpers for Score, a pipelined
// ScoreStream helper, and Fit and Evaluate from iterators of examples.
package client

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// Options configure Dial. A nil *Options means the defaults.
type Options struct {
	// Token is sent as "authorization: bearer <token>" when not empty.
	Token string
	// TLS secures the connection; nil means plaintext (loopback, or behind a TLS proxy).
	TLS credentials.TransportCredentials
	// Timeout is the deadline given to a unary call whose context has none (default 10 s).
	Timeout time.Duration
	// MaxMessageBytes bounds messages both ways (default 16 MiB, the server's default).
	MaxMessageBytes int
}

// retryPolicy retries Unavailable on the idempotent RPCs (Score and the read-only and
// idempotent profile calls); Fit and the streams are not retried.
const retryPolicy = `{
  "methodConfig": [{
    "name": [
      {"service": "plumb.v1.ConfidenceService", "method": "Score"},
      {"service": "plumb.v1.ProfileService", "method": "GetProfile"},
      {"service": "plumb.v1.ProfileService", "method": "ListProfiles"},
      {"service": "plumb.v1.ProfileService", "method": "ActivateProfile"},
      {"service": "plumb.v1.ProfileService", "method": "DeleteProfile"}
    ],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.05s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// Client is a connection to a plumb server.
type Client struct {
	conn       *grpc.ClientConn
	timeout    time.Duration
	Confidence plumbv1.ConfidenceServiceClient
	Profiles   plumbv1.ProfileServiceClient
}

type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// Dial connects to addr (host:port). The connection is made lazily, on the first call.
func Dial(addr string, o *Options) (*Client, error) {
	var opt Options
	if o != nil {
		opt = *o
	}
	if opt.Timeout == 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.MaxMessageBytes == 0 {
		opt.MaxMessageBytes = 16 << 20
	}
	creds := opt.TLS
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.WithDefaultServiceConfig(retryPolicy),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(opt.MaxMessageBytes), grpc.MaxCallSendMsgSize(opt.MaxMessageBytes)),
	}
	if opt.Token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(bearer{token: opt.Token, secure: opt.TLS != nil}))
	}
	conn, err := grpc.NewClient(addr, dopts...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:       conn,
		timeout:    opt.Timeout,
		Confidence: plumbv1.NewConfidenceServiceClient(conn),
		Profiles:   plumbv1.NewProfileServiceClient(conn),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn returns the underlying connection (for the health client, say).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

func (c *Client) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

// Score scores one question.
func (c *Client) Score(ctx context.Context, r *plumbv1.ScoreRequest) (*plumbv1.ScoreResponse, error) {
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	return c.Confidence.Score(ctx, r)
}

// ScoreAll scores a sequence of requests over one ScoreStream, sending and receiving
// concurrently, and yields the responses in request order. A refused request yields its
// response with Error set; a failure of the stream itself ends the sequence with that error.
// Breaking out of the loop cancels the stream.
func (c *Client) ScoreAll(ctx context.Context, reqs iter.Seq[*plumbv1.ScoreRequest]) iter.Seq2[*plumbv1.ScoreResponse, error] {
	return func(yield func(*plumbv1.ScoreResponse, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.Confidence.ScoreStream(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		sendErr := make(chan error, 1)
		go func() {
			for r := range reqs {
				if err := stream.Send(r); err != nil {
					sendErr <- err // the receive side sees the status
					return
				}
			}
			sendErr <- stream.CloseSend()
		}()
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				if err := <-sendErr; err != nil && !errors.Is(err, io.EOF) {
					yield(nil, err)
				}
				return
			}
			if !yield(resp, err) || err != nil {
				return
			}
		}
	}
}

// Fit streams cfg and then every example to ProfileService.Fit. An error from examples stops
// the fit (the stream is cancelled; the server writes nothing) and is returned.
func (c *Client) Fit(ctx context.Context, cfg *plumbv1.FitConfig, examples iter.Seq2[*plumbv1.LabeledExample, error]) (*plumbv1.FitResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Profiles.Fit(ctx)
	if err != nil {
		return nil, err
	}
	return sendLabeled(stream, &plumbv1.FitRequest{Message: &plumbv1.FitRequest_Config{Config: cfg}}, examples,
		func(ex *plumbv1.LabeledExample) *plumbv1.FitRequest {
			return &plumbv1.FitRequest{Message: &plumbv1.FitRequest_Example{Example: ex}}
		})
}

// Evaluate streams cfg and every example to ProfileService.Evaluate.
func (c *Client) Evaluate(ctx context.Context, cfg *plumbv1.EvaluateConfig, examples iter.Seq2[*plumbv1.LabeledExample, error]) (*plumbv1.Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Profiles.Evaluate(ctx)
	if err != nil {
		return nil, err
	}
	return sendLabeled(stream, &plumbv1.EvaluateRequest{Message: &plumbv1.EvaluateRequest_Config{Config: cfg}}, examples,
		func(ex *plumbv1.LabeledExample) *plumbv1.EvaluateRequest {
			return &plumbv1.EvaluateRequest{Message: &plumbv1.EvaluateRequest_Example{Example: ex}}
		})
}

// sendLabeled sends the config message, then one message per example, and returns the reply.
// On a send error the reply's status says why.
func sendLabeled[Req, Resp any](stream grpc.ClientStreamingClient[Req, Resp], first *Req,
	examples iter.Seq2[*plumbv1.LabeledExample, error], wrap func(*plumbv1.LabeledExample) *Req) (*Resp, error) {
	if err := stream.Send(first); err != nil {
		_, err = stream.CloseAndRecv()
		return nil, err
	}
	for ex, err := range examples {
		if err != nil {
			return nil, err // the caller's cancel aborts the stream
		}
		if err := stream.Send(wrap(ex)); err != nil {
			_, err = stream.CloseAndRecv()
			return nil, err
		}
	}
	return stream.CloseAndRecv()
}
