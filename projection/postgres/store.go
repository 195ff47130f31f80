// Package postgres keeps projections' checkpoints, builds and dead letters
// in PostgreSQL, in the same transaction as the read models the handlers
// write, so that each event is applied exactly once.
//
// Handlers reach the transaction through [From] (or write handlers with
// [Handler]): [Tx.Exec] runs a statement at once, [Tx.Queue] defers it to
// one pipelined round trip with the checkpoint at the end of the batch,
// which is what makes catch-ups and rebuilds fast.
//
// # Versioned tables
//
// A handler writes the build's tables, named by [projection.Tx.Table]:
// tx.Table("balances") is "schema"."balances_v2" for version 2. When a
// build becomes current, the store re-points a view per name listed in
// [projection.Projection.Tables] at the build's table, in one transaction:
// readers query "schema"."balances" and see the old version until the
// switch, the new one after, never a mix. Old builds' tables stay until
// dropped with [Store.DropBuild].
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	espg "github.com/chronicle-go/chronicle/eventstore/postgres"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/projection"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Component is the name under which the store's migrations are recorded.
const Component = "projection"

// Store is a [projection.Store] in PostgreSQL. Create it with [New] and its
// tables with [Store.Migrate].
type Store struct {
	pool   *pgxpool.Pool
	schema string
	q      string
}

var (
	_ projection.Store            = (*Store)(nil)
	_ projection.TransientChecker = (*Store)(nil)
)

// Option configures a [Store].
type Option func(*Store)

// WithSchema sets the schema of the store's tables and of the read-model
// tables named by Tx.Table (default "chronicle").
func WithSchema(name string) Option { return func(s *Store) { s.schema = name } }

// New returns a store in pool's database. It only checks its arguments.
func New(pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	s := &Store{pool: pool, schema: pgmigrate.DefaultSchema}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	var errs []error
	if pool == nil {
		errs = append(errs, errors.New("postgres: nil pool"))
	}
	if err := pgmigrate.ValidateSchema(s.schema); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.q = pgmigrate.Quote(s.schema)
	return s, nil
}

// Schema returns the schema of the store's tables.
func (s *Store) Schema() string { return s.schema }

// Migrate creates or upgrades the store's tables; idempotent.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := pgmigrate.Load(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := pgmigrate.Apply(ctx, s.pool, s.schema, Component, ms); err != nil {
		return fmt.Errorf("postgres: migrate projection tables in %s: %w", s.schema, err)
	}
	return nil
}

// Atomic reports true: a rolled back transaction undoes the handler's
// writes with the checkpoint.
func (s *Store) Atomic() bool { return true }

// Begin opens a transaction on b, takes b's checkpoint lock and reads its
// checkpoint (for a partitioned build: locks its partitions' checkpoints
// and reads the furthest). The lock is a transaction-scoped advisory lock, not a row
// lock, and the checkpoint is written last (by SetCheckpoint, queued behind
// the handlers' statements): until a handler writes, the transaction has no
// transaction ID, so it holds no reader of the event log back (ADR 0008).
func (s *Store) Begin(ctx context.Context, b projection.Build) (projection.UnitOfWork, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: begin transaction for %s: %w", b, err)
	}
	cp, err := s.lockAndRead(ctx, tx, b)
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("postgres: lock checkpoint of %s: %w", b, err)
	}
	return &unit{Tx: &Tx{s: s, tx: tx, b: b}, cp: cp}, nil
}

// lockAndRead takes b's checkpoint lock in tx and reads b's checkpoint, in
// two statements of one round trip: the read takes its snapshot after the
// lock is granted, so it sees the last holder's commit.
func (s *Store) lockAndRead(ctx context.Context, tx pgx.Tx, b projection.Build) (eventstore.Position, error) {
	var batch pgx.Batch
	batch.Queue(`SELECT pg_advisory_xact_lock(hashtext($1::text), hashtext($2::text))`, s.lockSpace(), b.String())
	batch.Queue(`SELECT tx_id, seq FROM `+s.q+`.projection_checkpoints WHERE name = $1 AND version = $2 AND generation = $3`,
		b.Name, b.Version, b.Generation)
	// A partitioned build's checkpoints are locked too (none for a build
	// in one partition, which then takes no row lock): a unit of work on
	// the whole build holds every partition, as a switch from it needs.
	batch.Queue(`SELECT tx_id, seq FROM `+s.q+`.projection_partition_checkpoints
		WHERE name = $1 AND version = $2 AND generation = $3 FOR SHARE`, b.Name, b.Version, b.Generation)
	br := tx.SendBatch(ctx, &batch)
	var txid, seq int64
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&txid, &seq)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
	}
	cp := eventstore.Position{TxID: uint64(txid), Seq: uint64(seq)}
	if err == nil {
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			for rows.Next() {
				if err = rows.Scan(&txid, &seq); err != nil {
					break
				}
				if p := (eventstore.Position{TxID: uint64(txid), Seq: uint64(seq)}); cp.Before(p) {
					cp = p // the furthest partition
				}
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return cp, err
}

// lockSpace names the space of the checkpoint locks: the store's schema,
// so that stores in two schemas never wait on each other. The locks use
// PostgreSQL's two-key advisory locks, a key space apart from the event
// store's one-key stream locks.
func (s *Store) lockSpace() string { return s.schema + ".projection_checkpoints" }

// Checkpoint returns b's committed checkpoint; for a partitioned build,
// the lowest of its partitions' checkpoints, up to which every partition
// has applied every event of its streams.
func (s *Store) Checkpoint(ctx context.Context, b projection.Build) (eventstore.Position, error) {
	var txid, seq int64
	err := s.pool.QueryRow(ctx, `SELECT tx_id, seq FROM (
			SELECT 0 AS k, tx_id, seq FROM `+s.q+`.projection_checkpoints WHERE name = $1 AND version = $2 AND generation = $3
			UNION ALL
			SELECT 1, tx_id, seq FROM `+s.q+`.projection_partition_checkpoints WHERE name = $1 AND version = $2 AND generation = $3
		) c ORDER BY k, tx_id, seq LIMIT 1`,
		b.Name, b.Version, b.Generation).Scan(&txid, &seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Position{}, nil
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("postgres: read checkpoint of %s: %w", b, err)
	}
	return eventstore.Position{TxID: uint64(txid), Seq: uint64(seq)}, nil
}

// Registration returns the projection's builds.
func (s *Store) Registration(ctx context.Context, name string) (projection.Registration, error) {
	r := projection.Registration{Name: name}
	var cv, cg, tv, tg, pv, pg int
	var sw *time.Time
	err := s.pool.QueryRow(ctx, `SELECT current_version, current_generation, target_version, target_generation, switched_at,
		previous_version, previous_generation
		FROM `+s.q+`.projection_registry WHERE name = $1`, name).Scan(&cv, &cg, &tv, &tg, &sw, &pv, &pg)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("postgres: read registration of projection %q: %w", name, err)
	}
	if cv > 0 {
		r.Current = projection.Build{Name: name, Version: cv, Generation: cg}
	}
	if tv > 0 {
		r.Target = projection.Build{Name: name, Version: tv, Generation: tg}
	}
	if sw != nil {
		r.SwitchedAt = *sw
	}
	if pv > 0 {
		r.Previous = projection.Build{Name: name, Version: pv, Generation: pg}
	}
	return r, nil
}

// SetTarget records b as the build under way.
func (s *Store) SetTarget(ctx context.Context, b projection.Build) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.q+`.projection_registry (name, target_version, target_generation) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET target_version = $2, target_generation = $3, updated_at = now()`,
		b.Name, b.Version, b.Generation)
	if err != nil {
		return fmt.Errorf("postgres: register build %s: %w", b, err)
	}
	return nil
}

// DeadLetters lists a projection's dead letters in log order.
func (s *Store) DeadLetters(ctx context.Context, name string) ([]projection.DeadLetter, error) {
	rows, err := s.pool.Query(ctx, `SELECT event_id, version, generation, stream_id, stream_version, tx_id, seq, type, error, attempts, failed_at
		FROM `+s.q+`.projection_dead_letters WHERE projection = $1 ORDER BY tx_id, seq`, name)
	if err != nil {
		return nil, fmt.Errorf("postgres: list dead letters of %q: %w", name, err)
	}
	defer rows.Close()
	var out []projection.DeadLetter
	for rows.Next() {
		dl := projection.DeadLetter{Projection: name, Build: projection.Build{Name: name}}
		var txid, seq int64
		if err := rows.Scan(&dl.EventID, &dl.Build.Version, &dl.Build.Generation, &dl.StreamID, &dl.StreamVersion,
			&txid, &seq, &dl.Type, &dl.Error, &dl.Attempts, &dl.FailedAt); err != nil {
			return nil, fmt.Errorf("postgres: list dead letters of %q: %w", name, err)
		}
		dl.Position = eventstore.Position{TxID: uint64(txid), Seq: uint64(seq)}
		out = append(out, dl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list dead letters of %q: %w", name, err)
	}
	return out, nil
}

// DeleteDeadLetter removes a dead letter.
func (s *Store) DeleteDeadLetter(ctx context.Context, name string, eventID uuid.UUID) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+s.q+`.projection_dead_letters WHERE projection = $1 AND event_id = $2`, name, eventID); err != nil {
		return fmt.Errorf("postgres: delete dead letter %s of %q: %w", eventID, name, err)
	}
	return nil
}

// Transient reports whether err is a passing failure of PostgreSQL or of
// the connection to it (connection errors, timeouts, serialization
// failures and deadlocks, a server shutting down or out of resources, a
// session ended by its idle-in-transaction timeout),
// rather than one caused by the statements of a handler.
func (s *Store) Transient(err error) bool {
	if errors.Is(err, errCheckpointMoved) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "53", "57", "58":
			return true
		}
		// 25P03: the session was ended by its idle-in-transaction
		// timeout (a partition's unit of work sets it; ADR 0019).
		return pgErr.Code == "40001" || pgErr.Code == "40P01" || pgErr.Code == "25P03"
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgx.ErrTxClosed)
}

// DropBuild drops the tables of a build that is not current (the base
// names given) and forgets its checkpoint. Use it to remove an old version
// once a rebuild has switched.
func (s *Store) DropBuild(ctx context.Context, b projection.Build, tables []string) error {
	reg, err := s.Registration(ctx, b.Name)
	if err != nil {
		return err
	}
	if reg.Current == b || reg.Target == b {
		return fmt.Errorf("postgres: refusing to drop build %s: it is current or under way", b)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1::text), hashtext($2::text))`, s.lockSpace(), b.String()); err != nil {
			return fmt.Errorf("postgres: lock checkpoint of %s: %w", b, err)
		}
		for _, t := range tables {
			if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+s.table(b, t)); err != nil {
				return fmt.Errorf("postgres: drop table %s of %s: %w", t, b, err)
			}
		}
		for _, t := range []string{"projection_checkpoints", "projection_partition_checkpoints", "projection_leases", "projection_members"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+s.q+`.`+t+` WHERE name = $1 AND version = $2 AND generation = $3`,
				b.Name, b.Version, b.Generation); err != nil {
				return fmt.Errorf("postgres: forget checkpoint of %s (%s): %w", b, t, err)
			}
		}
		return nil
	})
}

// Builds lists the builds of a projection whose checkpoint the store
// keeps (the current one, the one under way, and old ones not dropped),
// oldest first, with their checkpoint and applied events (summed over the
// partitions of a partitioned build). It makes *Store a
// [projection.BuildKeeper].
func (s *Store) Builds(ctx context.Context, name string) ([]projection.BuildInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT version, generation, max(tx_id), max(seq), sum(applied)::bigint, max(updated_at) FROM (
			SELECT version, generation, tx_id, seq, applied, updated_at FROM `+s.q+`.projection_checkpoints WHERE name = $1
			UNION ALL
			SELECT version, generation, 0, 0, applied, updated_at FROM `+s.q+`.projection_partition_checkpoints WHERE name = $1
		) b GROUP BY version, generation ORDER BY version, generation`, name)
	if err != nil {
		return nil, fmt.Errorf("postgres: list builds of %q: %w", name, err)
	}
	defer rows.Close()
	var out []projection.BuildInfo
	for rows.Next() {
		bi := projection.BuildInfo{Build: projection.Build{Name: name}}
		var txid, seq int64
		if err := rows.Scan(&bi.Build.Version, &bi.Build.Generation, &txid, &seq, &bi.Applied, &bi.UpdatedAt); err != nil {
			return nil, fmt.Errorf("postgres: list builds of %q: %w", name, err)
		}
		bi.Checkpoint = eventstore.Position{TxID: uint64(txid), Seq: uint64(seq)}
		out = append(out, bi)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list builds of %q: %w", name, err)
	}
	return out, nil
}

func (s *Store) table(b projection.Build, base string) string {
	return s.q + "." + pgmigrate.Quote(base+"_"+b.Suffix())
}

// LogStatus adapts the PostgreSQL event store's Status to
// [projection.WithLogStatus], so the runner's Status reports how far an
// old open transaction holds readers back.
func LogStatus(es *espg.Store) projection.LogStatusFunc {
	return func(ctx context.Context) (int64, time.Duration, error) {
		st, err := es.Status(ctx)
		if err != nil {
			return 0, 0, err
		}
		var age time.Duration
		if st.Oldest != nil {
			age = st.Oldest.Age
		}
		return st.HeldBack, age, nil
	}
}
