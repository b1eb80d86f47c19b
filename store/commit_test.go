package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/plumbhq/plumb/internal/testenv"
	"github.com/plumbhq/plumb/store"
)

// stallingProxy forwards TCP to PostgreSQL; once armed, the first client message that holds
// "commit" goes through and the database's replies after it are held back: the COMMIT happens,
// its answer never arrives.
type stallingProxy struct {
	ln    net.Listener
	armed atomic.Bool
}

func newStallingProxy(t *testing.T, target string) *stallingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallingProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			var stalled atomic.Bool
			go func() { // client → database
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if p.armed.Load() && bytes.Contains(bytes.ToLower(buf[:n]), []byte("commit")) {
							stalled.Store(true)
						}
						s.Write(buf[:n])
					}
					if err != nil {
						s.Close()
						return
					}
				}
			}()
			go func() { // database → client
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 && !stalled.Load() {
						c.Write(buf[:n])
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

// TestCommitWithoutAnswer: a fit's COMMIT that reaches PostgreSQL but whose answer is lost
// (held past the store's timeout) is reported as ErrOutcomeUnknown — "may have been stored" —
// and indeed the version is stored; it is not reported as "nothing was written".
func TestCommitWithoutAnswer(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	direct := open(t, dsn) // migrations done here, not through the proxy
	defer direct.Close()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newStallingProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	ctx := context.Background()
	viaProxy, err := store.OpenPostgres(ctx, u.String(), store.PostgresConfig{Timeout: 500 * time.Millisecond, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	proxy.armed.Store(true)
	_, err = viaProxy.Put(ctx, "ambiguous", []byte("fit"), store.PutOptions{Activation: store.Activate})
	if !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("a commit without an answer: %v, want ErrOutcomeUnknown", err)
	}
	rec, err := direct.Get(ctx, "ambiguous", 0)
	if err != nil || rec.Version != 1 || string(rec.Data) != "fit" {
		t.Fatalf("what the database holds: %+v, %v; want version 1 stored (the commit did happen)", rec, err)
	}
}

// TestTerminatedBackends: after every connection of the store's pool is ended by the database
// (pg_terminate_backend, as a failover or an administrator does), the next lists, gets and puts
// all succeed: a call that meets a dead pooled connection is retried on a new one, a write only
// when it cannot have committed. (Before, 3 of 20 lists and 1 of 10 fits failed.)
func TestTerminatedBackends(t *testing.T) {
	dsn := testenv.PostgresSchema(t) + "&application_name=plumb_terminated"
	ctx := context.Background()
	s, err := store.OpenPostgres(ctx, dsn, store.PostgresConfig{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	admin, err := pgx.Connect(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := s.Put(ctx, "p", []byte("v1"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	failed := map[string]int{}
	for round := range 5 {
		// Fill the pool, then end every connection in it.
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { s.List(ctx, store.Page{}) })
		}
		wg.Wait()
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'plumb_terminated'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("round %d: no connection of the store's to end", round)
		}
		time.Sleep(50 * time.Millisecond)
		for range 4 {
			if _, err := s.List(ctx, store.Page{}); err != nil {
				failed["list"]++
			}
			if _, err := s.Get(ctx, "p", 0); err != nil {
				failed["get"]++
			}
		}
		if _, err := s.Put(ctx, "p", []byte("again"), store.PutOptions{}); err != nil {
			failed["put"]++
			t.Logf("round %d: put: %v", round, err)
		}
	}
	if len(failed) > 0 {
		t.Errorf("calls failed after the database ended the pool's connections: %v; want none", failed)
	}
}

// TestFeedbackWhileDatabaseAway: a batch of outcomes sent while PostgreSQL cannot be reached is
// refused (ErrUnavailable) and nothing of it is stored; sent again once the database is back,
// it is stored whole, and a third time it is all duplicates: nothing is counted twice.
func TestFeedbackWhileDatabaseAway(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	direct := open(t, dsn)
	defer direct.Close()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	ctx := context.Background()
	viaProxy, err := store.OpenPostgres(ctx, u.String(), store.PostgresConfig{Timeout: time.Second, ConnectTimeout: time.Second, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	batch := make([]store.Feedback, 500)
	for i := range batch {
		batch[i] = store.Feedback{ID: fmt.Sprintf("id-%d", i), Profile: "p", Received: time.Now(), Data: []byte("o")}
	}
	count := func() int {
		n := 0
		if err := direct.EachFeedback(ctx, "p", func(store.Feedback) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	proxy.Cut()
	if _, err := viaProxy.AddFeedback(ctx, batch); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("feedback with the database away: %v, want ErrUnavailable", err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d outcomes stored from a refused batch, want 0", n)
	}
	proxy.Restore()
	if n, err := viaProxy.AddFeedback(ctx, batch); err != nil || n != len(batch) {
		t.Fatalf("the batch again, the database back: %d, %v; want %d stored", n, err, len(batch))
	}
	if n, err := viaProxy.AddFeedback(ctx, batch); err != nil || n != 0 {
		t.Fatalf("the batch a third time: %d stored, %v; want 0 (all duplicates)", n, err)
	}
	if n := count(); n != len(batch) {
		t.Fatalf("%d outcomes stored, want %d", n, len(batch))
	}
}
