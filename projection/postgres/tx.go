package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/projection"
)

// Tx is what a handler of the PostgreSQL store gets (through [From] or
// [Handler]): the unit of work's pgx transaction, to write the build's
// tables, without the runner's controls (checkpoint, dead letters, switch,
// commit), which stay with the unit of work behind it.
type Tx struct {
	s      *Store
	tx     pgx.Tx
	b      projection.Build
	queued pgx.Batch
}

var (
	_ projection.Tx         = (*Tx)(nil)
	_ projection.UnitOfWork = (*unit)(nil)
)

// unit is the store's unit of work: the handlers' Tx, and the build's
// checkpoint, locked by the transaction.
type unit struct {
	*Tx
	cp   eventstore.Position
	done bool
}

// Handlers returns the handlers' view of the transaction.
func (u *unit) Handlers() projection.Tx { return u.Tx }

// From returns the PostgreSQL transaction a handler was given, or nil when
// tx is not one of this package's (the runner's store is not a PostgreSQL
// one). A wrapper around a Tx (tracing, metrics) is seen through when it
// has an Unwrap() projection.Tx method.
func From(tx projection.Tx) *Tx {
	for {
		switch t := tx.(type) {
		case *Tx:
			return t
		case interface{ Unwrap() projection.Tx }:
			tx = t.Unwrap()
		default:
			return nil
		}
	}
}

// Handler adapts a function taking the PostgreSQL transaction to a
// [projection.Handler]. It fails clearly when the runner's store is not a
// PostgreSQL one.
func Handler(fn func(ctx context.Context, tx *Tx, ev projection.Event) error) projection.Handler {
	return projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
		t := From(tx)
		if t == nil {
			return fmt.Errorf("postgres: handler of %s needs a PostgreSQL unit of work, got %T", tx.Build(), tx)
		}
		return fn(ctx, t, ev)
	})
}

// Build is the build this transaction writes.
func (t *Tx) Build() projection.Build { return t.b }

// Table returns the quoted, schema-qualified name of the build's copy of a
// read-model table: "schema"."balances_v2".
func (t *Tx) Table(base string) string { return t.s.table(t.b, base) }

// Checkpoint is the build's checkpoint, locked by this transaction.
func (u *unit) Checkpoint() eventstore.Position { return u.cp }

// Queue adds a statement to run later in one pipelined round trip, before
// the checkpoint is stored. An error in it fails the unit of work at that
// point (and the runner then retries the batch event by event).
func (t *Tx) Queue(sql string, args ...any) { t.queued.Queue(sql, args...) }

// Pgx returns the pgx transaction, after running the queued statements so
// that what the caller does next sees them. Its Commit and Rollback fail:
// the runner ends the transaction.
func (t *Tx) Pgx(ctx context.Context) (pgx.Tx, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return handlerTx{t.tx}, nil
}

// errRunnerCommits is returned by Commit and Rollback of the transaction a
// handler gets.
var errRunnerCommits = errors.New("postgres: a handler cannot end the projection's transaction; the runner commits it")

// handlerTx is the pgx transaction as a handler sees it.
type handlerTx struct{ pgx.Tx }

func (handlerTx) Commit(context.Context) error   { return errRunnerCommits }
func (handlerTx) Rollback(context.Context) error { return errRunnerCommits }

// Exec runs the queued statements, then sql.
func (t *Tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.tx.Exec(ctx, sql, args...)
}

// Query runs the queued statements, then the query.
func (t *Tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.tx.Query(ctx, sql, args...)
}

// QueryRow runs the queued statements, then the query. A failure of the
// queued statements is reported by Scan.
func (t *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.flush(ctx); err != nil {
		return errRow{err}
	}
	return t.tx.QueryRow(ctx, sql, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (t *Tx) flush(ctx context.Context) error {
	if t.queued.Len() == 0 {
		return nil
	}
	b := t.queued
	t.queued = pgx.Batch{}
	if err := t.tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("postgres: queued statements of %s: %w", t.b, err)
	}
	return nil
}

// SetCheckpoint stores the checkpoint, in the same round trip as the
// queued statements. It is the runner's last write in a unit of work.
func (t *unit) SetCheckpoint(ctx context.Context, pos eventstore.Position, applied int) error {
	t.queued.Queue(`INSERT INTO `+t.s.q+`.projection_checkpoints AS c (name, version, generation, tx_id, seq, applied)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (name, version, generation) DO UPDATE SET tx_id = $4, seq = $5, applied = c.applied + $6, updated_at = now()`,
		t.b.Name, t.b.Version, t.b.Generation, int64(pos.TxID), int64(pos.Seq), applied)
	return t.flush(ctx)
}

// AddDeadLetter records a dead letter.
func (t *unit) AddDeadLetter(ctx context.Context, dl projection.DeadLetter) error {
	_, err := t.Exec(ctx, `INSERT INTO `+t.s.q+`.projection_dead_letters
		(projection, event_id, version, generation, stream_id, stream_version, tx_id, seq, type, error, attempts, failed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (projection, event_id) DO UPDATE SET version = $3, generation = $4, error = $10, attempts = $11, failed_at = $12`,
		dl.Projection, dl.EventID, dl.Build.Version, dl.Build.Generation, dl.StreamID, dl.StreamVersion,
		int64(dl.Position.TxID), int64(dl.Position.Seq), dl.Type, dl.Error, dl.Attempts, dl.FailedAt)
	if err != nil {
		return fmt.Errorf("postgres: record dead letter %s of %q: %w", dl.EventID, dl.Projection, err)
	}
	return nil
}

// DeleteDeadLetter removes the projection's dead letter of an event.
func (t *unit) DeleteDeadLetter(ctx context.Context, eventID uuid.UUID) error {
	if _, err := t.Exec(ctx, `DELETE FROM `+t.s.q+`.projection_dead_letters WHERE projection = $1 AND event_id = $2`, t.b.Name, eventID); err != nil {
		return fmt.Errorf("postgres: delete dead letter %s of %q: %w", eventID, t.b.Name, err)
	}
	return nil
}

// Activate makes the build current and re-points each stable table name
// (a view) at the build's table, in this transaction.
func (t *unit) Activate(ctx context.Context, tables []string) error {
	if _, err := t.Exec(ctx, `INSERT INTO `+t.s.q+`.projection_registry AS r
		(name, current_version, current_generation, target_version, target_generation, switched_at) VALUES ($1, $2, $3, $2, $3, now())
		ON CONFLICT (name) DO UPDATE SET current_version = $2, current_generation = $3, switched_at = now(), updated_at = now(),
			previous_version = CASE WHEN r.current_version > 0 AND (r.current_version, r.current_generation) <> ($2, $3)
				THEN r.current_version ELSE r.previous_version END,
			previous_generation = CASE WHEN r.current_version > 0 AND (r.current_version, r.current_generation) <> ($2, $3)
				THEN r.current_generation ELSE r.previous_generation END`,
		t.b.Name, t.b.Version, t.b.Generation); err != nil {
		return fmt.Errorf("postgres: make %s current: %w", t.b, err)
	}
	for _, base := range tables {
		view := t.s.q + "." + pgmigrate.Quote(base)
		if _, err := t.Exec(ctx, `DROP VIEW IF EXISTS `+view); err != nil {
			return fmt.Errorf("postgres: switch %s to %s: drop view %s (is it a table?): %w", base, t.b, view, err)
		}
		if _, err := t.Exec(ctx, `CREATE VIEW `+view+` AS SELECT * FROM `+t.Table(base)); err != nil {
			return fmt.Errorf("postgres: switch %s to %s: create view %s over %s (did Setup create it?): %w", base, t.b, view, t.Table(base), err)
		}
	}
	return nil
}

// Commit runs the queued statements and commits.
func (t *unit) Commit(ctx context.Context) error {
	if err := t.flush(ctx); err != nil {
		return err
	}
	t.done = true
	if err := t.tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit %s: %w", t.b, err)
	}
	return nil
}

// Rollback abandons the transaction; after Commit it does nothing.
func (t *unit) Rollback(ctx context.Context) error {
	if t.done {
		return nil
	}
	t.done = true
	if err := t.tx.Rollback(ctx); err != nil && err != pgx.ErrTxClosed {
		return fmt.Errorf("postgres: roll back %s: %w", t.b, err)
	}
	return nil
}
