package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
)

// The RPCs, once for both transports: each takes decoded requests and returns responses or an
// error of any kind, which the transport's adapter classifies (finish) and renders.

// incoming is a request as a transport hands it over: the bytes decoded by api.Decode into msg,
// or the error that says why they do not decode (a field that is not UTF-8, an unknown field or
// enum value, a cap passed). The transports' codecs fill it (decode), so that a request that
// does not decode reaches plumb as an error of that request — InvalidArgument naming the field,
// or, within a ScoreStream, that item's error — instead of a transport failure, and without any
// state outside the request itself.
type incoming[M any, P interface {
	*M
	proto.Message
}] struct {
	msg M
	err error
}

// decode fills in from a message's bytes.
func (in *incoming[M, P]) decode(data []byte, enc api.Encoding) {
	in.err = api.Decode(data, enc, P(&in.msg))
}

// get returns the message, or the error it did not decode with.
func (in *incoming[M, P]) get() (P, error) {
	if in.err != nil {
		return nil, in.err
	}
	return P(&in.msg), nil
}

// decodable is what the codecs fill.
type decodable interface {
	decode(data []byte, enc api.Encoding)
}

type (
	scoreIn    = incoming[plumbv1.ScoreRequest, *plumbv1.ScoreRequest]
	fitIn      = incoming[plumbv1.FitRequest, *plumbv1.FitRequest]
	evaluateIn = incoming[plumbv1.EvaluateRequest, *plumbv1.EvaluateRequest]
	getIn      = incoming[plumbv1.GetProfileRequest, *plumbv1.GetProfileRequest]
	listIn     = incoming[plumbv1.ListProfilesRequest, *plumbv1.ListProfilesRequest]
	activateIn = incoming[plumbv1.ActivateProfileRequest, *plumbv1.ActivateProfileRequest]
	deleteIn   = incoming[plumbv1.DeleteProfileRequest, *plumbv1.DeleteProfileRequest]
	importIn   = incoming[plumbv1.ImportProfileRequest, *plumbv1.ImportProfileRequest]
	feedbackIn = incoming[plumbv1.FeedbackRequest, *plumbv1.FeedbackRequest]
)

// score scores one request and counts what was decided.
func (s *Server) score(ctx context.Context, r *plumbv1.ScoreRequest) (*plumbv1.ScoreResponse, error) {
	if s.scoreHook != nil {
		s.scoreHook()
	}
	q, err := api.Question(r)
	if err != nil {
		return nil, err
	}
	res, receipt, err := s.svc.ScoreWithReceipt(ctx, &q)
	if err != nil {
		return nil, err
	}
	resp := api.Response(&res)
	resp.Receipt = receipt
	s.dec.scored(resp)
	evaluated(ctx, resp)
	return resp, nil
}

// feedbackStream reads a FeedbackStream to its end and stores its outcomes, all or none.
func (s *Server) feedbackStream(ctx context.Context, recv func() (*plumbv1.FeedbackRequest, error)) (*plumbv1.FeedbackResponse, error) {
	var reqs []*plumbv1.FeedbackRequest
	for {
		r, err := recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, calibrate.Within("feedback["+strconv.Itoa(len(reqs))+"].", err)
		}
		if len(reqs) == service.MaxFeedbackBatch {
			return nil, &calibrate.Error{Kind: calibrate.Exhausted, Field: "feedback",
				Msg: fmt.Sprintf("more than %d outcomes in one stream: send more streams", service.MaxFeedbackBatch)}
		}
		reqs = append(reqs, r)
	}
	if len(reqs) == 0 {
		return &plumbv1.FeedbackResponse{}, nil
	}
	return s.svc.Feedback(ctx, reqs)
}

// scoreStream answers a stream of requests in order, echoing ids; a request that does not
// decode or is refused is answered with an ItemError and the stream goes on. Responses go out
// through a sender goroutine and a short queue; a caller that leaves them unread for
// SendTimeout while the queue is full has its stream ended (ResourceExhausted) and its
// connection closed (cut), which frees what it held: the transport cannot end such a stream
// itself, its closing frame waiting behind the data the caller does not let through. recv
// returns io.EOF at the end of the requests.
func (s *Server) scoreStream(ctx context.Context, recv func() (*plumbv1.ScoreRequest, error), send func(*plumbv1.ScoreResponse) error, cut func() bool) error {
	queue := make(chan *plumbv1.ScoreResponse, streamQueue)
	stop := make(chan struct{})
	sent := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-stop:
				sent <- nil
				return
			case resp, ok := <-queue:
				if !ok {
					sent <- nil
					return
				}
				if err := send(resp); err != nil {
					sent <- err
					return
				}
			}
		}
	}()
	timer := time.NewTimer(s.cfg.SendTimeout)
	defer timer.Stop()
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
		}
	}
	// The sender must be gone before the handler returns: a transport's stream (HTTP/2's
	// response writer above all) must not be written once its handler has returned — net/http
	// panics. A sender blocked on an unread caller is freed by cut, or by the write deadline.
	defer func() {
		halt()
		<-exited
	}()
	unread := func() error {
		halt()
		if cut() {
			s.cfg.Logger.Warn("closed a connection whose ScoreStream left responses unread", "for", s.cfg.SendTimeout)
		}
		return status.Errorf(codes.ResourceExhausted, "responses left unread for %v: read them as they come (the connection is closed)", s.cfg.SendTimeout)
	}
	wait := func() error {
		timer.Reset(s.cfg.SendTimeout)
		select {
		case err := <-sent:
			return err
		case <-timer.C:
			return unread()
		}
	}
	for {
		r, err := recv()
		var refused *calibrate.Error
		var resp *plumbv1.ScoreResponse
		switch {
		case err == io.EOF:
			close(queue) // the sender sends what is queued, then ends
			return wait()
		case errors.As(err, &refused):
			// A request that does not decode is answered like any refused one, without its id.
			resp = &plumbv1.ScoreResponse{Error: api.ItemError(err)}
		case err != nil:
			halt()
			wait()
			return err
		default:
			if resp, err = s.score(ctx, r); err != nil {
				resp = &plumbv1.ScoreResponse{Id: r.GetId(), Error: api.ItemError(err)}
			}
		}
		select {
		case queue <- resp:
			continue
		case err := <-sent:
			return err // the sender failed: the stream is broken
		default:
		}
		// The queue is full: the caller is not reading as fast as it sends.
		timer.Reset(s.cfg.SendTimeout)
		select {
		case queue <- resp:
		case err := <-sent:
			return err
		case <-timer.C:
			return unread()
		}
	}
}

// configured reads a Fit or Evaluate client stream: the config its first message must carry
// (InvalidArgument without one), then the labelled examples of the messages that follow,
// converted to the engine's as they arrive; a second config, or a message that does not
// decode, is an error naming the message.
func configured[M, C any](recv func() (*M, error), config func(*M) *C, example func(*M) *plumbv1.LabeledExample,
	what string) (*C, iter.Seq2[calibrate.Example, error], error) {
	first, err := recv()
	if err != nil && err != io.EOF {
		return nil, nil, err // its fields are the config's: "config.equivalence"
	}
	var cfg *C
	if err == nil {
		cfg = config(first)
	}
	if cfg == nil {
		return nil, nil, &calibrate.Error{Kind: calibrate.InvalidInput, Field: "config", Msg: "the first message must be a " + what}
	}
	exs := func(yield func(calibrate.Example, error) bool) {
		for i := 1; ; i++ {
			m, err := recv()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(calibrate.Example{}, messageError(i, err))
				return
			}
			if config(m) != nil {
				yield(calibrate.Example{}, &calibrate.Error{Kind: calibrate.InvalidInput, Field: fmt.Sprintf("messages[%d]", i), Msg: "a config after the first message; send it once, first"})
				return
			}
			ex := example(m)
			if ex == nil {
				yield(calibrate.Example{}, &calibrate.Error{Kind: calibrate.InvalidInput, Field: fmt.Sprintf("messages[%d]", i), Msg: "empty message: want an example"})
				return
			}
			e, err := api.Example(ex)
			if err != nil {
				err = calibrate.Within(fmt.Sprintf("examples[%d].", i-1), err)
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
	return cfg, exs, nil
}

// fit runs a Fit stream and counts its outcome.
func (s *Server) fit(ctx context.Context, recv func() (*plumbv1.FitRequest, error)) (*plumbv1.FitResponse, error) {
	began := time.Now()
	cfg, exs, err := configured(recv, (*plumbv1.FitRequest).GetConfig, (*plumbv1.FitRequest).GetExample, "FitConfig")
	var resp *plumbv1.FitResponse
	if err == nil {
		resp, err = s.svc.Fit(ctx, cfg, exs)
	}
	s.dec.fitted(resp, api.FaultOf(err).Code, began)
	return resp, err
}

// evaluate runs an Evaluate stream.
func (s *Server) evaluate(ctx context.Context, recv func() (*plumbv1.EvaluateRequest, error)) (*plumbv1.Report, error) {
	cfg, exs, err := configured(recv, (*plumbv1.EvaluateRequest).GetConfig, (*plumbv1.EvaluateRequest).GetExample, "EvaluateConfig")
	if err != nil {
		return nil, err
	}
	return s.svc.Evaluate(ctx, cfg, exs)
}

// messageError names the field of message i of a Fit or Evaluate stream that did not decode as
// the engine names an example's: "examples[i-1].request.…" for "example.request.…", else
// "messages[i].…".
func messageError(i int, err error) error {
	var e *calibrate.Error
	if !errors.As(err, &e) {
		return err
	}
	if rest, ok := strings.CutPrefix(e.Field, "example."); ok {
		return &calibrate.Error{Kind: e.Kind, Field: fmt.Sprintf("examples[%d].%s", i-1, rest), Msg: e.Msg, Err: e.Err}
	}
	return calibrate.Within(fmt.Sprintf("messages[%d].", i), err)
}
