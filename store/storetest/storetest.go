// Package storetest is the conformance suite of store.Store: every backend runs it (the bbolt
// file and PostgreSQL), so that the service can rely on one behaviour whichever it is given.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumbhq/plumb/store"
)

// Run runs the suite. open returns a new, empty store; reopen, when not nil, closes a store
// and opens the same one again (to check that what was written survives).
func Run(t *testing.T, open func(t *testing.T) store.Store, reopen func(t *testing.T, s store.Store) store.Store) {
	t.Run("Lifecycle", func(t *testing.T) { lifecycle(t, open(t), reopen) })
	t.Run("ConcurrentPuts", func(t *testing.T) { concurrentPuts(t, open(t)) })
	t.Run("Errors", func(t *testing.T) { errorsOf(t, open(t)) })
	t.Run("DataIsCopied", func(t *testing.T) { copied(t, open(t)) })
	t.Run("ActivateDeleteRace", func(t *testing.T) { activateDeleteRace(t, open(t)) })
	t.Run("FitIDs", func(t *testing.T) { fitIDs(t, open(t)) })
	t.Run("Pages", func(t *testing.T) { pages(t, open(t)) })
	t.Run("Feedback", func(t *testing.T) { feedback(t, open(t)) })
	t.Run("ACI", func(t *testing.T) { aci(t, open(t)) })
	t.Run("Ping", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// must fails the test on an error, passing a result through: ok(t).rec(s.Get(…)).
type must struct{ t *testing.T }

func ok(t *testing.T) must { return must{t} }

func (m must) rec(r store.Record, err error) store.Record {
	m.t.Helper()
	if err != nil {
		m.t.Fatal(err)
	}
	return r
}

func (m must) n(n int, err error) int {
	m.t.Helper()
	if err != nil {
		m.t.Fatal(err)
	}
	return n
}

func (m must) list(l []store.Record, err error) []store.Record {
	m.t.Helper()
	if err != nil {
		m.t.Fatal(err)
	}
	return l
}

// lifecycle: versions count up from 1 and are never reused, even after deletes; the first
// version of a name is active; activate, delete (never the active version alone) and list.
func lifecycle(t *testing.T, s store.Store, reopen func(*testing.T, store.Store) store.Store) {
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	r1 := ok(t).rec(s.Put(ctx, "mmlu", []byte("one"), store.PutOptions{}))
	if r1.Version != 1 || !r1.Active || r1.Name != "mmlu" || r1.Created.Before(before) {
		t.Fatalf("first put = %+v; want version 1, active (a name's first version), created now", r1)
	}
	r2 := ok(t).rec(s.Put(ctx, "mmlu", []byte("two"), store.PutOptions{}))
	if r2.Version != 2 || r2.Active {
		t.Fatalf("second put = %+v; want version 2, inactive", r2)
	}
	if got := ok(t).rec(s.Get(ctx, "mmlu", 0)); got.Version != 1 || string(got.Data) != "one" || !got.Active {
		t.Fatalf("active = %+v, want version 1", got)
	}
	if got := ok(t).rec(s.Get(ctx, "mmlu", 2)); got.Version != 2 || string(got.Data) != "two" || got.Active || !got.Created.Equal(r2.Created) {
		t.Fatalf("version 2 = %+v, want %+v", got, r2)
	}
	if a := ok(t).rec(s.Activate(ctx, "mmlu", 2)); a.Version != 2 || !a.Active || string(a.Data) != "two" {
		t.Fatalf("activate = %+v", a)
	}
	if _, err := s.Delete(ctx, "mmlu", 2); !errors.Is(err, store.ErrActive) {
		t.Fatalf("deleting the active version: %v, want ErrActive", err)
	}
	ok(t).rec(s.Activate(ctx, "mmlu", 1))
	if n := ok(t).n(s.Delete(ctx, "mmlu", 2)); n != 1 {
		t.Fatalf("delete = %d, want 1", n)
	}
	if r3 := ok(t).rec(s.Put(ctx, "mmlu", []byte("three"), store.PutOptions{Activation: store.Activate})); r3.Version != 3 || !r3.Active {
		t.Fatalf("put after delete = %+v, want version 3, active", r3)
	}
	if _, err := s.Get(ctx, "mmlu", 2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted version: %v, want ErrNotFound", err)
	}
	ok(t).rec(s.Put(ctx, "other", []byte("x"), store.PutOptions{}))
	if reopen != nil {
		s = reopen(t, s)
	}
	defer s.Close()
	list := ok(t).list(s.List(ctx, store.Page{Name: ""}))
	var got []string
	for _, r := range list {
		got = append(got, fmt.Sprintf("%s:%d:%s:%v", r.Name, r.Version, r.Data, r.Active))
	}
	if want := []string{"mmlu:1:one:false", "mmlu:3:three:true", "other:1:x:true"}; !slices.Equal(got, want) {
		t.Fatalf("list = %v, want %v", got, want)
	}
	if l := ok(t).list(s.List(ctx, store.Page{Name: "other"})); len(l) != 1 || l[0].Name != "other" {
		t.Fatalf("list of one name = %+v", l)
	}
	if n := ok(t).n(s.Delete(ctx, "mmlu", 0)); n != 2 {
		t.Fatalf("delete all = %d, want 2", n)
	}
	if _, err := s.Get(ctx, "mmlu", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted name: %v, want ErrNotFound", err)
	}
	if l := ok(t).list(s.List(ctx, store.Page{Name: "mmlu"})); len(l) != 0 {
		t.Fatalf("deleted name still lists %v", l)
	}
	if _, err := s.Delete(ctx, "mmlu", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting a deleted name: %v, want ErrNotFound", err)
	}
	// A name fitted again after a delete continues its numbering: a version number always
	// means one profile.
	if r := ok(t).rec(s.Put(ctx, "mmlu", []byte("four"), store.PutOptions{})); r.Version != 4 || !r.Active {
		t.Fatalf("put after deleting the name = %+v, want version 4, active", r)
	}

	// Inactive: even a name's first version stays inactive, and the name then has no active
	// version, which Get says, until one is activated.
	if r := ok(t).rec(s.Put(ctx, "quiet", []byte("q1"), store.PutOptions{Activation: store.Inactive})); r.Version != 1 || r.Active {
		t.Fatalf("inactive first put = %+v, want version 1, inactive", r)
	}
	if _, err := s.Get(ctx, "quiet", 0); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "no active version") {
		t.Fatalf("active version of a name with none: %v, want ErrNotFound saying it has no active version", err)
	}
	if _, err := s.Get(ctx, "never-stored", 0); !errors.Is(err, store.ErrNotFound) || strings.Contains(err.Error(), "no active version") {
		t.Fatalf("a name never stored: %v, want ErrNotFound without 'no active version'", err)
	}
	if r := ok(t).rec(s.Put(ctx, "quiet", []byte("q2"), store.PutOptions{})); r.Version != 2 || !r.Active {
		t.Fatalf("put IfNone on a name with no active version = %+v, want version 2, active", r)
	}
	if r := ok(t).rec(s.Put(ctx, "quiet", []byte("q3"), store.PutOptions{Activation: store.Inactive})); r.Version != 3 || r.Active {
		t.Fatalf("inactive put = %+v, want version 3, inactive", r)
	}
	if got := ok(t).rec(s.Get(ctx, "quiet", 0)); got.Version != 2 {
		t.Fatalf("active = %+v, want version 2", got)
	}
}

// concurrentPuts: 16 puts of one name at once get 16 distinct, consecutive versions, and the
// store holds each one's data under its version.
func concurrentPuts(t *testing.T, s store.Store) {
	defer s.Close()
	ctx := context.Background()
	const n = 16
	versions := make([]int64, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			r, err := s.Put(ctx, "shared", []byte(fmt.Sprint(i)), store.PutOptions{Activation: store.Activate})
			if err != nil {
				errs <- err
				return
			}
			versions[i] = r.Version
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sorted := slices.Sorted(slices.Values(versions))
	for i, v := range sorted {
		if v != int64(i+1) {
			t.Fatalf("versions %v, want 1..%d each once", sorted, n)
		}
	}
	for i, v := range versions {
		if r := ok(t).rec(s.Get(ctx, "shared", v)); string(r.Data) != fmt.Sprint(i) {
			t.Fatalf("version %d holds %q, want %q", v, r.Data, fmt.Sprint(i))
		}
	}
}

// errorsOf: unknown names and versions are ErrNotFound, bad names ErrBadName, on every method.
func errorsOf(t *testing.T, s store.Store) {
	defer s.Close()
	ctx := context.Background()
	ok(t).rec(s.Put(ctx, "p", []byte("x"), store.PutOptions{Activation: store.Activate}))
	for name, err := range map[string]error{
		"get unknown name":         second(s.Get(ctx, "nope", 0)),
		"get unknown version":      second(s.Get(ctx, "p", 9)),
		"activate unknown name":    second(s.Activate(ctx, "nope", 1)),
		"activate unknown version": second(s.Activate(ctx, "p", 9)),
		"delete unknown name":      second(s.Delete(ctx, "nope", 0)),
		"delete unknown version":   second(s.Delete(ctx, "p", 9)),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	for name, err := range map[string]error{
		"put":      second(s.Put(ctx, "bad name!", nil, store.PutOptions{Activation: store.Activate})),
		"put long": second(s.Put(ctx, string(bytes.Repeat([]byte("n"), 200)), nil, store.PutOptions{Activation: store.Activate})),
		"get":      second(s.Get(ctx, "", 0)),
		"activate": second(s.Activate(ctx, "a/b", 1)),
		"delete":   second(s.Delete(ctx, "-x", 0)),
	} {
		if !errors.Is(err, store.ErrBadName) {
			t.Errorf("%s: %v, want ErrBadName", name, err)
		}
	}
	if l := ok(t).list(s.List(ctx, store.Page{Name: "nope"})); len(l) != 0 {
		t.Errorf("list of an unknown name = %v", l)
	}
}

func second[T any](_ T, err error) error { return err }

// copied: the store keeps its own copy of the data it is given, and gives out copies.
func copied(t *testing.T, s store.Store) {
	defer s.Close()
	ctx := context.Background()
	data := []byte("profile")
	ok(t).rec(s.Put(ctx, "c", data, store.PutOptions{Activation: store.Activate}))
	data[0] = 'X'
	r := ok(t).rec(s.Get(ctx, "c", 0))
	if string(r.Data) != "profile" {
		t.Fatalf("the store kept the caller's slice: %q", r.Data)
	}
	r.Data[0] = 'Y'
	if r := ok(t).rec(s.Get(ctx, "c", 1)); string(r.Data) != "profile" {
		t.Fatalf("the store gave out its own slice: %q", r.Data)
	}
}

// activateDeleteRace: Activate(v) and Delete(v) at the same moment, 30 rounds. Exactly one of
// them may succeed, and afterwards the name's active version exists: a store that let both
// through would point the name at a deleted version, and Score on it would be NotFound.
func activateDeleteRace(t *testing.T, s store.Store) {
	defer s.Close()
	ctx := context.Background()
	for round := range 30 {
		name := fmt.Sprintf("race-%d", round)
		ok(t).rec(s.Put(ctx, name, []byte("one"), store.PutOptions{Activation: store.Activate}))
		v2 := ok(t).rec(s.Put(ctx, name, []byte("two"), store.PutOptions{Activation: store.Inactive}))
		var activateErr, deleteErr error
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-start; _, activateErr = s.Activate(ctx, name, v2.Version) }()
		go func() { defer wg.Done(); <-start; _, deleteErr = s.Delete(ctx, name, v2.Version) }()
		close(start)
		wg.Wait()
		if (activateErr == nil) == (deleteErr == nil) {
			t.Errorf("round %d: activate: %v; delete: %v; want exactly one to succeed", round, activateErr, deleteErr)
		}
		if activateErr != nil && !errors.Is(activateErr, store.ErrNotFound) {
			t.Errorf("round %d: activate lost with %v, want ErrNotFound", round, activateErr)
		}
		if deleteErr != nil && !errors.Is(deleteErr, store.ErrActive) {
			t.Errorf("round %d: delete lost with %v, want ErrActive", round, deleteErr)
		}
		active, err := s.Get(ctx, name, 0)
		if err != nil {
			t.Fatalf("round %d: the active version after the race: %v", round, err)
		}
		want := int64(1)
		if activateErr == nil {
			want = v2.Version
		}
		if active.Version != want {
			t.Errorf("round %d: active version %d, want %d", round, active.Version, want)
		}
	}
}

// fitIDs: a put whose fit id its name already holds writes nothing and returns that version
// (Existing); the id is per name; concurrent puts of one fit store it once; a deleted version's
// fit id is free again; versions skipped by nothing.
func fitIDs(t *testing.T, s store.Store) {
	defer s.Close()
	ctx := context.Background()
	put := func(name, data, id string) store.Record {
		t.Helper()
		return ok(t).rec(s.Put(ctx, name, []byte(data), store.PutOptions{FitID: id}))
	}
	if r := put("f", "one", "fit-1"); r.Version != 1 || r.Existing || !r.Active {
		t.Fatalf("first put: %+v, want version 1, new, active", r)
	}
	r := put("f", "again", "fit-1")
	if r.Version != 1 || !r.Existing || string(r.Data) != "one" || !r.Active || r.FitID != "fit-1" {
		t.Fatalf("retried put: version %d existing %v data %q active %v fit %q; want version 1, existing, the first data, active, fit-1",
			r.Version, r.Existing, r.Data, r.Active, r.FitID)
	}
	if r := put("f", "two", "fit-2"); r.Version != 2 || r.Existing {
		t.Fatalf("another fit: %+v, want version 2 (the retry took no number)", r)
	}
	if r := put("g", "other name", "fit-1"); r.Version != 1 || r.Existing {
		t.Fatalf("the same fit id on another name: %+v, want a new version 1", r)
	}
	if r := put("f", "no id", ""); r.Version != 3 || r.Existing {
		t.Fatalf("a put without a fit id: %+v, want version 3", r)
	}
	if l := ok(t).list(s.List(ctx, store.Page{Name: "f"})); len(l) != 3 || l[0].FitID != "fit-1" || l[1].FitID != "fit-2" || l[2].FitID != "" {
		t.Fatalf("listed %d versions with fit ids %v, want 3: fit-1, fit-2, none", len(l), fitIDsOf(l))
	}

	// A deleted version's fit id may be stored again.
	ok(t).rec(s.Activate(ctx, "f", 2))
	ok(t).n(s.Delete(ctx, "f", 1))
	if r := put("f", "one, refitted", "fit-1"); r.Version != 4 || r.Existing {
		t.Fatalf("fit-1 after its version was deleted: %+v, want a new version 4", r)
	}
	ok(t).n(s.Delete(ctx, "f", 0))
	if r := put("f", "two, refitted", "fit-2"); r.Version != 5 || r.Existing {
		t.Fatalf("fit-2 after every version was deleted: %+v, want a new version 5", r)
	}

	// Eight replicas retrying one fit at once: one stores it, the others find it.
	const n = 8
	got := make([]store.Record, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := s.Put(ctx, "c", []byte(fmt.Sprint(i)), store.PutOptions{FitID: "same"})
			if err != nil {
				t.Error(err)
			}
			got[i] = r
		})
	}
	wg.Wait()
	fresh := 0
	for _, r := range got {
		if !r.Existing {
			fresh++
		}
		if r.Version != 1 {
			t.Errorf("a concurrent put of one fit got version %d, want 1", r.Version)
		}
	}
	if fresh != 1 {
		t.Errorf("%d of %d concurrent puts of one fit stored it, want 1", fresh, n)
	}
	if l := ok(t).list(s.List(ctx, store.Page{Name: "c"})); len(l) != 1 {
		t.Errorf("%d versions stored by one fit put %d times at once, want 1", len(l), n)
	}
}

func fitIDsOf(l []store.Record) []string {
	var out []string
	for _, r := range l {
		out = append(out, r.FitID)
	}
	return out
}

// pages: a listing read in pages of any size is the whole listing, by name in byte order ("Z"
// before "a") then version; a name's listing starts after a version; List returns a version's
// summary where it was put with one and its data where not, and Get always the data.
func pages(t *testing.T, s store.Store) {
	defer s.Close()
	ctx := context.Background()
	put := func(name, data, summary string) {
		t.Helper()
		o := store.PutOptions{}
		if summary != "" {
			o.Summary = []byte(summary)
		}
		ok(t).rec(s.Put(ctx, name, []byte(data), o))
	}
	put("a", "a1 data", "a1 summary")
	put("a", "a2 data", "")
	put("Z", "Z1 data", "Z1 summary")
	put("a", "a3 data", "a3 summary")
	put("b-c", "b1 data", "")
	put("a.b", "ab1 data", "")
	want := []string{"Z@1", "a@1", "a@2", "a@3", "a.b@1", "b-c@1"}
	whole := ok(t).list(s.List(ctx, store.Page{}))
	if got := keysOf(whole); !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v (byte order, then version)", got, want)
	}
	for i, wantData := range []string{"Z1 summary", "a1 summary", "a2 data", "a3 summary", "ab1 data", "b1 data"} {
		if string(whole[i].Data) != wantData {
			t.Errorf("%s listed with %q, want %q", want[i], whole[i].Data, wantData)
		}
	}
	if r := ok(t).rec(s.Get(ctx, "a", 1)); string(r.Data) != "a1 data" {
		t.Errorf("Get a@1 = %q, want its data, not its summary", r.Data)
	}
	for size := 1; size <= len(want)+1; size++ {
		var got []string
		p := store.Page{Limit: size}
		for range len(want) + 2 {
			l := ok(t).list(s.List(ctx, p))
			if len(l) > size {
				t.Fatalf("a page of %d held %d", size, len(l))
			}
			got = append(got, keysOf(l)...)
			if len(l) < size {
				break
			}
			p.AfterName, p.AfterVersion = l[len(l)-1].Name, l[len(l)-1].Version
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages of %d: %v, want %v", size, got, want)
		}
	}
	if got := keysOf(ok(t).list(s.List(ctx, store.Page{Name: "a", AfterName: "a", AfterVersion: 1, Limit: 5}))); !slices.Equal(got, []string{"a@2", "a@3"}) {
		t.Errorf("a after version 1: %v, want [a@2 a@3]", got)
	}
	if got := keysOf(ok(t).list(s.List(ctx, store.Page{AfterName: "a.a"}))); !slices.Equal(got, []string{"a.b@1", "b-c@1"}) {
		t.Errorf("after a name that is not stored: %v, want [a.b@1 b-c@1]", got)
	}
}

func keysOf(l []store.Record) []string {
	var out []string
	for _, r := range l {
		out = append(out, fmt.Sprintf("%s@%d", r.Name, r.Version))
	}
	return out
}

// feedback: outcomes are stored once per id — a duplicate in the same batch or a later one is
// skipped and not counted — read back per profile (or all) in the order they came, with their
// data, and dropped from the oldest; profiles' listing never shows them.
func feedback(t *testing.T, s store.Store) {
	defer s.Close()
	fs, isFS := s.(store.FeedbackStore)
	if !isFS {
		t.Fatalf("%T is not a FeedbackStore", s)
	}
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	f := func(id, profile string, i int) store.Feedback {
		return store.Feedback{ID: id, Profile: profile, Received: at(i), Data: []byte("outcome " + id)}
	}
	n, err := fs.AddFeedback(ctx, []store.Feedback{f("a1", "mmlu", 1), f("b1", "other", 2), f("a2", "mmlu", 3), f("a1", "mmlu", 4)})
	if err != nil || n != 3 {
		t.Fatalf("AddFeedback of 4 with a duplicate: %d, %v; want 3 stored", n, err)
	}
	n, err = fs.AddFeedback(ctx, []store.Feedback{f("a2", "mmlu", 5), f("a3", "mmlu", 6)})
	if err != nil || n != 1 {
		t.Fatalf("AddFeedback of a stored id and a new one: %d, %v; want 1 stored", n, err)
	}
	read := func(profile string) []string {
		t.Helper()
		var out []string
		if err := fs.EachFeedback(ctx, profile, func(f store.Feedback) error {
			if string(f.Data) != "outcome "+f.ID {
				t.Errorf("%s read with data %q", f.ID, f.Data)
			}
			out = append(out, fmt.Sprintf("%s/%s@%d", f.Profile, f.ID, int(f.Received.Sub(t0)/time.Minute)))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got, want := read("mmlu"), []string{"mmlu/a1@1", "mmlu/a2@3", "mmlu/a3@6"}; !slices.Equal(got, want) {
		t.Errorf("mmlu's feedback: %v, want %v", got, want)
	}
	if got := read(""); len(got) != 4 {
		t.Errorf("every profile's feedback: %v, want 4", got)
	}
	stop := errors.New("stop")
	if err := fs.EachFeedback(ctx, "", func(store.Feedback) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("fn's error: EachFeedback returned %v", err)
	}
	if l := ok(t).list(s.List(ctx, store.Page{})); len(l) != 0 {
		t.Errorf("profiles listed with feedback stored and no profile: %v", keysOf(l))
	}
	n, err = fs.DropFeedback(ctx, at(3))
	if err != nil || n != 2 {
		t.Fatalf("DropFeedback before minute 3: %d, %v; want 2 (a1, b1)", n, err)
	}
	if got, want := read(""), []string{"mmlu/a2@3", "mmlu/a3@6"}; !slices.Equal(got, want) {
		t.Errorf("after the drop: %v, want %v", got, want)
	}
}

// aci: a new outcome's step moves its threshold (from Start the first time), held in
// [0, Max]; a duplicate outcome, in the same batch or a later one, does not step again;
// thresholds are kept per profile version × segment.
func aci(t *testing.T, s store.Store) {
	defer s.Close()
	fs := s.(store.FeedbackStore)
	ctx := context.Background()
	web := store.ACIKey{Profile: "p", Version: 1, Segment: "web"}
	app := store.ACIKey{Profile: "p", Version: 1, Segment: "app"}
	f := func(id string, k store.ACIKey, delta float64) store.Feedback {
		return store.Feedback{ID: id, Profile: "p", Received: time.Now(), Data: []byte("o"),
			ACI: &store.ACIStep{Key: k, Start: 0.5, Delta: delta, Max: 1}}
	}
	if _, err := fs.AddFeedback(ctx, []store.Feedback{f("a", web, 0.1), f("b", web, -0.02), f("a", web, 0.1), f("c", app, -0.3)}); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.AddFeedback(ctx, []store.Feedback{f("b", web, -0.02), f("d", web, 0.01)}); err != nil {
		t.Fatal(err)
	}
	got, err := fs.ACI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 }
	if len(got) != 2 || !near(got[web], 0.59) || !near(got[app], 0.2) {
		t.Errorf("thresholds %v, want web 0.5 + 0.1 − 0.02 + 0.01 = 0.59 (duplicates not again) and app 0.2", got)
	}
	if _, err := fs.AddFeedback(ctx, []store.Feedback{f("e", app, -0.5), f("g", web, 2)}); err != nil {
		t.Fatal(err)
	}
	got, _ = fs.ACI(ctx)
	if got[app] != 0 || got[web] != 1 {
		t.Errorf("thresholds %v past their bounds, want app held at 0 and web at Max = 1", got)
	}
}
