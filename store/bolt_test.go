package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestBoltLifecycle(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plumb.db")
	s, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := s.Put(ctx, "mmlu", []byte("one"), PutOptions{})
	if err != nil || r1.Version != 1 || !r1.Active {
		t.Fatalf("first put = %+v, %v; want version 1, active (a name's first version)", r1, err)
	}
	r2, err := s.Put(ctx, "mmlu", []byte("two"), PutOptions{})
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
	if r3, _ := s.Put(ctx, "mmlu", []byte("three"), PutOptions{Activation: Activate}); r3.Version != 3 || !r3.Active {
		t.Fatalf("put after delete = %+v, want version 3 active", r3)
	}
	if _, err := s.Get(ctx, "mmlu", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted version: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "nope", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown name: %v, want ErrNotFound", err)
	}
	if _, err := s.Put(ctx, "bad name!", nil, PutOptions{Activation: Activate}); !errors.Is(err, ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := s.Put(ctx, "other", []byte("x"), PutOptions{}); err != nil {
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
	list, err := s.List(ctx, Page{Name: ""})
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
	if list, _ := s.List(ctx, Page{Name: "mmlu"}); len(list) != 0 {
		t.Fatalf("deleted name still lists %v", list)
	}
	// A name fitted again after a delete continues its numbering: a version number always
	// means one profile.
	if r, _ := s.Put(ctx, "mmlu", []byte("four"), PutOptions{}); r.Version != 4 || !r.Active {
		t.Fatalf("put after deleting the name = %+v, want version 4, active", r)
	}
}

// TestOpenRefuses: a path that is a directory, an empty file (which bbolt would turn into a new,
// empty store: every profile gone, versions starting over), a file that is not a store, and a
// store with a damaged page are refused at open with a message that says what to do; a path
// that does not exist is a new store.
func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a store "), 2000), 0o600)
	damaged := filepath.Join(dir, "damaged.db")
	s, err := Open(damaged, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := s.Put(context.Background(), fmt.Sprintf("p%d", i), bytes.Repeat([]byte{byte(i)}, 3000), PutOptions{Activation: Activate}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	f, err := os.OpenFile(damaged, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Overwrite the headers of pages 4 to 9 (bbolt's page size here is the OS's, 4096).
	for page := int64(4); page < 10; page++ {
		f.WriteAt(bytes.Repeat([]byte{0xA5}, 16), page*4096)
	}
	f.Close()
	for _, tc := range []struct {
		name, path, says string
	}{
		{"a directory", dir, "is a directory"},
		{"an empty file", empty, "is empty (0 bytes), not a plumb store"},
		{"not a store", garbage, "is not a readable plumb store"},
		{"a damaged page", damaged, "is damaged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.path, 0)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("%v, want it to say %q and name the file", err, tc.says)
			}
		})
	}
	if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
		t.Fatalf("the empty file was written to: %v %v", fi, err)
	}
	fresh := filepath.Join(dir, "new.db")
	if s, err := Open(fresh, 0); err != nil {
		t.Fatalf("a new path: %v", err)
	} else {
		s.Close()
	}
}

// TestDamagedRecord: a record too short to be one fails alone: Get names it as damaged, List
// lists it (with Err) beside the others.
func TestDamagedRecord(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plumb.db")
	s, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		if _, err := s.Put(ctx, name, []byte("profile "+name), PutOptions{Activation: Activate}); err != nil {
			t.Fatal(err)
		}
	}
	// Damage b's version 1 as a torn write would: a value shorter than its 8-byte header.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("b")).Bucket(keyVersions).Put(u64(1), []byte{1, 2, 3})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "b", 1); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Get of the damaged record: %v, want ErrDamaged", err)
	}
	if r, err := s.Get(ctx, "c", 0); err != nil || string(r.Data) != "profile c" {
		t.Fatalf("Get of a sound record: %+v, %v", r, err)
	}
	list, err := s.List(ctx, Page{Name: ""})
	if err != nil || len(list) != 3 {
		t.Fatalf("List: %d records, %v; want 3", len(list), err)
	}
	if !errors.Is(list[1].Err, ErrDamaged) || list[1].Name != "b" || list[1].Version != 1 || list[0].Err != nil || list[2].Err != nil {
		t.Fatalf("List: %+v", list)
	}
	s.Close()
}

// TestGuard: what a damaged file makes bbolt do mid-transaction (panic, on a page that does not
// say what it should be) becomes ErrUnavailable, whose text has neither the panic's nor a path.
func TestGuard(t *testing.T) {
	err := guard("read", func() error { panic("page 15: expected to be 15, but self identifies as 65295") })
	if !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "65295") {
		t.Fatalf("guard = %v, want ErrUnavailable without the panic's text", err)
	}
	err = guard("write", func() error { return fmt.Errorf("write /srv/secret/plumb.db: %w", syscall.EIO) })
	if !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "/srv") {
		t.Fatalf("guard = %v, want ErrUnavailable without the path", err)
	}
}
