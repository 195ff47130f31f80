package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/snapshot"
	snappg "github.com/chronicle-go/chronicle/snapshot/postgres"
)

// loadFixture is a store with group loads, a store on the same schema
// without them (the reference: each load its own query), and a snapshot
// store on the same pool.
type loadFixture struct {
	s, ref *espg.Store
	pool   *pgxpool.Pool
	snaps  *snappg.Store
	table  string
}

func newLoadFixture(t *testing.T) *loadFixture {
	t.Helper()
	s, pool := newStore(t)
	ref, err := espg.New(pool, espg.WithSchema(s.Schema()), espg.WithGroupLoads(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ref.Close)
	snaps, err := snappg.New(pool, snappg.WithSchema(s.Schema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := snaps.Migrate(ctx(t)); err != nil {
		t.Fatal(err)
	}
	table, _ := snaps.SnapshotTable(pool)
	return &loadFixture{s: s, ref: ref, pool: pool, snaps: snaps, table: table}
}

// load is one ReadStreamWithSnapshot and what it returned.
type load struct {
	stream string
	limit  int
	snap   snapshot.Snapshot
	recs   []eventstore.Record
	err    error
}

func (f *loadFixture) read(ctx context.Context, s *espg.Store, stream string, limit int) load {
	snap, recs, ok, err := s.ReadStreamWithSnapshot(ctx, f.snaps, stream, limit)
	if !ok {
		panic("ReadStreamWithSnapshot cannot read the fixture's snapshots")
	}
	return load{stream: stream, limit: limit, snap: snap, recs: recs, err: err}
}

// check fails unless got is what the reference store returns for the same
// load now.
func (f *loadFixture) check(t *testing.T, got load) {
	t.Helper()
	want := f.read(ctx(t), f.ref, got.stream, got.limit)
	if fmt.Sprint(got.err) != fmt.Sprint(want.err) {
		t.Fatalf("load %q (limit %d): error %v, want %v", got.stream, got.limit, got.err, want.err)
	}
	if !reflect.DeepEqual(got.snap, want.snap) {
		t.Fatalf("load %q (limit %d): snapshot %+v, want %+v", got.stream, got.limit, got.snap, want.snap)
	}
	if !reflect.DeepEqual(got.recs, want.recs) {
		t.Fatalf("load %q (limit %d): %d records (versions %v), want %d (versions %v)", got.stream, got.limit,
			len(got.recs), versions(got.recs), len(want.recs), versions(want.recs))
	}
}

// hold locks the snapshots table until the returned func is called, so
// that every read of it, lone or batched, waits in PostgreSQL.
func (f *loadFixture) hold(t *testing.T) (release func()) {
	t.Helper()
	tx, err := f.pool.Begin(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx(t), `LOCK TABLE `+f.table+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback(context.Background()) }) }
	t.Cleanup(release)
	return release
}

// waitGroupLoads waits until n loads are queued (batch false) or the batch
// in flight serves n loads (batch true).
func waitGroupLoads(t *testing.T, s *espg.Store, n int, batch bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, b := espg.GroupLoads(s)
		if (!batch && q >= n) || (batch && b >= n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group loads: %d queued, %d in the batch in flight after 10s; want %d (batch %v)", q, b, n, batch)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitReadBlocked waits until a query of the fixture's schema waits for a
// lock in PostgreSQL.
func (f *loadFixture) waitReadBlocked(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		err := f.pool.QueryRow(ctx(t), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'`, f.table).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reads wait for the snapshots lock after 10s, want %d", waiting, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// fill writes the fixture's streams: with a snapshot and a tail, without
// a snapshot, with a tail longer than the loads' limit, with metadata, a
// snapshot whose stream does not exist, and (not written) missing ones.
func (f *loadFixture) fill(t *testing.T, n int) []string {
	t.Helper()
	var streams []string
	for i := range n {
		snapped := fmt.Sprintf("gl-snap%d", i)
		mustAppend(t, f.s, snapped, eventstore.NoStream, events(8+i%5)...)
		if err := f.snaps.Save(ctx(t), snapshot.Snapshot{StreamID: snapped, Version: int64(3 + i%4), Revision: 1 + i%2,
			Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
		plain := fmt.Sprintf("gl-plain%d", i)
		mustAppend(t, f.s, plain, eventstore.NoStream, events(1+i%3)...)
		long := fmt.Sprintf("gl-long%d", i)
		mustAppend(t, f.s, long, eventstore.NoStream, events(40)...)
		meta := fmt.Sprintf("gl-meta%d", i)
		evs := events(2)
		evs[1].Metadata = eventstore.Metadata{eventstore.CorrelationIDKey: fmt.Sprint("c", i), "tenant": "t1"}
		mustAppend(t, f.s, meta, eventstore.NoStream, evs...)
		orphan := fmt.Sprintf("gl-orphan%d", i)
		if err := f.snaps.Save(ctx(t), snapshot.Snapshot{StreamID: orphan, Version: 5, Revision: 1, Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, snapped, plain, long, meta, orphan, fmt.Sprintf("gl-missing%d", i))
	}
	return streams
}

// Many concurrent loads through group loads return exactly what each
// load's own query returns: streams with and without snapshots, missing
// ones, tails longer than the limit, metadata. Held behind a lock first so
// that they certainly go in one batch, then free-running.
func TestGroupLoadsReturnWhatSingleReadsReturn(t *testing.T) {
	t.Parallel()
	f := newLoadFixture(t)
	streams := f.fill(t, 8)
	limits := []int{0, 1, 3, 10, 100}

	release := f.hold(t)
	first := make(chan load, 1)
	go func() { first <- f.read(context.Background(), f.s, streams[0], 10) }()
	f.waitReadBlocked(t, 1)
	results := make(chan load, len(streams))
	for i, st := range streams[1:] {
		go func() { results <- f.read(context.Background(), f.s, st, limits[i%len(limits)]) }()
	}
	waitGroupLoads(t, f.s, len(streams)-1, false)
	release()
	f.check(t, <-first)
	for range streams[1:] {
		f.check(t, <-results)
	}
	if st := f.s.GroupLoadStats(); st.Batched < int64(len(streams)-1) || st.Batches > 1 {
		t.Fatalf("stats %+v: want the %d queued loads served by one batch", st, len(streams)-1)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				st := streams[(w*7+i*13)%len(streams)]
				got := f.read(ctx(t), f.s, st, limits[(w+i)%len(limits)])
				want := f.read(ctx(t), f.ref, st, got.limit)
				if fmt.Sprint(got.err) != fmt.Sprint(want.err) || !reflect.DeepEqual(got.snap, want.snap) || !reflect.DeepEqual(got.recs, want.recs) {
					errs <- fmt.Errorf("load %q (limit %d): got %+v, want %+v", st, got.limit, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("group loads: %+v", f.s.GroupLoadStats())
}

// A load whose ctx ends while it is queued returns ctx.Err() at once and
// its stream is not read; the others of its batch are served.
func TestGroupLoadsCancelledWhileQueued(t *testing.T) {
	t.Parallel()
	f := newLoadFixture(t)
	streams := f.fill(t, 1)
	release := f.hold(t)
	first := make(chan load, 1)
	go func() { first <- f.read(context.Background(), f.s, streams[0], 10) }()
	f.waitReadBlocked(t, 1)
	cctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan load, 1)
	go func() { cancelled <- f.read(cctx, f.s, streams[1], 10) }()
	kept := make(chan load, 1)
	go func() { kept <- f.read(context.Background(), f.s, streams[2], 10) }()
	waitGroupLoads(t, f.s, 2, false)
	cancel()
	got := <-cancelled
	if !errors.Is(got.err, context.Canceled) || got.recs != nil {
		t.Fatalf("cancelled load: %d records, error %v; want none and context.Canceled", len(got.recs), got.err)
	}
	if q, _ := espg.GroupLoads(f.s); q != 1 {
		t.Fatalf("%d loads queued after the cancel, want 1", q)
	}
	release()
	f.check(t, <-first)
	f.check(t, <-kept)
	if st := f.s.GroupLoadStats(); st.Batched != 1 {
		t.Fatalf("stats %+v: the cancelled load was read", st)
	}
}

// A load whose batch is in flight returns when its ctx ends; the batch's
// other loads still get their results.
func TestGroupLoadsCancelledInFlight(t *testing.T) {
	t.Parallel()
	f := newLoadFixture(t)
	streams := f.fill(t, 1)
	release := f.hold(t)
	lctx, lcancel := context.WithCancel(context.Background())
	defer lcancel()
	lone := make(chan load, 1)
	go func() { lone <- f.read(lctx, f.s, streams[0], 10) }()
	f.waitReadBlocked(t, 1)
	cctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan load, 1)
	go func() { cancelled <- f.read(cctx, f.s, streams[1], 10) }()
	kept := make(chan load, 1)
	go func() { kept <- f.read(context.Background(), f.s, streams[2], 10) }()
	waitGroupLoads(t, f.s, 2, false)
	// The lone read gives up: the queued loads go in a batch, which waits
	// for the lock in turn.
	lcancel()
	if got := <-lone; !errors.Is(got.err, context.Canceled) {
		t.Fatalf("lone load: error %v, want context.Canceled", got.err)
	}
	waitGroupLoads(t, f.s, 2, true)
	cancel()
	if got := <-cancelled; !errors.Is(got.err, context.Canceled) || got.recs != nil {
		t.Fatalf("cancelled load: %d records, error %v; want none and context.Canceled", len(got.recs), got.err)
	}
	release()
	f.check(t, <-kept)
	f.check(t, f.read(ctx(t), f.s, streams[1], 10))
}

// A batch that fails as a whole (here its connection is terminated while
// it waits) gives nobody wrong data: each load runs its own query.
func TestGroupLoadsBatchFailsEachLoadAlone(t *testing.T) {
	t.Parallel()
	f := newLoadFixture(t)
	streams := f.fill(t, 1)
	release := f.hold(t)
	lctx, lcancel := context.WithCancel(context.Background())
	defer lcancel()
	lone := make(chan load, 1)
	go func() { lone <- f.read(lctx, f.s, streams[0], 10) }()
	f.waitReadBlocked(t, 1)
	results := make(chan load, 3)
	for _, st := range streams[1:4] {
		go func() { results <- f.read(context.Background(), f.s, st, 10) }()
	}
	waitGroupLoads(t, f.s, 3, false)
	lcancel()
	<-lone
	waitGroupLoads(t, f.s, 3, true)
	f.waitReadBlocked(t, 1)
	var killed int
	if err := f.pool.QueryRow(ctx(t), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE wait_event_type = 'Lock' AND query LIKE '%unnest%' AND query LIKE '%' || $1 || '%'`, f.table).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminate the batch's backend: %d terminated, %v", killed, err)
	}
	release()
	for range 3 {
		got := <-results
		if got.err != nil {
			t.Fatalf("load %q: %v", got.stream, got.err)
		}
		f.check(t, got)
	}
	// The flusher connects again for the next batch.
	f.check(t, f.read(ctx(t), f.s, streams[4], 10))
}

// A record whose metadata cannot be decoded fails only the load of its
// stream, with the error its own query has; the other loads of the batch
// get their results.
func TestGroupLoadsBadRecordFailsOnlyItsLoad(t *testing.T) {
	t.Parallel()
	f := newLoadFixture(t)
	streams := f.fill(t, 1)
	bad := "gl-bad"
	mustAppend(t, f.s, bad, eventstore.NoStream, events(3)...)
	if _, err := f.pool.Exec(ctx(t), `UPDATE `+pgx.Identifier{f.s.Schema()}.Sanitize()+`.events SET metadata = '{"tenant": 7}'
		WHERE stream_id = $1 AND stream_version = 2`, bad); err != nil {
		t.Fatal(err)
	}
	release := f.hold(t)
	first := make(chan load, 1)
	go func() { first <- f.read(context.Background(), f.s, streams[0], 10) }()
	f.waitReadBlocked(t, 1)
	results := make(chan load, 3)
	for _, st := range []string{streams[1], bad, streams[3]} {
		go func() { results <- f.read(context.Background(), f.s, st, 10) }()
	}
	waitGroupLoads(t, f.s, 3, false)
	release()
	f.check(t, <-first)
	for range 3 {
		got := <-results
		if (got.stream == bad) != (got.err != nil) {
			t.Fatalf("load %q: error %v", got.stream, got.err)
		}
		f.check(t, got)
	}
	if st := f.s.GroupLoadStats(); st.Batched != 3 || st.Batches != 1 {
		t.Fatalf("stats %+v: want the three loads in one batch", st)
	}
}

// With group loads off, or after Close, loads run their own queries.
func TestGroupLoadsOffAndClosed(t *testing.T) {
	t.Parallel()
	f := newLoadFixture(t)
	streams := f.fill(t, 1)
	f.check(t, f.read(ctx(t), f.ref, streams[0], 10))
	if st := f.ref.GroupLoadStats(); st != (espg.GroupLoadStats{}) {
		t.Fatalf("stats with group loads off: %+v", st)
	}
	f.s.Close()
	f.s.Close()
	f.check(t, f.read(ctx(t), f.s, streams[0], 10))
}
