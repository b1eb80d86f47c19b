package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/plumbhq/plumb/store"
)

// TestReadOnly: a name's active version is the one marked active, else its highest; reads work
// as in any store; writes are ErrReadOnly; duplicates and two active versions are refused.
func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	r, err := store.NewReadOnly([]store.Record{
		{Name: "b", Version: 2, Data: []byte("b2")},
		{Name: "a", Version: 3, Data: []byte("a3")},
		{Name: "a", Version: 1, Data: []byte("a1"), Active: true},
		{Name: "b", Version: 1, Data: []byte("b1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a": "a1", "b": "b2"} {
		rec, err := r.Get(ctx, name, 0)
		if err != nil || string(rec.Data) != want || !rec.Active {
			t.Errorf("active %s = %+v, %v; want %s", name, rec, err, want)
		}
	}
	if rec, err := r.Get(ctx, "a", 3); err != nil || rec.Active || string(rec.Data) != "a3" {
		t.Errorf("a@3 = %+v, %v", rec, err)
	}
	if _, err := r.Get(ctx, "a", 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a@2: %v", err)
	}
	l, _ := r.List(ctx, store.Page{Name: ""})
	var got []string
	for _, rec := range l {
		got = append(got, string(rec.Data))
	}
	if strings.Join(got, ",") != "a1,a3,b1,b2" {
		t.Errorf("list %v", got)
	}
	if _, err := r.Put(ctx, "a", nil, store.PutOptions{Activation: store.Activate}); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("put: %v", err)
	}
	if _, err := r.Activate(ctx, "a", 3); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("activate: %v", err)
	}
	if _, err := r.Delete(ctx, "a", 0); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("delete: %v", err)
	}
	for _, bad := range [][]store.Record{
		{{Name: "a", Version: 1}, {Name: "a", Version: 1}},
		{{Name: "a", Version: 1, Active: true}, {Name: "a", Version: 2, Active: true}},
		{{Name: "bad name", Version: 1}},
		{{Name: "a", Version: 0}},
	} {
		if _, err := store.NewReadOnly(bad); err == nil {
			t.Errorf("NewReadOnly(%+v) accepted", bad)
		}
	}
}
