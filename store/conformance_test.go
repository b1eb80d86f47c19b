package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plumbhq/plumb/internal/testenv"
	"github.com/plumbhq/plumb/store"
	"github.com/plumbhq/plumb/store/storetest"
)

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(filepath.Join(t.TempDir(), "plumb.db"), 0)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T, s store.Store) store.Store {
		path := s.(*store.Bolt).Path()
		s.Close()
		s, err := store.Open(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestPostgresConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, testenv.PostgresSchema(t))
	}, func(t *testing.T, s store.Store) store.Store {
		dsn := s.(*store.Postgres).DSN()
		s.Close()
		return open(t, dsn)
	})
}

func open(t *testing.T, dsn string) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), dsn, store.PostgresConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPostgresMigrations: opening migrates a fresh schema once; a second open (another replica)
// finds it current; a schema newer than this plumb is refused, naming both versions.
func TestPostgresMigrations(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	a := open(t, dsn)
	defer a.Close()
	b := open(t, dsn)
	defer b.Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n, max int
	if err := conn.QueryRow(ctx, "SELECT count(*), max(version) FROM plumb_schema").Scan(&n, &max); err != nil || n != max || n < 1 {
		t.Fatalf("plumb_schema: %d rows, max %d, %v", n, max, err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO plumb_schema VALUES (99, now())"); err != nil {
		t.Fatal(err)
	}
	_, err = store.OpenPostgres(ctx, dsn, store.PostgresConfig{})
	if err == nil || !strings.Contains(err.Error(), "version 99, newer than this plumb's") {
		t.Fatalf("a newer schema: %v", err)
	}
}

// TestPostgresUnreachable: a database that does not answer is an error that says so and shows no
// password; the password never appears in Redact's output.
func TestPostgresUnreachable(t *testing.T) {
	dsn := "postgres://plumb:hunter2secret@127.0.0.1:1/nodb?sslmode=disable"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := store.OpenPostgres(ctx, dsn, store.PostgresConfig{ConnectTimeout: time.Second})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("open: %v", err)
	}
	for _, d := range []string{dsn, "host=x password=hunter2secret dbname=y", "postgres://u@h/db?password=hunter2secret"} {
		if r := store.Redact(d); strings.Contains(r, "hunter2") {
			t.Errorf("Redact(%q) = %q", d, r)
		}
	}
	if _, err := store.OpenPostgres(ctx, "postgres://u:hunter2secret@%zz", store.PostgresConfig{}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a bad DSN: %v", err)
	}
}

// TestPostgresWatch: a change made through one store reaches another's Watch (a second
// replica) within a second, naming the profile; a Watch starts with a nameless change.
func TestPostgresWatch(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan store.Change, 16)
	go b.Watch(ctx, func(c store.Change) { changes <- c })
	next := func() store.Change {
		select {
		case c := <-changes:
			return c
		case <-time.After(time.Second):
			t.Fatal("no change heard within 1 s")
		}
		return store.Change{}
	}
	if c := next(); c.Name != "" {
		t.Fatalf("first change %+v, want the nameless one", c)
	}
	if _, err := a.Put(ctx, "watched", []byte("x"), store.PutOptions{Activation: store.Activate}); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.Name != "watched" {
		t.Fatalf("after a put: %+v", c)
	}
	if _, err := a.Activate(ctx, "watched", 1); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.Name != "watched" {
		t.Fatalf("after an activation: %+v", c)
	}
	if _, err := a.Delete(ctx, "watched", 0); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.Name != "watched" {
		t.Fatalf("after a deletion: %+v", c)
	}
}
