package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/backoff"
)

// timerWorkers is how many goroutines of a runner claim and fire due
// timers; they share the table with each other and with other runners
// through FOR UPDATE SKIP LOCKED and a lease.
const timerWorkers = 2

// timerAppends bounds the TimerFired appends one worker has in flight: the
// event store's group commit (ADR 0013) sends concurrent appends in one
// statement, so a batch of timers costs a few round trips, not one each.
const timerAppends = 128

// timerLease is how long a claim on a timer lasts: a runner that dies
// while firing (no time to release its claims) delays the timers it held
// by at most this, and a slower firing is absorbed by the store when
// another runner fires the same timers again.
const timerLease = 10 * time.Second

// timers fires due timers until ctx ends.
func (r *Runner) timers(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		n, err := r.fireDue(ctx)
		if err != nil && ctx.Err() == nil {
			failures++
			r.log.Warn("process: firing timers failed; retrying", "err", err)
			_ = backoff.Sleep(ctx, r.opts.backoff.Delay(failures), nil)
			continue
		}
		failures = 0
		if n > 0 {
			continue
		}
		_ = backoff.Sleep(ctx, r.opts.timerPoll, r.wakeTimers)
	}
}

type dueTimer struct {
	typ, id, name, stream string
	timer                 uuid.UUID
	at                    time.Time
}

// fireDue claims a batch of due timers of this runner's types for a lease
// (one autocommit statement), appends a TimerFired event with an ID
// derived from the timer's to each process's stream (concurrently, so the
// store's group commit coalesces them), then deletes the fired timers (one
// statement). A timer fires once: a second append of its TimerFired, after
// a crash before the delete or by a runner whose lease ran out, is
// absorbed by the store's idempotent append.
func (r *Runner) fireDue(ctx context.Context) (int, error) {
	ds, err := r.claimTimers(ctx)
	if err != nil || len(ds) == 0 {
		return 0, err
	}
	fired := make([]bool, len(ds))
	errs := make([]error, len(ds))
	sem := make(chan struct{}, timerAppends)
	var wg sync.WaitGroup
	for i, d := range ds {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = r.fire(ctx, d)
			fired[i] = errs[i] == nil
		}()
	}
	wg.Wait()
	var typs, ids, names []string
	var timers []uuid.UUID
	var failed []uuid.UUID
	for i, d := range ds {
		if fired[i] {
			typs, ids, names, timers = append(typs, d.typ), append(ids, d.id), append(names, d.name), append(timers, d.timer)
		} else {
			failed = append(failed, d.timer)
		}
	}
	if len(timers) > 0 {
		if _, err := r.pool.Exec(context.WithoutCancel(ctx), `DELETE FROM `+r.q+`.process_timers t
			USING unnest($1::text[], $2::text[], $3::text[], $4::uuid[]) AS d(type, process_id, name, timer_id)
			WHERE t.type = d.type AND t.process_id = d.process_id AND t.name = d.name AND t.timer_id = d.timer_id`,
			typs, ids, names, timers); err != nil {
			// Fired: the lease runs out and a runner fires them again,
			// which the store absorbs.
			return len(timers), fmt.Errorf("process: delete %d fired timers: %w", len(timers), err)
		}
	}
	if len(failed) > 0 {
		if _, err := r.pool.Exec(context.WithoutCancel(ctx), `UPDATE `+r.q+`.process_timers SET claimed_until = NULL
			WHERE timer_id = ANY($1)`, failed); err != nil {
			r.log.Warn("process: releasing timers that failed to fire failed; their lease will expire", "timers", len(failed), "err", err)
		}
		return len(timers), fmt.Errorf("process: %d of %d timers failed to fire: %w", len(failed), len(ds), errors.Join(errs...))
	}
	return len(ds), nil
}

// claimTimers claims up to a batch of due timers of the runner's types.
func (r *Runner) claimTimers(ctx context.Context) ([]dueTimer, error) {
	rows, err := r.pool.Query(ctx, `UPDATE `+r.q+`.process_timers t SET claimed_until = now() + $4::interval
		FROM (SELECT type, process_id, name FROM `+r.q+`.process_timers
			WHERE due_at <= $1 AND type = ANY($2) AND (claimed_until IS NULL OR claimed_until < now())
			ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) d
		WHERE t.type = d.type AND t.process_id = d.process_id AND t.name = d.name
		RETURNING t.type, t.process_id, t.name, t.timer_id, t.stream_id, t.due_at`,
		r.opts.clock(), r.order, r.opts.timerBatch, timerLease)
	if err != nil {
		return nil, fmt.Errorf("process: claim due timers: %w", err)
	}
	var ds []dueTimer
	for rows.Next() {
		var d dueTimer
		if err := rows.Scan(&d.typ, &d.id, &d.name, &d.timer, &d.stream, &d.at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("process: claim due timers: %w", err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("process: claim due timers: %w", err)
	}
	return ds, nil
}

// fire appends the TimerFired event of d to its process's stream.
func (r *Runner) fire(ctx context.Context, d dueTimer) error {
	data, err := json.Marshal(timerFired{Name: d.name, ID: d.timer, Due: d.at.UTC()})
	if err != nil {
		return err
	}
	md := eventstore.Metadata{eventstore.CausationIDKey: d.timer.String(), eventstore.CorrelationIDKey: d.stream}
	ev := eventstore.Event{ID: timerFiredID(d.timer), Type: typeTimerFired, Data: data, Metadata: md}
	if _, err := r.es.Append(ctx, d.stream, eventstore.Any, ev); err != nil {
		return fmt.Errorf("process %s/%s: fire timer %s: %w", d.typ, d.id, d.name, err)
	}
	return nil
}

// timerFiredID is the ID of the TimerFired event of timer id.
func timerFiredID(id uuid.UUID) uuid.UUID { return uuid.NewSHA1(id, []byte(typeTimerFired)) }
