package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the Store for several replicas: profile versions in two tables of a PostgreSQL
// database, every change one transaction that also notifies the channel plumb_profiles with the
// name, so that every replica's cache hears of it (Watch).
type Postgres struct {
	dsn     string
	pool    *pgxpool.Pool
	timeout time.Duration
	conn    *pgx.ConnConfig // for the LISTEN connection, outside the pool
}

var (
	_ Store    = (*Postgres)(nil)
	_ Notifier = (*Postgres)(nil)
)

// PostgresConfig configures OpenPostgres. Zero values mean the defaults.
type PostgresConfig struct {
	MaxConns       int32         // connections in the pool (default 8)
	ConnectTimeout time.Duration // to open a connection (default 5 s)
	Timeout        time.Duration // of one store operation, waiting for a connection included (default 5 s)
}

// channel is the LISTEN/NOTIFY channel of changes; the payload is the profile name.
const channel = "plumb_profiles"

//go:embed migrations/postgres/*.sql
var migrations embed.FS

// IsPostgres reports whether a --store value names a PostgreSQL database rather than a file.
func IsPostgres(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// Redact returns a DSN fit for logs: without its password.
func Redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	dsn = userinfo.ReplaceAllString(dsn, "://$1:xxxxx@")
	return keyPassword.ReplaceAllString(dsn, "password=xxxxx")
}

var (
	userinfo    = regexp.MustCompile(`://([^:/@]*):[^@]*@`)
	keyPassword = regexp.MustCompile(`password=[^\s&]*`)
)

// OpenPostgres connects to the database dsn names (postgres://user@host:port/db?…; a
// search_path parameter selects a schema), creates plumb's tables there or migrates them to
// this version's schema, and returns the store. Errors never show the DSN's password.
func OpenPostgres(ctx context.Context, dsn string, c PostgresConfig) (*Postgres, error) {
	if c.MaxConns == 0 {
		c.MaxConns = 8
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors quote the DSN, password included.
		return nil, fmt.Errorf("store: %s is not a PostgreSQL connection string", Redact(dsn))
	}
	cfg.MaxConns = c.MaxConns
	cfg.ConnConfig.ConnectTimeout = c.ConnectTimeout
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", Redact(dsn), err)
	}
	p := &Postgres{dsn: dsn, pool: pool, timeout: c.Timeout, conn: cfg.ConnConfig.Copy()}
	mctx, cancel := context.WithTimeout(ctx, c.ConnectTimeout+c.Timeout)
	defer cancel()
	if err := p.migrate(mctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: %s: %w", Redact(dsn), err)
	}
	return p, nil
}

// migrate brings the schema to the newest embedded version, one migration a transaction, under
// an advisory lock so that replicas starting together do not race.
func (p *Postgres) migrate(ctx context.Context) error {
	files, err := fs.Glob(migrations, "migrations/postgres/*.sql")
	if err != nil {
		return err
	}
	slices.Sort(files)
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('plumb schema'))`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS plumb_schema (version int PRIMARY KEY, applied timestamptz NOT NULL)`); err != nil {
		return err
	}
	var have int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM plumb_schema`).Scan(&have); err != nil {
		return err
	}
	if have > len(files) {
		return fmt.Errorf("the database's plumb schema is version %d, newer than this plumb's (%d): upgrade plumb", have, len(files))
	}
	for i, f := range files {
		v := i + 1
		if !strings.HasPrefix(f, fmt.Sprintf("migrations/postgres/%04d_", v)) {
			return fmt.Errorf("migration %s is out of sequence", f)
		}
		if v <= have {
			continue
		}
		sql, err := migrations.ReadFile(f)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, string(sql)); err != nil {
			return fmt.Errorf("migration %s: %w", f, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO plumb_schema (version, applied) VALUES ($1, now())`, v); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// Close closes the pool.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (p *Postgres) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return p.fault("ping", ctx, p.pool.Ping(ctx))
}

// fault maps a database error to the store's: not found and bad names pass; a caller's
// cancellation stays the context's error; a full disk is ErrFull; anything else — the database
// unreachable, a timeout, a failed statement — is logged and ErrUnavailable.
func (p *Postgres) fault(op string, ctx context.Context, err error) error {
	var pe *pgconn.PgError
	switch {
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, ErrActive), errors.Is(err, ErrBadName), errors.Is(err, errExisting):
		return err
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return ctx.Err()
	case errors.As(err, &pe) && (pe.Code == "53100" || pe.Code == "53200"):
		slog.Error("store: the database is out of space", "op", op, "err", err)
		return ErrFull
	}
	slog.Error("store: the database failed", "op", op, "err", err)
	return ErrUnavailable
}

// tx runs the write fn in a transaction with the operation timeout, and maps its error. An
// error that pgconn says happened before anything reached the server (a pooled connection
// the database had dropped) is retried once on another connection. A COMMIT that got no
// answer — the connection lost or the timeout passed while it was on its way — may have
// committed: that is ErrOutcomeUnknown, never "nothing was written".
func (p *Postgres) tx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		committing := false
		err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			committing = true
			return nil
		})
		var pe *pgconn.PgError
		if err != nil && committing && !errors.As(err, &pe) {
			slog.Error("store: the database did not answer a commit", "op", op, "err", err)
			return ErrOutcomeUnknown
		}
		// Not committing: the transaction did not commit, so a lost connection may be retried.
		if err == nil || !connectionLost(err) || ctx.Err() != nil {
			break
		}
		p.lost(err)
	}
	return p.fault(op, ctx, err)
}

// read runs the read fn, once more on another connection when its first try met a pooled
// connection that the database had ended (a failover, pg_terminate_backend, a restart): a read
// changes nothing, so it may always be tried again.
func (p *Postgres) read(ctx context.Context, fn func() error) error {
	err := fn()
	if err != nil && ctx.Err() == nil && connectionLost(err) {
		p.lost(err)
		err = fn()
	}
	return err
}

// lost closes the pool's connections after one was found lost: what ended one session (a
// failover, a restart) most likely ended the others, and a retry must not meet another of them.
func (p *Postgres) lost(err error) {
	slog.Warn("store: a database connection was lost; reconnecting", "err", err)
	p.pool.Reset()
}

// connectionLost reports whether err says the connection, not the statement, failed: no
// answer from the server (a network error, EOF), or the server ending the session (SQLSTATE
// class 57P, operator intervention, and class 08, connection exception).
func connectionLost(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "57P") || strings.HasPrefix(pe.Code, "08")
	}
	var ne net.Error
	return pgconn.SafeToRetry(err) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func notify(ctx context.Context, tx pgx.Tx, name string) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, name)
	return err
}

// Put stores the next version of name: the name's row, locked for the transaction, hands out
// the number, so concurrent puts from any replica get distinct, consecutive versions.
func (p *Postgres) Put(ctx context.Context, name string, data []byte, o PutOptions) (Record, error) {
	if err := CheckName(name); err != nil {
		return Record{}, err
	}
	rec := Record{Name: name, Created: time.Now().UTC().Truncate(time.Microsecond), Data: slices.Clone(data), FitID: o.FitID}
	if rec.Data == nil {
		rec.Data = []byte{}
	}
	var fitID *string
	if o.FitID != "" {
		fitID = &o.FitID
	}
	var existing Record
	err := p.tx(ctx, "put", func(tx pgx.Tx) error {
		var active *int64
		err := tx.QueryRow(ctx, `
			INSERT INTO plumb_profiles AS p (name, last_version) VALUES ($1, 1)
			ON CONFLICT (name) DO UPDATE SET last_version = p.last_version + 1
			RETURNING last_version, active`, name).Scan(&rec.Version, &active)
		if err != nil {
			return err
		}
		if fitID != nil {
			// The name's row is locked now: a put of the same fit that committed first is seen
			// by this statement, and one that comes later waits for this one.
			existing = Record{Name: name, FitID: o.FitID, Existing: true}
			err := tx.QueryRow(ctx, `SELECT version, created, data FROM plumb_profile_versions WHERE name = $1 AND fit_id = $2`,
				name, o.FitID).Scan(&existing.Version, &existing.Created, &existing.Data)
			if err == nil {
				existing.Active = active != nil && *active == existing.Version
				existing.Created = existing.Created.UTC()
				return errExisting // roll back the version number taken above
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO plumb_profile_versions (name, version, created, data, fit_id, summary) VALUES ($1, $2, $3, $4, $5, $6)`,
			name, rec.Version, rec.Created, rec.Data, fitID, o.Summary); err != nil {
			return err
		}
		if o.Activation.active(active != nil) {
			rec.Active = true
			if _, err := tx.Exec(ctx, `UPDATE plumb_profiles SET active = $2 WHERE name = $1`, name, rec.Version); err != nil {
				return err
			}
		}
		return notify(ctx, tx, name)
	})
	if errors.Is(err, errExisting) {
		return existing, nil
	}
	if err != nil {
		return Record{}, err
	}
	return rec, nil
}

// errExisting rolls back a put whose fit id is already stored.
var errExisting = errors.New("store: the fit is already stored")

// Get returns a version of name (0: the active one).
func (p *Postgres) Get(ctx context.Context, name string, version int64) (Record, error) {
	if err := CheckName(name); err != nil {
		return Record{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	rec := Record{Name: name}
	var active *int64
	err := p.read(ctx, func() error {
		return p.pool.QueryRow(ctx, `
			SELECT v.version, v.created, v.data, p.active
			FROM plumb_profiles p JOIN plumb_profile_versions v ON v.name = p.name
			WHERE p.name = $1 AND v.version = CASE WHEN $2 = 0 THEN p.active ELSE $2 END`, name, version).
			Scan(&rec.Version, &rec.Created, &rec.Data, &active)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		if version == 0 {
			var any bool
			if err := p.read(ctx, func() error {
				return p.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM plumb_profile_versions WHERE name = $1)`, name).Scan(&any)
			}); err != nil {
				return Record{}, p.fault("get", ctx, err)
			}
			if any {
				return Record{}, errNoActive(name)
			}
			return Record{}, fmt.Errorf("%w: profile %q", ErrNotFound, name)
		}
		return Record{}, fmt.Errorf("%w: profile %q version %d", ErrNotFound, name, version)
	}
	if err != nil {
		return Record{}, p.fault("get", ctx, err)
	}
	rec.Active = active != nil && *active == rec.Version
	rec.Created = rec.Created.UTC()
	return rec, nil
}

// List returns every version (of name, when not empty), by name then version.
func (p *Postgres) List(ctx context.Context, pg Page) ([]Record, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var out []Record
	err := p.read(ctx, func() error {
		rows, err := p.pool.Query(ctx, `
			SELECT v.name, v.version, v.created, COALESCE(v.summary, v.data), v.fit_id, p.active IS NOT DISTINCT FROM v.version
			FROM plumb_profile_versions v JOIN plumb_profiles p ON p.name = v.name
			WHERE ($1 = '' OR v.name = $1)
			  AND ($2 = '' OR (v.name COLLATE "C", v.version) > ($2 COLLATE "C", $3))
			ORDER BY v.name COLLATE "C", v.version
			LIMIT NULLIF($4, 0)`, pg.Name, pg.AfterName, pg.AfterVersion, pg.Limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Record, error) {
			var r Record
			var fitID *string
			err := row.Scan(&r.Name, &r.Version, &r.Created, &r.Data, &fitID, &r.Active)
			r.Created = r.Created.UTC()
			if fitID != nil {
				r.FitID = *fitID
			}
			return r, err
		})
		return err
	})
	if err != nil {
		return nil, p.fault("list", ctx, err)
	}
	return out, nil
}

// Activate makes version the active one of name.
func (p *Postgres) Activate(ctx context.Context, name string, version int64) (Record, error) {
	if err := CheckName(name); err != nil {
		return Record{}, err
	}
	rec := Record{Name: name, Version: version, Active: true}
	err := p.tx(ctx, "activate", func(tx pgx.Tx) error {
		// The name's row first, as Delete and Put lock it: a Delete of this version that holds it
		// commits before the version is read below, by a statement of its own (a fresh snapshot
		// under READ COMMITTED), which then finds it gone. One UPDATE … FROM would have joined the
		// version as it was before the Delete waited on, and pointed the name at a deleted one.
		err := tx.QueryRow(ctx, `SELECT 1 FROM plumb_profiles WHERE name = $1 FOR UPDATE`, name).Scan(new(int))
		if err == nil {
			err = tx.QueryRow(ctx, `SELECT created, data FROM plumb_profile_versions WHERE name = $1 AND version = $2`,
				name, version).Scan(&rec.Created, &rec.Data)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: profile %q version %d", ErrNotFound, name, version)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE plumb_profiles SET active = $2 WHERE name = $1`, name, version); err != nil {
			return err
		}
		return notify(ctx, tx, name)
	})
	if err != nil {
		return Record{}, err
	}
	rec.Created = rec.Created.UTC()
	return rec, nil
}

// Delete deletes one version (never the active one alone), or all of name's when version is 0;
// the name's row stays, so that its versions are never reused.
func (p *Postgres) Delete(ctx context.Context, name string, version int64) (int, error) {
	if err := CheckName(name); err != nil {
		return 0, err
	}
	var n int
	err := p.tx(ctx, "delete", func(tx pgx.Tx) error {
		var active *int64
		err := tx.QueryRow(ctx, `SELECT active FROM plumb_profiles WHERE name = $1 FOR UPDATE`, name).Scan(&active)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: profile %q", ErrNotFound, name)
		}
		if err != nil {
			return err
		}
		if version != 0 && active != nil && *active == version {
			return fmt.Errorf("%w: version %d of %q is active: activate another version first, or delete every version", ErrActive, version, name)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM plumb_profile_versions WHERE name = $1 AND ($2 = 0 OR version = $2)`, name, version)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		if n == 0 {
			if version == 0 {
				return fmt.Errorf("%w: profile %q", ErrNotFound, name)
			}
			return fmt.Errorf("%w: profile %q version %d", ErrNotFound, name, version)
		}
		if version == 0 {
			if _, err := tx.Exec(ctx, `UPDATE plumb_profiles SET active = NULL WHERE name = $1`, name); err != nil {
				return err
			}
		}
		return notify(ctx, tx, name)
	})
	return n, err
}

// Watch calls f with every change any replica makes (a Change naming the profile), until ctx is
// done. It listens on a connection of its own; each time that connection is (re)made, f gets a
// Change with no name, since changes made while it was down went unheard. A failed connection
// is retried every second.
func (p *Postgres) Watch(ctx context.Context, f func(Change)) {
	for ctx.Err() == nil {
		err := p.listen(ctx, f)
		if ctx.Err() != nil {
			return
		}
		slog.Warn("store: listening for profile changes failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (p *Postgres) listen(ctx context.Context, f func(Change)) error {
	cctx, cancel := context.WithTimeout(ctx, p.conn.ConnectTimeout+p.timeout)
	conn, err := pgx.ConnectConfig(cctx, p.conn)
	if err == nil {
		_, err = conn.Exec(cctx, "LISTEN "+channel)
	}
	cancel()
	if err != nil {
		if conn != nil {
			conn.Close(context.Background())
		}
		return err
	}
	defer conn.Close(context.Background())
	f(Change{})
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		f(Change{Name: n.Payload})
	}
}

// DSN returns the connection string the store was opened with (password included: not for
// logs; see Redact).
func (p *Postgres) DSN() string { return p.dsn }

// String describes the store for logs, without the password.
func (p *Postgres) String() string {
	c := p.pool.Config().ConnConfig
	return "postgres://" + c.User + "@" + c.Host + ":" + strconv.Itoa(int(c.Port)) + "/" + c.Database
}

var _ FeedbackStore = (*Postgres)(nil)

// AddFeedback stores the outcomes whose ids are new in one statement (one transaction).
func (p *Postgres) AddFeedback(ctx context.Context, fs []Feedback) (int, error) {
	if len(fs) == 0 {
		return 0, nil
	}
	ids := make([]string, len(fs))
	profiles := make([]string, len(fs))
	received := make([]time.Time, len(fs))
	data := make([][]byte, len(fs))
	for i, f := range fs {
		ids[i], profiles[i], received[i], data[i] = f.ID, f.Profile, f.Received, f.Data
	}
	var n int64
	err := p.tx(ctx, "feedback", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			INSERT INTO plumb_feedback (id, profile, received, data)
			SELECT id, profile, received, data
			FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bytea[]) WITH ORDINALITY AS f(id, profile, received, data, i)
			ORDER BY i
			ON CONFLICT (id) DO NOTHING
			RETURNING id`, ids, profiles, received, data)
		if err != nil {
			return err
		}
		stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		n = int64(len(stored))
		return addACI(ctx, tx, fs, stored)
	})
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// EachFeedback calls fn with profile's outcomes (every profile's when empty), oldest first.
func (p *Postgres) EachFeedback(ctx context.Context, profile string, fn func(Feedback) error) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	rows, err := p.pool.Query(ctx, `
		SELECT id, profile, received, data FROM plumb_feedback
		WHERE $1 = '' OR profile = $1 ORDER BY profile COLLATE "C", seq`, profile)
	if err != nil {
		return p.fault("feedback", ctx, err)
	}
	defer rows.Close()
	for rows.Next() {
		var f Feedback
		if err := rows.Scan(&f.ID, &f.Profile, &f.Received, &f.Data); err != nil {
			return p.fault("feedback", ctx, err)
		}
		f.Received = f.Received.UTC()
		if err := fn(f); err != nil {
			return err
		}
	}
	return p.fault("feedback", ctx, rows.Err())
}

// DropFeedback deletes the outcomes received before t.
func (p *Postgres) DropFeedback(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := p.tx(ctx, "drop feedback", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM plumb_feedback WHERE received < $1`, before)
		n = tag.RowsAffected()
		return err
	})
	return int(n), err
}

// addACI applies the ACI steps of the outcomes just stored (ids), summed by threshold, one
// UPSERT each: the row's lock orders concurrent replicas.
func addACI(ctx context.Context, tx pgx.Tx, fs []Feedback, stored []string) error {
	isNew := make(map[string]bool, len(stored))
	for _, id := range stored {
		isNew[id] = true
	}
	sum := map[ACIKey]ACIStep{}
	var order []ACIKey
	for _, f := range fs {
		if f.ACI == nil || !isNew[f.ID] {
			continue
		}
		isNew[f.ID] = false // an id twice in one batch steps once
		st, ok := sum[f.ACI.Key]
		if !ok {
			st = *f.ACI
			st.Delta = 0
			order = append(order, f.ACI.Key)
		}
		st.Delta += f.ACI.Delta
		sum[f.ACI.Key] = st
	}
	for _, k := range order {
		st := sum[k]
		if _, err := tx.Exec(ctx, `
			INSERT INTO plumb_aci AS a (profile, version, segment, q) VALUES ($1, $2, $3, LEAST(GREATEST($4::float8 + $5::float8, 0), $6::float8))
			ON CONFLICT (profile, version, segment) DO UPDATE SET q = LEAST(GREATEST(a.q + $5::float8, 0), $6::float8)`,
			k.Profile, k.Version, k.Segment, st.Start, st.Delta, st.Max); err != nil {
			return err
		}
	}
	return nil
}

// ACI returns every adaptive threshold.
func (p *Postgres) ACI(ctx context.Context) (map[ACIKey]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	out := map[ACIKey]float64{}
	err := p.read(ctx, func() error {
		rows, err := p.pool.Query(ctx, `SELECT profile, version, segment, q FROM plumb_aci`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k ACIKey
			var q float64
			if err := rows.Scan(&k.Profile, &k.Version, &k.Segment, &q); err != nil {
				return err
			}
			out[k] = q
		}
		return rows.Err()
	})
	if err != nil {
		return nil, p.fault("aci", ctx, err)
	}
	return out, nil
}
