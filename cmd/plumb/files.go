package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
	"google.golang.org/grpc/codes"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/jsonl"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
)

// Every command that reads a file of requests or labelled examples runs it through
// jsonl.Stream: chunks of whole lines decoded over all cores, straight into the engine's types,
// and merged in file order. In-process, the workers also score (score, eval); with --server,
// they convert to messages that the merge sends in order.

// input is a command's input file and how to read it.
type input struct {
	r    io.Reader
	opts jsonl.Input
	prog *progress
	// bad counts the lines that --keep-going went past: skipped, or answered with an error.
	bad atomic.Int64
}

// finish returns err, or, when the command succeeded but went past bad lines under
// --keep-going, errSkipped (exit status 2).
func (in *input) finish(err error) error {
	if n := in.bad.Load(); err == nil && n > 0 {
		return errSkipped{int(n)}
	}
	return err
}

// output is where score writes its lines.
type output struct {
	w *bufio.Writer
	// profile is the profile of requests that name none (--profile).
	profile string
}

// openInput opens a named file, or stdin for "-" or "", for a command whose bad lines are
// reported on stderr under --keep-going and whose progress is shown per f.
func openInput(name string, io ios, format jsonl.Format, f *inputFlags, what string) (*input, func(), error) {
	in := &input{r: io.in, opts: jsonl.Input{File: "<stdin>", Format: format, KeepGoing: f.keepGoing}}
	closeIn := func() {}
	if name != "" && name != "-" {
		file, err := os.Open(name)
		if err != nil {
			return nil, nil, err
		}
		if st, err := file.Stat(); err == nil && st.IsDir() {
			file.Close()
			return nil, nil, fmt.Errorf("%s is a directory: want a JSON Lines file", name)
		}
		in.r, in.opts.File, closeIn = file, name, func() { file.Close() }
	}
	in.opts.Skip = func(le *jsonl.LineError) {
		in.bad.Add(1)
		fmt.Fprintln(io.err, "plumb:", le, "(skipped)")
	}
	in.prog = newProgress(io.err, what, f.progress)
	return in, func() { in.prog.done(); closeIn() }, nil
}

// describeIn words an error of a command reading a file: a bad line already names its file
// and line; anything else is described as the server would, after the file's name.
func describeIn(file string, err error) error {
	var le *jsonl.LineError
	if err == nil || errors.As(err, &le) {
		return err
	}
	return &described{text: file + ": " + service.Describe(err), err: err}
}

// described is an error worded for the user that keeps the error it words, so that a caller
// can still tell a cancellation from a failure.
type described struct {
	text string
	err  error
}

func (d *described) Error() string { return d.text }

func (d *described) Unwrap() error { return d.err }

// unreadable is the response written under --keep-going for input line n, which does not
// decode.
func unreadable(in *input, n int, err error) *plumbv1.ScoreResponse {
	return &plumbv1.ScoreResponse{Error: &plumbv1.ItemError{Code: int32(codes.InvalidArgument),
		Message: fmt.Sprintf("%s:%d: %v", in.opts.File, n, err)}}
}

// refused words a request the engine refused.
func refused(q *calibrate.Question, err error) error {
	return fmt.Errorf("request id %q: %s", q.ID, service.Describe(err))
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
				resp, err := l.svc.ScoreQuestion(ctx, &q)
				if err != nil {
					if !in.opts.KeepGoing {
						return refused(&q, err)
					}
					in.bad.Add(1)
					resp = &plumbv1.ScoreResponse{Id: q.ID, Error: service.ItemError(err)}
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

func (l *local) evaluate(ctx context.Context, in *input, cfg *plumbv1.EvaluateConfig) (*plumbv1.Report, error) {
	ev, err := l.svc.NewEvaluation(ctx, cfg)
	if err != nil {
		return nil, describeIn(in.opts.File, err)
	}
	shards := make([]*calibrate.Shard, jsonl.InFlight())
	for i := range shards {
		shards[i] = ev.NewShard()
	}
	err = jsonl.Stream(ctx, in.r, &in.opts, shards, func() func(*jsonl.Chunk[*calibrate.Shard]) {
		d := jsonl.Decoder{Lean: true}
		var ex calibrate.Example
		return func(c *jsonl.Chunk[*calibrate.Shard]) {
			c.Lines(&in.opts, func(line []byte, _ int) error {
				if err := jsonl.DecodeExample(&d, line, &ex, in.opts.Format); err != nil {
					return err
				}
				if err := c.Out.AddContext(ctx, &ex); err != nil {
					return errors.New(service.Describe(err))
				}
				return nil
			})
		}
	}, func(c *jsonl.Chunk[*calibrate.Shard]) error {
		in.prog.add(c.Out.Len())
		return ev.Merge(c.Out)
	})
	if err != nil {
		return nil, describeIn(in.opts.File, err)
	}
	rep, err := ev.Report()
	return rep, describeIn(in.opts.File, err)
}

func (l *local) fit(ctx context.Context, in *input, cfg *plumbv1.FitConfig) (*plumbv1.FitResponse, error) {
	f, err := l.svc.NewFitting(ctx, cfg, in.prog.stage)
	if err != nil {
		return nil, describeIn(in.opts.File, err)
	}
	shards := make([]*calibrate.FitShard, jsonl.InFlight())
	for i := range shards {
		shards[i] = f.NewShard()
	}
	// Each line is checked and, for options, compacted by the workers, so a refused example is
	// named by its file and line; the shards are merged in file order.
	err = jsonl.Stream(ctx, in.r, &in.opts, shards, func() func(*jsonl.Chunk[*calibrate.FitShard]) {
		d := jsonl.Decoder{Lean: true}
		ex := new(calibrate.Example)
		return func(c *jsonl.Chunk[*calibrate.FitShard]) {
			c.Lines(&in.opts, func(line []byte, _ int) error {
				if err := jsonl.DecodeExample(&d, line, ex, in.opts.Format); err != nil {
					return err
				}
				if err := c.Out.Add(ctx, ex); err != nil {
					return errors.New(service.Describe(err))
				}
				if len(ex.Question.Paraphrases[0].Samples) > 0 {
					ex = new(calibrate.Example) // the fit keeps a samples example
				}
				return nil
			})
		}
	}, func(c *jsonl.Chunk[*calibrate.FitShard]) error {
		in.prog.add(c.Out.Len())
		return f.Merge(c.Out)
	})
	in.prog.done()
	if err != nil {
		return nil, describeIn(in.opts.File, err)
	}
	resp, err := f.Run(ctx)
	return resp, describeIn(in.opts.File, err)
}

// messages yields the lines of in as messages, in file order: each line decoded into the
// engine's types by decode and converted by convert. A bad line ends the sequence with its
// error; under --keep-going it is reported and skipped, or, when bad is not nil, yields what
// bad makes of it.
func messages[T, M any](ctx context.Context, in *input, lean bool,
	decode func(*jsonl.Decoder, []byte, *T, jsonl.Format) error, convert func(*T, int) M, bad func(n int, err error) M) iter.Seq2[M, error] {
	return func(yield func(M, error) bool) {
		stop := errors.New("stop")
		err := jsonl.Stream(ctx, in.r, &in.opts, make([][]M, jsonl.InFlight()), func() func(*jsonl.Chunk[[]M]) {
			d := jsonl.Decoder{Lean: lean}
			return func(c *jsonl.Chunk[[]M]) {
				c.Out = c.Out[:0]
				c.Lines(&in.opts, func(line []byte, n int) error {
					// A value of its own for each line: the message convert makes shares its
					// slices (labels, tokens, embeddings), and is marshalled on another goroutine
					// while later lines are decoded.
					var v T
					if err := decode(&d, line, &v, in.opts.Format); err != nil {
						if bad != nil && in.opts.KeepGoing {
							c.Out = append(c.Out, bad(n, err))
						}
						return err
					}
					c.Out = append(c.Out, convert(&v, n))
					return nil
				})
			}
		}, func(c *jsonl.Chunk[[]M]) error {
			in.prog.add(len(c.Out))
			for _, m := range c.Out {
				if !yield(m, nil) {
					return stop
				}
			}
			clear(c.Out)
			return nil
		})
		if err != nil && err != stop {
			var zero M
			yield(zero, err)
		}
	}
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
			return sent{req: service.RequestFrom(q), line: n}
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
			return fmt.Errorf("%s: %s", in.opts.File, service.Describe(err))
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

func (r *remote) evaluate(ctx context.Context, in *input, cfg *plumbv1.EvaluateConfig) (*plumbv1.Report, error) {
	rep, err := r.c.Evaluate(ctx, cfg, labeled(ctx, in))
	return rep, describeIn(in.opts.File, err)
}

func (r *remote) fit(ctx context.Context, in *input, cfg *plumbv1.FitConfig) (*plumbv1.FitResponse, error) {
	resp, err := r.c.Fit(ctx, cfg, labeled(ctx, in))
	return resp, describeIn(in.opts.File, err)
}

// labeled yields the labelled examples of in as messages for a server.
func labeled(ctx context.Context, in *input) iter.Seq2[*plumbv1.LabeledExample, error] {
	return messages(ctx, in, true, jsonl.DecodeExample, func(ex *calibrate.Example, _ int) *plumbv1.LabeledExample {
		return service.LabeledFrom(ex)
	}, nil)
}

// progress shows on stderr how a long run goes: a count of lines, and the stages of a fit. It
// shows them on a terminal, or anywhere with --progress; a nil *progress shows nothing.
type progress struct {
	w     io.Writer
	what  string
	tty   bool // rewrite the count in place
	n     int
	last  time.Time
	start time.Time
}

func newProgress(stderr io.Writer, what string, force bool) *progress {
	f, ok := stderr.(*os.File)
	tty := ok && term.IsTerminal(int(f.Fd()))
	if !tty && !force {
		return nil
	}
	return &progress{w: stderr, what: what, tty: tty, start: time.Now()}
}

// stage says a stage of a fit begins.
func (p *progress) stage(name string) {
	if p == nil {
		return
	}
	p.done()
	fmt.Fprintf(p.w, "plumb fit: %s\n", name)
}

// lines counts the lines of b.
func (p *progress) lines(b []byte) {
	if p == nil {
		return
	}
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	p.add(n)
}

// add counts n more.
func (p *progress) add(n int) {
	if p == nil || n == 0 {
		return
	}
	before := p.n
	p.n += n
	if p.n/1000 == before/1000 {
		return
	}
	if now := time.Now(); now.Sub(p.last) > 200*time.Millisecond {
		p.last = now
		rate := float64(p.n) / now.Sub(p.start).Seconds()
		if p.tty {
			fmt.Fprintf(p.w, "\r%s: %d (%.0f/s)   ", p.what, p.n, rate)
		} else {
			fmt.Fprintf(p.w, "%s: %d (%.0f/s)\n", p.what, p.n, rate)
		}
	}
}

// done ends the count (once), with its total.
func (p *progress) done() {
	if p == nil || p.start.IsZero() {
		return
	}
	if p.n >= 1000 || !p.tty {
		fmt.Fprintf(p.w, "\r%s: %d in %s          \n", p.what, p.n, time.Since(p.start).Round(time.Millisecond))
	}
	p.start = time.Time{}
}
