package main

import (
	"bufio"
	"context"
	"fmt"
	"sync"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/jsonl"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// cmdScore is plumb score: ScoreRequest lines in, ScoreResponse lines out, in order.
func cmdScore(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("score", std)
	var t target
	t.register(fs)
	fs.IntVar(&t.streams, "streams", 2, "concurrent ScoreStream calls with --server")
	profile := fs.String("profile", "", "profile for requests that name none (default: the active \"default\")")
	var f inputFlags
	f.register(fs)
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError("score reads one file (or stdin): %q and %q", pos[0], pos[1])
	}
	file := ""
	if len(pos) > 0 {
		file = pos[0]
	}
	in, b, done, err := openWork(std, &t, file, &f, "scored")
	if err != nil {
		return err
	}
	defer done()
	out := &output{w: bufio.NewWriterSize(std.out, 1<<16), profile: *profile}
	defer out.w.Flush()
	return in.finish(b.score(ctx, in, out))
}

func (l *local) score(ctx context.Context, in *input, out *output) error {
	err := jsonl.Stream(ctx, in.r, &in.opts, make([][]byte, jsonl.InFlight()), func() func(*jsonl.Chunk[[]byte]) {
		var d jsonl.Decoder
		var q calibrate.Question
		return func(c *jsonl.Chunk[[]byte]) {
			c.Out = c.Out[:0]
			c.Lines(&in.opts, func(line []byte, n int) error {
				if err := jsonl.DecodeQuestion(&d, line, &q, in.opts.Format); err != nil {
					if in.opts.KeepGoing {
						// One output line for every input line: this one's is an error.
						c.Out, _ = jsonl.AppendResponse(c.Out, unreadable(in, n, err))
					}
					return err
				}
				if q.Profile == "" {
					q.Profile = out.profile
				}
				var resp *plumbv1.ScoreResponse
				res, err := l.svc.Score(ctx, &q)
				if err == nil {
					resp = api.Response(&res)
				} else {
					if !in.opts.KeepGoing {
						return refused(&q, err)
					}
					in.bad.Add(1)
					resp = &plumbv1.ScoreResponse{Id: q.ID, Error: api.ItemError(err)}
				}
				c.Out, err = jsonl.AppendResponse(c.Out, resp)
				return err
			})
		}
	}, func(c *jsonl.Chunk[[]byte]) error {
		in.prog.lines(c.Out)
		_, err := out.w.Write(c.Out)
		return err
	})
	return describeIn(in.opts.File, err)
}

// sent is a request on its way to a server and the line it came from; or, under --keep-going,
// the error response of a line that does not decode, written in its place.
type sent struct {
	req  *plumbv1.ScoreRequest
	line int
	bad  *plumbv1.ScoreResponse
}

func (r *remote) score(ctx context.Context, in *input, out *output) error {
	// The responses come back in request order; pending holds the lines read and not yet
	// written: requests sent and not yet answered (to name a refused one), and lines that do
	// not decode, whose error responses are written when their turn comes.
	var mu sync.Mutex
	var pending []sent
	var readErr error
	reqs := func(yield func(*plumbv1.ScoreRequest) bool) {
		for s, err := range messages(ctx, in, false, jsonl.DecodeQuestion, func(q *calibrate.Question, n int) sent {
			if q.Profile == "" {
				q.Profile = out.profile
			}
			return sent{req: api.Request(q), line: n}
		}, func(n int, err error) sent { return sent{line: n, bad: unreadable(in, n, err)} }) {
			if err != nil {
				readErr = err
				return
			}
			mu.Lock()
			pending = append(pending, sent{line: s.line, bad: s.bad})
			mu.Unlock()
			if s.bad == nil && !yield(s.req) {
				return
			}
		}
	}
	var buf []byte
	write := func(resp *plumbv1.ScoreResponse) error {
		var err error
		if buf, err = jsonl.AppendResponse(buf[:0], resp); err != nil {
			return err
		}
		_, err = out.w.Write(buf)
		return err
	}
	// next returns the oldest pending line that is a request, after writing the error
	// responses of the unreadable lines before it.
	next := func() (int, error) {
		mu.Lock()
		defer mu.Unlock()
		for len(pending) > 0 && pending[0].bad != nil {
			if err := write(pending[0].bad); err != nil {
				return 0, err
			}
			pending = pending[1:]
		}
		if len(pending) == 0 {
			return 0, nil
		}
		line := pending[0].line
		pending = pending[1:]
		return line, nil
	}
	for resp, err := range r.c.ScoreConcurrent(ctx, reqs, r.streams, 256) {
		if err != nil {
			return fmt.Errorf("%s: %w", in.opts.File, api.Described(err))
		}
		line, err := next()
		if err != nil {
			return err
		}
		if e := resp.GetError(); e != nil {
			if !in.opts.KeepGoing {
				return &jsonl.LineError{File: in.opts.File, Line: line, Err: fmt.Errorf("request id %q: %s: %s", resp.GetId(), codeName(e.GetCode()), e.GetMessage())}
			}
			in.bad.Add(1)
		}
		if err := write(resp); err != nil {
			return err
		}
	}
	if _, err := next(); err != nil { // unreadable lines after the last request
		return err
	}
	return readErr
}
