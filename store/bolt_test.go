package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestBoltLifecycle(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plumb.db")
	s, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := s.Put(ctx, "mmlu", []byte("one"), false)
	if err != nil || r1.Version != 1 || !r1.Active {
		t.Fatalf("first put = %+v, %v; want version 1, active (a name's first version)", r1, err)
	}
	r2, err := s.Put(ctx, "mmlu", []byte("two"), false)
	if err != nil || r2.Version != 2 || r2.Active {
		t.Fatalf("second put = %+v, %v; want version 2, inactive", r2, err)
	}
	if got, _ := s.Get(ctx, "mmlu", 0); got.Version != 1 || string(got.Data) != "one" {
		t.Fatalf("active = %+v, want version 1", got)
	}
	if _, err := s.Activate(ctx, "mmlu", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "mmlu", 2); !errors.Is(err, ErrActive) {
		t.Fatalf("deleting the active version: %v, want ErrActive", err)
	}
	// Roll back, then delete the newer version.
	if _, err := s.Activate(ctx, "mmlu", 1); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Delete(ctx, "mmlu", 2); err != nil || n != 1 {
		t.Fatalf("delete = %d, %v", n, err)
	}
	// Versions are never reused after a delete.
	if r3, _ := s.Put(ctx, "mmlu", []byte("three"), true); r3.Version != 3 || !r3.Active {
		t.Fatalf("put after delete = %+v, want version 3 active", r3)
	}
	if _, err := s.Get(ctx, "mmlu", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted version: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "nope", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown name: %v, want ErrNotFound", err)
	}
	if _, err := s.Put(ctx, "bad name!", nil, true); !errors.Is(err, ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := s.Put(ctx, "other", []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Everything survives a reopen.
	s, err = Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	list, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range list {
		got = append(got, r.Name+":"+string(r.Data)+":"+map[bool]string{true: "active", false: "-"}[r.Active])
	}
	want := []string{"mmlu:one:-", "mmlu:three:active", "other:x:active"}
	if len(got) != len(want) {
		t.Fatalf("list = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("list = %v, want %v", got, want)
		}
	}
	if n, err := s.Delete(ctx, "mmlu", 0); err != nil || n != 2 {
		t.Fatalf("delete all = %d, %v; want 2", n, err)
	}
	if _, err := s.Get(ctx, "mmlu", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted name: %v, want ErrNotFound", err)
	}
	if list, _ := s.List(ctx, "mmlu"); len(list) != 0 {
		t.Fatalf("deleted name still lists %v", list)
	}
	// A name fitted again after a delete continues its numbering: a version number always
	// means one profile.
	if r, _ := s.Put(ctx, "mmlu", []byte("four"), false); r.Version != 4 || !r.Active {
		t.Fatalf("put after deleting the name = %+v, want version 4, active", r)
	}
}
