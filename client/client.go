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

// scoreJob is one batch of a ScoreConcurrent call.
type scoreJob struct {
	reqs  []*plumbv1.ScoreRequest
	resps []*plumbv1.ScoreResponse
	err   error
	done  chan struct{}
}

// ScoreConcurrent scores reqs over `streams` concurrent ScoreStream calls, in batches of
// `batch` requests dealt to the streams in turn, and yields the responses in request order
// (each stream answers in order, so a batch's responses are its next len(batch) messages). A
// refused request yields its response with Error set; a failed stream ends the sequence with its
// error. Breaking out of the loop cancels every stream. streams and batch below 1 mean 1 and 256.
func (c *Client) ScoreConcurrent(ctx context.Context, reqs iter.Seq[*plumbv1.ScoreRequest], streams, batch int) iter.Seq2[*plumbv1.ScoreResponse, error] {
	streams, batch = max(streams, 1), max(batch, 1)
	if batch == 1 && streams == 1 {
		batch = 256
	}
	return func(yield func(*plumbv1.ScoreResponse, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		queues := make([]chan *scoreJob, streams)
		for i := range queues {
			queues[i] = make(chan *scoreJob, 2)
			go c.scoreWorker(ctx, queues[i])
		}
		order := make(chan *scoreJob, 2*streams)
		go func() {
			defer func() {
				for _, q := range queues {
					close(q)
				}
				close(order)
			}()
			i := 0
			cur := &scoreJob{done: make(chan struct{})}
			dispatch := func() bool {
				select {
				case order <- cur:
				case <-ctx.Done():
					return false
				}
				select {
				case queues[i%streams] <- cur:
				case <-ctx.Done():
					return false
				}
				i++
				cur = &scoreJob{done: make(chan struct{})}
				return true
			}
			for r := range reqs {
				cur.reqs = append(cur.reqs, r)
				if len(cur.reqs) == batch && !dispatch() {
					return
				}
			}
			if len(cur.reqs) > 0 {
				dispatch()
			}
		}()
		for j := range order {
			select {
			case <-j.done:
			case <-ctx.Done():
				yield(nil, ctx.Err())
				return
			}
			if j.err != nil {
				yield(nil, j.err)
				return
			}
			for _, resp := range j.resps {
				if !yield(resp, nil) {
					return
				}
			}
		}
	}
}

// scoreWorker runs one ScoreStream: it sends each job's requests as they come, and a receiver
// (the only caller of Recv) fills the job's responses in order.
func (c *Client) scoreWorker(ctx context.Context, jobs <-chan *scoreJob) {
	stream, openErr := c.Confidence.ScoreStream(ctx)
	inflight := make(chan *scoreJob, 4)
	go func() {
		var broken error
		for j := range inflight {
			switch {
			case j.err != nil: // the stream never opened
			case broken != nil:
				j.err = broken
			default:
				j.resps = make([]*plumbv1.ScoreResponse, len(j.reqs))
				for k := range j.reqs {
					if j.resps[k], j.err = stream.Recv(); j.err != nil {
						if j.err == io.EOF {
							j.err = errors.New("client: ScoreStream ended before answering every request")
						}
						broken = j.err
						break
					}
				}
			}
			close(j.done)
		}
	}()
	defer close(inflight)
	sendOK := openErr == nil
	for j := range jobs {
		if openErr != nil {
			j.err = openErr
		}
		for _, r := range j.reqs {
			if !sendOK {
				break
			}
			// A failed Send means the stream is broken; the receiver gets its status.
			sendOK = stream.Send(r) == nil
		}
		inflight <- j
	}
	if sendOK {
		stream.CloseSend()
	}
}
