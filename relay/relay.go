package relay

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/backoff"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/internal/telemetry"
	"github.com/chronicle-go/chronicle/relay/wire"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Source is what the relay reads: the event store's global log, followed
// live. *postgres.Store and *memory.Store satisfy it.
//
// A Source may also implement wire.StoreIdentifier (both stores do): the
// relay then stamps the store's identity on every message and refuses to
// resume on a stream whose last message names another store. It may also
// have a MaxEventSize() int method, the largest event Data it accepts,
// which the relay compares with the NATS server's max_payload.
type Source interface {
	// Follow reads the global log after opts.After in global order, then
	// yields new records as they are committed, until ctx ends.
	Follow(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.Record, error]
	// Head returns the position of the last record readers can see.
	Head(ctx context.Context) (eventstore.Position, error)
}

// Relay publishes an event store's global log to a JetStream stream. Create
// it with [New], create its table with [Migrate], and run it with
// [Relay.Run]. Any number of processes may run a relay with the same schema
// and name: one leads and publishes, the others wait.
type Relay struct {
	src    Source
	nc     *nats.Conn
	pool   *pgxpool.Pool
	cfg    config
	log    *slog.Logger
	table  string
	leader leader
	tel    *telemetry.Relay // spans and metrics (telemetry.go)

	running   atomic.Bool
	state     atomic.Int32
	published atomic.Uint64
	elided    atomic.Uint64
	ready     chan struct{}
	readyOnce sync.Once

	mu        sync.Mutex
	lastErr   error
	lastErrAt time.Time
}

// New returns a relay that reads store's log and publishes it through nc,
// keeping its checkpoint and its leadership lock in pool's database. It
// validates the options and does nothing else: no network, no goroutines.
func New(store Source, nc *nats.Conn, pool *pgxpool.Pool, opts ...Option) (*Relay, error) {
	cfg := newConfig(opts)
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
		log = slog.Default()
	}
	log = log.With(slog.String("relay", cfg.name), slog.String("stream", cfg.stream.Stream))
	r := &Relay{
		src: store, nc: nc, pool: pool, cfg: cfg, log: log,
		table: checkpointTable(cfg.schema),
		ready: make(chan struct{}),
		tel:   telemetry.NewRelay(cfg.telemetry, cfg.name),
	}
	r.leader = &pgLeader{pool: pool, key: leaderKey(cfg), poll: cfg.lockPoll,
		waitFn: func(ctx context.Context) { r.log.InfoContext(ctx, "relay: another relay leads; waiting") }}
	return r, nil
}

// Ready returns a channel closed the first time this relay leads and has
// resynchronised with its stream, just before it starts publishing. It is
// never reopened; use [Relay.Status] for the current state.
func (r *Relay) Ready() <-chan struct{} { return r.ready }

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
// with an error it cannot recover from: the checkpoint table is missing,
// the NATS connection was closed, the stream's last message comes from
// another event store (wire.ErrForeignStore), or the checkpoint is ahead of
// the log's head ([ErrCheckpointAhead]).
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
	fails := backoff.Attempts{Policy: r.cfg.backoff}
	for {
		r.state.Store(int32(StateWaiting))
		ls, err := r.leader.Acquire(ctx)
		if err == nil {
			r.state.Store(int32(StateLeading))
			r.log.InfoContext(ctx, "relay: took the leadership")
			r.tel.Led()
			err = r.lead(ctx, js, ls)
			ls.Release()
			if err == nil || ctx.Err() != nil {
				r.log.InfoContext(context.WithoutCancel(ctx), "relay: stopped leading")
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errFatal) {
			r.setErr(err)
			r.log.ErrorContext(ctx, "relay: stopped on an error it cannot recover from", slog.Any("err", err))
			return err
		}
		d := fails.Next()
		r.setErr(err)
		r.log.WarnContext(ctx, "relay: lost or could not take the leadership; retrying",
			slog.Any("err", err), slog.Duration("retry_in", d))
		if backoff.Sleep(ctx, d, nil) != nil {
			return nil
		}
	}
}

// lead publishes while it holds the leadership, resynchronising after each
// failure. It returns when ctx ends (nil), when the leadership connection
// fails, or on a fatal error.
func (r *Relay) lead(ctx context.Context, js jetstream.JetStream, ls lease) error {
	fails := backoff.Attempts{Policy: r.cfg.backoff}
	for {
		start := time.Now()
		before := r.published.Load()
		err := r.session(ctx, js, ls)
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
		if perr := ls.Alive(ctx); perr != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%w (after: %w)", perr, err)
		}
		if r.published.Load() > before || time.Since(start) > r.cfg.backoff.Longest {
			fails.Reset()
		}
		d := fails.Next()
		r.log.WarnContext(ctx, "relay: publishing stopped; will resynchronise with the stream and go on",
			slog.Any("err", err), slog.Duration("retry_in", d))
		if backoff.Sleep(ctx, d, nil) != nil {
			return nil
		}
	}
}

// pending is a publish waiting for its acknowledgement.
type pending struct {
	fut jetstream.PubAckFuture
	rec eventstore.Record
}

// progress is what JetStream confirmed and the checkpoint does not hold
// yet; the confirmer adds to it and the flusher stores it.
type progress struct {
	mu    sync.Mutex
	acked eventstore.Position
	delta int64
}

func (p *progress) add(pos eventstore.Position) {
	p.mu.Lock()
	p.acked = pos
	p.delta++
	p.mu.Unlock()
}

func (p *progress) take() (eventstore.Position, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked, p.delta
}

func (p *progress) stored(n int64) {
	p.mu.Lock()
	p.delta -= n
	p.mu.Unlock()
}

// session ensures the stream, finds where it ends, and publishes from there
// until ctx ends or something fails. Every message names what the stream
// must end with before it (see chain: the previous message's ID, or the
// stream sequence the previous message must have), so after a failed
// publish the server refuses every later one and the stream never holds a
// gap filled out of order.
//
// Five goroutines share the work, each with one job: the reader follows the
// log, the publisher publishes, the confirmer waits for acknowledgements in
// order, the flusher stores the checkpoint every flush interval, and the
// watcher checks the leadership now and then. The first failure cancels
// them all.
func (r *Relay) session(ctx context.Context, js jetstream.JetStream, ls lease) error {
	store, err := r.storeID(ctx)
	if err != nil {
		return err
	}
	cps := pgCheckpoints{q: ls.Querier(), table: r.table, name: r.cfg.name, stream: r.cfg.stream.Stream, store: store}
	start, ch, err := r.resync(ctx, js, cps, store)
	if err != nil {
		return err
	}
	r.checkMaxPayload(ctx)
	r.log.InfoContext(ctx, "relay: publishing", slog.String("after", start.String()),
		slog.Uint64("stream_last_seq", ch.seq), slog.Bool("replicated", ch.bySeq))
	r.readyOnce.Do(func() { close(r.ready) })

	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	q := newQueue(1024)
	pend := make(chan pending, r.cfg.window)
	var prog progress
	confirmed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { r.read(sctx, cancel, q, start) })
	wg.Go(func() { r.publish(sctx, cancel, js, q, pend, start, ch, store) })
	wg.Go(func() { r.watch(sctx, cancel, ls) })
	wg.Go(func() { r.flush(ctx, cancel, cps, &prog, confirmed) })
	r.confirm(cancel, pend, &prog)
	close(confirmed)
	cancel(nil)
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return context.Cause(sctx)
}

// read follows the log after start into q.
func (r *Relay) read(ctx context.Context, fail context.CancelCauseFunc, q *queue, start eventstore.Position) {
	defer q.close()
	after := start
	for rec, err := range r.src.Follow(ctx, eventstore.ReadAllOptions{After: start, BatchSize: 1000}) {
		if err != nil {
			if ctx.Err() == nil {
				fail(fmt.Errorf("relay: read the event log after position %s: %w", after, err))
			}
			return
		}
		after = rec.Position
		if !q.push(ctx, rec) {
			return
		}
	}
	fail(fmt.Errorf("relay: the event log reader stopped after position %s without an error", after))
}

// publish publishes the records of q in order and hands each publish to
// the confirmer. A record whose message exceeds the server's max_payload
// is published without its Data (see wire.NewElidedMsg).
func (r *Relay) publish(ctx context.Context, fail context.CancelCauseFunc, js jetstream.JetStream, q *queue,
	pend chan<- pending, start eventstore.Position, ch chain, store uuid.UUID) {
	defer close(pend)
	enc := r.cfg.stream.Topology.Encoder(store)
	prev := start
	var spare []eventstore.Record
	for {
		batch := q.take(ctx, spare)
		if batch == nil {
			return
		}
		spare = batch
		op := r.tel.StartPublish(ctx, batch)
		for _, rec := range batch {
			if !prev.Before(rec.Position) {
				err := fmt.Errorf("relay: the event log went backwards: position %s (stream %q version %d) after %s",
					rec.Position, rec.StreamID, rec.StreamVersion, prev)
				op.End(err)
				fail(err)
				return
			}
			msg := enc.Msg(rec)
			ch.expect(msg)
			fut, err := js.PublishMsgAsync(msg)
			if errors.Is(err, nats.ErrMaxPayload) {
				msg = enc.Elided(rec)
				ch.expect(msg)
				fut, err = js.PublishMsgAsync(msg)
				if err == nil {
					r.elided.Add(1)
					r.log.WarnContext(ctx, "relay: event larger than the NATS server's max_payload; published without its data, consumers read it from the event store",
						slog.String("event_stream", rec.StreamID), slog.Int64("version", rec.StreamVersion),
						slog.String("type", rec.Type), slog.String("position", rec.Position.String()),
						slog.Int("data_bytes", len(rec.Data)), slog.Int64("max_payload", r.nc.MaxPayload()))
				}
			}
			if err != nil {
				err = fmt.Errorf("relay: publish %s: %w", describe(rec), err)
				op.End(err)
				fail(err)
				return
			}
			prev = rec.Position
			ch.published(msg.Header[wire.HeaderMsgID][0])
			select {
			case pend <- pending{fut: fut, rec: rec}:
			case <-ctx.Done():
				op.End(ctx.Err())
				return
			}
		}
		op.End(nil)
	}
}

// chain is what each message of a publishing session names as the message
// the stream must end with before it (ADR 0004, amended for replicated
// streams by ADR 0021).
//
// On a stream with one replica every message after the first names its
// predecessor's ID (Nats-Expected-Last-Msg-Id), the first one the stream's
// last sequence. On a replicated stream every message names the stream
// sequence its predecessor must have (Nats-Expected-Last-Sequence, the
// stream's last sequence at the resynchronisation plus the messages
// published since): the stream leader checks it before it proposes the
// message, against the sequence every replica agrees on, and refuses a
// mismatch without touching the replicas. nats-server checks
// Nats-Expected-Last-Msg-Id only when each replica applies the message,
// against a last message ID a replica does not keep when it catches up
// from the leader, and a replica that finds a mismatch stops applying
// entries: after a lost publish or a leader change, the chain of message
// IDs left a replicated stream without a leader.
type chain struct {
	bySeq  bool   // the stream is replicated: expect sequences, never message IDs
	seq    uint64 // the stream's last sequence before the next message, if every publish so far was stored
	prevID string // the previous message's ID; "" before the first
}

// newChain returns the chain of a session that starts on a stream whose
// last sequence is lastSeq and which has replicas replicas.
func newChain(lastSeq uint64, replicas int) chain {
	return chain{bySeq: replicas > 1, seq: lastSeq}
}

// expect names in msg what the stream must end with before it.
func (c *chain) expect(msg *nats.Msg) {
	if c.bySeq || c.prevID == "" {
		msg.Header[jetstream.ExpectedLastSeqHeader] = []string{strconv.FormatUint(c.seq, 10)}
		return
	}
	msg.Header[jetstream.ExpectedLastMsgIDHeader] = []string{c.prevID}
}

// published moves the chain past a message published with ID id.
func (c *chain) published(id string) {
	c.seq++
	c.prevID = id
}

// confirm waits for the acknowledgements in publish order and counts them
// into prog. After the first failure it calls fail and keeps draining until
// the publisher closes pend, so that no publish is still in flight when
// the relay resynchronises.
func (r *Relay) confirm(fail context.CancelCauseFunc, pend <-chan pending, prog *progress) {
	failed := false
	for p := range pend {
		select {
		case <-p.fut.Ok():
			prog.add(p.rec.Position)
			r.published.Add(1)
			r.tel.Published(1)
		case err := <-p.fut.Err():
			if !failed {
				failed = true
				fail(fmt.Errorf("relay: JetStream did not confirm %s: %w", describe(p.rec), err))
			}
		}
	}
}

// flush stores the checkpoint every flush interval while it moved, and a
// last time once the confirmer is done.
func (r *Relay) flush(ctx context.Context, fail context.CancelCauseFunc, cps checkpoints, prog *progress, confirmed <-chan struct{}) {
	store := func() bool {
		pos, n := prog.take()
		if n == 0 {
			return true
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := cps.Store(fctx, pos, n); err != nil {
			fail(err)
			r.log.WarnContext(ctx, "relay: could not store the checkpoint", slog.Any("err", err))
			return false
		}
		prog.stored(n)
		return true
	}
	tick := time.NewTicker(r.cfg.flushInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			store()
		case <-confirmed:
			store()
			return
		}
	}
}

// watch checks the leadership connection now and then.
func (r *Relay) watch(ctx context.Context, fail context.CancelCauseFunc, ls lease) {
	tick := time.NewTicker(leadershipCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := ls.Alive(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				fail(err)
				return
			}
		}
	}
}

// leadershipCheck is how often a leading relay checks its leadership
// connection.
const leadershipCheck = 5 * time.Second

// storeID returns the identity of the relay's store, or uuid.Nil (logged)
// when the store has none. An identity the store has but cannot read now
// (PostgreSQL down, the store's schema not migrated) is an error: the
// relay never publishes unstamped messages from a store with an identity.
func (r *Relay) storeID(ctx context.Context) (uuid.UUID, error) {
	si, ok := r.src.(wire.StoreIdentifier)
	if !ok {
		r.log.WarnContext(ctx, "relay: the event store has no identity (no StoreID method); messages carry no "+wire.HeaderStore+
			" header and the relay cannot tell another store's stream from its own")
		return uuid.Nil, nil
	}
	id, err := si.StoreID(ctx)
	if err != nil {
		return uuid.Nil, fmt.Errorf("relay: read the event store's identity (run the store's Migrate after upgrading): %w", err)
	}
	return id, nil
}

// checkMaxPayload warns when the store accepts events larger than the
// NATS server's max_payload.
func (r *Relay) checkMaxPayload(ctx context.Context) {
	limit := r.cfg.maxEventSize
	if ms, ok := r.src.(interface{ MaxEventSize() int }); ok && limit == 0 {
		limit = ms.MaxEventSize()
	}
	mp := r.nc.MaxPayload()
	switch {
	case limit == 0:
		r.log.DebugContext(ctx, "relay: the event store states no maximum event size; events over the NATS server's max_payload will be published without their data",
			slog.Int64("max_payload", mp))
	case int64(limit)+maxHeaderBytes > mp:
		r.log.WarnContext(ctx, "relay: the event store accepts events larger than the NATS server's max_payload; such events are published without their data and consumers read them from the event store (raise max_payload or lower the store's maximum event size)",
			slog.Int("max_event_size", limit), slog.Int64("max_payload", mp))
	}
}

// maxHeaderBytes is a generous estimate of the headers of a message.
const maxHeaderBytes = 2048

// ensureStream returns the relay's stream with fresh info, creating it
// when it does not exist and updating it only when its configuration
// differs from the relay's. An update is a proposal to the cluster's meta
// leader that every replica applies; the relay resynchronises after every
// failed publish, and on a clustered stream whose leader is being replaced
// it used to send one each time, for nothing.
func (r *Relay) ensureStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	name := r.cfg.stream.Stream
	want := r.cfg.stream.jetstream()
	stream, err := js.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		stream, err = js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			stream, err = js.Stream(ctx, name) // another relay created it
		}
		if err != nil {
			return nil, fmt.Errorf("relay: create JetStream stream %s: %w", name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("relay: read JetStream stream %s: %w", name, err)
	case !sameStreamConfig(stream.CachedInfo().Config, want):
		if stream, err = js.UpdateStream(ctx, want); err != nil {
			return nil, fmt.Errorf("relay: update JetStream stream %s: %w", name, err)
		}
	}
	// Read the info after any change, so the last sequence is current.
	if _, err := stream.Info(ctx); err != nil {
		return nil, fmt.Errorf("relay: read JetStream stream %s: %w", name, err)
	}
	return stream, nil
}

// sameStreamConfig reports whether the stream has the settings the relay
// manages; a zero Duplicates leaves the server's default alone.
func sameStreamConfig(got, want jetstream.StreamConfig) bool {
	return got.Description == want.Description && slices.Equal(got.Subjects, want.Subjects) &&
		got.Retention == want.Retention && got.MaxAge == want.MaxAge &&
		(want.Duplicates == 0 || got.Duplicates == want.Duplicates) &&
		max(got.Replicas, 1) == max(want.Replicas, 1) && got.Storage == want.Storage
}

// resync creates or updates the stream and returns the position to publish
// after, the later of the stream's last record and the stored checkpoint,
// and the chain the session starts with (the stream's last sequence and
// whether the stream is replicated). It refuses a stream whose last message
// names another event store, and a checkpoint or a last message after the
// head of the log.
func (r *Relay) resync(ctx context.Context, js jetstream.JetStream, cps checkpoints, store uuid.UUID) (eventstore.Position, chain, error) {
	cp, err := cps.Load(ctx)
	if err != nil {
		return eventstore.Position{}, chain{}, err
	}
	if cp.StoreID != uuid.Nil && store != uuid.Nil && cp.StoreID != store {
		return eventstore.Position{}, chain{}, &fatalError{fmt.Errorf("%w: relay %q checkpoint %s in schema %s was stored for event store %s, not for this store %s",
			wire.ErrForeignStore, cp.Name, cp.Position, r.cfg.schema, cp.StoreID, store)}
	}
	name := r.cfg.stream.Stream
	stream, err := r.ensureStream(ctx, js)
	if err != nil {
		return eventstore.Position{}, chain{}, err
	}
	info := stream.CachedInfo()
	last := info.State.LastSeq
	start := cp.Position
	var m *jetstream.RawStreamMsg
	if last > 0 {
		m, err = stream.GetMsg(ctx, last)
	}
	// Read the head after the stream's last message: a former leader may
	// still publish until it notices it lost the leadership, and the head
	// only moves forward.
	head, herr := r.src.Head(ctx)
	if herr != nil {
		return eventstore.Position{}, chain{}, fmt.Errorf("relay: read the head of the log: %w", herr)
	}
	if err := CheckHead(cp, head, r.cfg.schema); err != nil {
		return eventstore.Position{}, chain{}, &fatalError{err}
	}
	if last > 0 {
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			r.log.WarnContext(ctx, "relay: the stream's last message is gone; going on from the checkpoint",
				slog.Uint64("stream_last_seq", last), slog.String("checkpoint", cp.Position.String()))
		case err != nil:
			return eventstore.Position{}, chain{}, fmt.Errorf("relay: read message %d of JetStream stream %s: %w", last, name, err)
		default:
			if other, ok, err := wire.StoreOf(m.Header); err != nil {
				return eventstore.Position{}, chain{}, &fatalError{fmt.Errorf("relay: message %d of JetStream stream %s: %w", last, name, err)}
			} else if ok && store != uuid.Nil && other != store {
				return eventstore.Position{}, chain{}, &fatalError{fmt.Errorf("relay: refusing to resume: %w",
					&wire.ForeignStoreError{Stream: name, Seq: last, Want: store, Got: other, Schema: r.cfg.schema})}
			}
			if err := r.cfg.stream.Topology.CheckSubject(m.Subject); err != nil {
				return eventstore.Position{}, chain{}, &fatalError{fmt.Errorf("relay: refusing to resume on message %d of JetStream stream %s: %w", last, name, err)}
			}
			p, err := eventstore.ParsePosition(m.Header.Get(wire.HeaderPosition))
			if err != nil {
				return eventstore.Position{}, chain{}, &fatalError{fmt.Errorf("relay: message %d of JetStream stream %s (subject %q) has no valid %s header; only the relay may publish to the stream: %w",
					last, name, m.Subject, wire.HeaderPosition, err)}
			}
			if head.Before(p) {
				return eventstore.Position{}, chain{}, &fatalError{fmt.Errorf("%w: message %d of JetStream stream %s is at position %s, after the head %s of the event store in schema %s: the stream holds another event store's log; give each store its own stream",
					ErrCheckpointAhead, last, name, p, head, r.cfg.schema)}
			}
			if start.Before(p) {
				start = p
				// The stream is ahead of the checkpoint (a previous leader
				// stopped before storing it): catch the checkpoint up.
				if err := cps.Store(ctx, p, 0); err != nil {
					return eventstore.Position{}, chain{}, err
				}
			}
		}
	}
	return start, newChain(last, info.Config.Replicas), nil
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
