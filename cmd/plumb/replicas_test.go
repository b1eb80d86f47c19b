package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/client"
	"github.com/plumbhq/plumb/internal/testenv"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// Several `plumb serve` replicas on one PostgreSQL database (a schema of the test's own).

// replicas starts n replicas on dsn and returns them.
func replicas(t *testing.T, dsn string, n int) []*served {
	t.Helper()
	out := make([]*served, n)
	for i := range out {
		out[i] = serveArgs(t, "--store", dsn)
	}
	return out
}

func dial(t *testing.T, addr string, o *client.Options) *client.Client {
	t.Helper()
	c, err := client.Dial(addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mmluLabeled returns one MMLU subject's lines as LabeledExamples.
func mmluLabeled(t *testing.T, subject string) []*plumbv1.LabeledExample {
	t.Helper()
	data, err := os.ReadFile(subjectFile(t, subject))
	if err != nil {
		t.Fatal(err)
	}
	var out []*plumbv1.LabeledExample
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		ex := new(plumbv1.LabeledExample)
		if err := protojson.Unmarshal(line, ex); err != nil {
			t.Fatal(err)
		}
		out = append(out, ex)
	}
	return out
}

func seqOf(exs []*plumbv1.LabeledExample) func(func(*plumbv1.LabeledExample, error) bool) {
	return func(yield func(*plumbv1.LabeledExample, error) bool) {
		for _, ex := range exs {
			if !yield(ex, nil) {
				return
			}
		}
	}
}

// within polls cond every 20 ms for up to d and reports whether it came true.
func within(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestReplicasSeeChanges: three replicas on one database; a profile fitted through A and
// activated through B is what every replica scores with; a version deleted through C is gone
// from every replica, and so is the whole name. Each replica hears the change by
// LISTEN/NOTIFY (milliseconds, logged) and re-checks a cached active version every second
// regardless; the test waits up to `seen` for either, a bound only a replica that never hears
// the change can reach (a shared CI machine may be slow, never that slow).
func TestReplicasSeeChanges(t *testing.T) {
	const seen = 15 * time.Second
	rs := replicas(t, testenv.PostgresSchema(t), 3)
	ctx := context.Background()
	cs := make([]*client.Client, len(rs))
	for i, r := range rs {
		cs[i] = dial(t, r.addr, nil)
	}
	exs := mmluLabeled(t, "anatomy")
	for v := 1; v <= 2; v++ {
		resp, err := cs[0].Fit(ctx, &plumbv1.FitConfig{Name: "p", Seed: uint64(v), Activate: proto.Bool(v == 1)}, seqOf(exs))
		if err != nil || resp.GetProfile().GetVersion() != int64(v) {
			t.Fatalf("fit %d through A: %v, %v", v, resp.GetProfile().GetVersion(), err)
		}
	}
	req := func(version int64) *plumbv1.ScoreRequest {
		r := proto.CloneOf(exs[0].GetRequest())
		r.Profile, r.ProfileVersion = "p", version
		return r
	}
	scoredWith := func(c *client.Client, version int64) (int64, codes.Code) {
		resp, err := c.Score(ctx, req(version))
		return resp.GetProfile().GetVersion(), status.Code(err)
	}
	// Every replica has version 1 (active) and version 2 in its cache.
	for i, c := range cs {
		if v, code := scoredWith(c, 0); v != 1 || code != codes.OK {
			t.Fatalf("replica %d scores with version %d (%v), want 1", i, v, code)
		}
		if v, _ := scoredWith(c, 2); v != 2 {
			t.Fatalf("replica %d: version 2 is %d", i, v)
		}
	}
	if _, err := cs[1].Profiles.ActivateProfile(ctx, &plumbv1.ActivateProfileRequest{Name: "p", Version: 2}); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	for i, c := range cs {
		if !within(seen, func() bool { v, _ := scoredWith(c, 0); return v == 2 }) {
			t.Fatalf("replica %d does not score with version 2 %v after its activation", i, seen)
		}
	}
	t.Logf("activation seen by every replica after %v", time.Since(begin).Round(time.Millisecond))
	if _, err := cs[2].Profiles.DeleteProfile(ctx, &plumbv1.DeleteProfileRequest{Name: "p", Version: 1}); err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	for i, c := range cs {
		if !within(seen, func() bool { _, code := scoredWith(c, 1); return code == codes.NotFound }) {
			t.Fatalf("replica %d still scores with deleted version 1 after %v", i, seen)
		}
	}
	if _, err := cs[2].Profiles.DeleteProfile(ctx, &plumbv1.DeleteProfileRequest{Name: "p"}); err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	for i, c := range cs {
		if !within(seen, func() bool { _, code := scoredWith(c, 0); return code == codes.NotFound }) {
			t.Fatalf("replica %d still scores with deleted profile p after %v", i, seen)
		}
	}
}

// TestConcurrentFitsAcrossReplicas: 8 fits of one name at once, through 3 replicas, store 8
// distinct, consecutive versions.
func TestConcurrentFitsAcrossReplicas(t *testing.T) {
	rs := replicas(t, testenv.PostgresSchema(t), 3)
	exs := mmluLabeled(t, "anatomy")
	versions := make([]int64, 8)
	var wg sync.WaitGroup
	errs := make(chan error, len(versions))
	for i := range versions {
		c := dial(t, rs[i%len(rs)].addr, nil)
		wg.Go(func() {
			resp, err := c.Fit(context.Background(), &plumbv1.FitConfig{Name: "shared", Seed: uint64(i), Activate: proto.Bool(true)}, seqOf(exs))
			if err != nil {
				errs <- err
				return
			}
			versions[i] = resp.GetProfile().GetVersion()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(versions)
	if !slices.Equal(versions, []int64{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("versions %v, want 1 to 8 once each", versions)
	}
}

// TestReplicaKilled: load spread over three replicas by the client (round_robin); one replica
// is killed (SIGKILL) a few seconds in, under 12 s of load (30 s with PLUMB_LONG=1, as in
// .ci/run). No unary Score fails as the caller sees it, and the
// ScoreStreams on the killed replica fail with Unavailable and are resumed on the others,
// answering every request in order.
func TestReplicaKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of load: not in -short")
	}
	dsn := testenv.PostgresSchema(t)
	rs := replicas(t, dsn, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var resumed atomic.Int64
	c := dial(t, rs[0].addr+","+rs[1].addr+","+rs[2].addr, &client.Options{OnResume: func(err error) {
		if status.Code(err) == codes.Unavailable {
			resumed.Add(1)
		}
	}})
	exs := mmluLabeled(t, "anatomy")
	if _, err := c.Fit(ctx, &plumbv1.FitConfig{Name: "p", Activate: proto.Bool(true)}, seqOf(exs)); err != nil {
		t.Fatal(err)
	}
	span := 12 * time.Second
	if testenv.Long() {
		span = 30 * time.Second
	}
	load, stopLoad := context.WithTimeout(ctx, span)
	defer stopLoad()
	var unary, failed atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := range 6 {
		wg.Go(func() {
			for i := w; load.Err() == nil; i++ {
				r := proto.CloneOf(exs[i%len(exs)].GetRequest())
				r.Profile = "p"
				if _, err := c.Score(ctx, r); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				unary.Add(1)
			}
		})
	}
	// Streams: six concurrent ScoreStreams (two on each replica) of requests made slowly enough
	// to last past the kill, each request's id its index.
	const streamed = 3000
	var got []string
	streamErr := make(chan error, 1)
	wg.Go(func() {
		reqs := func(yield func(*plumbv1.ScoreRequest) bool) {
			for i := range streamed {
				r := proto.CloneOf(exs[i%len(exs)].GetRequest())
				r.Profile, r.Id = "p", fmt.Sprint(i)
				if i%50 == 0 {
					time.Sleep(100 * time.Millisecond)
				}
				if !yield(r) {
					return
				}
			}
		}
		for resp, err := range c.ScoreConcurrent(ctx, reqs, 6, 10) {
			if err != nil {
				streamErr <- err
				return
			}
			got = append(got, resp.GetId())
		}
		streamErr <- nil
	})
	time.Sleep(3 * time.Second)
	if err := rs[1].proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed replica %s after %d unary calls", rs[1].addr, unary.Load())
	wg.Wait()
	if err := <-streamErr; err != nil {
		t.Fatalf("ScoreConcurrent: %v", err)
	}
	t.Logf("%d unary calls, %d failed; %d streamed responses; %d streams resumed", unary.Load(), failed.Load(), len(got), resumed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d unary Scores failed; the first: %v", failed.Load(), firstErr.Load())
	}
	if len(got) != streamed {
		t.Fatalf("%d streamed responses, want %d", len(got), streamed)
	}
	for i, id := range got {
		if id != fmt.Sprint(i) {
			t.Fatalf("streamed response %d has id %s: out of order", i, id)
		}
	}
	if resumed.Load() == 0 {
		t.Errorf("no stream was resumed: none was on the killed replica?")
	}
}

// TestExportImport: a profile exported from a bbolt store and imported into a PostgreSQL one
// is the same profile, byte for byte, and exports the same again; JSON exports import too; and
// `plumb serve --profile-file` serves the same responses as the store it came from.
func TestExportImport(t *testing.T) {
	dir := t.TempDir()
	bolt := filepath.Join(dir, "plumb.db")
	pg := testenv.PostgresSchema(t)
	if _, stderr, err := plumb(t, "", "fit", "--data", subjectFile(t, "anatomy"), "--profile", "anat", "--store", bolt, "--activate"); err != nil {
		t.Fatalf("fit: %v\n%s", err, stderr)
	}
	export := func(spec string, json bool) []byte {
		t.Helper()
		args := []string{"profiles", "export", "anat@1", "--store", spec}
		if json {
			args = append(args, "--json")
		}
		out, stderr, err := plumb(t, "", args...)
		if err != nil {
			t.Fatalf("export from %s: %v\n%s", spec, err, stderr)
		}
		return []byte(out)
	}
	bin := export(bolt, false)
	file := filepath.Join(dir, "anat.binpb")
	os.WriteFile(file, bin, 0o644)
	if out, stderr, err := plumb(t, "", "profiles", "import", file, "--store", pg); err != nil || !strings.Contains(out, "version 1") {
		t.Fatalf("import: %v\n%s%s", err, out, stderr)
	}
	again := export(pg, false)
	var a, b plumbv1.Profile
	if err := proto.Unmarshal(bin, &a); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(again, &b); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&a, &b) || !bytes.Equal(bin, again) {
		t.Fatalf("the profile exported again from PostgreSQL differs from the one exported from bbolt")
	}
	// The JSON export of the same profile imports as version 2 (under another name: 1).
	jfile := filepath.Join(dir, "anat.json")
	os.WriteFile(jfile, export(bolt, true), 0o644)
	if out, _, err := plumb(t, "", "profiles", "import", jfile, "--name", "anat-json", "--store", pg); err != nil || !strings.Contains(out, "profile anat-json version 1") {
		t.Fatalf("JSON import: %v %s", err, out)
	}
	var c plumbv1.Profile
	if err := proto.Unmarshal(func() []byte {
		out, _, _ := plumb(t, "", "profiles", "export", "anat-json", "--store", pg)
		return []byte(out)
	}(), &c); err != nil {
		t.Fatal(err)
	}
	c.Name = "anat"
	if !proto.Equal(&a, &c) {
		t.Fatal("the JSON export imported is not the same profile")
	}
	// A profile file served read-only answers as the store does.
	reqs := filepath.Join(dir, "reqs.jsonl")
	out, _ := exec.Command(buildPlumb(t), "simulate", "--questions", "40").Output()
	os.WriteFile(reqs, out, 0o644)
	want, stderr, err := plumb(t, "", "score", "--profile", "anat", "--store", bolt, reqs)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	s := serveArgs(t, "--profile-file", file)
	got, stderr, err := plumb(t, "", "score", "--profile", "anat", "--server", s.addr, reqs)
	if err != nil || got != want || strings.Count(got, "\n") != 40 {
		t.Fatalf("--profile-file serves other responses (%v)\n%s", err, stderr)
	}
	if _, _, err := plumb(t, "", "profiles", "delete", "anat", "--server", s.addr); err == nil || !strings.Contains(err.Error(), "FailedPrecondition") {
		t.Fatalf("a delete on a server of profile files: %v, want FailedPrecondition", err)
	}
}

// TestDatabaseOutage: when the database goes away, a replica keeps scoring with the profiles
// it has cached and stays SERVING; a replica with nothing cached reports NOT_SERVING; both are
// SERVING again once the database is back.
func TestDatabaseOutage(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.NewProxy(t, u.Host)
	u.Host = p.Addr()
	viaProxy := u.String()
	warm, cold := serveArgs(t, "--store", viaProxy, "--pg-timeout", "500ms"), serveArgs(t, "--store", viaProxy, "--pg-timeout", "500ms")
	ctx := context.Background()
	wc, cc := dial(t, warm.addr, nil), dial(t, cold.addr, nil)
	exs := mmluLabeled(t, "anatomy")
	if _, err := wc.Fit(ctx, &plumbv1.FitConfig{Name: "p", Activate: proto.Bool(true)}, seqOf(exs)); err != nil {
		t.Fatal(err)
	}
	req := proto.CloneOf(exs[0].GetRequest())
	req.Profile = "p"
	if _, err := wc.Score(ctx, req); err != nil {
		t.Fatal(err)
	}
	// Health is read as a probe would, on a plain connection (plumb's client itself sends no
	// call to a server whose health is not SERVING).
	healthOf := func(s *served, service string) healthpb.HealthCheckResponse_ServingStatus {
		conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return r.GetStatus()
	}
	health := func(s *served) healthpb.HealthCheckResponse_ServingStatus {
		return healthOf(s, "plumb.v1.ConfidenceService")
	}
	p.Cut()
	if !within(5*time.Second, func() bool { return health(cold) == healthpb.HealthCheckResponse_NOT_SERVING }) {
		t.Fatalf("the replica with nothing cached is %v without its database, want NOT_SERVING", health(cold))
	}
	if h := healthOf(cold, "liveness"); h != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("liveness of the replica with nothing cached: %v, want SERVING (no restart for an outage)", h)
	}
	time.Sleep(1100 * time.Millisecond) // past the cache's trust in the active version
	resp, err := wc.Score(ctx, req)
	if err != nil || resp.GetProfile().GetVersion() != 1 {
		t.Fatalf("the replica with p cached, without its database: %v, %v", resp.GetProfile(), err)
	}
	if h := health(warm); h != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("the replica with p cached is %v without its database, want SERVING", h)
	}
	if _, err := cc.Score(ctx, req); status.Code(err) != codes.Unavailable {
		t.Fatalf("the replica with nothing cached: %v, want Unavailable", err)
	}
	p.Restore()
	if !within(10*time.Second, func() bool { return health(cold) == healthpb.HealthCheckResponse_SERVING }) {
		t.Fatalf("the replica with nothing cached is %v once the database is back", health(cold))
	}
	if _, err := cc.Score(ctx, req); err != nil {
		t.Fatalf("once the database is back: %v", err)
	}
}
