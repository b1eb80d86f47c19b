package jsonl

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
)

// MaxLine is the longest line read (a request may carry 100 000 tokens).
const MaxLine = 64 << 20

// bom is the UTF-8 byte-order mark.
var bom = []byte{0xEF, 0xBB, 0xBF}

// chunkSize is the size of the buffers a file is read in.
const chunkSize = 1 << 20

// LineError is a bad line of an input file.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// Input says how to read an input file.
type Input struct {
	File      string // its name, for errors
	Format    Format
	KeepGoing bool // report a bad line (Skip) and go on, instead of stopping
	// Skip is called, on Stream's goroutine and in file order, with each line skipped under
	// KeepGoing.
	Skip func(*LineError)
}

// A Chunk is a run of whole lines of the input, handed to a worker, and what the worker made
// of them: Out, and its bad lines.
type Chunk[T any] struct {
	Out   T
	data  []byte
	first int          // line number of data's first line
	bad   []*LineError // in order (only the first unless KeepGoing)
	done  chan struct{}
}

// Lines calls f with each non-blank line of the chunk (without its line ending) and its
// number. An error f returns is recorded as the line's, and ends the chunk unless in.KeepGoing.
func (c *Chunk[T]) Lines(in *Input, f func(line []byte, n int) error) {
	data, n := c.data, c.first
	for ; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimLeft(line, " \t")) == 0 {
			continue
		}
		if err := f(line, n); err != nil {
			c.bad = append(c.bad, &LineError{File: in.File, Line: n, Err: err})
			if !in.KeepGoing {
				return
			}
		}
	}
}

// InFlight is the number of outputs Stream needs: the chunks it has between the reader and the
// merge at most.
func InFlight() int { return 2*runtime.GOMAXPROCS(0) + 2 }

// Stream runs the lines of r through the machine's cores in chunks of whole lines: a worker
// (each with the state newWorker gives it) fills a chunk's Out, usually by calling its Lines,
// and then merge runs on Stream's goroutine, chunk after chunk in file order. Bad lines stop the
// stream, or under KeepGoing are passed to Skip, in file order too. outs are the outputs the
// chunks cycle through (InFlight of them); merge must leave a chunk's Out ready for reuse. An
// error from merge stops the stream and is returned; so is a failure to read r, naming the
// file.
func Stream[T any](ctx context.Context, r io.Reader, in *Input, outs []T,
	newWorker func() func(c *Chunk[T]), merge func(c *Chunk[T]) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	todo := make(chan *Chunk[T], workers)
	order := make(chan *Chunk[T], max(len(outs)-2, 1))
	free := make(chan T, len(outs))
	bufs := make(chan []byte, len(outs))
	for _, o := range outs {
		free <- o
		bufs <- make([]byte, 0, chunkSize)
	}

	var readErr error
	go func() {
		defer close(todo)
		defer close(order)
		readErr = readChunks(ctx, r, bufs, func(data []byte, first int) bool {
			c := &Chunk[T]{data: data, first: first, done: make(chan struct{})}
			select {
			case c.Out = <-free:
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
			failed = merge(c)
			for _, le := range c.bad {
				if failed != nil {
					break
				}
				if !in.KeepGoing {
					failed = le
					break
				}
				if in.Skip != nil {
					in.Skip(le)
				}
			}
			if failed != nil {
				cancel()
			}
		}
		free <- c.Out // merged (and so ready again) or, after a failure, never used again
		bufs <- c.data[:0]
	}
	if failed != nil {
		return failed
	}
	if readErr != nil {
		return fmt.Errorf("%s: %w", in.File, readErr)
	}
	return ctx.Err()
}

// readChunks reads r in chunks of whole lines into buffers from bufs and hands each to emit
// with the number of its first line, until r ends, emit returns false or ctx is done. A line
// longer than a buffer gets a larger one, up to MaxLine.
func readChunks(ctx context.Context, r io.Reader, bufs chan []byte, emit func([]byte, int) bool) error {
	var carry []byte
	line := 1
	first := true
	for {
		var buf []byte
		select {
		case buf = <-bufs:
		case <-ctx.Done():
			return nil
		}
		for len(carry) >= cap(buf) {
			if cap(buf) >= MaxLine {
				return fmt.Errorf("line %d: longer than %d bytes", line, MaxLine)
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
		if first && (len(buf) >= len(bom) || eof) {
			// A byte-order mark (editors on Windows write one) is not part of the first line.
			first = false
			if bytes.HasPrefix(buf, bom) {
				buf = buf[:copy(buf, buf[len(bom):])]
			}
		}
		cut := len(buf)
		if !eof {
			cut = bytes.LastIndexByte(buf, '\n') + 1
		}
		carry = append(carry[:0], buf[cut:]...)
		if cut > 0 {
			first = false
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
