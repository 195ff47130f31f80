package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
)

// Admin reads and operates processes without running them: status per
// type, listing, history, and the retry of a failed compensation. The CLI
// builds one.
type Admin struct {
	pool  *pgxpool.Pool
	es    *espg.Store
	q     string
	clock func() time.Time
}

// NewAdmin returns the administration of the processes whose tables are
// in schema (the schema of the projection store).
func NewAdmin(pool *pgxpool.Pool, events *espg.Store, schema string, opts ...Option) (*Admin, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if pool == nil || events == nil {
		return nil, fmt.Errorf("%w: process admin needs a pool and an event store", ErrInvalid)
	}
	if err := pgmigrate.ValidateSchema(schema); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &Admin{pool: pool, es: events, q: pgmigrate.Quote(schema), clock: o.clock}, nil
}

// Admin returns the administration of the runner's processes.
func (r *Runner) Admin() *Admin {
	return &Admin{pool: r.pool, es: r.es, q: r.q, clock: r.opts.clock}
}

// TypeStatus is the state of one process type.
type TypeStatus struct {
	// Type is the process type's name.
	Type string
	// Counts is the number of processes in each status.
	Counts map[Status]int64
	// Started is the number of processes started, Completed and
	// Compensated those that ended so; AvgCompletion is the mean time from
	// start to completion of the completed ones.
	Started, CompletedN, CompensatedN int64
	AvgCompletion                     time.Duration
	// PendingTimers is the number of timers not fired yet; OldestTimer is
	// when the earliest is due, and Stuck is the number of timers due more
	// than a minute ago by the admin's clock (no runner fires them).
	PendingTimers int64
	OldestTimer   time.Time
	Stuck         int64
	// PendingCommands and FailedCommands count the outbox.
	PendingCommands, FailedCommands int64
}

// Status returns the status of every process type with processes.
func (a *Admin) Status(ctx context.Context) ([]TypeStatus, error) {
	byType := map[string]*TypeStatus{}
	var order []string
	get := func(t string) *TypeStatus {
		s, ok := byType[t]
		if !ok {
			s = &TypeStatus{Type: t, Counts: map[Status]int64{}}
			byType[t] = s
			order = append(order, t)
		}
		return s
	}
	rows, err := a.pool.Query(ctx, `SELECT type, status, count(*),
		coalesce(avg(extract(epoch FROM ended_at - started_at)) FILTER (WHERE status = 'completed'), 0)
		FROM `+a.q+`.process_instances GROUP BY type, status ORDER BY type, status`)
	if err != nil {
		return nil, fmt.Errorf("process: status: %w", err)
	}
	for rows.Next() {
		var t, st string
		var n int64
		var avg float64
		if err := rows.Scan(&t, &st, &n, &avg); err != nil {
			rows.Close()
			return nil, fmt.Errorf("process: status: %w", err)
		}
		s := get(t)
		s.Counts[Status(st)] = n
		s.Started += n
		switch Status(st) {
		case Completed:
			s.CompletedN, s.AvgCompletion = n, time.Duration(avg*float64(time.Second))
		case Compensated:
			s.CompensatedN = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("process: status: %w", err)
	}
	now := a.clock()
	rows, err = a.pool.Query(ctx, `SELECT type, count(*), min(due_at), count(*) FILTER (WHERE due_at < $1)
		FROM `+a.q+`.process_timers GROUP BY type`, now.Add(-time.Minute))
	if err != nil {
		return nil, fmt.Errorf("process: status: %w", err)
	}
	for rows.Next() {
		var t string
		var n, stuck int64
		var oldest time.Time
		if err := rows.Scan(&t, &n, &oldest, &stuck); err != nil {
			rows.Close()
			return nil, fmt.Errorf("process: status: %w", err)
		}
		s := get(t)
		s.PendingTimers, s.OldestTimer, s.Stuck = n, oldest, stuck
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("process: status: %w", err)
	}
	rows, err = a.pool.Query(ctx, `SELECT type, count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'failed')
		FROM `+a.q+`.process_commands GROUP BY type`)
	if err != nil {
		return nil, fmt.Errorf("process: status: %w", err)
	}
	for rows.Next() {
		var t string
		var p, f int64
		if err := rows.Scan(&t, &p, &f); err != nil {
			rows.Close()
			return nil, fmt.Errorf("process: status: %w", err)
		}
		s := get(t)
		s.PendingCommands, s.FailedCommands = p, f
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("process: status: %w", err)
	}
	out := make([]TypeStatus, 0, len(order))
	for _, t := range order {
		out = append(out, *byType[t])
	}
	return out, nil
}

// Instance is one process as listed.
type Instance struct {
	Type, ID, StreamID string
	Status             Status
	Reason             string
	Version            int64
	StartedAt          time.Time
	UpdatedAt          time.Time
	EndedAt            *time.Time
}

// List lists the processes of typ ("" for every type) in status (""
// for every status), oldest first, at most limit (0: no limit).
func (a *Admin) List(ctx context.Context, typ string, status Status, limit int) ([]Instance, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	rows, err := a.pool.Query(ctx, `SELECT type, process_id, stream_id, status, reason, version, started_at, updated_at, ended_at
		FROM `+a.q+`.process_instances WHERE ($1 = '' OR type = $1) AND ($2 = '' OR status = $2)
		ORDER BY started_at, type, process_id LIMIT $3`, typ, string(status), limit)
	if err != nil {
		return nil, fmt.Errorf("process: list: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Instance, error) {
		var i Instance
		var st string
		err := row.Scan(&i.Type, &i.ID, &i.StreamID, &st, &i.Reason, &i.Version, &i.StartedAt, &i.UpdatedAt, &i.EndedAt)
		i.Status = Status(st)
		return i, err
	})
}

// Get returns one process's row, or an error matching [ErrNotFound].
func (a *Admin) Get(ctx context.Context, typ, id string) (Instance, error) {
	var i Instance
	var st string
	err := a.pool.QueryRow(ctx, `SELECT type, process_id, stream_id, status, reason, version, started_at, updated_at, ended_at
		FROM `+a.q+`.process_instances WHERE type = $1 AND process_id = $2`, typ, id).
		Scan(&i.Type, &i.ID, &i.StreamID, &st, &i.Reason, &i.Version, &i.StartedAt, &i.UpdatedAt, &i.EndedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Instance{}, fmt.Errorf("%w: process %s/%s", ErrNotFound, typ, id)
	}
	if err != nil {
		return Instance{}, fmt.Errorf("process: get %s/%s: %w", typ, id, err)
	}
	i.Status = Status(st)
	return i, nil
}

// History returns the records of a process's stream: its triggers,
// commands sent and their outcomes, timers, state changes and its own
// events, with their correlation and causation IDs in Metadata.
func (a *Admin) History(ctx context.Context, typ, id string) ([]eventstore.Record, error) {
	recs, err := eventstore.Collect(a.es.ReadStream(ctx, "process_"+typ+"-"+id, eventstore.ReadStreamOptions{}))
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: process %s/%s", ErrNotFound, typ, id)
	}
	if err != nil {
		return nil, fmt.Errorf("process: history of %s/%s: %w", typ, id, err)
	}
	return recs, nil
}

// Retry retries the compensation of a process in compensation_failed: it
// records CompensationRetried in the process's stream, and a runner of the
// type sends the failed compensation again (a new command, with a new
// deterministic ID). It fails with [ErrNotRetryable] in any other state.
func (a *Admin) Retry(ctx context.Context, typ, id string) (eventstore.AppendResult, error) {
	recs, err := a.History(ctx, typ, id)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	var m meta
	for _, r := range recs {
		if builtin(r.Type) {
			if err := m.apply(r.Type, r.Data); err != nil {
				return eventstore.AppendResult{}, fmt.Errorf("process: retry %s/%s: %w", typ, id, err)
			}
		}
	}
	if m.Status != CompensationFailed {
		return eventstore.AppendResult{}, fmt.Errorf("%w: process %s/%s is %s, not %s", ErrNotRetryable, typ, id, m.Status, CompensationFailed)
	}
	last := recs[len(recs)-1]
	data, _ := json.Marshal(struct {
		At time.Time `json:"at"`
	}{a.clock().UTC()})
	ev := eventstore.Event{ID: uuid.NewSHA1(last.ID, []byte(typeCompensationRetried)), Type: typeCompensationRetried, Data: data,
		Metadata: eventstore.Metadata{eventstore.CausationIDKey: "operator"}}
	res, err := a.es.Append(ctx, last.StreamID, eventstore.Exact(last.StreamVersion), ev)
	if err != nil {
		return res, fmt.Errorf("process: retry %s/%s: %w", typ, id, err)
	}
	return res, nil
}
