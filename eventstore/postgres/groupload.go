package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/telemetry"
	"github.com/chronicle-go/chronicle/snapshot"
)

// Group loads (ADR 0022). Concurrent calls to Store.ReadStreamWithSnapshot
// for the same snapshots table are coalesced into one query and one round
// trip:
//
//	caller: nothing in flight and nothing queued -> its own query, at once,
//	        on a pool connection (a lone caller waits for no one)
//	        otherwise -> enqueue -> wait for its result (or its ctx)
//	flusher: once no read is in flight, take what is queued -> one query
//	         over all the streams (unnest ... WITH ORDINALITY, each row
//	         tagged by its stream's ordinal) -> hand each caller its rows
//
// At most one read per group is in flight at a time, a lone caller's or a
// batch: loads arriving meanwhile queue and go together in the next batch,
// so batches grow with the load and no timer is involved.
//
// The flusher starts with the first load that queues, owns one connection
// taken out of the pool (with generic plans, so that the batch statement is
// planned once), exits and closes that connection after loadIdle without
// batches, and stops with Store.Close.

const (
	// loadMaxStreams bounds the streams of one batch.
	loadMaxStreams = 128
	// loadDepth is how many reads of a group may be in flight at once:
	// lone callers' and at most one batch. With 2 or 3, Update without a
	// cache on 8 goroutines sent 1.70-1.80 queries per load instead of
	// 1.44 and ran 5-15% slower than with 1 (docs/benchmarks.md).
	loadDepth = 1
	// loadIdle is how long the flusher keeps its connection without
	// batches before it exits (it starts again with the next batch).
	loadIdle = 5 * time.Second
)

// loadRequest is one load waiting for the flusher. Its state follows the
// group commit's requests: the flusher takes it (reqQueued -> reqTaken) or
// its caller gives up on it (reqQueued -> reqAbandoned), never both.
type loadRequest struct {
	stream string
	limit  int
	state  atomic.Int32
	done   chan loadResult // buffered: the flusher never blocks on it
}

// loadResult is what the flusher tells one caller.
type loadResult struct {
	// alone: the batch failed as a whole; the caller runs its own query,
	// and so gets exactly the result it would have had.
	alone bool
	snap  snapshot.Snapshot
	recs  []eventstore.Record
	err   error
}

// GroupLoadStats counts what group loads (see [WithGroupLoads]) did since
// the Store was made.
type GroupLoadStats struct {
	// Alone counts the loads that found no read in flight and ran their
	// own query at once; Batches the batch queries sent, and Batched the
	// loads they served: Alone + Batched loads took Alone + Batches round
	// trips. (Loads that a failed batch sent back to run their own query
	// count in Batched only.)
	Alone, Batches, Batched int64
}

// GroupLoadStats returns the counters of group loads; all zero when they
// are off.
func (s *Store) GroupLoadStats() GroupLoadStats {
	if s.loads == nil {
		return GroupLoadStats{}
	}
	c := &s.loads.stats
	return GroupLoadStats{Alone: c.alone.Load(), Batches: c.batches.Load(), Batched: c.batched.Load()}
}

type loadCounters struct{ alone, batches, batched atomic.Int64 }

// loadGroups holds a Store's load groups, one per snapshots table.
type loadGroups struct {
	s      *Store
	stats  loadCounters
	mu     sync.Mutex
	closed bool
	groups map[string]*loadGroup
}

// group returns the group of table, nil once the store is closed.
func (l *loadGroups) group(table string) *loadGroup {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	g := l.groups[table]
	if g == nil {
		if l.groups == nil {
			l.groups = make(map[string]*loadGroup)
		}
		g = &loadGroup{s: l.s, stats: &l.stats, table: table, sql: l.s.q.readWithSnapshots(table), single: l.s.q.readWithSnapshot(table),
			wake: make(chan struct{}, 1), stop: make(chan struct{})}
		l.groups[table] = g
	}
	return g
}

// close stops every group's flusher once its batch in flight is done.
// Safe to call twice.
func (l *loadGroups) close() {
	l.mu.Lock()
	l.closed = true
	gs := make([]*loadGroup, 0, len(l.groups))
	for _, g := range l.groups {
		gs = append(gs, g)
	}
	l.mu.Unlock()
	for _, g := range gs {
		g.close()
	}
}

// loadGroup coalesces the loads of one snapshots table.
type loadGroup struct {
	s      *Store
	stats  *loadCounters
	table  string
	sql    string // the batch statement
	single string // the statement of a load alone

	mu    sync.Mutex
	queue []*loadRequest
	// inFlight counts the reads in flight, lone callers' and the batch's,
	// at most loadDepth; loads queue while it is loadDepth.
	inFlight int
	// batch counts the loads of the batch in flight (tests).
	batch   int
	running bool // a flusher goroutine is running
	closed  bool
	conn    *pgx.Conn // the flusher's, nil until it connects
	wake    chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

// read returns what the one-query read of stream would: at once when no
// read of the group is in flight, otherwise in the next batch.
func (g *loadGroup) read(ctx context.Context, stream string, limit int) (snapshot.Snapshot, []eventstore.Record, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return g.s.readWithSnapshot(ctx, g.single, stream, limit)
	}
	if g.inFlight < loadDepth && len(g.queue) == 0 {
		g.inFlight++
		g.mu.Unlock()
		g.stats.alone.Add(1)
		g.s.tel.GroupLoad(telemetry.GroupAlone, 1)
		snap, recs, err := g.s.readWithSnapshot(ctx, g.single, stream, limit)
		g.mu.Lock()
		g.inFlight--
		more := len(g.queue) > 0
		g.mu.Unlock()
		if more {
			g.signal()
		}
		return snap, recs, err
	}
	if err := ctx.Err(); err != nil {
		g.mu.Unlock()
		return snapshot.Snapshot{}, nil, readSnapErr(g.s, stream, err)
	}
	req := &loadRequest{stream: stream, limit: limit, done: make(chan loadResult, 1)}
	g.queue = append(g.queue, req)
	if !g.running {
		g.running = true
		g.wg.Add(1)
		go g.run()
	}
	g.mu.Unlock()
	g.signal()
	select {
	case res := <-req.done:
		if res.alone {
			return g.s.readWithSnapshot(ctx, g.single, stream, limit)
		}
		return res.snap, res.recs, res.err
	case <-ctx.Done():
		// Queued: the stream will not be read. Taken: its batch is in
		// flight; the result, when it comes, is dropped.
		if !req.state.CompareAndSwap(reqQueued, reqAbandoned) {
			select {
			case res := <-req.done:
				if !res.alone {
					return res.snap, res.recs, res.err
				}
			default:
			}
		}
		return snapshot.Snapshot{}, nil, readSnapErr(g.s, stream, ctx.Err())
	}
}

// readSnapErr wraps an error of the read of stream with its snapshot.
func readSnapErr(s *Store, stream string, err error) error {
	return s.wrapErr(fmt.Sprintf("read stream %q with its snapshot", stream), err)
}

// signal wakes the flusher.
func (g *loadGroup) signal() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// close stops the flusher once its batch in flight is done; loads queued
// meanwhile, and later ones, run alone. Safe to call twice.
func (g *loadGroup) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.stop)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// run is the flusher.
func (g *loadGroup) run() {
	defer g.wg.Done()
	idle := time.NewTimer(loadIdle)
	defer idle.Stop()
	for {
		select {
		case <-g.wake:
		case <-g.stop:
			g.exit()
			return
		case <-idle.C:
			if g.idleExit() {
				return
			}
			idle.Reset(loadIdle)
			continue
		}
		for g.flushNext() {
		}
		idle.Reset(loadIdle)
	}
}

// flushNext sends the queued loads in one batch unless a read is in
// flight (whose caller wakes the flusher when done) or nothing is queued;
// it reports whether it sent one.
func (g *loadGroup) flushNext() bool {
	g.mu.Lock()
	if g.inFlight >= loadDepth || len(g.queue) == 0 {
		g.mu.Unlock()
		return false
	}
	var batch []*loadRequest
	n := 0
	for _, r := range g.queue {
		if len(batch) < loadMaxStreams {
			if r.state.CompareAndSwap(reqQueued, reqTaken) {
				batch = append(batch, r)
			}
			n++
			continue
		}
		break
	}
	g.queue = slices.Delete(g.queue, 0, n)
	if len(g.queue) == 0 {
		g.queue = nil
	}
	if len(batch) > 0 {
		g.inFlight++
	}
	g.batch = len(batch)
	conn := g.conn
	g.mu.Unlock()
	if len(batch) == 0 {
		return true
	}
	g.stats.batches.Add(1)
	g.stats.batched.Add(int64(len(batch)))
	g.s.tel.GroupLoad(telemetry.GroupBatched, len(batch))
	conn = g.flush(conn, batch)
	g.mu.Lock()
	g.conn, g.batch = conn, 0
	g.inFlight--
	g.mu.Unlock()
	return true
}

// exit ends the flusher when the store closes: the loads still queued run
// alone, and the connection is closed.
func (g *loadGroup) exit() {
	g.mu.Lock()
	q := g.queue
	g.queue, g.running = nil, false
	drop := g.conn
	g.conn = nil
	g.mu.Unlock()
	sendLoadsAlone(q)
	if drop != nil {
		_ = drop.Close(context.Background())
	}
}

// idleExit ends the flusher after loadIdle without batches, closing its
// connection; false when a load queued meanwhile.
func (g *loadGroup) idleExit() bool {
	g.mu.Lock()
	if len(g.queue) > 0 || g.inFlight > 0 {
		g.mu.Unlock()
		return false
	}
	g.running = false
	drop := g.conn
	g.conn = nil
	g.mu.Unlock()
	if drop != nil {
		_ = drop.Close(context.Background())
	}
	return true
}

// sendLoadsAlone tells loads to run their own query.
func sendLoadsAlone(rs []*loadRequest) {
	for _, r := range rs {
		if r.state.CompareAndSwap(reqQueued, reqTaken) || r.state.Load() == reqTaken {
			r.done <- loadResult{alone: true}
		}
	}
}

// connect takes a connection out of the pool for the flusher and switches
// it to generic plans: the batch statement is then planned once, not for
// each batch.
func (g *loadGroup) connect(ctx context.Context) (*pgx.Conn, error) {
	pc, err := g.s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	c := pc.Hijack()
	if _, err := c.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		_ = c.Close(ctx)
		return nil, err
	}
	return c, nil
}

// flush runs one batch on conn (connecting first when there is none) and
// hands each caller its result; it returns the connection to use next,
// nil once this one is lost. When the batch fails as a whole, nothing of
// it is handed out: each caller runs its own query.
func (g *loadGroup) flush(conn *pgx.Conn, batch []*loadRequest) *pgx.Conn {
	ctx := context.Background()
	if conn != nil && conn.IsClosed() {
		conn = nil
	}
	if conn == nil {
		var err error
		if conn, err = g.connect(ctx); err != nil {
			g.s.log.Debug("postgres: group loads could not connect; loads run alone",
				slog.String("schema", g.s.cfg.schema), slog.Any("err", err))
			sendLoadsAlone(batch)
			return nil
		}
	}
	results, err := g.s.readBatch(ctx, conn, g.sql, batch)
	if err != nil {
		g.s.log.Debug("postgres: group load failed; loads run alone",
			slog.String("schema", g.s.cfg.schema), slog.Int("loads", len(batch)), slog.Any("err", err))
		sendLoadsAlone(batch)
		if !conn.IsClosed() && !errors.As(err, new(*pgconn.PgError)) {
			// Unknown state: do not reuse it.
			_ = conn.Close(ctx)
		}
		if conn.IsClosed() {
			return nil
		}
		return conn
	}
	for i, r := range batch {
		r.done <- results[i]
	}
	return conn
}

// readBatch runs the batch statement for the loads of batch on conn and
// returns each one's result, in order. A record that cannot be decoded
// fails only its own load, with the error its own query would have had.
func (s *Store) readBatch(ctx context.Context, conn *pgx.Conn, sql string, batch []*loadRequest) ([]loadResult, error) {
	streams := make([]string, len(batch))
	limits := make([]int32, len(batch))
	for i, r := range batch {
		streams[i], limits[i] = r.stream, int32(min(r.limit, 1<<31-1))
	}
	rows, err := conn.Query(ctx, sql, streams, limits)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]loadResult, len(batch))
	var sc snapRows
	dest := sc.dest()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if sc.ord < 1 || sc.ord > int64(len(batch)) {
			return nil, fmt.Errorf("group load returned ordinal %d for %d loads", sc.ord, len(batch))
		}
		res, r := &out[sc.ord-1], batch[sc.ord-1]
		switch {
		case res.err != nil:
		case sc.isSnapshot():
			res.snap = sc.snapshot(r.stream)
		default:
			rec, err := sc.record(r.stream)
			if err != nil {
				// The load's own query would have failed the same way.
				res.err, res.snap, res.recs = err, snapshot.Snapshot{}, nil
				continue
			}
			if res.recs == nil {
				res.recs = make([]eventstore.Record, 0, min(r.limit, firstTail))
			}
			res.recs = append(res.recs, rec)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		sortRecords(out[i].recs)
	}
	return out, nil
}

// readWithSnapshots is the batch statement of group loads for the
// snapshots table: for the streams $1 with limits $2 (one each, in the same
// order), each stream's snapshot row (record columns null) and its events
// from the snapshot's version (snapshot columns null), every row tagged by
// its stream's ordinal in $1. One statement reads every stream from the
// same snapshot of the database, as each stream's own query would.
func (q queries) readWithSnapshots(table string) string {
	return `WITH u AS MATERIALIZED (
    SELECT x.stream_id, x.lim, x.ord FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS x (stream_id, lim, ord)),
  s AS MATERIALIZED (
    SELECT u.ord, u.stream_id, u.lim, sn.version, sn.revision, sn.data, sn.taken_at
      FROM u LEFT JOIN ` + table + ` sn ON sn.stream_id = u.stream_id)
SELECT s.ord, s.version, s.revision, s.data, s.taken_at, NULL::bigint, NULL::bigint, NULL::uuid, NULL::bigint,
       NULL::text, NULL::int, NULL::jsonb, NULL::jsonb, NULL::timestamptz FROM s WHERE s.version IS NOT NULL
UNION ALL
SELECT s.ord, NULL::bigint, NULL::int, NULL::bytea, NULL::timestamptz, e.position, e.transaction_id, e.event_id, e.stream_version,
       e.type, e.schema_version, e.data, e.metadata, e.recorded_at
  FROM s CROSS JOIN LATERAL (
    SELECT x.position, x.transaction_id, x.event_id, x.stream_version, x.type, x.schema_version, x.data, x.metadata, x.recorded_at
      FROM ` + q.events + ` x
     WHERE x.stream_id = s.stream_id AND x.stream_version >= coalesce(s.version, 1)
     ORDER BY x.stream_version LIMIT s.lim) AS e`
}
