package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bolt is the embedded Store: one bbolt file. Layout: a top-level bucket per profile name,
// holding a key "active" (the active version, 8 bytes big-endian) and a nested bucket
// "versions" of version (8 bytes big-endian) → created time (8 bytes, Unix nanoseconds) + data,
// a nested bucket "summaries" of version → the summary put with it (none for a version put
// without one, or by a plumb before summaries), and a nested bucket "fits" of fit id → version.
type Bolt struct {
	db   *bolt.DB
	path string
}

var _ Store = (*Bolt)(nil)

var (
	keyActive    = []byte("active")
	keyVersions  = []byte("versions")
	keySummaries = []byte("summaries")
	keyFits      = []byte("fits")
)

// Open opens the bbolt store at path, creating it when path does not exist. It waits at most
// timeout for another process's lock on the file (0 means 1 s). It refuses, with an error that
// says what to do, a path that is a directory, an empty (0-byte) file — which bbolt would
// silently make a new, empty store — and a file that is not a bbolt store or fails bbolt's
// consistency check.
func Open(path string, timeout time.Duration) (*Bolt, error) {
	if timeout == 0 {
		timeout = time.Second
	}
	if fi, err := os.Stat(path); err == nil {
		switch {
		case fi.IsDir():
			return nil, fmt.Errorf("store: %s is a directory, not a store file", path)
		case fi.Size() == 0:
			return nil, fmt.Errorf("store: %s is empty (0 bytes), not a plumb store: move it away to start a new store there, or give another path", path)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store: %s is locked by another process (a running plumb serve? then use --server): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s is not a readable plumb store (%v): restore it from a backup, or give another path", path, err)
	}
	// Concurrent small feedback writes share one transaction (AddFeedback): those arriving within
	// 2 ms of each other, one fsync for them all.
	db.MaxBatchDelay = 2 * time.Millisecond
	b := &Bolt{db: db, path: path}
	if err := b.check(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s is damaged (%v): restore it from a backup, or give another path", path, err)
	}
	return b, nil
}

// check runs bbolt's consistency check over the whole file (a store holds few, small records).
func (b *Bolt) check() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return b.db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			return e // the first fault is enough
		}
		return nil
	})
}

// Close closes the file.
func (b *Bolt) Close() error { return b.db.Close() }

// Path returns the file's path.
func (b *Bolt) Path() string { return b.path }

// Ping reports nil: an open file is reachable.
func (b *Bolt) Ping(context.Context) error { return nil }

// view and update run a transaction, turning what a damaged file makes bbolt do (panic) and
// what a failing disk makes a write do into the store's errors, without paths or panic text;
// the details go to the log.
func (b *Bolt) view(fn func(tx *bolt.Tx) error) error {
	return guard("read", func() error { return b.db.View(fn) })
}

func (b *Bolt) update(fn func(tx *bolt.Tx) error) error {
	return guard("write", func() error { return b.db.Update(fn) })
}

// batch is update for a small write that may share its transaction with concurrent ones (bbolt's
// Batch): fn may run more than once, so it must start from nothing each time.
func (b *Bolt) batch(fn func(tx *bolt.Tx) error) error {
	return guard("write", func() error { return b.db.Batch(fn) })
}

func guard(op string, run func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("store: bbolt failed", "op", op, "panic", fmt.Sprint(r))
			err = ErrUnavailable
		}
	}()
	err = run()
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrActive) || errors.Is(err, ErrBadName) || errors.Is(err, ErrDamaged) || errors.Is(err, errStopped) {
		return err
	}
	slog.Error("store: bbolt failed", "op", op, "err", err)
	if diskFull(err) {
		return ErrFull
	}
	return ErrUnavailable
}

// diskFull reports whether err is a write that found no room: no space on the device, a quota,
// or a file-size limit. bbolt formats the cause of a failed resize into its message (%s, not
// %w), so the cause is looked for in the text too.
func diskFull(err error) bool {
	for _, cause := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG} {
		if errors.Is(err, cause) || strings.Contains(err.Error(), cause.Error()) {
			return true
		}
	}
	return false
}

func u64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// Put stores the next version of name. Versions only grow, even across deletes.
func (b *Bolt) Put(_ context.Context, name string, data []byte, o PutOptions) (Record, error) {
	if err := CheckName(name); err != nil {
		return Record{}, err
	}
	rec := Record{Name: name, Created: time.Now().UTC().Truncate(time.Microsecond), Data: bytes.Clone(data), FitID: o.FitID}
	err := b.update(func(tx *bolt.Tx) error {
		nb, err := tx.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		vb, err := nb.CreateBucketIfNotExists(keyVersions)
		if err != nil {
			return err
		}
		if o.FitID != "" {
			if v := fitVersion(nb, o.FitID, vb); v != 0 {
				if rec, err = decode(name, u64(v), vb.Get(u64(v)), activeOf(nb)); err != nil {
					return err
				}
				rec.FitID, rec.Existing = o.FitID, true
				return nil
			}
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
		if err := putIn(nb, keySummaries, u64(next), o.Summary); err != nil {
			return err
		}
		if o.FitID != "" {
			if err := putIn(nb, keyFits, []byte(o.FitID), u64(next)); err != nil {
				return err
			}
		}
		if o.Activation.active(nb.Get(keyActive) != nil) {
			rec.Active = true
			return nb.Put(keyActive, u64(next))
		}
		return nil
	})
	return rec, err
}

// fitVersion returns the version of name's bucket nb that fitID made, 0 when none is stored
// (a fit whose version was deleted counts as none).
func fitVersion(nb *bolt.Bucket, fitID string, vb *bolt.Bucket) int64 {
	fb := nb.Bucket(keyFits)
	if fb == nil {
		return 0
	}
	k := fb.Get([]byte(fitID))
	if len(k) != 8 || vb.Get(k) == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(k))
}

// putIn puts k → v in the nested bucket name of nb, made when needed; a nil v puts nothing.
func putIn(nb *bolt.Bucket, name, k, v []byte) error {
	if v == nil {
		return nil
	}
	b, err := nb.CreateBucketIfNotExists(name)
	if err != nil {
		return err
	}
	return b.Put(k, v)
}

// dropVersion deletes version k's summary and the fit ids that point at it.
func dropVersion(nb *bolt.Bucket, k []byte) error {
	if sb := nb.Bucket(keySummaries); sb != nil {
		if err := sb.Delete(k); err != nil {
			return err
		}
	}
	fb := nb.Bucket(keyFits)
	if fb == nil {
		return nil
	}
	var ids [][]byte
	if err := fb.ForEach(func(id, v []byte) error {
		if bytes.Equal(v, k) {
			ids = append(ids, bytes.Clone(id))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		if err := fb.Delete(id); err != nil {
			return err
		}
	}
	return nil
}

// decode reads a stored version; a key or value too short to be one is ErrDamaged.
func decode(name string, k, v []byte, active int64) (Record, error) {
	if len(k) != 8 || len(v) < 8 {
		return Record{}, fmt.Errorf("%w: profile %q, a record of %d bytes", ErrDamaged, name, len(v))
	}
	ver := int64(binary.BigEndian.Uint64(k))
	return Record{
		Name:    name,
		Version: ver,
		Active:  ver == active,
		Created: time.Unix(0, int64(binary.BigEndian.Uint64(v[:8]))).UTC(),
		Data:    bytes.Clone(v[8:]),
	}, nil
}

// cursorFirst returns the first key and value of b, nil when b is nil or empty.
func cursorFirst(b *bolt.Bucket) ([]byte, []byte) {
	if b == nil {
		return nil, nil
	}
	return b.Cursor().First()
}

func activeOf(nb *bolt.Bucket) int64 {
	if a := nb.Get(keyActive); len(a) == 8 {
		return int64(binary.BigEndian.Uint64(a))
	}
	return 0
}

// Get returns a version of name (0: the active one).
func (b *Bolt) Get(_ context.Context, name string, version int64) (Record, error) {
	if err := CheckName(name); err != nil {
		return Record{}, err
	}
	var rec Record
	err := b.view(func(tx *bolt.Tx) error {
		nb := tx.Bucket([]byte(name))
		if nb == nil {
			return fmt.Errorf("%w: profile %q", ErrNotFound, name)
		}
		active := activeOf(nb)
		vb := nb.Bucket(keyVersions)
		if version == 0 {
			if k, _ := cursorFirst(vb); active == 0 && k != nil {
				return errNoActive(name)
			}
			version = active
		}
		var v []byte
		if vb != nil && version > 0 {
			v = vb.Get(u64(version))
		}
		if v == nil {
			return fmt.Errorf("%w: profile %q version %d", ErrNotFound, name, version)
		}
		var err error
		rec, err = decode(name, u64(version), v, active)
		return err
	})
	return rec, err
}

// List returns the versions p selects, by name then version, with their summaries as data
// where they have one; a damaged record is listed with its Err.
func (b *Bolt) List(_ context.Context, p Page) ([]Record, error) {
	var out []Record
	full := func() bool { return p.Limit > 0 && len(out) >= p.Limit }
	err := b.view(func(tx *bolt.Tx) error {
		c := tx.Cursor()
		n, _ := c.First()
		switch {
		case p.Name != "":
			n, _ = c.Seek([]byte(p.Name))
		case p.AfterName != "":
			n, _ = c.Seek([]byte(p.AfterName))
		}
		for ; n != nil && !full(); n, _ = c.Next() {
			if p.Name != "" && string(n) != p.Name {
				break
			}
			if n[0] == 0 {
				continue // feedback, not a profile
			}
			nb := tx.Bucket(n)
			vb := nb.Bucket(keyVersions)
			if vb == nil {
				continue
			}
			active := activeOf(nb)
			sb := nb.Bucket(keySummaries)
			fits := fitsOf(nb)
			vc := vb.Cursor()
			k, v := vc.First()
			if string(n) == p.AfterName {
				k, v = vc.Seek(u64(p.AfterVersion + 1))
			}
			for ; k != nil && !full(); k, v = vc.Next() {
				if sv := bucketGet(sb, k); sv != nil && len(v) >= 8 {
					// The summary in the data's place: the created time stays the version's.
					v = append(v[:8:8], sv...)
				}
				rec, err := decode(string(n), k, v, active)
				if err != nil {
					rec = Record{Name: string(n), Err: err}
					if len(k) == 8 {
						rec.Version = int64(binary.BigEndian.Uint64(k))
					}
				}
				rec.FitID = fits[string(k)]
				out = append(out, rec)
			}
		}
		return nil
	})
	return out, err
}

// fitsOf maps the versions of name's bucket nb (8-byte keys) to the fit ids that made them.
func fitsOf(nb *bolt.Bucket) map[string]string {
	fb := nb.Bucket(keyFits)
	if fb == nil {
		return nil
	}
	m := map[string]string{}
	fb.ForEach(func(id, v []byte) error {
		m[string(v)] = string(id)
		return nil
	})
	return m
}

// bucketGet returns b's value at k; nil when b is nil.
func bucketGet(b *bolt.Bucket, k []byte) []byte {
	if b == nil {
		return nil
	}
	return b.Get(k)
}

// Activate makes version the active one of name.
func (b *Bolt) Activate(_ context.Context, name string, version int64) (Record, error) {
	if err := CheckName(name); err != nil {
		return Record{}, err
	}
	var rec Record
	err := b.update(func(tx *bolt.Tx) error {
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
		var err error
		if rec, err = decode(name, u64(version), v, version); err != nil {
			return err
		}
		return nb.Put(keyActive, u64(version))
	})
	return rec, err
}

// Delete deletes one version, or all of name's when version is 0.
func (b *Bolt) Delete(_ context.Context, name string, version int64) (int, error) {
	if err := CheckName(name); err != nil {
		return 0, err
	}
	var n int
	err := b.update(func(tx *bolt.Tx) error {
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
				if err := dropVersion(nb, k); err != nil {
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
		if err := vb.Delete(u64(version)); err != nil {
			return err
		}
		return dropVersion(nb, u64(version))
	})
	return n, err
}

// Feedback lives in two top-level buckets whose names no profile can have (a NUL first):
// "\x00feedback" holds a bucket per profile of received time (8 bytes, Unix nanoseconds) + id →
// data, so that a profile's outcomes are read in the order they came and the oldest are
// deleted from the front; "\x00feedback-ids" holds id → that key, so that an id counts once.
var (
	keyFeedback    = []byte("\x00feedback")
	keyFeedbackIDs = []byte("\x00feedback-ids")
)

var _ FeedbackStore = (*Bolt)(nil)

// AddFeedback stores the outcomes whose ids are new, in one transaction.
func (b *Bolt) AddFeedback(_ context.Context, fs []Feedback) (int, error) {
	n := 0
	write := b.update
	if len(fs) <= smallFeedback {
		write = b.batch // a unary call's: group-committed with concurrent ones
	}
	err := write(func(tx *bolt.Tx) error {
		n = 0
		fb, err := tx.CreateBucketIfNotExists(keyFeedback)
		if err != nil {
			return err
		}
		ids, err := tx.CreateBucketIfNotExists(keyFeedbackIDs)
		if err != nil {
			return err
		}
		// Put in the order of the ids: a bbolt node takes a transaction's new keys in a sorted
		// slice, so keys put in random order (receipt ids are random) cost a shift each — 150 µs
		// an outcome in a stream of 100 000 — and in order an append.
		order := make([]int, len(fs))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(fs[a].ID, fs[b].ID) })
		stored := make([]bool, len(fs))
		for _, i := range order {
			f := &fs[i]
			if ids.Get([]byte(f.ID)) != nil {
				continue
			}
			pb, err := fb.CreateBucketIfNotExists([]byte(f.Profile))
			if err != nil {
				return err
			}
			k := append(u64(f.Received.UnixNano()), f.ID...)
			if err := pb.Put(k, f.Data); err != nil {
				return err
			}
			if err := ids.Put([]byte(f.ID), k); err != nil {
				return err
			}
			stored[i] = true
			n++
		}
		// ACI steps in the order the outcomes came.
		for i, f := range fs {
			if stored[i] && f.ACI != nil {
				if err := stepACI(tx, f.ACI); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// smallFeedback is the most outcomes a write may share with concurrent ones.
const smallFeedback = 16

// EachFeedback calls fn with profile's outcomes (every profile's when empty), oldest first.
func (b *Bolt) EachFeedback(_ context.Context, profile string, fn func(Feedback) error) error {
	var stopped error // fn's, passed back as it is
	err := b.view(func(tx *bolt.Tx) error {
		fb := tx.Bucket(keyFeedback)
		if fb == nil {
			return nil
		}
		each := func(name []byte) error {
			pb := fb.Bucket(name)
			if pb == nil {
				return nil
			}
			return pb.ForEach(func(k, v []byte) error {
				if len(k) < 8 {
					return fmt.Errorf("%w: feedback of %q, a key of %d bytes", ErrDamaged, name, len(k))
				}
				if err := fn(Feedback{ID: string(k[8:]), Profile: string(name),
					Received: time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC(), Data: bytes.Clone(v)}); err != nil {
					stopped = err
					return errStopped
				}
				return nil
			})
		}
		if profile != "" {
			return each([]byte(profile))
		}
		return fb.ForEach(func(name, _ []byte) error { return each(name) })
	})
	if stopped != nil {
		return stopped
	}
	return err
}

// errStopped ends a bbolt walk that its caller's function stopped.
var errStopped = errors.New("store: stopped")

// DropFeedback deletes the outcomes received before t.
func (b *Bolt) DropFeedback(_ context.Context, before time.Time) (int, error) {
	n := 0
	err := b.update(func(tx *bolt.Tx) error {
		n = 0
		fb, ids := tx.Bucket(keyFeedback), tx.Bucket(keyFeedbackIDs)
		if fb == nil || ids == nil {
			return nil
		}
		limit := u64(before.UnixNano())
		var names [][]byte
		fb.ForEach(func(name, _ []byte) error { names = append(names, bytes.Clone(name)); return nil })
		for _, name := range names {
			pb := fb.Bucket(name)
			if pb == nil {
				continue
			}
			c := pb.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k[:min(8, len(k))], limit) < 0; k, _ = c.First() {
				if err := ids.Delete(k[min(8, len(k)):]); err != nil {
					return err
				}
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// keyACI is the bucket of adaptive thresholds: profile NUL version (8 bytes) NUL segment → q
// (float64 bits, 8 bytes big-endian).
var keyACI = []byte("\x00aci")

func aciKey(k ACIKey) []byte {
	b := append([]byte(k.Profile), 0)
	b = append(b, u64(k.Version)...)
	return append(append(b, 0), k.Segment...)
}

func stepACI(tx *bolt.Tx, st *ACIStep) error {
	b, err := tx.CreateBucketIfNotExists(keyACI)
	if err != nil {
		return err
	}
	k := aciKey(st.Key)
	q := st.Start
	if v := b.Get(k); len(v) == 8 {
		q = math.Float64frombits(binary.BigEndian.Uint64(v))
	}
	return b.Put(k, binary.BigEndian.AppendUint64(nil, math.Float64bits(st.apply(q))))
}

// ACI returns every adaptive threshold.
func (b *Bolt) ACI(context.Context) (map[ACIKey]float64, error) {
	out := map[ACIKey]float64{}
	err := b.view(func(tx *bolt.Tx) error {
		ab := tx.Bucket(keyACI)
		if ab == nil {
			return nil
		}
		return ab.ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) < i+10 || len(v) != 8 {
				return nil // not one of ours: skipped
			}
			out[ACIKey{Profile: string(k[:i]), Version: int64(binary.BigEndian.Uint64(k[i+1 : i+9])), Segment: string(k[i+10:])}] =
				math.Float64frombits(binary.BigEndian.Uint64(v))
			return nil
		})
	})
	return out, err
}
