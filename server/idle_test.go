package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/plumbhq/plumb/client"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

func requestOf(body string) *plumbv1.ScoreRequest {
	var r plumbv1.ScoreRequest
	if err := protojson.Unmarshal([]byte(body), &r); err != nil {
		panic(err)
	}
	return &r
}

// TestIdleConnectionsFromOneAddress: one address (127.0.0.2) opens 300 connections to each
// port and sends nothing — the attack that held every slot of the connection cap. Its
// connections past --max-connections-per-address are closed at once, and a good caller from
// another address (127.0.0.1) gets ≥ 90 % of its probes through on gRPC and on HTTP. The cap
// here is 120 connections, 30 per address, so that the attack would fill it 2.5 times over.
func TestIdleConnectionsFromOneAddress(t *testing.T) {
	h := start(t, Config{MaxConnections: 120, MaxConnectionsPerAddress: 30}, nil)
	grpcAddr := h.addr
	httpAddr := strings.TrimPrefix(h.http, "http://")
	attacker := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: time.Second}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for _, addr := range []string{grpcAddr, httpAddr} {
		for range 300 {
			c, err := attacker.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("dial from 127.0.0.2: %v", err)
			}
			held = append(held, c)
		}
	}
	// The server closes what is past the cap: count the attacker's connections still open.
	time.Sleep(200 * time.Millisecond)
	open := 0
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && os.IsTimeout(err) {
			open++
		}
	}
	if open > 2*30 {
		t.Errorf("%d of the attacker's 600 connections stayed open, want ≤ 60 (30 a port)", open)
	}

	if good := probe(t, h, 25); good < 23 {
		t.Errorf("the good caller got %d of 25 probes through on both ports, want ≥ 23", good)
	}
}

// probe makes n probes of a good caller from 127.0.0.1, each a Score over gRPC and one over
// HTTP on a fresh connection with a 3 s deadline, and returns how many got through on both.
func probe(t *testing.T, h *harness, n int) int {
	t.Helper()
	grpcAddr := h.addr
	body := `{"paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.8}]}]}`
	good := 0
	for range n {
		// A fresh connection each probe, as a new caller would make.
		c, err := client.Dial(grpcAddr, &client.Options{})
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err = c.Score(ctx, requestOf(body))
			cancel()
			c.Close()
		}
		hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, herr := hc.Post(h.http+"/plumb.v1.ConfidenceService/Score", "application/json", strings.NewReader(body))
		if herr == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				herr = os.ErrInvalid
			}
		}
		if err == nil && herr == nil {
			good++
		}
	}
	return good
}

// TestIdleConnectionsFromManyAddresses: ten addresses (127.0.0.2–11), each within its
// per-address cap of 30, open 300 connections to each port — 2.5 times the cap of 120 — half of
// them idle, half sending HTTP headers and one byte of a 1 000-byte body (gRPC: the HTTP/2
// preface and nothing more). At the cap the server closes the longest idle connection for a
// new one, and ends the trickled bodies after --receive-timeout (1 s here), so that a good caller
// from 127.0.0.1 gets ≥ 90 % of its probes through on both ports. Without the shedding, the 120
// slots stay held and the probes wait in the backlog past their deadline.
func TestIdleConnectionsFromManyAddresses(t *testing.T) {
	h := start(t, Config{MaxConnections: 120, MaxConnectionsPerAddress: 30, ReceiveTimeout: time.Second}, nil)
	httpAddr := strings.TrimPrefix(h.http, "http://")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for a := range 10 {
		attacker := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+a))}, Timeout: 500 * time.Millisecond}
		for i := range 30 {
			for _, addr := range []string{h.addr, httpAddr} {
				wg.Go(func() {
					// Past the cap, a dial waits in the backlog and may time out: that is the
					// attack being held off, not a failure of the test.
					c, err := attacker.Dial("tcp", addr)
					if err != nil {
						return
					}
					mu.Lock()
					held = append(held, c)
					mu.Unlock()
					if i%2 == 1 {
						if addr == httpAddr {
							fmt.Fprintf(c, "POST /plumb.v1.ConfidenceService/Score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
						} else {
							c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
						}
					}
				})
			}
		}
	}
	wg.Wait()
	time.Sleep(1500 * time.Millisecond) // past shedIdle and the receive timeout
	if good := probe(t, h, 25); good < 23 {
		t.Errorf("the good caller got %d of 25 probes through on both ports, want ≥ 23", good)
	}
	l := h.srv.lis.Load()
	l.mu.Lock()
	shed := l.idleShed
	l.mu.Unlock()
	if shed == 0 {
		t.Error("no idle gRPC connection was shed at the cap")
	}
}

// TestTrickledBody: an HTTP body that sends nothing for --receive-timeout ends its call (504,
// the timeout named) and its connection (the reader waits up to 10 s for them); a body that keeps coming, a byte every 300 ms over
// 2.4 s — longer than the timeout in all — is served.
func TestTrickledBody(t *testing.T) {
	h := start(t, Config{ReceiveTimeout: time.Second}, nil)
	addr := strings.TrimPrefix(h.http, "http://")
	body := `{"paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.8}]}]}`
	send := func(gap time.Duration, parts int) (string, time.Duration) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		began := time.Now()
		fmt.Fprintf(c, "POST /plumb.v1.ConfidenceService/Score HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
		step := len(body) / parts
		for i := range parts {
			end := (i + 1) * step
			if i == parts-1 {
				end = len(body)
			}
			if gap < 0 && i == 1 {
				break // stop sending after the first part
			}
			c.Write([]byte(body[i*step : end]))
			time.Sleep(max(gap, 0))
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(c, 4096))
		return string(b), time.Since(began)
	}
	if out, took := send(-1, 4); !strings.HasPrefix(out, "HTTP/1.1 504") || !strings.Contains(out, "--receive-timeout") || !strings.Contains(out, "Connection: close") {
		t.Errorf("a body that stopped: answered %q after %.1f s; want 504, the receive timeout named, the connection closed", out, took.Seconds())
	}
	if out, _ := send(300*time.Millisecond, 8); !strings.HasPrefix(out, "HTTP/1.1 200 OK") {
		t.Errorf("a body that kept coming was answered %q, want 200", firstLine(out))
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}
