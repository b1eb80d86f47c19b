package server

import (
	"compress/gzip"
	"fmt"
	"io"

	"connectrpc.com/connect"
)

// limitedGzip is the HTTP front end's gzip decompressor: it stops with ResourceExhausted at the
// first byte past the message limit, so a small compressed body cannot make the server inflate
// (and spend CPU on) a gigabyte before connect-go's own size check sees it.
type limitedGzip struct {
	gz    *gzip.Reader
	limit int64
	read  int64
}

func newLimitedGzip(limit int) func() connect.Decompressor {
	return func() connect.Decompressor { return &limitedGzip{limit: int64(limit)} }
}

func (l *limitedGzip) Read(p []byte) (int, error) {
	if l.gz == nil {
		return 0, io.ErrUnexpectedEOF
	}
	if room := l.limit + 1 - l.read; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.gz.Read(p)
	l.read += int64(n)
	if l.read > l.limit {
		return n, connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("message inflates past the limit of %d bytes (--max-message-bytes)", l.limit))
	}
	return n, err
}

func (l *limitedGzip) Reset(r io.Reader) error {
	l.read = 0
	if l.gz == nil {
		gz, err := gzip.NewReader(r)
		l.gz = gz
		return err
	}
	return l.gz.Reset(r)
}

func (l *limitedGzip) Close() error {
	if l.gz == nil {
		return nil
	}
	return l.gz.Close()
}
