package process

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/backoff"
)

// timerWorkers is how many goroutines of a runner fire due timers; they
// share the table with each other and with other runners through
// FOR UPDATE SKIP LOCKED.
const timerWorkers = 2

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

// fireDue claims a batch of due timers of this runner's types and turns
// each into a TimerFired event in its process's stream, deleting it, in
// one transaction: a timer fires once.
func (r *Runner) fireDue(ctx context.Context) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT type, process_id, name, timer_id, stream_id, due_at FROM `+r.q+`.process_timers
			WHERE due_at <= $1 AND type = ANY($2) ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED`,
			r.opts.clock(), r.order, r.opts.timerBatch)
		if err != nil {
			return err
		}
		type due struct {
			typ, id, name, stream string
			timer                 uuid.UUID
			at                    time.Time
		}
		var ds []due
		for rows.Next() {
			var d due
			if err := rows.Scan(&d.typ, &d.id, &d.name, &d.timer, &d.stream, &d.at); err != nil {
				rows.Close()
				return err
			}
			ds = append(ds, d)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(ds)
		var batch pgx.Batch
		for _, d := range ds {
			data, err := json.Marshal(timerFired{Name: d.name, ID: d.timer, Due: d.at.UTC()})
			if err != nil {
				return err
			}
			md := eventstore.Metadata{eventstore.CausationIDKey: d.timer.String(), eventstore.CorrelationIDKey: d.stream}
			ev := eventstore.Event{ID: uuid.NewSHA1(d.timer, []byte(typeTimerFired)), Type: typeTimerFired, Data: data, Metadata: md}
			if _, err := r.es.AppendTx(ctx, tx, d.stream, eventstore.Any, ev); err != nil {
				return fmt.Errorf("process %s/%s: fire timer %s: %w", d.typ, d.id, d.name, err)
			}
			batch.Queue(`DELETE FROM `+r.q+`.process_timers WHERE type = $1 AND process_id = $2 AND name = $3 AND timer_id = $4`,
				d.typ, d.id, d.name, d.timer)
		}
		if batch.Len() > 0 {
			return tx.SendBatch(ctx, &batch).Close()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("process: fire due timers: %w", err)
	}
	return n, nil
}
