package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestGzipBomb: a gzip body that inflates to 256 MiB, against a 1 MiB message limit, is refused
// by the decompressor at the limit (its message says so), not after inflating all of it (whose
// message, connect-go's, names the whole inflated size); a small gzip request is answered.
func TestGzipBomb(t *testing.T) {
	h := start(t, Config{MaxMessageBytes: 1 << 20}, nil)
	gzipped := func(body io.Reader) []byte {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		io.Copy(zw, body)
		zw.Close()
		return b.Bytes()
	}
	send := func(body []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, h.http+"/plumb.v1.ConfidenceService/Score", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	bomb := gzipped(io.LimitReader(zeros{}, 256<<20))
	t.Logf("the bomb: %d bytes of gzip", len(bomb))
	code, msg := send(bomb)
	if code != http.StatusTooManyRequests || !strings.Contains(msg, "inflates past the limit of 1048576 bytes") {
		t.Errorf("the bomb: HTTP %d %s", code, msg)
	}
	code, msg = send(gzipped(strings.NewReader(`{"paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.8}]}]}`)))
	if code != http.StatusOK || !strings.Contains(msg, `"answer":"A"`) {
		t.Errorf("a small gzip request: HTTP %d %s", code, msg)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
