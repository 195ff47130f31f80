// Package postgres keeps aggregate snapshots in PostgreSQL through pgx.
//
// One table, snapshots, holds the latest snapshot of each stream in the
// schema chosen by [WithSchema] (default "chronicle", the event store's).
// [New] has no side effects; [Store.Migrate] creates the table through the
// same embedded, advisory-locked migrations as the event store (component
// "snapshot").
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/snapshot"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Component is the name under which the migrations are recorded in the
// schema's chronicle_migrations table.
const Component = "snapshot"

// Option configures a [Store].
type Option func(*config)

type config struct{ schema string }

// WithSchema sets the schema holding the snapshots table (default
// "chronicle"). It must be a plain lower-case identifier.
func WithSchema(name string) Option { return func(c *config) { c.schema = name } }

// Store is a [snapshot.Store] in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool             *pgxpool.Pool
	schema           string
	loadSQL, saveSQL string
}

var _ snapshot.Store = (*Store)(nil)

// New returns a store using pool. It validates the options and does
// nothing else; call [Store.Migrate] to create the table.
func New(pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	cfg := config{schema: pgmigrate.DefaultSchema}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	var errs []error
	if pool == nil {
		errs = append(errs, errors.New("snapshot/postgres: nil pool"))
	}
	if err := pgmigrate.ValidateSchema(cfg.schema); err != nil {
		errs = append(errs, fmt.Errorf("snapshot/postgres: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	q := pgmigrate.Quote(cfg.schema)
	return &Store{
		pool:    pool,
		schema:  cfg.schema,
		loadSQL: `SELECT version, revision, data, taken_at FROM ` + q + `.snapshots WHERE stream_id = $1`,
		// Keep the stored snapshot when it has the same revision and a
		// higher version (writes arriving out of order).
		saveSQL: `INSERT INTO ` + q + `.snapshots AS s (stream_id, version, revision, data, taken_at)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (stream_id) DO UPDATE
			SET version = excluded.version, revision = excluded.revision, data = excluded.data, taken_at = excluded.taken_at
			WHERE s.revision <> excluded.revision OR s.version <= excluded.version`,
	}, nil
}

// SnapshotTable returns the snapshots table's qualified, quoted name when
// pool is the pool this store uses, and false otherwise. A PostgreSQL event
// store on the same pool uses it to read a stream's snapshot and the events
// after it in one query (espg.Store.ReadStreamWithSnapshot), which
// aggregate.Repository does on every load that misses its cache.
func (s *Store) SnapshotTable(pool *pgxpool.Pool) (string, bool) {
	if pool != s.pool {
		return "", false
	}
	return pgmigrate.Quote(s.schema) + ".snapshots", true
}

// Schema returns the schema holding the snapshots table.
func (s *Store) Schema() string { return s.schema }

// Migrate creates or upgrades the snapshots table. It is idempotent and
// safe to run from several processes at once.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := pgmigrate.Load(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("snapshot/postgres: %w", err)
	}
	if err := pgmigrate.Apply(ctx, s.pool, s.schema, Component, ms); err != nil {
		return fmt.Errorf("snapshot/postgres: migrate schema %s: %w", s.schema, err)
	}
	return nil
}

// Load implements [snapshot.Store].
func (s *Store) Load(ctx context.Context, streamID string) (snapshot.Snapshot, error) {
	if err := snapshot.ValidateStreamID(streamID); err != nil {
		return snapshot.Snapshot{}, fmt.Errorf("snapshot/postgres: %w", err)
	}
	snap := snapshot.Snapshot{StreamID: streamID}
	err := s.pool.QueryRow(ctx, s.loadSQL, streamID).Scan(&snap.Version, &snap.Revision, &snap.Data, &snap.TakenAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return snapshot.Snapshot{}, fmt.Errorf("snapshot/postgres: stream %q: %w", streamID, snapshot.ErrNotFound)
	}
	if err != nil {
		return snapshot.Snapshot{}, fmt.Errorf("snapshot/postgres: load snapshot of stream %q: %w", streamID, err)
	}
	return snap, nil
}

// Save implements [snapshot.Store]. A zero TakenAt is stored as now. A
// snapshot that [snapshot.Snapshot.Validate] refuses is not written.
func (s *Store) Save(ctx context.Context, snap snapshot.Snapshot) error {
	if err := snap.Validate(); err != nil {
		return fmt.Errorf("snapshot/postgres: %w", err)
	}
	if snap.TakenAt.IsZero() {
		snap.TakenAt = time.Now()
	}
	data := snap.Data
	if data == nil {
		data = []byte{}
	}
	if _, err := s.pool.Exec(ctx, s.saveSQL, snap.StreamID, snap.Version, snap.Revision, data, snap.TakenAt); err != nil {
		return fmt.Errorf("snapshot/postgres: save snapshot of stream %q at version %d: %w", snap.StreamID, snap.Version, err)
	}
	return nil
}
