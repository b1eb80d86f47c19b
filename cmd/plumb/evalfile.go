package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/jsonl"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/server"
)

// In-process plumb eval streams the file through all cores: a reader cuts it into chunks of
// whole lines, each worker decodes a chunk's lines straight into the engine's types (package
// jsonl; protojson for lines outside its subset) and scores them into its own
// calibrate.Shard, and the chunks are merged into the Evaluator in file order, so the report
// is the one calibrate.Evaluate gives on the same examples. Memory is the chunks in flight
// plus the Evaluator's two records per question.

// evalChunk is the size of the chunks the file is read in.
const evalChunk = 1 << 20

// chunk is a run of whole lines of the input and what a worker made of them.
type chunk[T any] struct {
	data  []byte
	first int // line number of data's first line
	out   T
	errs  []*lineError // bad lines, in order (only the first unless --keep-going)
	done  chan struct{}
}

// streamLines runs the lines of r through the cores in chunks: for every chunk, a worker (each
// with the state newWorker gives it) fills the chunk's out and bad lines, and then merge runs
// on the caller's goroutine, chunk after chunk in file order. Bad lines are reported on stderr
// (--keep-going) or stop the run, in file order too. outs are the chunk outputs to cycle
// through (one per chunk in flight, inFlight()); merge leaves a chunk's out ready for reuse.
func streamLines[T any](ctx context.Context, r io.Reader, file string, in inputOptions, stderr io.Writer, outs []T,
	newWorker func() func(c *chunk[T]), merge func(c *chunk[T]) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	todo := make(chan *chunk[T], runtime.GOMAXPROCS(0))
	order := make(chan *chunk[T], len(outs)-2)
	free := make(chan T, len(outs))
	bufs := make(chan []byte, len(outs))
	for _, o := range outs {
		free <- o
		bufs <- make([]byte, 0, evalChunk)
	}

	var readErr error
	go func() {
		defer close(todo)
		defer close(order)
		readErr = readChunks(ctx, r, bufs, func(data []byte, first int) bool {
			c := &chunk[T]{data: data, first: first, done: make(chan struct{})}
			select {
			case c.out = <-free:
			case <-ctx.Done():
				return false
			}
			select {
			case order <- c:
			case <-ctx.Done():
				return false
			}
			todo <- c // workers drain todo until it is closed
			return true
		})
	}()
	for range cap(todo) {
		go func() {
			work := newWorker()
			for c := range todo {
				if ctx.Err() == nil {
					work(c)
				}
				close(c.done)
			}
		}()
	}

	var failed error
	for c := range order {
		<-c.done
		if failed == nil {
			if err := merge(c); err != nil {
				failed = err
			}
			for _, le := range c.errs {
				if failed != nil {
					break
				}
				if !in.keepGoing {
					failed = le
					break
				}
				fmt.Fprintln(stderr, "plumb:", le, "(skipped)")
			}
			if failed != nil {
				cancel()
			}
		}
		free <- c.out // merged (and so ready again) or, after a failure, never used again
		bufs <- c.data[:0]
	}
	if failed != nil {
		return failed
	}
	if readErr != nil {
		return fmt.Errorf("%s: %w", file, readErr)
	}
	return ctx.Err()
}

// inFlight is how many chunks streamLines has between the reader and the merge at most.
func inFlight() int { return 2*runtime.GOMAXPROCS(0) + 2 }

// eachLine calls f with each non-blank line of c and its number; a returned error is recorded
// as the line's, and ends the chunk unless --keep-going.
func eachLine[T any](c *chunk[T], file string, in inputOptions, f func(line []byte) error) {
	data, n := c.data, c.first
	for ; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(trimSpace(line)) == 0 {
			continue
		}
		if err := f(line); err != nil {
			c.errs = append(c.errs, &lineError{file: file, line: n, err: err})
			if !in.keepGoing {
				return
			}
		}
	}
}

// evaluateFile reports profile p on the labelled examples of r: each worker decodes a chunk's
// lines and scores them into a calibrate.Shard, merged into one Evaluator in file order.
func evaluateFile(ctx context.Context, p *calibrate.Profile, r io.Reader, file string, in inputOptions, stderr io.Writer, prog *progress) (*calibrate.Report, error) {
	ev := calibrate.NewEvaluator(p)
	shards := make([]*calibrate.Shard, inFlight())
	for i := range shards {
		shards[i] = ev.NewShard()
	}
	err := streamLines(ctx, r, file, in, stderr, shards, func() func(*chunk[*calibrate.Shard]) {
		d := jsonl.Decoder{Lean: true}
		var ex calibrate.Example
		return func(c *chunk[*calibrate.Shard]) {
			eachLine(c, file, in, func(line []byte) error {
				if err := decodeExample(&d, line, &ex, in.from); err != nil {
					return err
				}
				if err := c.out.Add(&ex); err != nil {
					return errors.New(describe(err))
				}
				return nil
			})
		}
	}, func(c *chunk[*calibrate.Shard]) error {
		prog.add(c.out.Len())
		if err := ev.Merge(c.out); err != nil {
			return &lineError{file: file, line: c.first, err: errors.New(describe(err))}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if ev.Len() == 0 {
		return nil, &calibrate.Error{Kind: calibrate.Precondition, Field: "examples", Msg: "no examples"}
	}
	return ev.Report(), nil
}

// readExamples decodes the labelled examples of r over all cores, in file order: what an
// in-process fit needs in memory, without protobuf messages on the way.
func readExamples(ctx context.Context, r io.Reader, file string, in inputOptions, stderr io.Writer, prog *progress) ([]calibrate.Example, error) {
	var all []calibrate.Example
	err := streamLines(ctx, r, file, in, stderr, make([][]calibrate.Example, inFlight()), func() func(*chunk[[]calibrate.Example]) {
		d := jsonl.Decoder{Lean: true}
		return func(c *chunk[[]calibrate.Example]) {
			eachLine(c, file, in, func(line []byte) error {
				var ex calibrate.Example // its own memory: the fit keeps it
				if err := decodeExample(&d, line, &ex, in.from); err != nil {
					return err
				}
				c.out = append(c.out, ex)
				return nil
			})
		}
	}, func(c *chunk[[]calibrate.Example]) error {
		prog.add(len(c.out))
		all = append(all, c.out...)
		clear(c.out)
		c.out = c.out[:0]
		return nil
	})
	return all, err
}

// decodeExample decodes one line into ex: the fast decoder, else protojson (or the OpenAI
// shape with --from openai), whose error names the format the line is not in.
func decodeExample(d *jsonl.Decoder, line []byte, ex *calibrate.Example, from string) error {
	if from != "openai" && d.Example(line, ex) == nil {
		return nil
	}
	m := new(plumbv1.LabeledExample) // only here: on the fast path nothing is allocated
	decode := unmarshal.Unmarshal
	if from == "openai" {
		decode = decodeOpenAI
	}
	if err := decode(line, m); err != nil {
		return fmt.Errorf("not a LabeledExample %s: %w", formatName(from), err)
	}
	*ex = server.ExampleFrom(m)
	return nil
}

// readChunks reads r in chunks of whole lines into buffers from bufs and hands each to emit
// with the number of its first line, until r ends, emit returns false or ctx is done. A line
// longer than a buffer gets a larger one, up to maxLine.
func readChunks(ctx context.Context, r io.Reader, bufs chan []byte, emit func([]byte, int) bool) error {
	var carry []byte
	line := 1
	for {
		var buf []byte
		select {
		case buf = <-bufs:
		case <-ctx.Done():
			return nil
		}
		for len(carry) >= cap(buf) {
			if cap(buf) >= maxLine {
				return fmt.Errorf("line %d: longer than %d bytes", line, maxLine)
			}
			buf = make([]byte, 0, 2*cap(buf))
		}
		buf = append(buf[:0], carry...)
		eof := false
		for len(buf) < cap(buf) {
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				return err
			}
		}
		cut := len(buf)
		if !eof {
			cut = bytes.LastIndexByte(buf, '\n') + 1
		}
		carry = append(carry[:0], buf[cut:]...)
		if cut > 0 {
			if !emit(buf[:cut], line) {
				return nil
			}
			line += bytes.Count(buf[:cut], []byte{'\n'})
		} else {
			bufs <- buf // the whole buffer is one unfinished line: retry with a larger one
		}
		if eof {
			return nil
		}
	}
}
