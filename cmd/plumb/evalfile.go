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

// chunk is a run of whole lines of the input.
type chunk struct {
	data  []byte
	first int // line number of data's first line
	shard *calibrate.Shard
	errs  []*lineError // bad lines, in order (only the first unless --keep-going)
	done  chan struct{}
}

// evaluateFile reports profile p on the labelled examples of r.
func evaluateFile(ctx context.Context, p *calibrate.Profile, r io.Reader, file string, in inputOptions, stderr io.Writer, prog *progress) (*calibrate.Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ev := calibrate.NewEvaluator(p)
	workers := runtime.GOMAXPROCS(0)
	todo := make(chan *chunk, workers)
	order := make(chan *chunk, 2*workers)
	// Every chunk between the reader and the merge holds a shard and a buffer: at most
	// cap(order) queued, one being merged and one the reader holds.
	spare := cap(order) + 2
	shards := make(chan *calibrate.Shard, spare)
	bufs := make(chan []byte, spare)
	for range spare {
		shards <- ev.NewShard()
		bufs <- make([]byte, 0, evalChunk)
	}

	var readErr error
	go func() {
		defer close(todo)
		defer close(order)
		readErr = readChunks(ctx, r, bufs, func(data []byte, first int) bool {
			c := &chunk{data: data, first: first, done: make(chan struct{})}
			select {
			case c.shard = <-shards:
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
	for range workers {
		go func() {
			var d jsonl.Decoder
			d.Lean = true
			var ex calibrate.Example
			for c := range todo {
				if ctx.Err() == nil {
					evalLines(c, &d, &ex, file, in)
				}
				close(c.done)
			}
		}()
	}

	var failed error
	for c := range order {
		<-c.done
		if failed == nil {
			if err := ev.Merge(c.shard); err != nil {
				failed = fmt.Errorf("%s:%d: %s", file, c.first, describe(err))
			}
			prog.add(c.shard.Len())
			for _, le := range c.errs {
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
		shards <- c.shard // merged (and so emptied) or, after a failure, never used again
		bufs <- c.data[:0]
	}
	if failed != nil {
		return nil, failed
	}
	if readErr != nil {
		return nil, fmt.Errorf("%s: %w", file, readErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ev.Len() == 0 {
		return nil, &calibrate.Error{Kind: calibrate.Precondition, Field: "examples", Msg: "no examples"}
	}
	return ev.Report(), nil
}

// evalLines decodes and scores the lines of c into c.shard.
func evalLines(c *chunk, d *jsonl.Decoder, ex *calibrate.Example, file string, in inputOptions) {
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
		err := decodeExample(d, line, ex, in.from)
		if err != nil {
			err = fmt.Errorf("not a LabeledExample %s: %w", formatName(in.from), err)
		} else if err = c.shard.Add(ex); err != nil {
			err = errors.New(describe(err))
		}
		if err != nil {
			c.errs = append(c.errs, &lineError{file: file, line: n, err: err})
			if !in.keepGoing {
				return
			}
		}
	}
}

// decodeExample decodes one line into ex: the fast decoder, else protojson (or the OpenAI
// shape with --from openai).
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
		return err
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
