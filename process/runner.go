package process

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/backoff"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/internal/telemetry"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Component is the name under which the process tables' migrations are
// recorded.
const Component = "process"

// Runner runs process types: a projection per type routes each event to
// the process it correlates with and commits the process's new events,
// timers, commands and the checkpoint in one transaction; a dispatcher
// delivers the commands; a poller fires due timers.
type Runner struct {
	pool   *pgxpool.Pool
	es     *espg.Store
	ps     *projpg.Store
	kinds  map[string]*kind
	order  []string
	opts   options
	log    *slog.Logger
	q      string
	notify string
	proj   *projection.Runner
	tel    *telemetry.Processes // spans and metrics of the steps (telemetry.go)

	wakeCommands chan struct{}
	wakeTimers   chan struct{}
}

// NewRunner returns a runner of the process types over a PostgreSQL event
// store (events) and projection store (checkpoints and dead letters). It
// validates its arguments and has no side effects; call Migrate once, then
// Run.
func NewRunner(pool *pgxpool.Pool, events *espg.Store, store *projpg.Store, types []Definition, opts ...Option) (*Runner, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	var errs []error
	if pool == nil || events == nil || store == nil {
		errs = append(errs, fmt.Errorf("%w: process runner needs a pool, an event store and a projection store", ErrInvalid))
	}
	if o.schema == "" && store != nil {
		o.schema = store.Schema()
	}
	if err := pgmigrate.ValidateSchema(o.schema); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	if !o.backoff.Valid() {
		errs = append(errs, fmt.Errorf("%w: backoff %v..%v", ErrInvalid, o.backoff.First, o.backoff.Longest))
	}
	if o.timerPoll <= 0 || o.commandPoll <= 0 || o.cmdAttempts <= 0 {
		errs = append(errs, fmt.Errorf("%w: poll intervals and command attempts must be positive", ErrInvalid))
	}
	r := &Runner{pool: pool, es: events, ps: store, kinds: map[string]*kind{}, opts: o,
		wakeCommands: make(chan struct{}, 1), wakeTimers: make(chan struct{}, 1)}
	var projs []projection.Projection
	for i, d := range types {
		if d == nil {
			errs = append(errs, fmt.Errorf("%w: process type %d is nil", ErrInvalid, i))
			continue
		}
		k, err := d.kind()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := r.kinds[k.name]; dup {
			errs = append(errs, fmt.Errorf("%w: process type %q given twice", ErrInvalid, k.name))
			continue
		}
		r.kinds[k.name] = k
		r.order = append(r.order, k.name)
		projs = append(projs, r.projection(k))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.log = o.logger
	if r.log == nil {
		r.log = slog.Default()
	}
	r.q = pgmigrate.Quote(o.schema)
	r.notify = "chronicle_process_" + o.schema
	popts := []projection.Option{projection.WithLogger(r.log)}
	if o.telemetry.Tracer != nil {
		popts = append(popts, projection.WithTracerProvider(o.telemetry.Tracer))
	}
	if o.telemetry.Meter != nil {
		popts = append(popts, projection.WithMeterProvider(o.telemetry.Meter))
	}
	popts = append(popts, o.projOpts...)
	pr, err := projection.NewRunner(events, store, projs, popts...)
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	r.proj = pr
	r.tel = telemetry.NewProcesses(o.telemetry, r.order)
	return r, nil
}

// ProjectionName returns the name of the projection that runs the process
// type name: its checkpoint, status and dead letters are under it.
func ProjectionName(typ string) string { return "process_" + typ }

func (r *Runner) projection(k *kind) projection.Projection {
	p := projection.Projection{
		Name:        ProjectionName(k.name),
		OnFailure:   k.policy,
		MaxAttempts: k.attempts,
		BatchSize:   1,
		Partitions:  k.partitions,
		Handler:     projpg.Handler(newRouter(r, k).handle),
	}
	if len(k.types) > 0 {
		p.Types = append(slices.Clone(k.types), triggerTypes...)
	}
	if len(k.categories) > 0 {
		p.Categories = append(slices.Clone(k.categories), k.category)
	}
	return p
}

// Migrate creates or upgrades the process tables, and the projection
// store's; idempotent.
func (r *Runner) Migrate(ctx context.Context) error { return migrate(ctx, r.pool, r.opts.schema, r.ps) }

// Migrate creates or upgrades the process tables (instances, timers,
// commands) in schema ("" means the default, "chronicle"), as
// [Runner.Migrate] does, without a runner or the processes' code:
// `chronicle migrate` runs it. It does not migrate the projection store's
// tables (projpg.Store.Migrate does), which a runner needs too. It is
// idempotent and safe to run from several processes at once: migrations
// run under an advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if pool == nil {
		return fmt.Errorf("%w: migrate: nil PostgreSQL pool", ErrInvalid)
	}
	if schema == "" {
		schema = pgmigrate.DefaultSchema
	}
	if err := pgmigrate.ValidateSchema(schema); err != nil {
		return fmt.Errorf("%w: migrate: %w", ErrInvalid, err)
	}
	return migrate(ctx, pool, schema, nil)
}

func migrate(ctx context.Context, pool *pgxpool.Pool, schema string, ps *projpg.Store) error {
	if ps != nil {
		if err := ps.Migrate(ctx); err != nil {
			return fmt.Errorf("process: %w", err)
		}
	}
	ms, err := pgmigrate.Load(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	if err := pgmigrate.Apply(ctx, pool, schema, Component, ms); err != nil {
		return fmt.Errorf("process: migrate process tables in %s: %w", schema, err)
	}
	return nil
}

// Ready returns a channel closed once every process type has started (see
// projection.Runner.Ready).
func (r *Runner) Ready() <-chan struct{} { return r.proj.Ready() }

// Projections returns the projection runner under the process runner, for
// its status, dead letters and WaitFor.
func (r *Runner) Projections() *projection.Runner { return r.proj }

// Run runs the process types, the dispatcher and the timer poller until
// ctx ends, then returns nil once everything it started has exited.
func (r *Runner) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var projErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		projErr = r.proj.Run(ctx)
		cancel()
	}()
	wg.Add(1)
	go func() { defer wg.Done(); r.listen(ctx) }()
	if !r.opts.noDispatcher {
		wg.Add(1)
		go func() { defer wg.Done(); r.dispatch(ctx) }()
	}
	if !r.opts.noTimers {
		for range timerWorkers {
			wg.Add(1)
			go func() { defer wg.Done(); r.timers(ctx) }()
		}
	}
	wg.Wait()
	return projErr
}

// listen wakes the dispatcher and the poller when another transaction
// (this runner's or another process's) committed commands or timers.
func (r *Runner) listen(ctx context.Context) {
	for attempt := 1; ctx.Err() == nil; attempt++ {
		err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("process: listening for notifications failed; polling meanwhile", "channel", r.notify, "err", err)
		_ = backoff.Sleep(ctx, r.opts.backoff.Delay(attempt), nil)
	}
}

func (r *Runner) listenOnce(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{r.notify}.Sanitize()); err != nil {
		return err
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "UNLISTEN *")
	}()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch n.Payload {
		case "c":
			wake(r.wakeCommands)
		case "t":
			wake(r.wakeTimers)
		}
	}
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// router routes one process type's events to its processes. It keeps the
// processes it loaded or wrote in the unit of work at hand, so that a
// batch that reaches one process twice sees its own uncommitted writes.
type router struct {
	r *Runner
	k *kind

	// units holds, per open unit of work (the partitions of a partitioned
	// type run several at once), what the router keeps of it; the oldest
	// are forgotten beyond maxUnits.
	mu    sync.Mutex
	units map[*projpg.Tx]*unitState
	order []*projpg.Tx
}

// unitState is what the router keeps of one unit of work.
type unitState struct {
	// cache holds the processes the unit loaded or wrote.
	cache map[string]*core
	// tx is the unit's transaction, once a trigger wrote; its pending
	// statements go out with the next one.
	tx *spTx
	// savepoints counts the triggers that ran local commands under a
	// savepoint.
	savepoints int
	// written holds, per process, the events the unit appended to its
	// stream: a process loaded again (after a trigger's writes were
	// undone) sees them although they are not committed.
	written map[string][]eventstore.Record
}

const maxUnits = 64

func newRouter(r *Runner, k *kind) *router {
	return &router{r: r, k: k, units: map[*projpg.Tx]*unitState{}}
}

// unit returns what the router keeps of the unit of work tx.
func (rt *router) unit(tx *projpg.Tx) *unitState {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	u, ok := rt.units[tx]
	if !ok {
		u = &unitState{cache: map[string]*core{}, written: map[string][]eventstore.Record{}}
		rt.units[tx] = u
		rt.order = append(rt.order, tx)
		if len(rt.order) > maxUnits {
			delete(rt.units, rt.order[0])
			rt.order = rt.order[1:]
		}
	}
	return u
}

// pgx returns the unit's transaction. Statements queued on tx by earlier
// triggers (outbox rows, timers, the status row) stay queued: they go out
// with the checkpoint, and nothing a trigger does reads them.
func (u *unitState) pgx(ctx context.Context, tx *projpg.Tx) (*spTx, error) {
	if u.tx == nil {
		ptx, err := tx.Pgx(ctx)
		if err != nil {
			return nil, err
		}
		u.tx = &spTx{Tx: ptx}
	}
	return u.tx, nil
}

const conflictRetries = 3

func (rt *router) handle(ctx context.Context, tx *projpg.Tx, ev projection.Event) (err error) {
	rec := ev.Record
	ctx, step := rt.r.tel.StartStep(ctx, rt.k.name, rec)
	outcome, status := telemetry.OutcomeIgnored, ""
	defer func() { step.End(outcome, status, err) }()
	var id string
	if rec.Category() == rt.k.category {
		if !slices.Contains(triggerTypes, rec.Type) {
			return nil
		}
		id = rec.StreamID[len(rt.k.category)+1:]
	} else if id = rt.k.correlate(ev); id == "" {
		return nil
	}
	step.Process(id)
	u := rt.unit(tx)
	begun := time.Now()
	memo := map[uuid.UUID]inlineResult{}
	for attempt := 0; ; {
		c, err := rt.load(ctx, u, id)
		if err != nil {
			return err
		}
		if c.version == 0 && (rec.Category() == rt.k.category || !slices.Contains(rt.k.starts, rec.Type)) {
			rt.r.log.Debug("process: event for no process ignored", "type", rt.k.name, "process", id, "event", rec.ID, "event_type", rec.Type)
			delete(u.cache, id)
			return nil
		}
		before, isNew := c.meta.Status, c.version == 0
		err = rt.apply(ctx, tx, u, c, rec, ev, memo)
		if err == nil {
			outcome, status = telemetry.OutcomeOK, string(c.meta.Status)
			if isNew {
				step.Started()
			}
			if !before.Terminal() && c.meta.Status.Terminal() {
				started := c.started
				if started.IsZero() {
					started = begun
				}
				step.Ended(string(c.meta.Status), time.Since(started))
			}
			return nil
		}
		delete(u.cache, id)
		if u.tx != nil {
			if rerr := u.tx.rollback(ctx); rerr != nil {
				return errors.Join(err, fmt.Errorf("process %s/%s: roll back the trigger %s: %w", rt.k.name, id, rec.ID, rerr))
			}
		}
		if errors.Is(err, errRedo) && len(memo) <= maxInline {
			continue
		}
		if attempt++; !errors.Is(err, eventstore.ErrConcurrencyConflict) || attempt > conflictRetries || ctx.Err() != nil {
			return err
		}
	}
}

// load returns process id as this unit of work sees it.
func (rt *router) load(ctx context.Context, u *unitState, id string) (*core, error) {
	if c, ok := u.cache[id]; ok {
		return c, nil
	}
	c := newCore(rt.k, id)
	var snapAt int64
	if rt.k.snapshots != nil {
		snapAt = rt.fromSnapshot(ctx, c)
	}
	for rec, err := range rt.r.es.ReadStream(ctx, c.stream, eventstore.ReadStreamOptions{From: snapAt + 1}) {
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("process %s/%s: load: %w", rt.k.name, id, err)
		}
		if err := c.load(rec); err != nil {
			return nil, err
		}
	}
	if rt.k.snapshots != nil {
		rt.takeSnapshot(ctx, c, snapAt)
	}
	for _, rec := range u.written[id] {
		if rec.StreamVersion > c.version {
			if err := c.load(rec); err != nil {
				return nil, err
			}
		}
	}
	u.cache[id] = c
	return c, nil
}

// effects are what one trigger does, with the outcomes of its local
// commands handled in turn.
type effects struct {
	events  []eventstore.Event
	outbox  []commandSent  // commands for the dispatcher
	inline  []inlineDoneAt // local commands run in the trigger
	timers  []timerOp      // in order; a zero Name clears every timer
	notifyT bool
}

type inlineDoneAt struct {
	cmd commandSent
	res inlineResult
}

// take moves the decisions of the round c just handled into f, and
// returns the commands it sent.
func (f *effects) take(c *core) []commandSent {
	f.events = append(f.events, c.pending...)
	for _, t := range c.timers {
		f.timers = append(f.timers, t)
		if !t.Due.IsZero() {
			f.notifyT = true
		}
	}
	if c.clearAll {
		f.timers = append(f.timers, timerOp{})
	}
	cmds := make([]commandSent, len(c.commands))
	for i, cmd := range c.commands {
		cmds[i] = cmd.commandSent
	}
	return cmds
}

// apply handles one trigger and writes its effects in tx: the process's
// events, its timers, its commands and its status. Local commands it
// decides run here, in tx, and their outcomes are handled at once.
func (rt *router) apply(ctx context.Context, tx *projpg.Tx, u *unitState, c *core, rec eventstore.Record, ev projection.Event, memo map[uuid.UUID]inlineResult) error {
	now := rt.r.opts.clock()
	if err := c.handle(ctx, rec, ev, now); err != nil {
		return err
	}
	var f effects
	queue := f.take(c)
	ran := 0
	for len(queue) > 0 {
		cmd := queue[0]
		queue = queue[1:]
		res, ok := memo[cmd.ID]
		if !ok && !rt.inlinable(u, cmd, ran) {
			f.outbox = append(f.outbox, cmd)
			continue
		}
		if !ok {
			ptx, err := u.pgx(ctx, tx)
			if err != nil {
				return err
			}
			if !ptx.open {
				ptx.savepoint()
				u.savepoints++
			}
			var dirty bool
			res, dirty = rt.r.runInline(ctx, ptx, rt.k.name, c.id, c.md, cmd)
			if res.kind != inlineDone && dirty {
				memo[cmd.ID] = res
				return errRedo
			}
		}
		ran++
		if res.kind == inlineOutbox {
			f.outbox = append(f.outbox, cmd)
			continue
		}
		f.inline = append(f.inline, inlineDoneAt{cmd, res})
		orec, err := c.outcomeRecord(cmd, res)
		if err != nil {
			return err
		}
		c.inlineCause = cmd.ID
		if err := c.handle(ctx, orec, projection.Event{Record: orec}, now); err != nil {
			return err
		}
		queue = append(queue, f.take(c)...)
	}
	if len(f.events) == 0 {
		if u.tx != nil {
			u.tx.release()
		}
		return nil
	}
	ptx, err := u.pgx(ctx, tx)
	if err != nil {
		return err
	}
	res, err := rt.r.es.AppendTx(ctx, ptx, c.stream, eventstore.Exact(c.version), f.events...)
	if err != nil {
		return fmt.Errorf("process %s/%s: record the events of trigger %s: %w", rt.k.name, c.id, rec.ID, err)
	}
	ptx.release()
	for i, e := range f.events {
		sv := max(e.SchemaVersion, 1)
		u.written[c.id] = append(u.written[c.id], eventstore.Record{ID: e.ID, StreamID: c.stream, StreamVersion: c.version + 1 + int64(i),
			Type: e.Type, SchemaVersion: sv, Data: e.Data, Metadata: e.Metadata, RecordedAt: now})
	}
	c.version = res.Version
	rt.queue(tx, c, &f)
	return nil
}

// inlinable reports whether cmd runs inline: a local command, within the
// trigger's and the unit's bounds.
func (rt *router) inlinable(u *unitState, cmd commandSent, ran int) bool {
	if !rt.r.opts.local[cmd.Name] || ran >= maxInline {
		return false
	}
	return (u.tx != nil && u.tx.open) || u.savepoints < maxSavepoints
}

// queue queues the trigger's writes besides the process's events.
func (rt *router) queue(tx *projpg.Tx, c *core, f *effects) {
	q := rt.r.q
	for _, cmd := range f.outbox {
		tx.Queue(`INSERT INTO `+q+`.process_commands (id, type, process_id, stream_id, name, data, metadata, compensation)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
			cmd.ID, rt.k.name, c.id, c.stream, cmd.Name, []byte(cmd.Data), map[string]string(c.md), cmd.Compensation)
	}
	for _, d := range f.inline {
		st, lastErr := "done", ""
		if d.res.kind == inlineRejected {
			st, lastErr = "failed", d.res.err.Error()
		}
		tx.Queue(`INSERT INTO `+q+`.process_commands (id, type, process_id, stream_id, name, data, metadata, compensation, status, attempts, last_error, done_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, now()) ON CONFLICT (id) DO NOTHING`,
			d.cmd.ID, rt.k.name, c.id, c.stream, d.cmd.Name, []byte(d.cmd.Data), map[string]string(c.md), d.cmd.Compensation, st, lastErr)
	}
	for _, t := range f.timers {
		switch {
		case t.Name == "":
			tx.Queue(`DELETE FROM `+q+`.process_timers WHERE type = $1 AND process_id = $2`, rt.k.name, c.id)
		case t.Due.IsZero():
			tx.Queue(`DELETE FROM `+q+`.process_timers WHERE type = $1 AND process_id = $2 AND name = $3`, rt.k.name, c.id, t.Name)
		default:
			tx.Queue(`INSERT INTO `+q+`.process_timers (type, process_id, name, timer_id, stream_id, due_at) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (type, process_id, name) DO UPDATE SET timer_id = EXCLUDED.timer_id, due_at = EXCLUDED.due_at, claimed_until = NULL`,
				rt.k.name, c.id, t.Name, t.ID, c.stream, t.Due)
		}
	}
	tx.Queue(`INSERT INTO `+q+`.process_instances AS i (type, process_id, stream_id, status, reason, version, ended_at)
		VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $4 IN ('completed', 'failed', 'compensated') THEN now() END)
		ON CONFLICT (type, process_id) DO UPDATE SET status = $4, reason = $5, version = $6, updated_at = now(),
			ended_at = CASE WHEN $4 IN ('completed', 'failed', 'compensated') THEN coalesce(i.ended_at, now()) END`,
		rt.k.name, c.id, c.stream, string(c.meta.Status), c.meta.Reason, c.version)
	if len(f.outbox) > 0 {
		tx.Queue(`SELECT pg_notify($1, 'c')`, rt.r.notify)
	}
	if f.notifyT {
		tx.Queue(`SELECT pg_notify($1, 't')`, rt.r.notify)
	}
}
