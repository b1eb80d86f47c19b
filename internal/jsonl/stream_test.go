package jsonl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// numbered collects each line's number and text, as a worker would decode them; a line that
// reads "bad" is refused.
func numbered(t *testing.T, text string, keepGoing bool) (got []string, skipped []int, err error) {
	t.Helper()
	in := &Input{File: "f.jsonl", KeepGoing: keepGoing, Skip: func(le *LineError) { skipped = append(skipped, le.Line) }}
	err = Stream(context.Background(), strings.NewReader(text), in, make([][]string, InFlight()), func() func(*Chunk[[]string]) {
		return func(c *Chunk[[]string]) {
			c.Out = c.Out[:0]
			c.Lines(in, func(line []byte, n int) error {
				if string(line) == "bad" {
					return errors.New("refused")
				}
				c.Out = append(c.Out, strconv.Itoa(n)+":"+string(line))
				return nil
			})
		}
	}, func(c *Chunk[[]string]) error {
		got = append(got, c.Out...)
		return nil
	})
	return got, skipped, err
}

// TestStreamLines: lines come out in file order with their numbers; blank lines are skipped,
// CRLF endings and a last line without a newline taken, a line longer than a chunk read whole.
func TestStreamLines(t *testing.T) {
	long := strings.Repeat("x", 3*chunkSize+17)
	text := "a\n\n  \t\nb\r\n" + long + "\nc"
	got, _, err := numbered(t, text, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1:a", "4:b", "5:" + long, "6:c"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %d lines %.40q…, want %d", len(got), got, len(want))
	}
}

// TestStreamBadLines: over a file of many chunks, a bad line near the start stops the stream
// with its file and line (and every goroutine winds down: a deadlock would hang the test); under
// KeepGoing every bad line is skipped, in order, and the rest come through.
func TestStreamBadLines(t *testing.T) {
	var b bytes.Buffer
	bad := map[int]bool{100: true, 40000: true, 79990: true}
	for n := 1; n <= 80000; n++ {
		if bad[n] {
			b.WriteString("bad\n")
		} else {
			fmt.Fprintf(&b, "line %d with some words to fill the chunks\n", n)
		}
	}
	if b.Len() < 3*chunkSize {
		t.Fatalf("%d bytes: want several chunks", b.Len())
	}
	_, _, err := numbered(t, b.String(), false)
	var le *LineError
	if !errors.As(err, &le) || le.Line != 100 || !strings.HasPrefix(err.Error(), "f.jsonl:100: refused") {
		t.Fatalf("got %v, want f.jsonl:100", err)
	}
	got, skipped, err := numbered(t, b.String(), true)
	if err != nil || len(got) != 80000-3 || fmt.Sprint(skipped) != "[100 40000 79990]" {
		t.Fatalf("KeepGoing: %v, %d lines, skipped %v", err, len(got), skipped)
	}
	for i, s := range got[:5] {
		if !strings.HasPrefix(s, strconv.Itoa(i+1)+":line "+strconv.Itoa(i+1)+" ") {
			t.Fatalf("line %d out of order: %q", i+1, s)
		}
	}
}

// TestStreamMergeError: an error from merge stops the stream and comes back as it is.
func TestStreamMergeError(t *testing.T) {
	stop := errors.New("full")
	in := &Input{File: "f"}
	err := Stream(context.Background(), strings.NewReader(strings.Repeat("line\n", 1<<18)), in, make([]int, InFlight()),
		func() func(*Chunk[int]) {
			return func(c *Chunk[int]) { c.Lines(in, func([]byte, int) error { return nil }) }
		},
		func(*Chunk[int]) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("got %v, want the merge's error", err)
	}
}

// TestStreamByteOrderMark: a UTF-8 byte-order mark before the first line is dropped, also when
// the reader hands it over a byte at a time; one elsewhere is left to the decoder.
func TestStreamByteOrderMark(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"before the first line", "\uFEFFa\nb\n", []string{"1:a", "2:b"}},
		{"a file of the mark alone", "\uFEFF", nil},
		{"a short first line", "\uFEFFa", []string{"1:a"}},
		{"on the second line", "a\n\uFEFFb\n", []string{"1:a", "2:\uFEFFb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				var got []string
				in := &Input{File: "f.jsonl"}
				var r io.Reader = strings.NewReader(tc.text)
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				err := Stream(context.Background(), r, in, make([][]string, InFlight()), func() func(*Chunk[[]string]) {
					return func(c *Chunk[[]string]) {
						c.Out = c.Out[:0]
						c.Lines(in, func(line []byte, n int) error {
							c.Out = append(c.Out, strconv.Itoa(n)+":"+string(line))
							return nil
						})
					}
				}, func(c *Chunk[[]string]) error {
					got = append(got, c.Out...)
					return nil
				})
				if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("one byte at a time %v: %q, %v; want %q", oneByte, got, err, tc.want)
				}
			}
		})
	}
}
