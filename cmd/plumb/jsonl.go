package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"runtime"
	"sync"

	"fmt"
	"github.com/valyala/fastjson"
	"io"
	"iter"
	"os"
	"time"

	"golang.org/x/term"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/server"
)

// maxLine is the longest JSONL line read (a request may carry 100 000 tokens).
const maxLine = 64 << 20

var (
	unmarshal = protojson.UnmarshalOptions{}
	marshal   = protojson.MarshalOptions{}
	indented  = protojson.MarshalOptions{Multiline: true, Indent: "  "}
)

// lineError is a bad line of an input file.
type lineError struct {
	file string
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.file, e.line, e.err) }

// describe renders an error the same way in-process and through a server: "Code: message".
func describe(err error) string {
	if st, ok := status.FromError(server.Status(err)); ok && st.Code() != 0 {
		return st.Code().String() + ": " + st.Message()
	}
	return err.Error()
}

// input opens a named file, or stdin for "-" or "".
func input(name string, stdin io.Reader) (io.Reader, string, func(), error) {
	if name == "" || name == "-" {
		return stdin, "<stdin>", func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, "", nil, err
	}
	return f, name, func() { f.Close() }, nil
}

// batchLines is how many lines are read before they are decoded together over the cores.
const batchLines = 2048

// lines yields the messages of the non-blank lines of r, decoded into new messages by newMsg,
// in order. Lines are read in batches and each batch is decoded over the machine's cores
// (the fast decoder, protojson for what it does not take). A line that does not decode is
// yielded as a *lineError; with keepGoing it is also reported on stderr and the next line
// follows. Memory is bounded by one batch.
func lines[T proto.Message](r io.Reader, file string, newMsg func() T, in inputOptions, stderr io.Writer, prog *progress) iter.Seq2[T, error] {
	keepGoing := in.keepGoing
	decode := func(p *fastjson.Parser, b []byte, m proto.Message) error { return decodeLine(p, b, m) }
	if in.from == "openai" {
		decode = func(_ *fastjson.Parser, b []byte, m proto.Message) error { return decodeOpenAI(b, m) }
	}
	format := formatName(in.from)
	return func(yield func(T, error) bool) {
		var zero T
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<16), maxLine)
		workers := runtime.GOMAXPROCS(0)
		parsers := make([]fastjson.Parser, workers)
		n := 0
		for {
			var raw [][]byte
			var at []int
			for len(raw) < batchLines && sc.Scan() {
				n++
				if b := sc.Bytes(); len(trimSpace(b)) > 0 {
					raw = append(raw, bytes.Clone(b))
					at = append(at, n)
				}
			}
			msgs := make([]T, len(raw))
			errs := make([]error, len(raw))
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := w; i < len(raw); i += workers {
						msgs[i] = newMsg()
						errs[i] = decode(&parsers[w], raw[i], msgs[i])
					}
				}(w)
			}
			wg.Wait()
			for i, m := range msgs {
				if errs[i] != nil {
					le := &lineError{file: file, line: at[i], err: fmt.Errorf("not a %s %s: %w", m.ProtoReflect().Descriptor().Name(), format, errs[i])}
					if keepGoing {
						fmt.Fprintln(stderr, "plumb:", le, "(skipped)")
						continue
					}
					yield(zero, le)
					return
				}
				prog.tick()
				if !yield(m, nil) {
					return
				}
			}
			if len(raw) < batchLines || len(raw) == 0 {
				break
			}
		}
		if err := sc.Err(); err != nil {
			yield(zero, fmt.Errorf("%s:%d: %w", file, n+1, err))
		}
	}
}

// formatName names an input format in errors.
func formatName(from string) string {
	if from == "openai" {
		return "in the --from openai format"
	}
	return "on one line (JSON Lines, protojson)"
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// inputOptions say how to read an input file.
type inputOptions struct {
	keepGoing bool   // report a bad line and go on
	from      string // "" (plumb's protojson lines) or "openai"
}

func (o *inputOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.keepGoing, "keep-going", false, "report a bad line on stderr and go on, instead of stopping")
	fs.StringVar(&o.from, "from", "", `input format: "" (plumb's protojson lines) or "openai" (raw chat-completions responses per wording; see README)`)
}

func (o *inputOptions) check() error {
	if o.from != "" && o.from != "openai" {
		return fmt.Errorf("--from %q: want openai, or nothing for plumb's own lines", o.from)
	}
	return nil
}

// examplesFrom reads LabeledExamples, numbering errors by file and line.
func examplesFrom(r io.Reader, file string, in inputOptions, stderr io.Writer, prog *progress) iter.Seq2[*plumbv1.LabeledExample, error] {
	return lines(r, file, func() *plumbv1.LabeledExample { return new(plumbv1.LabeledExample) }, in, stderr, prog)
}

// writeLine writes m as one protojson line without white space. (protojson adds spaces at
// random, differently in each build, so that nobody relies on its bytes; plumb's lines are
// the same from every build.)
func writeLine(w *bufio.Writer, m proto.Message) error {
	b, err := marshal.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// progress shows a count on stderr while a long run goes on, on a terminal only.
type progress struct {
	w     io.Writer
	what  string
	n     int
	last  time.Time
	start time.Time
}

func newProgress(stderr io.Writer, what string) *progress {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &progress{w: stderr, what: what, start: time.Now()}
}

func (p *progress) tick() { p.add(1) }

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
		fmt.Fprintf(p.w, "\r%s: %d (%.0f/s)   ", p.what, p.n, rate)
	}
}

func (p *progress) done() {
	if p == nil || p.n < 1000 {
		return
	}
	fmt.Fprintf(p.w, "\r%s: %d in %s          \n", p.what, p.n, time.Since(p.start).Round(time.Millisecond))
}
