package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/term"
	"google.golang.org/grpc/codes"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/jsonl"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
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
func openInput(name string, std stdio, format jsonl.Format, f *inputFlags, what string) (*input, func(), error) {
	in := &input{r: std.in, opts: jsonl.Input{File: "<stdin>", Format: format, KeepGoing: f.keepGoing}}
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
		fmt.Fprintln(std.err, "plumb:", le, "(skipped)")
	}
	in.prog = newProgress(std.err, what, f.progress)
	return in, func() { in.prog.done(); closeIn() }, nil
}

// describeIn words an error of a command reading a file: a bad line already names its file
// and line; anything else is described as the server would, after the file's name.
func describeIn(file string, err error) error {
	var le *jsonl.LineError
	if err == nil || errors.As(err, &le) {
		return err
	}
	return fmt.Errorf("%s: %w", file, api.Described(err))
}

// unreadable is the response written under --keep-going for input line n, which does not
// decode.
func unreadable(in *input, n int, err error) *plumbv1.ScoreResponse {
	return &plumbv1.ScoreResponse{Error: &plumbv1.ItemError{Code: int32(codes.InvalidArgument),
		Message: fmt.Sprintf("%s:%d: %v", in.opts.File, n, err)}}
}

// refused words a request the engine refused.
func refused(q *calibrate.Question, err error) error {
	return fmt.Errorf("request id %q: %s", q.ID, api.Describe(err))
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

// labeled yields the labelled examples of in as messages for a server.
func labeled(ctx context.Context, in *input) iter.Seq2[*plumbv1.LabeledExample, error] {
	return messages(ctx, in, true, jsonl.DecodeExample, func(ex *calibrate.Example, _ int) *plumbv1.LabeledExample {
		return api.Labeled(ex)
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

// inputFlags are the flags of the commands that read a file of lines.
type inputFlags struct {
	keepGoing, progress bool
	from                string
}

func (f *inputFlags) register(fs *flagSet) {
	fs.BoolVar(&f.keepGoing, "keep-going", false, "report a bad line on stderr and go on, instead of stopping")
	fs.BoolVar(&f.progress, "progress", false, "report progress on stderr (lines read, a fit's stages) even when it is not a terminal")
	fs.StringVar(&f.from, "from", "", `input format: "" (plumb's protojson lines) or "openai" (raw chat-completions responses per wording; see README)`)
}

// parseEquivalence reads an --equivalence flag: "" (unset), exact, f1 or embedding.
func parseEquivalence(name string) (plumbv1.Equivalence, error) {
	if name == "" {
		return plumbv1.Equivalence_EQUIVALENCE_UNSPECIFIED, nil
	}
	if e, ok := api.ParseEquivalence(name); ok {
		return e, nil
	}
	return 0, usageError("--equivalence %q: want exact, f1 or embedding", name)
}

// codeName names a status code sent as a number.
func codeName(c int32) string { return codes.Code(c).String() }

// openWork opens what score, fit and eval work on: the input file (or stdin) and the backend
// (in this process on a store, or a server). done closes both.
func openWork(std stdio, t *target, file string, f *inputFlags, what string) (in *input, b backend, done func(), err error) {
	format, err := jsonl.ParseFormat(f.from)
	if err != nil {
		return nil, nil, nil, usageError("%v", err)
	}
	in, closeIn, err := openInput(file, std, format, f, what)
	if err != nil {
		return nil, nil, nil, err
	}
	if b, err = t.open(std); err != nil {
		closeIn()
		return nil, nil, nil, err
	}
	return in, b, func() { b.Close(); closeIn() }, nil
}
