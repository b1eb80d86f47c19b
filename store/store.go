// Package store persists calibration profiles: immutable numbered versions per name, one of
// them active, behind the Store interface. Open returns the embedded bbolt implementation, one
// process's file; OpenPostgres the PostgreSQL one, which several replicas share and which tells
// each of the others' changes (Notifier). Every change is one transaction in both, so a crash or
// a failed fit leaves the store as it was. The conformance suite in storetest runs on both.
//
// The store keeps profiles as opaque bytes (the server writes protobuf-encoded plumb.v1.Profile
// messages); it knows names, versions and which version is active.
package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Errors of the store. The last three never carry a file path or a panic's text: they may reach
// a client. The store logs the details (slog.Default).
var (
	// ErrNotFound: no such name or version.
	ErrNotFound = errors.New("store: not found")
	// ErrActive: the version is active and cannot be deleted alone.
	ErrActive = errors.New("store: version is active")
	// ErrBadName: the name does not match NamePattern.
	ErrBadName = errors.New("store: bad profile name")
	// ErrDamaged: a stored record cannot be read; the others can.
	ErrDamaged = errors.New("store: a stored record is damaged")
	// ErrFull: a write failed because the disk (or a quota) is full; nothing was written.
	ErrFull = errors.New("store: the disk holding the store is full; nothing was written")
	// ErrUnavailable: the store failed (an I/O error, a damaged file); nothing was written.
	ErrUnavailable = errors.New("store: the store failed; nothing was written")
	// ErrOutcomeUnknown: a write's commit got no answer (the connection was lost, or the
	// timeout passed, while it was on its way): it may or may not have been stored.
	ErrOutcomeUnknown = errors.New("store: the database did not confirm the write, which may have been stored: check `plumb profiles list`, or retry a fit with the same fit id, before writing again")
)

// NamePattern is what a profile name must match.
var NamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// CheckName returns ErrBadName, quoting at most 64 bytes of name, when name does not match
// NamePattern.
func CheckName(name string) error {
	if !NamePattern.MatchString(name) {
		if len(name) > 64 {
			name = name[:64] + "…"
		}
		return fmt.Errorf("%w %q: want %s", ErrBadName, name, NamePattern)
	}
	return nil
}

// Record is one stored profile version.
type Record struct {
	Name    string
	Version int64
	Active  bool
	Created time.Time
	Data    []byte
	// FitID is the client's id of the fit that made the version, when it gave one.
	FitID string
	// Existing is set by Put when a version with the put's FitID was already stored: that
	// version is returned and nothing was written.
	Existing bool
	// Err is set, by List only, on a record that cannot be read (ErrDamaged): the others are
	// listed beside it. Data is then empty.
	Err error
}

// Activation says whether a version put becomes the active one of its name.
type Activation uint8

const (
	// IfNone: active when the name has no active version (its first version, or the first
	// after every version was deleted or none was active).
	IfNone Activation = iota
	// Activate: active.
	Activate
	// Inactive: stored and not active, even as the name's only version.
	Inactive
)

// errNoActive is Get's error for the active version of a name whose versions are all inactive.
func errNoActive(name string) error {
	return fmt.Errorf("%w: profile %q has no active version: activate one (plumb profiles activate %s VERSION)", ErrNotFound, name, name)
}

// active says whether a version put with a becomes active, the name's active version being
// hasActive.
func (a Activation) active(hasActive bool) bool {
	return a == Activate || a == IfNone && !hasActive
}

// PutOptions says how a version is put.
type PutOptions struct {
	// Activation says whether the version becomes the name's active one.
	Activation Activation
	// FitID, when not empty, names the fit that made the data (at most 128 bytes): a put to a
	// name that already holds a version with this fit id writes nothing and returns that version
	// with Existing set. A fit retried after its answer was lost finds its version this way
	// instead of storing a second one.
	FitID string
	// Summary is a short form of the data that List returns in its place; nil: List returns the
	// data.
	Summary []byte
}

// MaxFitID is the longest fit id, in bytes.
const MaxFitID = 128

// Page selects part of a listing, by name then version.
type Page struct {
	// Name: only this name's versions; empty: every name's.
	Name string
	// AfterName and AfterVersion: only versions after this one (by name in byte order, then
	// version); an empty AfterName starts at the first.
	AfterName    string
	AfterVersion int64
	// Limit: at most this many; 0: all.
	Limit int
}

// after reports whether name@version comes after the page's start.
func (p Page) after(name string, version int64) bool {
	if p.AfterName == "" {
		return true
	}
	return name > p.AfterName || name == p.AfterName && version > p.AfterVersion
}

// Store persists profile versions. Implementations are safe for concurrent use.
type Store interface {
	// Put stores data as the next version of name and returns it, as o says.
	Put(ctx context.Context, name string, data []byte, o PutOptions) (Record, error)
	// Get returns a version of name; version 0 means the active one.
	Get(ctx context.Context, name string, version int64) (Record, error)
	// List returns the versions p selects, by name (in byte order) then version, each with its
	// summary as Data when one was put (else its data). A damaged record is listed with its Err
	// set rather than failing the list.
	List(ctx context.Context, p Page) ([]Record, error)
	// Activate makes a stored version the active one of its name.
	Activate(ctx context.Context, name string, version int64) (Record, error)
	// Delete deletes one version (ErrActive if it is the active one), or every version of name
	// when version is 0, and returns how many it deleted.
	Delete(ctx context.Context, name string, version int64) (int, error)
	// Ping reports whether the store can be reached (a database's may not be).
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// Change says that a profile name's versions changed in the store — a put, an activation or a
// deletion — possibly by another process. A Change with no name means that anything may have
// changed (changes went unheard).
type Change struct {
	Name string
}

// Notifier is a Store that several processes share and that tells each of the changes the
// others make.
type Notifier interface {
	Store
	// Watch calls f with every change, on one goroutine, until ctx is done.
	Watch(ctx context.Context, f func(Change))
}

// OpenAny opens the store a --store value names: a PostgreSQL database for a postgres:// URL,
// else a bbolt file.
func OpenAny(ctx context.Context, spec string, pg PostgresConfig) (Store, error) {
	if IsPostgres(spec) {
		return OpenPostgres(ctx, spec, pg)
	}
	return Open(spec, 0)
}
