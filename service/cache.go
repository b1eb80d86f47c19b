package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/store"
)

// The service caches decoded profiles, so that a Score reads no store. Versions are immutable,
// but another process on a shared store (a replica on the same PostgreSQL database) may
// activate or delete one, so cached answers are re-checked: which version is active after
// activeTTL, a version's existence after versionTTL, and at once when the store says the name
// changed (store.Notifier, LISTEN/NOTIFY on PostgreSQL). When the store cannot be reached, the
// cache serves what it has, however old.

const (
	activeTTL  = time.Second      // how long a cached active version is trusted
	versionTTL = 10 * time.Second // how long a cached version is trusted to exist
	// An absent name@version is remembered for absentTTL (or until a change to the name), so
	// that Score on an unknown name does not cost a store round trip each time; at most
	// maxAbsent of them (beyond, the memory is cleared: callers inventing names cannot grow it).
	absentTTL = time.Second
	maxAbsent = 10_000
)

// absentEntry is a name@version the store did not have: the error Profile returned for it (nil
// for the built-in default), and when.
type absentEntry struct {
	err error
	at  time.Time
}

type profileKey struct {
	name    string
	version int64
}

type cachedProfile struct {
	p       *calibrate.Profile
	checked time.Time // zero: re-check on next use
}

type activeEntry struct {
	version int64
	checked time.Time
}

type profileCache struct {
	mu       sync.Mutex
	versions map[profileKey]*cachedProfile
	active   map[string]activeEntry
	absent   map[profileKey]absentEntry
	// gen counts the changes to each name (fits, activations, deletions): a profile read from
	// the store is cached only if its name did not change while it was read, so that a version
	// deleted meanwhile cannot come back into the cache.
	gen map[string]uint64
	// reads collapses concurrent store reads of one name@version into one.
	reads singleflight.Group
	// staleLogged is when each name was last logged as served stale.
	staleLogged map[string]time.Time
	// listed is the store's versions (without data) as last listed for explain, at listedAt.
	listed   []store.Record
	listedAt time.Time
}

func (c *profileCache) init() {
	c.versions = map[profileKey]*cachedProfile{}
	c.active = map[string]activeEntry{}
	c.absent = map[profileKey]absentEntry{}
	c.gen = map[string]uint64{}
	c.staleLogged = map[string]time.Time{}
}

// Profile returns the engine's profile name@version (0: the active one). The name "default"
// without a stored profile is the built-in uncalibrated one.
func (s *Service) Profile(ctx context.Context, name string, version int64) (*calibrate.Profile, error) {
	if name == "" {
		name = DefaultProfile
	}
	c := &s.cache
	now := s.now()
	c.mu.Lock()
	var stale *calibrate.Profile // served if the store cannot be reached
	if version == 0 {
		if a, ok := c.active[name]; ok {
			if e, ok := c.versions[profileKey{name, a.version}]; ok {
				if now.Sub(a.checked) < activeTTL {
					c.mu.Unlock()
					return e.p, nil
				}
				stale = e.p
			}
		}
	} else if e, ok := c.versions[profileKey{name, version}]; ok {
		if now.Sub(e.checked) < versionTTL {
			c.mu.Unlock()
			return e.p, nil
		}
		stale = e.p
	}
	// Not cached: remembered as absent, or read below.
	if a, ok := c.absent[profileKey{name, version}]; ok && now.Sub(a.at) < absentTTL {
		c.mu.Unlock()
		if a.err == nil {
			return calibrate.Default(), nil
		}
		return nil, a.err
	}
	gen := c.gen[name]
	c.mu.Unlock()
	if err := checkName("profile", name); err != nil {
		return nil, err
	}
	// One read serves every caller waiting for it, so no one caller's cancellation may end it
	// (the store bounds its own operations).
	v, err, _ := c.reads.Do(name+"@"+strconv.FormatInt(version, 10), func() (any, error) {
		return s.read(context.WithoutCancel(ctx), name, version, now)
	})
	switch {
	case err == nil:
		return v.(*calibrate.Profile), nil
	case errors.Is(err, store.ErrNotFound):
		var out error
		if name != DefaultProfile || version != 0 {
			out = fault(s.explain(ctx, name, version, err))
		}
		c.mu.Lock()
		if version == 0 {
			delete(c.active, name)
		} else {
			delete(c.versions, profileKey{name, version})
		}
		if c.gen[name] == gen { // no change to the name since the read began
			if len(c.absent) >= maxAbsent {
				clear(c.absent)
			}
			c.absent[profileKey{name, version}] = absentEntry{err: out, at: now}
		}
		c.mu.Unlock()
		if out == nil {
			return calibrate.Default(), nil
		}
		return nil, out
	case stale != nil && errors.Is(err, store.ErrUnavailable):
		s.servedStale(name, err)
		return stale, nil
	}
	return nil, fault(err)
}

// read reads name@version from the store, decodes it and caches it. What it read is cached
// only if the name did not change meanwhile (a deletion must not come back); when it did — a
// notification of the very write that made the version, say — it reads again, twice at most.
func (s *Service) read(ctx context.Context, name string, version int64, now time.Time) (*calibrate.Profile, error) {
	c := &s.cache
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		gen := c.gen[name]
		c.mu.Unlock()
		rec, err := s.store.Get(ctx, name, version)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		e, ok := c.versions[profileKey{name, rec.Version}]
		c.mu.Unlock()
		var p *calibrate.Profile
		if ok {
			p = e.p // versions are immutable: no need to decode it again
		} else {
			m, err := decodeProfile(rec)
			if err != nil {
				return nil, err
			}
			if p, err = api.Profile(m); err != nil {
				return nil, fmt.Errorf("%w: profile %q version %d: %v", store.ErrDamaged, name, rec.Version, err)
			}
		}
		c.mu.Lock()
		cached := c.gen[name] == gen
		if cached {
			c.versions[profileKey{name, rec.Version}] = &cachedProfile{p: p, checked: now}
			if rec.Active {
				c.active[name] = activeEntry{version: rec.Version, checked: now}
			}
		}
		c.mu.Unlock()
		if cached || attempt == 2 {
			return p, nil
		}
	}
}

// servedStale logs, at most once a minute for each name, that a cached profile was served
// because the store could not be reached.
func (s *Service) servedStale(name string, err error) {
	c := &s.cache
	c.mu.Lock()
	now := s.now()
	log := now.Sub(c.staleLogged[name]) > time.Minute
	if log {
		c.staleLogged[name] = now
	}
	c.mu.Unlock()
	if log {
		slog.Warn("service: the store cannot be reached; serving the cached profile", "profile", name, "err", err)
	}
}

// changed marks what the cache knows of a name (of every name, for a Change without one) for
// re-checking: a version was stored, activated or deleted, here or by another process.
func (s *Service) changed(ch store.Change) {
	c := &s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listed = nil
	for k := range c.absent {
		if ch.Name == "" || k.name == ch.Name {
			delete(c.absent, k)
		}
	}
	for k, e := range c.versions {
		if ch.Name == "" || k.name == ch.Name {
			e.checked = time.Time{}
		}
	}
	for n, a := range c.active {
		if ch.Name == "" || n == ch.Name {
			a.checked = time.Time{}
			c.active[n] = a
		}
	}
	if ch.Name != "" {
		c.gen[ch.Name]++
	} else {
		for n := range c.gen {
			c.gen[n]++
		}
	}
}

// deleted drops a version this service deleted (every version of name for 0) from the cache.
func (s *Service) deleted(name string, version int64) {
	s.changed(store.Change{Name: name})
	c := &s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.versions {
		if k.name == name && (version == 0 || k.version == version) {
			delete(c.versions, k)
		}
	}
	if a, ok := c.active[name]; ok && (version == 0 || a.version == version) {
		delete(c.active, name)
	}
}

// Watch keeps the cache in step with a store that several processes share (store.Notifier),
// until ctx is done; with any other store it returns at once.
func (s *Service) Watch(ctx context.Context) {
	if n, ok := s.store.(store.Notifier); ok {
		n.Watch(ctx, s.changed)
	}
}

// Serving reports whether the service can serve stored profiles: its store answers, or, when
// it does not, the cache holds some.
func (s *Service) Serving(ctx context.Context) bool {
	if s.store.Ping(ctx) == nil {
		return true
	}
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	return len(s.cache.versions) > 0
}

// listing returns the store's versions without their data, read at most once a second: a
// stream of requests for unknown profiles must not make every one of them read the store.
func (s *Service) listing(ctx context.Context) ([]store.Record, error) {
	c := &s.cache
	c.mu.Lock()
	if recs, at := c.listed, c.listedAt; recs != nil && s.now().Sub(at) < activeTTL {
		c.mu.Unlock()
		return recs, nil
	}
	c.mu.Unlock()
	v, err, _ := c.reads.Do("\x00list", func() (any, error) {
		recs, err := s.store.List(context.WithoutCancel(ctx), store.Page{})
		if err != nil {
			return nil, err
		}
		for i := range recs {
			recs[i].Data = nil
		}
		c.mu.Lock()
		c.listed, c.listedAt = recs, s.now()
		c.mu.Unlock()
		return recs, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]store.Record), nil
}

// explain adds to a NotFound for name@version (0: the active one) what the store does hold: the
// names stored, or the versions of name, so that a caller sees what to ask for instead. Other
// errors pass as they are.
func (s *Service) explain(ctx context.Context, name string, version int64, err error) error {
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	recs, lerr := s.listing(ctx)
	if lerr != nil {
		return err
	}
	var names []string
	var versions []string
	for _, r := range recs {
		if len(names) == 0 || names[len(names)-1] != r.Name {
			names = append(names, r.Name)
		}
		if r.Name == name {
			versions = append(versions, strconv.FormatInt(r.Version, 10))
		}
	}
	switch {
	case len(versions) > 0:
		return fmt.Errorf("%w; %s has versions %s", err, name, strings.Join(versions, ", "))
	case len(names) == 0:
		return fmt.Errorf("%w; no profile is stored yet: fit one (plumb fit) or import one (plumb profiles import)", err)
	case len(names) > 20:
		return fmt.Errorf("%w; stored profiles include %s (%d in all: plumb profiles list)", err, strings.Join(names[:20], ", "), len(names))
	}
	return fmt.Errorf("%w; stored profiles: %s", err, strings.Join(names, ", "))
}
