package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
)

// ErrReadOnly: the store serves fixed profiles (plumb serve --profile-file) and stores nothing.
var ErrReadOnly = errors.New("store: this server serves profiles from files (--profile-file) and stores nothing")

// ReadOnly is a Store of fixed records held in memory: what `plumb serve --profile-file` serves,
// with no database and no file to write. Put, Activate and Delete return ErrReadOnly.
type ReadOnly struct {
	recs   []Record // by name, then version
	active map[string]int64
}

var _ Store = (*ReadOnly)(nil)

// NewReadOnly holds recs. Each name's active version is the record marked Active, else its
// highest; two records of one name and version, or two active ones, are an error.
func NewReadOnly(recs []Record) (*ReadOnly, error) {
	r := &ReadOnly{recs: slices.Clone(recs), active: map[string]int64{}}
	slices.SortFunc(r.recs, byNameVersion)
	marked := map[string]bool{}
	for i, rec := range r.recs {
		if err := CheckName(rec.Name); err != nil {
			return nil, err
		}
		if rec.Version < 1 {
			return nil, fmt.Errorf("store: profile %q: version %d, want ≥ 1", rec.Name, rec.Version)
		}
		if i > 0 && r.recs[i-1].Name == rec.Name && r.recs[i-1].Version == rec.Version {
			return nil, fmt.Errorf("store: profile %q version %d given twice", rec.Name, rec.Version)
		}
		switch {
		case rec.Active && marked[rec.Name]:
			return nil, fmt.Errorf("store: profile %q has two active versions", rec.Name)
		case rec.Active:
			marked[rec.Name] = true
			r.active[rec.Name] = rec.Version
		case !marked[rec.Name]:
			r.active[rec.Name] = rec.Version // the highest so far
		}
	}
	for i := range r.recs {
		r.recs[i].Active = r.active[r.recs[i].Name] == r.recs[i].Version
	}
	return r, nil
}

// byNameVersion orders records by name, then version.
func byNameVersion(a, b Record) int {
	return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version))
}

func (r *ReadOnly) find(name string, version int64) (Record, error) {
	if err := CheckName(name); err != nil {
		return Record{}, err
	}
	if version == 0 {
		v, ok := r.active[name]
		if !ok {
			return Record{}, fmt.Errorf("%w: profile %q", ErrNotFound, name)
		}
		version = v
	}
	i, ok := slices.BinarySearchFunc(r.recs, Record{Name: name, Version: version}, byNameVersion)
	if !ok {
		return Record{}, fmt.Errorf("%w: profile %q version %d", ErrNotFound, name, version)
	}
	rec := r.recs[i]
	rec.Data = slices.Clone(rec.Data)
	return rec, nil
}

// Get returns a version of name (0: the active one).
func (r *ReadOnly) Get(_ context.Context, name string, version int64) (Record, error) {
	return r.find(name, version)
}

// List returns the records p selects, by name then version.
func (r *ReadOnly) List(_ context.Context, p Page) ([]Record, error) {
	var out []Record
	for _, rec := range r.recs {
		if p.Limit > 0 && len(out) >= p.Limit {
			break
		}
		if (p.Name == "" || rec.Name == p.Name) && p.after(rec.Name, rec.Version) {
			rec.Data = slices.Clone(rec.Data)
			out = append(out, rec)
		}
	}
	return out, nil
}

// Put returns ErrReadOnly.
func (r *ReadOnly) Put(context.Context, string, []byte, PutOptions) (Record, error) {
	return Record{}, ErrReadOnly
}

// Activate returns ErrReadOnly.
func (r *ReadOnly) Activate(context.Context, string, int64) (Record, error) {
	return Record{}, ErrReadOnly
}

// Delete returns ErrReadOnly.
func (r *ReadOnly) Delete(context.Context, string, int64) (int, error) { return 0, ErrReadOnly }

// Ping reports nil.
func (r *ReadOnly) Ping(context.Context) error { return nil }

// Close does nothing.
func (r *ReadOnly) Close() error { return nil }
