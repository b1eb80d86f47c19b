// Package client is the Go client of plumb's gRPC API: dialling one server or several replicas
// (round_robin over the healthy ones), keepalive, retries of Unavailable on idempotent calls,
// default deadlines, typed helpers for Score, a pipelined ScoreStream helper that resumes a
// stream whose server died, and Fit and Evaluate from iterators of examples.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking, which healthCheckConfig asks for
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

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
	// OnResume, when not nil, is called with the error of each ScoreStream the client resumes
	// on a new stream (to log it, or count it).
	OnResume func(err error)
}

// serviceConfig spreads calls over every address the target resolves to (round_robin), skips
// servers whose health check (grpc.health.v1) does not say SERVING, and retries Unavailable on
// the idempotent RPCs — Score and the profile calls but Fit and Evaluate — which round_robin
// sends to the next server. Streams are resumed by ScoreConcurrent instead.
const serviceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": "plumb.v1.ConfidenceService"},
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
	onResume   func(error)
	Confidence plumbv1.ConfidenceServiceClient
	Profiles   plumbv1.ProfileServiceClient
	Monitor    plumbv1.MonitorServiceClient
}

type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// Dial connects to a plumb server, or to several replicas of one: addr is host:port,
// several host:port separated by commas, or any gRPC target ("dns:///plumb.ns.svc:50051"
// resolves every address behind a name, as a Kubernetes headless Service gives them). Calls are
// spread over the servers that report SERVING. Connections are made lazily, on the first call.
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
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(opt.MaxMessageBytes), grpc.MaxCallSendMsgSize(opt.MaxMessageBytes)),
	}
	if opt.Token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(bearer{token: opt.Token, secure: opt.TLS != nil}))
	}
	target := addr
	if list := strings.Split(addr, ","); len(list) > 1 {
		// A fixed list of replicas: a resolver of this connection's own that returns them all.
		r := manual.NewBuilderWithScheme("plumb-replicas")
		var st resolver.State
		for _, a := range list {
			if a = strings.TrimSpace(a); a == "" {
				return nil, fmt.Errorf("client: an empty address in %q", addr)
			}
			st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
		}
		r.InitialState(st)
		dopts = append(dopts, grpc.WithResolvers(r))
		target = "plumb-replicas:///replicas"
	}
	conn, err := grpc.NewClient(target, dopts...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:       conn,
		timeout:    opt.Timeout,
		onResume:   opt.OnResume,
		Confidence: plumbv1.NewConfidenceServiceClient(conn),
		Profiles:   plumbv1.NewProfileServiceClient(conn),
		Monitor:    plumbv1.NewMonitorServiceClient(conn),
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
// response with Error set; a stream that fails with Unavailable is resumed (ScoreConcurrent);
// any other failure ends the sequence with its error. Breaking out of the loop cancels the
// stream.
func (c *Client) ScoreAll(ctx context.Context, reqs iter.Seq[*plumbv1.ScoreRequest]) iter.Seq2[*plumbv1.ScoreResponse, error] {
	return c.ScoreConcurrent(ctx, reqs, 1, 1)
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
	got   int // responses received
	err   error
	done  chan struct{}
}

// ScoreConcurrent scores reqs over `streams` concurrent ScoreStream calls, in batches of
// `batch` requests dealt to the streams in turn, and yields the responses in request order
// (each stream answers in order, so a batch's responses are its next len(batch) messages). A
// refused request yields its response with Error set. A stream that fails with Unavailable (its
// server died, say) is resumed on a new stream, which the balancer puts on another server when
// there is one, with the requests not yet answered; after MaxResumes in a row, or on any other
// failure, the sequence ends with the error. Breaking out of the loop cancels every stream.
// streams below 1 means 1, batch below 1 means 256.
func (c *Client) ScoreConcurrent(ctx context.Context, reqs iter.Seq[*plumbv1.ScoreRequest], streams, batch int) iter.Seq2[*plumbv1.ScoreResponse, error] {
	streams = max(streams, 1)
	if batch < 1 {
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

// MaxResumes is how many times in a row a ScoreStream that failed with Unavailable is resumed
// on a new stream before the failure is returned.
const MaxResumes = 5

// jobQueue holds a worker's jobs sent and not yet wholly answered, oldest first.
type jobQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	jobs   []*scoreJob
	closed bool
	popped chan struct{} // a job was answered in full
}

func newJobQueue() *jobQueue {
	q := &jobQueue{popped: make(chan struct{}, 1)}
	q.cond.L = &q.mu
	return q
}

func (q *jobQueue) push(j *scoreJob) {
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	q.mu.Unlock()
	q.cond.Signal()
}

// front waits for the oldest job and returns it, or nil once the queue is closed.
func (q *jobQueue) front() *scoreJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.jobs) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil
	}
	return q.jobs[0]
}

func (q *jobQueue) pop() {
	q.mu.Lock()
	q.jobs = q.jobs[1:]
	q.mu.Unlock()
	select {
	case q.popped <- struct{}{}:
	default:
	}
}

func (q *jobQueue) snapshot() []*scoreJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]*scoreJob(nil), q.jobs...)
}

func (q *jobQueue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.jobs) == 0
}

// close wakes the receiver for good, failing the jobs left with err (when not nil).
func (q *jobQueue) close(err error) {
	q.mu.Lock()
	jobs := q.jobs
	q.jobs, q.closed = nil, true
	q.mu.Unlock()
	q.cond.Broadcast()
	for _, j := range jobs {
		if err != nil {
			j.err = err
			close(j.done)
		}
	}
}

// streamRun is one ScoreStream of a worker and its receiver.
type streamRun struct {
	stream grpc.BidiStreamingClient[plumbv1.ScoreRequest, plumbv1.ScoreResponse]
	dead   chan struct{} // closed when the receiver stops
	err    error         // why it stopped (nil: the queue was closed)
}

// receive fills the oldest job's responses from the stream, in order, until the stream fails
// or the queue is closed.
func (r *streamRun) receive(q *jobQueue) {
	defer close(r.dead)
	for {
		j := q.front()
		if j == nil {
			return
		}
		resp, err := r.stream.Recv()
		if err != nil {
			if err == io.EOF {
				err = errors.New("client: ScoreStream ended before answering every request")
			}
			r.err = err
			return
		}
		j.resps[j.got] = resp
		j.got++
		if j.got == len(j.reqs) {
			q.pop()
			close(j.done)
		}
	}
}

// openRun opens a ScoreStream, sends the unanswered requests of the queued jobs on it and
// starts its receiver.
func (c *Client) openRun(ctx context.Context, q *jobQueue) (*streamRun, error) {
	stream, err := c.Confidence.ScoreStream(ctx)
	if err != nil {
		return nil, err
	}
	r := &streamRun{stream: stream, dead: make(chan struct{})}
	for _, j := range q.snapshot() {
		for _, req := range j.reqs[j.got:] {
			if stream.Send(req) != nil {
				break // the receiver gets the status
			}
		}
	}
	go r.receive(q)
	return r, nil
}

// scoreWorker runs the jobs dealt to one stream: it sends each job's requests as they come
// while the run's receiver fills their responses, and resumes a stream that fails with
// Unavailable on a new one, resending what was not answered.
func (c *Client) scoreWorker(ctx context.Context, jobs <-chan *scoreJob) {
	q := newJobQueue()
	var run *streamRun
	var failed error
	resumes := 0
	more := jobs
	// reopen opens a new run after err (nil at the start), retrying Unavailable with a growing
	// pause; when it cannot, the jobs queued and every later one fail with the error.
	reopen := func(err error) {
		for err == nil || status.Code(err) == codes.Unavailable && resumes < MaxResumes && ctx.Err() == nil {
			if err != nil {
				resumes++
				if c.onResume != nil {
					c.onResume(err)
				}
				select {
				case <-time.After(time.Duration(resumes*resumes) * 20 * time.Millisecond):
				case <-ctx.Done():
				}
			}
			if run, err = c.openRun(ctx, q); err == nil {
				if more == nil {
					run.stream.CloseSend()
				}
				return
			}
		}
		run, failed = nil, err
		q.close(err)
		q = newJobQueue()
	}
	reopen(nil)
	for {
		if more == nil && q.empty() {
			q.close(nil)
			return
		}
		var dead <-chan struct{}
		if run != nil {
			dead = run.dead
		}
		select {
		case j, ok := <-more:
			if !ok {
				more = nil
				if run != nil {
					run.stream.CloseSend()
				}
				continue
			}
			if failed != nil {
				j.err = failed
				close(j.done)
				continue
			}
			j.resps = make([]*plumbv1.ScoreResponse, len(j.reqs))
			q.push(j)
			for _, r := range j.reqs {
				if run.stream.Send(r) != nil {
					break // the receiver gets the status
				}
			}
		case <-q.popped:
			resumes = 0 // progress: the stream works
		case <-dead:
			reopen(run.err)
		}
	}
}
