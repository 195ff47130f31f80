package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/backoff"
)

type claimed struct {
	Envelope
	stream string
}

// dispatchWorkers is how many commands the dispatcher delivers at once:
// WithDispatchWorkers, or a third of the pool's connections (a delivery
// holds a transaction, and its handler's reads take another connection),
// between 1 and 8.
func (r *Runner) dispatchWorkers() int {
	if r.opts.workers > 0 {
		return r.opts.workers
	}
	return min(8, max(1, int(r.pool.Config().MaxConns)/3))
}

// dispatch delivers commands until ctx ends, a few at a time: a slow
// command holds one worker, never the others.
func (r *Runner) dispatch(ctx context.Context) {
	dispatchWorkers := r.dispatchWorkers()
	sem := make(chan struct{}, dispatchWorkers)
	freed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	failures := 0
	for ctx.Err() == nil {
		free := dispatchWorkers - len(sem)
		if free == 0 {
			select {
			case <-ctx.Done():
			case <-freed:
			}
			continue
		}
		cmds, err := r.claim(ctx, min(free, r.opts.commandBatch))
		if err != nil && ctx.Err() == nil {
			failures++
			r.log.Warn("process: claiming commands failed; retrying", "err", err)
			_ = backoff.Sleep(ctx, r.opts.backoff.Delay(failures), nil)
			continue
		}
		failures = 0
		for _, c := range cmds {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wake(freed); wg.Done() }()
				r.deliver(ctx, c)
			}()
		}
		if len(cmds) == free {
			continue
		}
		_ = backoff.Sleep(ctx, r.opts.commandPoll, r.wakeCommands)
	}
}

// claim claims up to n due commands for a lease.
func (r *Runner) claim(ctx context.Context, n int) ([]claimed, error) {
	rows, err := r.pool.Query(ctx, `UPDATE `+r.q+`.process_commands SET claimed_until = now() + $2::interval, attempts = attempts + 1
		WHERE id IN (SELECT id FROM `+r.q+`.process_commands
			WHERE status = 'pending' AND due_at <= now() AND (claimed_until IS NULL OR claimed_until < now())
			ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING id, type, process_id, stream_id, name, data, coalesce(metadata, '{}'::jsonb), compensation, attempts`,
		n, r.opts.lease)
	if err != nil {
		return nil, fmt.Errorf("process: claim commands: %w", err)
	}
	var cmds []claimed
	for rows.Next() {
		var c claimed
		var md map[string]string
		if err := rows.Scan(&c.ID, &c.Type, &c.ProcessID, &c.stream, &c.Name, &c.Data, &md, &c.Compensation, &c.Attempt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("process: claim commands: %w", err)
		}
		c.Metadata = eventstore.Metadata(md)
		cmds = append(cmds, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("process: claim commands: %w", err)
	}
	return cmds, nil
}

// deliver delivers one claimed command: the handler's writes, the outcome
// in the process's stream and the command's status commit together.
func (r *Runner) deliver(ctx context.Context, c claimed) {
	log := r.log.With("type", c.Type, "process", c.ProcessID, "command", c.Name, "command_id", c.ID, "attempt", c.Attempt)
	err := r.deliverTx(ctx, c)
	if err == nil || ctx.Err() != nil {
		return
	}
	rejected := errors.Is(err, ErrRejected)
	if rejected || c.Attempt >= r.opts.cmdAttempts {
		level := slog.LevelWarn
		if rejected {
			level = slog.LevelInfo // a refusal is an answer, not a fault
		}
		log.Log(ctx, level, "process: command failed; reporting to the process", "rejected", rejected, "err", err)
		if ferr := r.failCommand(ctx, c, err, rejected); ferr != nil {
			log.Warn("process: recording a failed command failed; it will be retried", "err", ferr)
			r.release(ctx, c, ferr)
		}
		return
	}
	log.Info("process: command failed; retrying", "err", err)
	r.release(ctx, c, err)
}

// release gives a command back for a later attempt.
func (r *Runner) release(ctx context.Context, c claimed, cause error) {
	delay := r.opts.backoff.Delay(c.Attempt)
	if _, err := r.pool.Exec(context.WithoutCancel(ctx), `UPDATE `+r.q+`.process_commands
		SET claimed_until = NULL, last_error = $2, due_at = now() + $3::interval WHERE id = $1 AND status = 'pending'`,
		c.ID, cause.Error(), delay); err != nil {
		r.log.Warn("process: releasing a command failed; its lease will expire", "command_id", c.ID, "err", err)
	}
}

type txKey struct{}

type txValue struct {
	tx  pgx.Tx
	cmd uuid.UUID
	// wrote, when set, is set by the first append.
	wrote *atomic.Bool
}

// deliverTx runs the handler and records success in one transaction.
func (r *Runner) deliverTx(ctx context.Context, c claimed) error {
	h, ok := r.opts.handlers[c.Name]
	if !ok {
		return fmt.Errorf("process: no handler for command %q of process %s/%s", c.Name, c.Type, c.ProcessID)
	}
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	hctx := context.WithValue(ctx, txKey{}, txValue{tx: tx, cmd: c.ID})
	hctx = eventstore.WithCorrelationID(hctx, c.Metadata.CorrelationID())
	hctx = eventstore.WithCausationID(hctx, c.ID.String())
	if err := callCommand(hctx, h, c.Envelope); err != nil {
		return err
	}
	if err := r.outcome(ctx, tx, c, typeCommandSucceeded, commandOutcome{ID: c.ID, Name: c.Name, Compensation: c.Compensation}); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `UPDATE `+r.q+`.process_commands SET status = 'done', done_at = now(), claimed_until = NULL
		WHERE id = $1 AND status = 'pending'`, c.ID)
	if err != nil {
		return fmt.Errorf("process: mark command %s done: %w", c.ID, err)
	}
	if tag.RowsAffected() != 1 {
		return nil // delivered by another dispatcher; roll back
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("process: commit command %s: %w", c.ID, err)
	}
	return nil
}

func callCommand(ctx context.Context, h CommandHandler, env Envelope) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("process: command handler %q panicked: %v", env.Name, v)
		}
	}()
	return h(ctx, env)
}

// outcome appends a command's outcome to its process's stream, with an ID
// derived from the command's.
func (r *Runner) outcome(ctx context.Context, tx pgx.Tx, c claimed, typ string, o commandOutcome) error {
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	md := eventstore.Metadata{eventstore.CausationIDKey: c.ID.String()}
	if cid := c.Metadata.CorrelationID(); cid != "" {
		md[eventstore.CorrelationIDKey] = cid
	}
	ev := eventstore.Event{ID: uuid.NewSHA1(c.ID, []byte(typ)), Type: typ, Data: data, Metadata: md}
	if _, err := r.es.AppendTx(ctx, tx, c.stream, eventstore.Any, ev); err != nil {
		return fmt.Errorf("process %s/%s: record %s of command %s: %w", c.Type, c.ProcessID, typ, c.ID, err)
	}
	return nil
}

// failCommand records a command as failed and tells its process.
func (r *Runner) failCommand(ctx context.Context, c claimed, cause error, rejected bool) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if err := r.outcome(ctx, tx, c, typeCommandFailed, commandOutcome{ID: c.ID, Name: c.Name, Compensation: c.Compensation,
			Error: cause.Error(), Rejected: rejected}); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE `+r.q+`.process_commands SET status = 'failed', last_error = $2, claimed_until = NULL, done_at = now()
			WHERE id = $1 AND status = 'pending'`, c.ID, cause.Error())
		return err
	})
}

// TxStore is an event store for the repositories that command handlers
// use: inside a delivery, Append appends in the dispatcher's transaction
// (so the aggregate's events, the command's outcome and its status commit
// together) and gives events without an ID a deterministic one, derived
// from the command's ID; outside a delivery it is the store itself.
type TxStore struct {
	*espg.Store
}

// Append appends events; see [TxStore].
func (s TxStore) Append(ctx context.Context, streamID string, expected eventstore.ExpectedVersion, events ...eventstore.Event) (eventstore.AppendResult, error) {
	v, ok := ctx.Value(txKey{}).(txValue)
	if !ok {
		return s.Store.Append(ctx, streamID, expected, events...)
	}
	if v.wrote != nil {
		v.wrote.Store(true)
	}
	evs := make([]eventstore.Event, len(events))
	for i, e := range events {
		if e.ID == uuid.Nil {
			e.ID = uuid.NewSHA1(v.cmd, fmt.Appendf(nil, "%s\x00%d", streamID, i))
		}
		evs[i] = e
	}
	return s.Store.AppendTx(ctx, v.tx, streamID, expected, evs...)
}
