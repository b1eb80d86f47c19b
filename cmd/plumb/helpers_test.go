package main

import (
	"bufio"
	"regexp"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/internal/jsonl"
)

func protoUnmarshal(b []byte, m proto.Message) error { return proto.Unmarshal(b, m) }

func protoMarshal(m proto.Message) ([]byte, error) { return proto.Marshal(m) }

// writeMessage writes m as one line, as plumb simulate writes its lines.
func writeMessage(w *bufio.Writer, m proto.Message) error {
	b, err := jsonl.AppendMessage(nil, m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// syncBuffer is a bytes.Buffer safe to write from a subprocess's copier and read from the test.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

var servingRE = regexp.MustCompile(`serving on (\S+)`)

// waitAddr waits for `plumb serve` to report its address.
func waitAddr(t *testing.T, b *syncBuffer) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingRE.FindStringSubmatch(b.String()); m != nil {
			return m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("plumb serve did not report its address: %s", b.String())
	return ""
}
