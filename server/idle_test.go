package server

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
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

	body := `{"paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.8}]}]}`
	good := 0
	for range 25 {
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
	if good < 23 {
		t.Errorf("the good caller got %d of 25 probes through on both ports, want ≥ 23", good)
	}
}
