package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bolt is the embedded Store: one bbolt file. Layout: a top-level bucket per profile name,
// holding a key "active" (the active version, 8 bytes big-endian) and a nested bucket
// "versions" of version (8 bytes big-endian) → created time (8 bytes, Unix nanoseconds) + data.
type Bolt struct {
	db *bolt.DB
}

var _ Store = (*Bolt)(nil)

var (
	keyActive   = []byte("active")
	keyVersions = []byte("versions")
)

// Open opens (creating if needed) the bbolt store at path. It waits at most timeout for
// another process's lock on the file (0 means 1 s).
func Open(path string, timeout time.Duration) (*Bolt, error) {
	if timeout == 0 {
		timeout = time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store: %s is locked by another process (a running plumb serve? then use --server): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// Close closes the file.
func (b *Bolt) Close() error { return b.db.Close() }

func u64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func checkName(name string) error {
	if !NamePattern.MatchString(name) {
		return fmt.Errorf("%w %q: want %s", ErrBadName, name, NamePattern)
	}
	return nil
}

// Put stores the next version of name. Versions only grow, even across deletes.
func (b *Bolt) Put(_ context.Context, name string, data []byte, activate bool) (Record, error) {
	if err := checkName(name); err != nil {
		return Record{}, err
	}
	rec := Record{Name: name, Created: time.Now().UTC().Truncate(time.Microsecond), Data: bytes.Clone(data)}
	err := b.db.Update(func(tx *bolt.Tx) error {
		nb, err := tx.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		vb, err := nb.CreateBucketIfNotExists(keyVersions)
		if err != nil {
			return err
		}
		// Versions only grow, even after deletes: the last key plus one.
		var next int64 = 1
		if k, _ := vb.Cursor().Last(); k != nil {
			next = int64(binary.BigEndian.Uint64(k)) + 1
		}
		if seq := int64(vb.Sequence()); seq >= next {
			next = seq + 1
		}
		if err := vb.SetSequence(uint64(next)); err != nil {
			return err
		}
		rec.Version = next
		val := append(u64(rec.Created.UnixNano()), data...)
		if err := vb.Put(u64(next), val); err != nil {
			return err
		}
		if activate || nb.Get(keyActive) == nil {
			rec.Active = true
			return nb.Put(keyActive, u64(next))
		}
		return nil
	})
	return rec, err
}

func decode(name string, k, v []byte, active int64) Record {
	ver := int64(binary.BigEndian.Uint64(k))
	return Record{
		Name:    name,
		Version: ver,
		Active:  ver == active,
		Created: time.Unix(0, int64(binary.BigEndian.Uint64(v[:8]))).UTC(),
		Data:    bytes.Clone(v[8:]),
	}
}

func activeOf(nb *bolt.Bucket) int64 {
	if a := nb.Get(keyActive); a != nil {
		return int64(binary.BigEndian.Uint64(a))
	}
	return 0
}

// Get returns a version of name (0: the active one).
func (b *Bolt) Get(_ context.Context, name string, version int64) (Record, error) {
	var rec Record
	err := b.db.View(func(tx *bolt.Tx) error {
		nb := tx.Bucket([]byte(name))
		if nb == nil {
			return fmt.Errorf("%w: profile %q", ErrNotFound, name)
		}
		active := activeOf(nb)
		if version == 0 {
			version = active
		}
		vb := nb.Bucket(keyVersions)
		var v []byte
		if vb != nil && version > 0 {
			v = vb.Get(u64(version))
		}
		if v == nil {
			return fmt.Errorf("%w: profile %q version %d", ErrNotFound, name, version)
		}
		rec = decode(name, u64(version), v, active)
		return nil
	})
	return rec, err
}

// List returns every version, by name then version.
func (b *Bolt) List(_ context.Context, name string) ([]Record, error) {
	var out []Record
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(n []byte, nb *bolt.Bucket) error {
			if name != "" && string(n) != name {
				return nil
			}
			active := activeOf(nb)
			vb := nb.Bucket(keyVersions)
			if vb == nil {
				return nil
			}
			return vb.ForEach(func(k, v []byte) error {
				out = append(out, decode(string(n), k, v, active))
				return nil
			})
		})
	})
	return out, err
}

// Activate makes version the active one of name.
func (b *Bolt) Activate(_ context.Context, name string, version int64) (Record, error) {
	var rec Record
	err := b.db.Update(func(tx *bolt.Tx) error {
		nb := tx.Bucket([]byte(name))
		if nb == nil {
			return fmt.Errorf("%w: profile %q", ErrNotFound, name)
		}
		vb := nb.Bucket(keyVersions)
		var v []byte
		if vb != nil {
			v = vb.Get(u64(version))
		}
		if v == nil {
			return fmt.Errorf("%w: profile %q version %d", ErrNotFound, name, version)
		}
		rec = decode(name, u64(version), v, version)
		return nb.Put(keyActive, u64(version))
	})
	return rec, err
}

// Delete deletes one version, or all of name's when version is 0.
func (b *Bolt) Delete(_ context.Context, name string, version int64) (int, error) {
	var n int
	err := b.db.Update(func(tx *bolt.Tx) error {
		nb := tx.Bucket([]byte(name))
		if nb == nil {
			return fmt.Errorf("%w: profile %q", ErrNotFound, name)
		}
		vb := nb.Bucket(keyVersions)
		if version == 0 {
			// Empty the name but keep its bucket, whose sequence keeps versions from ever
			// being reused.
			if vb == nil {
				return nil
			}
			var keys [][]byte
			if err := vb.ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil }); err != nil {
				return err
			}
			if len(keys) == 0 {
				return fmt.Errorf("%w: profile %q", ErrNotFound, name)
			}
			for _, k := range keys {
				if err := vb.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nb.Delete(keyActive)
		}
		if vb == nil || vb.Get(u64(version)) == nil {
			return fmt.Errorf("%w: profile %q version %d", ErrNotFound, name, version)
		}
		if activeOf(nb) == version {
			return fmt.Errorf("%w: version %d of %q is active: activate another version first, or delete every version", ErrActive, version, name)
		}
		n = 1
		return vb.Delete(u64(version))
	})
	return n, err
}
