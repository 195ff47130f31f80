package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/telemetry"
)

// Group commit (ADR 0013). Concurrent calls to Store.Append are coalesced
// into shared round trips and transactions by up to groupConns flushers per
// Store, each with a connection of its own, taking from one queue:
//
//	caller: Append -> enqueue -> wait for its result (or its ctx)
//	flusher: wait for an append -> yield a few times -> take what is queued,
//	         at most one append per stream and none of a stream another
//	         flusher is sending (later ones wait for the next batch) ->
//	         lock the streams in key order -> one INSERT checking each
//	         append -> commit -> hand each caller its own row
//
// A second flusher sends when groupSecondAt appends wait while the first
// one is sending: its batch is executed while the first one's commit waits
// for its WAL flush. A notification due rides in a flusher's transaction
// (noticeCarry). A lone caller (nothing queued or being
// sent, the last batch one append) sends its append itself on the first
// flusher's connection (direct).
//
// The flushers start with the appends that need them, own connections
// taken out of the pool (so a closed pool never waits for them), exit and
// close their connections after groupIdle without appends, and stop with
// Store.Close.

const (
	// groupConns is how many flushers, each with its own connection, send
	// batches at a time. With one, the server worked on one batch at a
	// time and idled through each commit's WAL flush and each round trip:
	// 8 goroutines appending got 0.98x of bare INSERTs' rate for 0.65x of
	// their CPU per event. See ADR 0013, "Two connections".
	groupConns = 2
	// groupSecondAt is how many appends must wait while the first
	// flusher is sending for another flusher to send them: a batch
	// smaller than that costs more CPU per event than waiting for the
	// first one (at 8 goroutines appending, a threshold of 4 cost 0.9x of
	// bare INSERTs' CPU per event for the same rate; 8 cost 0.65x).
	groupSecondAt = 8
	// groupYields is how many times at most a flusher yields the
	// processor before taking a batch (see gather). No timer: a lone
	// caller waits for nothing.
	groupYields = 3
	// groupGather bounds the time spent yielding for one batch.
	groupGather = 50 * time.Microsecond
	// groupMaxAppends bounds the appends of one batch.
	groupMaxAppends = 256
	// groupIdle is how long a flusher keeps its connection without
	// appends before it exits (it starts again when needed).
	groupIdle = 5 * time.Second
	// groupLockTimeout is the longest a flusher's connection waits for a
	// lock (a stream's, held by another transaction) before it lets the
	// appends concerned run alone.
	groupLockTimeout = 100 * time.Millisecond
)

// A request's state: a flusher takes it (queued -> taken) or its caller
// gives up on it (queued -> abandoned), never both.
const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// groupRequest is one Append waiting for a flusher.
type groupRequest struct {
	stream   string
	expected eventstore.ExpectedVersion
	evs      []eventstore.Event
	meta     []*string
	// st and args are the append's statement for when it is alone in its
	// batch: then it runs as a single append would, on the flusher's
	// connection.
	st    appendStmt
	args  []any
	state atomic.Int32
	done  chan groupResult // buffered: the flusher never blocks on it
}

// groupResult is what a flusher tells one caller.
type groupResult struct {
	// alone: nothing of the batch was written (PostgreSQL refused it as a
	// whole, or the flusher could not connect, or the store is closing);
	// the caller runs its append alone, as without group commit, and so
	// gets exactly the result it would have had.
	alone bool
	// err: the batch failed and may or may not have been committed (a
	// lost connection); the caller passes it on.
	err error
	// r: what the append wrote. When it wrote nothing (r.n == 0), f says
	// what the batch found under the streams' locks; for an append that
	// was alone in its batch, f is nil and insertErr is the error of its
	// statement (nil if it returned no row), as for a single append.
	r         appendRow
	f         *failedAppend
	insertErr error
}

// groupConn is a flusher's connection and the statements prepared on it.
type groupConn struct {
	conn                        *pgx.Conn
	lock, batch, batch1, notify *pgconn.StatementDescription
}

// flusher is the state of one of a groupCommitter's flushers, guarded by
// the groupCommitter's mu.
type flusher struct {
	running bool // its goroutine is running
	// busy: a batch is being sent on conn, by the flusher or by a lone
	// caller (direct, first flusher only).
	busy bool
	conn *groupConn    // nil until the flusher connects
	wake chan struct{} // capacity 1: appends were queued for it, or its connection is free
}

// GroupCommitStats counts what group commit (see [WithGroupCommit]) did
// since the Store was made.
type GroupCommitStats struct {
	// Alone counts the appends sent in a transaction of their own on a
	// flusher's connection: nothing else was waiting. Batches counts the
	// transactions that carried two appends or more, and Batched the
	// appends they carried: Alone + Batched appends took Alone + Batches
	// transactions (and WAL flushes).
	Alone, Batches, Batched int64
	// Fallback counts the appends a flusher sent back to run alone on a
	// pool connection, outside group commit: their batch was refused as a
	// whole, a stream lock was busy past the flusher's lock timeout, the
	// flusher could not connect, or the Store was closing.
	Fallback int64
}

// GroupCommitStats returns the counters of group commit; all zero when it
// is off.
func (s *Store) GroupCommitStats() GroupCommitStats {
	if s.group == nil {
		return GroupCommitStats{}
	}
	c := &s.group.stats
	return GroupCommitStats{Alone: c.alone.Load(), Batches: c.batches.Load(), Batched: c.batched.Load(), Fallback: c.fallback.Load()}
}

type commitCounters struct{ alone, batches, batched, fallback atomic.Int64 }

// count counts n appends of kind (telemetry.GroupAlone, GroupBatched: one
// batch of n, or GroupFallback) in GroupCommitStats and the store's
// metrics.
func (g *groupCommitter) count(kind string, n int) {
	switch kind {
	case telemetry.GroupAlone:
		g.stats.alone.Add(int64(n))
	case telemetry.GroupBatched:
		g.stats.batches.Add(1)
		g.stats.batched.Add(int64(n))
	default:
		g.stats.fallback.Add(int64(n))
	}
	g.s.tel.GroupCommit(kind, n)
}

// groupCommitter is a Store's flushers and their queue.
type groupCommitter struct {
	s       *Store
	stats   commitCounters
	lockSQL string
	// sql and sql1 are the batch statements: any appends, and appends of
	// one event each (see groupStatements).
	sql, sql1 string
	// lockTimeout is groupLockTimeout (tests lengthen it to hold a
	// flusher on a lock for as long as they need).
	lockTimeout time.Duration

	mu       sync.Mutex
	queue    []*groupRequest
	flushers []flusher
	// sending holds the streams of the appends being sent: a flusher
	// leaves their next appends queued until those are done, as a single
	// flusher did, so that they never wait for each other's locks.
	sending map[string]bool
	closed  bool
	// solo: the last batch held one append; direct sends only then, so
	// that under concurrency lone sends do not break batches up.
	solo bool
	stop chan struct{} // closed by Store.Close
	wg   sync.WaitGroup
}

func newGroupCommitter(s *Store, q string) *groupCommitter {
	lock, batch, batch1 := groupStatements(q)
	g := &groupCommitter{s: s, lockSQL: lock, sql: batch, sql1: batch1, lockTimeout: groupLockTimeout,
		flushers: make([]flusher, groupConns), sending: make(map[string]bool), stop: make(chan struct{})}
	for i := range g.flushers {
		g.flushers[i].wake = make(chan struct{}, 1)
	}
	return g
}

// enqueue queues r and wakes the first flusher that is not sending,
// starting it if it does not run; a flusher other than the first only when
// groupSecondAt appends wait. When every flusher concerned is sending, the
// first to be done takes r. false means the store is closed and the caller
// appends alone.
func (g *groupCommitter) enqueue(r *groupRequest) bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.queue = append(g.queue, r)
	wake := -1
	for i := range g.flushers {
		f := &g.flushers[i]
		if i > 0 && len(g.queue) < groupSecondAt {
			break
		}
		if !f.running {
			f.running = true
			g.wg.Add(1)
			go g.run(i)
			wake = i
			break
		}
		if !f.busy {
			wake = i
			break
		}
	}
	g.mu.Unlock()
	if wake >= 0 {
		g.signal(wake)
	}
	return true
}

// signal wakes flusher i, if it is not woken already.
func (g *groupCommitter) signal(i int) {
	select {
	case g.flushers[i].wake <- struct{}{}:
	default:
	}
}

// take empties the queue.
func (g *groupCommitter) take() []*groupRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	q := g.queue
	g.queue = nil
	return q
}

// close stops the flushers once their batches in flight are done; appends
// queued meanwhile, and later ones, run alone. Safe to call twice.
func (g *groupCommitter) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.stop)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// run is flusher i.
func (g *groupCommitter) run(i int) {
	defer g.wg.Done()
	idle := time.NewTimer(groupIdle)
	defer idle.Stop()
	wake := g.flushers[i].wake // never changes
	wait := true
	for {
		if wait {
			select {
			case <-wake:
			case <-g.stop:
				g.exit(i)
				return
			case <-idle.C:
				if g.idleExit(i) {
					return
				}
				idle.Reset(groupIdle)
				continue
			}
		}
		select {
		case <-g.stop:
			g.exit(i)
			return
		default:
		}
		g.gather()
		g.mu.Lock()
		f := &g.flushers[i]
		if f.busy {
			// A lone caller is sending its append on this connection
			// (direct); it wakes a flusher when done.
			g.mu.Unlock()
			wait = true
			continue
		}
		if i > 0 && len(g.queue) < groupSecondAt {
			// The other flushers send only batches worth a connection
			// of their own; the first one takes smaller ones when it is
			// done.
			g.mu.Unlock()
			wait = true
			continue
		}
		batch := g.pick()
		if len(batch) == 0 {
			g.mu.Unlock()
			wait = true
			continue
		}
		f.busy = true
		conn := f.conn
		g.mu.Unlock()
		conn = g.flush(conn, batch)
		g.mu.Lock()
		f.conn, f.busy = conn, false
		for _, r := range batch {
			delete(g.sending, r.stream)
		}
		g.solo = len(batch) <= 1
		more := len(g.queue) > 0
		g.mu.Unlock()
		if more && i > 0 {
			// The first flusher may have left appends of this batch's
			// streams queued.
			g.signal(0)
		}
		wait = !more
		idle.Reset(groupIdle)
	}
}

// pick takes from the queue, in order, at most one append per stream and
// none of a stream being sent, groupMaxAppends in all, and marks their
// streams as being sent; what it leaves stays queued, in order, but for
// the appends whose callers gave up. g.mu must be held.
func (g *groupCommitter) pick() []*groupRequest {
	var batch []*groupRequest
	rest := g.queue[:0]
	for _, r := range g.queue {
		if r.state.Load() != reqQueued {
			continue // given up
		}
		if len(batch) < groupMaxAppends && !g.sending[r.stream] && r.state.CompareAndSwap(reqQueued, reqTaken) {
			g.sending[r.stream] = true
			batch = append(batch, r)
			continue
		}
		rest = append(rest, r)
	}
	clear(g.queue[len(rest):])
	g.queue = rest
	return batch
}

// exit ends flusher i when the store closes: the queued appends run alone,
// and its connection is closed unless a lone caller is using it (which
// then closes it).
func (g *groupCommitter) exit(i int) {
	g.sendAlone(g.take())
	g.mu.Lock()
	f := &g.flushers[i]
	f.running = false
	var drop *groupConn
	if !f.busy {
		drop, f.conn = f.conn, nil
	}
	g.mu.Unlock()
	if drop != nil {
		_ = drop.conn.Close(context.Background())
	}
}

// idleExit ends flusher i after groupIdle without appends, closing its
// connection; false when an append came meanwhile.
func (g *groupCommitter) idleExit(i int) bool {
	g.mu.Lock()
	f := &g.flushers[i]
	if len(g.queue) > 0 || f.busy {
		g.mu.Unlock()
		return false
	}
	f.running = false
	drop := f.conn
	f.conn = nil
	g.mu.Unlock()
	if drop != nil {
		_ = drop.conn.Close(context.Background())
	}
	return true
}

// direct runs r at once on the first flusher's connection when nothing is
// queued or being sent and the last batch was one append: a lone caller
// then pays no hand-off to the flusher goroutine and back, and runs
// exactly as a single append (with its own ctx). ok is false when r must
// be queued instead.
func (g *groupCommitter) direct(ctx context.Context, r *groupRequest) (res groupResult, ok bool) {
	g.mu.Lock()
	f := &g.flushers[0]
	if g.closed || !g.solo || len(g.queue) > 0 || len(g.sending) > 0 || !f.running || f.busy || f.conn == nil {
		g.mu.Unlock()
		return groupResult{}, false
	}
	f.busy = true
	g.sending[r.stream] = true
	conn := f.conn
	g.wg.Add(1)
	g.mu.Unlock()
	defer g.wg.Done()
	row, led, err := g.s.appendOnConn(ctx, conn.conn, r.st.name, r.st.sql, r.st.one, noticeCarry, r.args)
	if err == nil && row.n > 0 && g.s.cfg.notify && !led {
		g.s.trail()
	}
	res = groupResult{r: row, insertErr: err}
	if lockBusy(err) {
		res = groupResult{alone: true} // nothing was written
		g.count(telemetry.GroupFallback, 1)
	} else {
		g.count(telemetry.GroupAlone, 1)
	}
	g.mu.Lock()
	f.busy = false
	delete(g.sending, r.stream)
	var drop *groupConn
	switch {
	case conn.conn.IsClosed():
		f.conn = nil
	case g.closed || !f.running:
		drop, f.conn = f.conn, nil
	}
	more := len(g.queue) > 0
	g.mu.Unlock()
	if drop != nil {
		_ = drop.conn.Close(context.Background())
	}
	if more {
		g.signal(0) // it found its connection busy
	}
	return res, true
}

// lockBusy reports whether err is PostgreSQL refusing a statement because
// a lock was not granted within the connection's lock_timeout (55P03): the
// statement's implicit transaction rolled back and wrote nothing.
func lockBusy(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

// gather yields the processor so that callers just handed their results
// can queue their next append: up to groupYields times, and only while
// yielding brings more (callers busy elsewhere, loading an aggregate say,
// would only delay the batch) and for at most groupGather.
func (g *groupCommitter) gather() {
	start := time.Now()
	n := g.queued()
	for range groupYields {
		runtime.Gosched()
		m := g.queued()
		if m == n || time.Since(start) > groupGather {
			return
		}
		n = m
	}
}

// queued returns the number of appends in the queue.
func (g *groupCommitter) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// sendAlone tells the queued appends to run alone.
func (g *groupCommitter) sendAlone(rs []*groupRequest) {
	for _, r := range rs {
		if r.state.CompareAndSwap(reqQueued, reqTaken) || r.state.Load() == reqTaken {
			g.count(telemetry.GroupFallback, 1)
			r.done <- groupResult{alone: true}
		}
	}
}

// connect takes a connection out of the pool for the flusher, switches it
// to generic plans (the batch statement would otherwise be planned anew
// for each batch, at about 100 µs of server CPU) and prepares the
// statements.
func (g *groupCommitter) connect(ctx context.Context) (*groupConn, error) {
	pc, err := g.s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	gc := &groupConn{conn: pc.Hijack()}
	c := gc.conn
	err = func() (err error) {
		if _, err = c.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
			return err
		}
		// The flusher serves every append of the Store: it must not wait
		// long for a stream lock that another transaction holds (a
		// caller's AppendTx before slow work), or every append would
		// queue behind that transaction. A lock not granted within
		// groupLockTimeout fails the statement (55P03, nothing written)
		// and the appends concerned run alone on pool connections,
		// where only they wait.
		if _, err = c.Exec(ctx, `SET lock_timeout = `+quoteLiteral(fmt.Sprintf("%dms", g.lockTimeout.Milliseconds()))); err != nil {
			return err
		}
		if gc.lock, err = c.Prepare(ctx, "chronicle_group_lock", g.lockSQL); err != nil {
			return err
		}
		if gc.notify, err = c.Prepare(ctx, "chronicle_notify", g.s.q.notify); err != nil {
			return err
		}
		if gc.batch, err = c.Prepare(ctx, "chronicle_group", g.sql); err != nil {
			return err
		}
		gc.batch1, err = c.Prepare(ctx, "chronicle_group1", g.sql1)
		return err
	}()
	if err != nil {
		_ = c.Close(ctx)
		return nil, err
	}
	return gc, nil
}

// flush runs one batch on conn (connecting first when there is none) and
// hands each caller its result; it returns the connection to use next,
// nil once this one is lost.
func (g *groupCommitter) flush(conn *groupConn, batch []*groupRequest) *groupConn {
	ctx := context.Background()
	if conn != nil && conn.conn.IsClosed() {
		conn = nil
	}
	if conn == nil {
		var err error
		if conn, err = g.connect(ctx); err != nil {
			// Nothing was sent: each append finds out alone.
			g.s.log.Debug("postgres: group commit could not connect; appends run alone",
				slog.String("schema", g.s.cfg.schema), slog.Any("err", err))
			g.sendAlone(batch)
			return nil
		}
	}
	if len(batch) == 1 {
		// A batch of one runs the single append's statements, which cost
		// less than the batch statement, on the flusher's connection.
		r := batch[0]
		res, led, err := g.s.appendOnConn(ctx, conn.conn, r.st.name, r.st.sql, r.st.one, noticeCarry, r.args)
		if lockBusy(err) {
			g.count(telemetry.GroupFallback, 1)
			r.done <- groupResult{alone: true} // nothing was written
			return conn
		}
		g.count(telemetry.GroupAlone, 1)
		r.done <- groupResult{r: res, insertErr: err}
		if err == nil && res.n > 0 && g.s.cfg.notify && !led {
			g.s.trail()
		}
		if conn.conn.IsClosed() {
			return nil
		}
		return conn
	}
	results, led, err := g.s.runBatch(ctx, conn, batch)
	var pe *pgconn.PgError
	switch {
	case err == nil:
		g.count(telemetry.GroupBatched, len(batch))
		written := false
		for i, r := range batch {
			r.done <- results[i]
			written = written || results[i].r.n > 0
		}
		if written && g.s.cfg.notify && !led {
			g.s.trail()
		}
	case errors.As(err, new(errNotSent)):
		g.sendAlone(batch) // nothing was sent
	case errors.As(err, &pe) && pe.Severity == "ERROR" && !conn.conn.IsClosed():
		// PostgreSQL refused the batch as a whole (an event ID stored
		// already, data it cannot take, a failed commit, a deadlock with
		// a caller's transaction): its transaction rolled back, nothing
		// was written; each append runs alone and gets its own answer.
		g.sendAlone(batch)
	default:
		// Lost connection or the like: the commit may or may not have
		// happened, as for a single append in that case.
		for _, r := range batch {
			r.done <- groupResult{err: err}
		}
		_ = conn.conn.Close(ctx)
		return nil
	}
	return conn
}

// runBatch sends the batch in one round trip: in one implicit transaction
// the streams' locks, the batch statement and, when one is due
// (notifier.lead), the notification, which the commit delivers (see
// noticeCarry); led reports it. Otherwise the caller arms a trailing one
// (Store.trail) once the batch committed: no append of the batch waits for
// it.
func (s *Store) runBatch(ctx context.Context, gc *groupConn, batch []*groupRequest) (results []groupResult, led bool, err error) {
	conn := gc.conn
	c := conn.PgConn()
	sds := conn.TypeMap()
	sd, args := batchArgs(gc, batch)
	lockParams, lockFormats, err := encodeParams(sds, gc.lock, []any{args[0]})
	if err != nil {
		return nil, false, errNotSent{err}
	}
	params, formats, err := encodeParams(sds, sd, args)
	if err != nil {
		return nil, false, errNotSent{err}
	}
	var at int64
	if s.cfg.notify {
		at, led = s.notifier.lead()
	}
	binary := []int16{pgtype.BinaryFormatCode}
	p := c.StartPipeline(ctx)
	p.SendQueryStatement(gc.lock, lockParams, lockFormats, binary)
	p.SendQueryStatement(sd, params, formats, binary)
	if led {
		p.SendQueryStatement(gc.notify, [][]byte{[]byte(s.channel)}, []int16{pgtype.TextFormatCode}, nil)
	}
	p.SendPipelineSync()
	err = p.Flush()
	if err == nil {
		err = pipelineSkip(p) // the locks
	}
	if err == nil {
		var res *pgconn.Result
		if res, err = pipelineRead(p); err == nil {
			results, err = decodeBatch(sds, res, batch)
		}
	}
	if err == nil && led {
		err = pipelineSkip(p) // the notification
	}
	if err == nil {
		err = pipelineCommit(p)
	}
	switch {
	case err == nil && led:
		s.notifier.sent(at)
	case led:
		// Counted as sent by lead, but not delivered (or not known to
		// be): a trailing one covers the commits that relied on it.
		led = false
		s.trail()
	}
	if cerr := p.Close(); err == nil && cerr != nil {
		// Committed (its sync was read), but the connection is in doubt:
		// do not reuse it.
		_ = conn.Close(context.Background())
	}
	if err != nil && !c.IsClosed() {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			_ = conn.Close(context.Background()) // unknown state: do not reuse it
		}
	}
	return results, led, err
}

// batchArgs returns the batch statement for batch (gc.batch1 when every
// append holds one event, gc.batch otherwise) and its arguments; the first
// is the streams, in order.
func batchArgs(gc *groupConn, batch []*groupRequest) (*pgconn.StatementDescription, []any) {
	var (
		streams = make([]string, len(batch))
		exps    = make([]int64, len(batch))
		ids     []pgtype.UUID
		types   []string
		svs     []int32
		data    []string
		meta    []*string
		one     = true
	)
	for i, r := range batch {
		streams[i], exps[i] = r.stream, expectedParam(r.expected)
		one = one && len(r.evs) == 1
	}
	event := func(r *groupRequest, j int) {
		e := r.evs[j]
		ids = append(ids, pgtype.UUID{Bytes: e.ID, Valid: true})
		types = append(types, e.Type)
		svs = append(svs, int32(e.SchemaVersion)) // PrepareAppend kept it within int32
		data = append(data, string(e.Data))
		meta = append(meta, r.meta[j])
	}
	if one {
		for _, r := range batch {
			event(r, 0)
		}
		return gc.batch1, []any{streams, exps, ids, types, svs, data, meta}
	}
	firsts := make([]pgtype.UUID, len(batch))
	var ais, ords []int32
	for i, r := range batch {
		firsts[i] = pgtype.UUID{Bytes: r.evs[0].ID, Valid: true}
		for j := range r.evs {
			ais = append(ais, int32(i+1))
			ords = append(ords, int32(j+1))
			event(r, j)
		}
	}
	return gc.batch, []any{streams, exps, firsts, ais, ords, ids, types, svs, data, meta}
}

// decodeBatch reads the batch statement's rows, one per append in order.
func decodeBatch(m *pgtype.Map, res *pgconn.Result, batch []*groupRequest) ([]groupResult, error) {
	if len(res.Rows) != len(batch) {
		return nil, fmt.Errorf("group commit returned %d rows for %d appends", len(res.Rows), len(batch))
	}
	if len(res.FieldDescriptions) != 8 {
		return nil, fmt.Errorf("group commit returned %d columns, want 8", len(res.FieldDescriptions))
	}
	out := make([]groupResult, len(batch))
	for i, row := range res.Rows {
		var (
			ord          int64
			g            = &out[i]
			actual, last int64
			known        bool
		)
		dst := []any{&ord, &actual, &last, &g.r.n, &g.r.version, &g.r.tx, &g.r.pos, &known}
		for j, fd := range res.FieldDescriptions {
			if err := m.Scan(fd.DataTypeOID, fd.Format, row[j], dst[j]); err != nil {
				return nil, fmt.Errorf("decode column %d of the group commit's result: %w", j+1, err)
			}
		}
		if ord != int64(i+1) {
			return nil, fmt.Errorf("group commit returned append %d in row %d", ord, i+1)
		}
		g.f = &failedAppend{expected: batch[i].expected, actual: actual, last: last, known: known}
	}
	return out, nil
}

// appendGrouped appends through the flusher. It returns what the append
// wrote, or (r.n == 0) what the batch found under the lock (found), or the
// error to explain as a single append's (see Store.notWritten); alone
// reports that the append must run alone instead (nothing of it was
// written).
//
// A caller whose ctx ends while its append waits in the queue gets
// ctx.Err(), and the append is never sent. Once the flusher has taken it,
// the append may commit whatever the caller does: the error then says the
// outcome is unknown (and wraps ctx.Err()), exactly as when a single
// append's connection is lost at commit; appending again with the same
// event IDs returns the original result if it was written.
func (s *Store) appendGrouped(ctx context.Context, st appendStmt, streamID string, expected eventstore.ExpectedVersion, evs []eventstore.Event, meta []*string, args []any) (r appendRow, found *failedAppend, alone bool, err error) {
	if err := ctx.Err(); err != nil {
		return appendRow{}, nil, false, err
	}
	req := &groupRequest{stream: streamID, expected: expected, evs: evs, meta: meta, st: st, args: args, done: make(chan groupResult, 1)}
	gr, ok := s.group.direct(ctx, req)
	switch {
	case ok:
	case !s.group.enqueue(req):
		return appendRow{}, nil, true, nil
	default:
		gr = s.group.wait(ctx, req)
	}
	switch {
	case gr.alone:
		return appendRow{}, nil, true, nil
	case gr.err != nil:
		return appendRow{}, nil, false, gr.err
	case gr.f == nil:
		return gr.r, nil, false, gr.insertErr
	}
	return gr.r, gr.f, false, nil
}

// wait waits for the result of the queued append req, or for ctx to end:
// then the result is ctx.Err() if req was still queued (it will not be
// sent), or an error of unknown outcome if it was sent.
func (g *groupCommitter) wait(ctx context.Context, req *groupRequest) groupResult {
	select {
	case gr := <-req.done:
		return gr
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return groupResult{err: ctx.Err()}
		}
		select {
		case gr := <-req.done:
			return gr
		default:
			return groupResult{err: fmt.Errorf("outcome unknown: the append was already sent in a batch when the context ended; append the same event IDs again to learn it: %w", ctx.Err())}
		}
	}
}

// errNotSent is a batch that failed before anything was sent.
type errNotSent struct{ err error }

func (e errNotSent) Error() string { return "group commit: " + e.err.Error() }
func (e errNotSent) Unwrap() error { return e.err }
