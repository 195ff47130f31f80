package relay

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Source is what the relay reads: the event store's global log, followed
// live. *postgres.Store and *memory.Store satisfy it.
type Source interface {
	// Follow reads the global log after opts.After in global order, then
	// yields new records as they are committed, until ctx ends.
	Follow(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.Record, error]
}

// Relay publishes an event store's global log to a JetStream stream. Create
// it with [New], create its table with [Migrate], and run it with
// [Relay.Run]. Any number of processes may run a relay with the same schema
// and name: one leads and publishes, the others wait.
type Relay struct {
	src     Source
	nc      *nats.Conn
	pool    *pgxpool.Pool
	cfg     config
	log     *slog.Logger
	lockKey int64
	table   string

	running   atomic.Bool
	state     atomic.Int32
	published atomic.Uint64

	mu        sync.Mutex
	lastErr   error
	lastErrAt time.Time
}

// New returns a relay that reads store's log and publishes it through nc,
// keeping its checkpoint and its leadership lock in pool's database. It
// validates the options and does nothing else: no network, no goroutines.
func New(store Source, nc *nats.Conn, pool *pgxpool.Pool, opts ...Option) (*Relay, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	cfg.stream = cfg.stream.withDefaults()
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("relay: nil store"))
	}
	if nc == nil {
		errs = append(errs, errors.New("relay: nil NATS connection"))
	}
	if pool == nil {
		errs = append(errs, errors.New("relay: nil PostgreSQL pool"))
	}
	if err := cfg.validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("relay", cfg.name), slog.String("stream", cfg.stream.Name))
	return &Relay{
		src: store, nc: nc, pool: pool, cfg: cfg, log: log,
		lockKey: pgmigrate.LockKey("relay:" + cfg.schema + ":" + cfg.name),
		table:   checkpointTable(cfg.schema),
	}, nil
}

// Migrate creates or upgrades the relay's checkpoint table in schema (use
// the event store's schema; "" means the default, "chronicle"). It needs
// only PostgreSQL, no NATS connection and no [Relay]. It is idempotent and
// safe to run from several processes at once: migrations run under an
// advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if pool == nil {
		return errors.New("relay: migrate: nil PostgreSQL pool")
	}
	if schema == "" {
		schema = pgmigrate.DefaultSchema
	}
	if err := pgmigrate.ValidateSchema(schema); err != nil {
		return fmt.Errorf("relay: migrate: %w", err)
	}
	ms, err := pgmigrate.Load(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	if err := pgmigrate.Apply(ctx, pool, schema, "relay", ms); err != nil {
		return fmt.Errorf("relay: migrate schema %s: %w", schema, err)
	}
	return nil
}

// Migrate creates or upgrades the relay's checkpoint table in its schema,
// as the package-level [Migrate] does.
func (r *Relay) Migrate(ctx context.Context) error {
	return Migrate(ctx, r.pool, r.cfg.schema)
}

// Run takes the leadership, then publishes every record of the log after
// the last one JetStream confirmed, in global order, and keeps publishing
// new records as they are committed. It blocks until ctx ends, then returns
// nil once every goroutine it started has exited; it returns early only
// with an error it cannot recover from: the checkpoint table is missing, or
// the NATS connection was closed.
//
// While another relay with the same schema and name leads, Run waits and
// tries again every lock poll interval. Failures of NATS or PostgreSQL are
// logged and retried with backoff; the relay then resynchronises with the
// JetStream stream and goes on where the stream ends.
//
// Run must not be called again while it runs.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("relay: Run is already running")
	}
	defer r.running.Store(false)
	defer r.state.Store(int32(StateStopped))

	if r.nc.IsClosed() {
		return errors.New("relay: the NATS connection is closed")
	}
	js, err := jetstream.New(r.nc,
		jetstream.WithPublishAsyncTimeout(r.cfg.ackTimeout),
		jetstream.WithPublishAsyncMaxPending(r.cfg.window+16))
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	b := backoff{min: r.cfg.minBackoff, max: r.cfg.maxBackoff}
	for {
		r.state.Store(int32(StateWaiting))
		conn, err := r.acquire(ctx)
		if err == nil {
			r.state.Store(int32(StateLeading))
			r.log.InfoContext(ctx, "relay: took the leadership")
			err = r.lead(ctx, js, conn)
			r.release(conn)
			if err == nil || ctx.Err() != nil {
				r.log.InfoContext(context.WithoutCancel(ctx), "relay: stopped leading")
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errFatal) {
			r.setErr(err)
			return err
		}
		d := b.next()
		r.setErr(err)
		r.log.WarnContext(ctx, "relay: lost or could not take the leadership; retrying",
			slog.Any("error", err), slog.Duration("retry_in", d))
		if !sleep(ctx, d) {
			return nil
		}
	}
}

// acquire returns a dedicated connection holding the relay's session
// advisory lock, waiting while another relay holds it.
func (r *Relay) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("relay: acquire a PostgreSQL connection for the leadership lock: %w", err)
	}
	logged := false
	for {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", r.lockKey).Scan(&ok); err != nil {
			r.release(conn)
			return nil, fmt.Errorf("relay: try the leadership lock: %w", err)
		}
		if ok {
			return conn, nil
		}
		if !logged {
			r.log.InfoContext(ctx, "relay: another relay leads; waiting")
			logged = true
		}
		if !sleep(ctx, r.cfg.lockPoll) {
			r.release(conn)
			return nil, ctx.Err()
		}
	}
}

// release closes the leadership connection, which ends its session and so
// frees the advisory lock; it never goes back to the pool holding it.
func (r *Relay) release(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := conn.Hijack()
	_ = c.Close(ctx)
}

// lead publishes while it holds the leadership, resynchronising after each
// failure. It returns when ctx ends (nil), when the leadership connection
// fails, or on a fatal error.
func (r *Relay) lead(ctx context.Context, js jetstream.JetStream, conn *pgxpool.Conn) error {
	b := backoff{min: r.cfg.minBackoff, max: r.cfg.maxBackoff}
	for {
		start := time.Now()
		before := r.published.Load()
		err := r.session(ctx, js, conn)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errFatal) {
			return err
		}
		if r.nc.IsClosed() {
			return &fatalError{fmt.Errorf("relay: the NATS connection was closed: %w", err)}
		}
		r.setErr(err)
		if perr := conn.Ping(ctx); perr != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relay: the leadership connection failed: %w (after: %w)", perr, err)
		}
		if r.published.Load() > before || time.Since(start) > r.cfg.maxBackoff {
			b.reset()
		}
		d := b.next()
		r.log.WarnContext(ctx, "relay: publishing stopped; will resynchronise with the stream and go on",
			slog.Any("error", err), slog.Duration("retry_in", d))
		if !sleep(ctx, d) {
			return nil
		}
	}
}

// pending is a publish waiting for its acknowledgement.
type pending struct {
	fut jetstream.PubAckFuture
	rec eventstore.Record
}

// session ensures the stream, finds where it ends, and publishes from there
// until ctx ends or something fails. Every message names what the stream
// must end with before it (the previous message's ID, or for the first one
// the stream's last sequence), so after a failed publish the server refuses
// every later one and the stream never holds a gap filled out of order.
func (r *Relay) session(ctx context.Context, js jetstream.JetStream, conn *pgxpool.Conn) error {
	start, lastSeq, err := r.resync(ctx, js, conn)
	if err != nil {
		return err
	}
	r.log.InfoContext(ctx, "relay: publishing", slog.String("after", start.String()),
		slog.Uint64("stream_last_seq", lastSeq))

	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	q := newQueue(1024)
	pend := make(chan pending, r.cfg.window)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer q.close()
		after := start
		for rec, err := range r.src.Follow(sctx, eventstore.ReadAllOptions{After: start, BatchSize: 1000}) {
			if err != nil {
				if sctx.Err() == nil {
					cancel(fmt.Errorf("relay: read the event log after position %s: %w", after, err))
				}
				return
			}
			after = rec.Position
			if !q.push(sctx, rec) {
				return
			}
		}
		cancel(fmt.Errorf("relay: the event log reader stopped after position %s without an error", after))
	})
	wg.Go(func() {
		defer close(pend)
		prefix := r.cfg.stream.SubjectPrefix
		prev := start
		var prevID string
		var spare []eventstore.Record
		for {
			batch := q.take(sctx, spare)
			if batch == nil {
				return
			}
			spare = batch
			for _, rec := range batch {
				if !prev.Before(rec.Position) {
					cancel(fmt.Errorf("relay: the event log went backwards: position %s (stream %q version %d) after %s",
						rec.Position, rec.StreamID, rec.StreamVersion, prev))
					return
				}
				msg := NewMsg(prefix, rec)
				// Name what the stream must end with: the previous
				// message, or for the first one the stream's last sequence.
				if prevID == "" {
					msg.Header[jetstream.ExpectedLastSeqHeader] = []string{strconv.FormatUint(lastSeq, 10)}
				} else {
					msg.Header[jetstream.ExpectedLastMsgIDHeader] = []string{prevID}
				}
				fut, err := js.PublishMsgAsync(msg)
				if err != nil {
					cancel(fmt.Errorf("relay: publish %s: %w", describe(rec), err))
					return
				}
				prev, prevID = rec.Position, msg.Header[HeaderMsgID][0]
				select {
				case pend <- pending{fut: fut, rec: rec}:
				case <-sctx.Done():
					return
				}
			}
		}
	})
	r.confirm(ctx, conn, pend, cancel)
	cancel(nil)
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return context.Cause(sctx)
}

// confirm waits for the acknowledgements in publish order, counts them and
// stores the checkpoint in batches. After the first failure it calls fail
// and keeps draining until the publisher closes pend, so that no publish
// is still in flight when the relay resynchronises.
func (r *Relay) confirm(ctx context.Context, conn *pgxpool.Conn, pend <-chan pending, fail context.CancelCauseFunc) {
	var (
		failed  bool
		dirty   bool
		acked   eventstore.Position
		delta   int64
		idle    int
		lastErr error
	)
	flush := func() {
		if !dirty {
			return
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := r.storeCheckpoint(fctx, conn, acked, delta); err != nil {
			lastErr = err
			if !failed {
				failed = true
				fail(err)
			}
			return
		}
		dirty, delta = false, 0
	}
	tick := time.NewTicker(r.cfg.flushInterval)
	defer tick.Stop()
	for {
		var p pending
		var ok bool
		select {
		case p, ok = <-pend:
		case <-tick.C:
			if dirty {
				flush()
				idle = 0
				continue
			}
			// Check the leadership connection now and then while idle.
			if idle++; idle*int(r.cfg.flushInterval) >= int(5*time.Second) && !failed {
				idle = 0
				pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				err := conn.Ping(pctx)
				cancel()
				if err != nil {
					failed = true
					fail(fmt.Errorf("relay: the leadership connection failed: %w", err))
				}
			}
			continue
		}
		if !ok {
			break
		}
		select {
		case <-p.fut.Ok():
			acked = p.rec.Position
			dirty = true
			delta++
			r.published.Add(1)
		case err := <-p.fut.Err():
			if !failed {
				failed = true
				fail(fmt.Errorf("relay: JetStream did not confirm %s: %w", describe(p.rec), err))
			}
		}
	}
	flush()
	if lastErr != nil {
		r.log.WarnContext(ctx, "relay: could not store the checkpoint", slog.Any("error", lastErr))
	}
}

// resync creates or updates the stream and returns the position to publish
// after, the later of the stream's last record and the stored checkpoint,
// and the stream's last sequence.
func (r *Relay) resync(ctx context.Context, js jetstream.JetStream, conn *pgxpool.Conn) (eventstore.Position, uint64, error) {
	cp, _, _, err := r.loadCheckpoint(ctx, conn)
	if err != nil {
		return eventstore.Position{}, 0, err
	}
	name := r.cfg.stream.Name
	stream, err := js.CreateOrUpdateStream(ctx, r.cfg.stream.jetstream())
	if err != nil {
		return eventstore.Position{}, 0, fmt.Errorf("relay: create or update JetStream stream %s: %w", name, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return eventstore.Position{}, 0, fmt.Errorf("relay: read JetStream stream %s: %w", name, err)
	}
	last := info.State.LastSeq
	start := cp
	if last > 0 {
		m, err := stream.GetMsg(ctx, last)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			r.log.WarnContext(ctx, "relay: the stream's last message is gone; going on from the checkpoint",
				slog.Uint64("stream_last_seq", last), slog.String("checkpoint", cp.String()))
		case err != nil:
			return eventstore.Position{}, 0, fmt.Errorf("relay: read message %d of JetStream stream %s: %w", last, name, err)
		default:
			p, err := eventstore.ParsePosition(m.Header.Get(HeaderPosition))
			if err != nil {
				return eventstore.Position{}, 0, fmt.Errorf("relay: message %d of JetStream stream %s (subject %q) has no valid %s header; only the relay may publish to the stream: %w",
					last, name, m.Subject, HeaderPosition, err)
			}
			if start.Before(p) {
				start = p
				// The stream is ahead of the checkpoint (a previous leader
				// stopped before storing it): catch the checkpoint up.
				if err := r.storeCheckpoint(ctx, conn, p, 0); err != nil {
					return eventstore.Position{}, 0, err
				}
			}
		}
	}
	return start, last, nil
}

func describe(rec eventstore.Record) string {
	return fmt.Sprintf("record at position %s (stream %q, version %d, type %q)", rec.Position, rec.StreamID, rec.StreamVersion, rec.Type)
}

func (r *Relay) setErr(err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	r.lastErr, r.lastErrAt = err, time.Now()
	r.mu.Unlock()
}

// backoff doubles a pause from min to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
