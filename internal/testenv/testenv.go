// Package testenv holds the switches of plumb's tests: the long statistical runs, and the
// PostgreSQL database the store tests use. `go test ./...` runs
// every assertion on samples sized to finish in minutes on two cores; with PLUMB_LONG=1 (set
// by .ci/run) the statistical tests run at full size — coverage over 100 seeds, the fitted ECE
// of sampled evidence — with the tolerances their larger samples allow.
package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Long reports whether the long runs are on: PLUMB_LONG=1.
func Long() bool { return os.Getenv("PLUMB_LONG") == "1" }

// DefaultPostgres is the database the PostgreSQL tests use unless PLUMB_TEST_POSTGRES names
// another: the machine's PostgreSQL service with trust auth on its database "test".
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Postgres returns the DSN of the database the PostgreSQL tests use (PLUMB_TEST_POSTGRES, else
// DefaultPostgres). When it does not answer, the test is skipped — unless
// PLUMB_REQUIRE_POSTGRES=1 (set by .ci/run), when it fails: CI always runs these tests, and a
// machine with only Go can still run `go test ./...`.
func Postgres(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("PLUMB_TEST_POSTGRES")
	if dsn == "" {
		dsn = DefaultPostgres
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		if os.Getenv("PLUMB_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL at %s does not answer (PLUMB_REQUIRE_POSTGRES=1): %v", dsn, err)
		}
		t.Skipf("no PostgreSQL at %s (%v): set PLUMB_TEST_POSTGRES, or PLUMB_REQUIRE_POSTGRES=1 to fail instead", dsn, err)
	}
	return dsn
}

var schemas atomic.Int64

// PostgresSchema returns the DSN of a schema of the test's own in the test database (created
// empty, dropped when the test ends), so that tests never see each other's profiles. It skips
// or fails as Postgres does.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	dsn := Postgres(t)
	name := fmt.Sprintf("plumb_test_%d_%d", os.Getpid(), schemas.Add(1))
	ctx := context.Background()
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("DROP SCHEMA IF EXISTS " + name + " CASCADE; CREATE SCHEMA " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec("DROP SCHEMA IF EXISTS " + name + " CASCADE") })
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + name
}
