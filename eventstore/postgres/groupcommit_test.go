package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
)

// proofAppends is the number of appends of TestGroupCommitIsExact; the
// issue's 20,000 by default (a few seconds under -race);
// CHRONICLE_GROUP_PROOF_APPENDS sets another number.
func proofAppends(t *testing.T) int {
	if v := os.Getenv("CHRONICLE_GROUP_PROOF_APPENDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("CHRONICLE_GROUP_PROOF_APPENDS: %v", err)
		}
		return n
	}
	return 20000
}

// 16 goroutines append one event at a time to 4 hot streams with exact
// expected versions, each continuing from what its last result said. With
// group commit, concurrent appends share transactions; none may be lost,
// reordered or misreported: every stream's versions are 1..n with no gap,
// each stream's events are in version order in the global log, every
// success's version holds its event, every conflict's actual version is
// above the expected one and was the stream's version (the goroutine's
// next append, at that version, never finds the stream behind it), and no
// transaction holds two appends of one stream.
//
// With one event per append the batches run the one-event statement; the
// mixed run (a quarter as many appends, every fourth of two events) runs
// the general one.
func TestGroupCommitIsExact(t *testing.T) {
	t.Parallel()
	t.Run("one event per append", func(t *testing.T) {
		t.Parallel()
		proveGroupCommit(t, proofAppends(t), false)
	})
	t.Run("mixed", func(t *testing.T) {
		t.Parallel()
		proveGroupCommit(t, proofAppends(t)/4, true)
	})
}

// proveGroupCommit runs TestGroupCommitIsExact's proof over total appends;
// mixed gives every fourth append two events.
func proveGroupCommit(t *testing.T, total int, mixed bool) {
	s, pool := newStore(t)
	t.Cleanup(s.Close)
	// 20,000 appends take 20-25 s under -race on a loaded 2-core machine:
	// the deadline guards against a hang, it is not a speed check.
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	const goroutines, streams = 16, 4
	type success struct {
		stream  string
		version int64
		id      [16]byte
	}
	var (
		mu        sync.Mutex
		wins      []success
		written   int
		conflicts int
		problems  []string
		wg        sync.WaitGroup
	)
	per := total / goroutines
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			known := make([]int64, streams)
			for i := range per {
				k := (g + i) % streams
				stream := fmt.Sprintf("hot-%d", k)
				evs := events(1)
				if mixed && i%4 == 0 {
					evs = events(2)
				}
				for j := range evs {
					evs[j].ID = [16]byte{byte(g), byte(i >> 16), byte(i >> 8), byte(i), 0xfe, byte(k), byte(j)}
				}
				n := int64(len(evs))
				res, err := s.Append(c, stream, eventstore.Exact(known[k]), evs...)
				var ce *eventstore.ConflictError
				mu.Lock()
				switch {
				case err == nil:
					if res.Version != known[k]+n {
						problems = append(problems, fmt.Sprintf("%s: appended %d at expected %d, got version %d", stream, n, known[k], res.Version))
					}
					written++
					for j, ev := range evs {
						wins = append(wins, success{stream, res.Version - n + 1 + int64(j), ev.ID})
					}
					known[k] = res.Version
				case errors.As(err, &ce):
					conflicts++
					if ce.Stream != stream || ce.Actual <= known[k] || ce.Expected != eventstore.Exact(known[k]) {
						problems = append(problems, fmt.Sprintf("%s: conflict %+v after expecting %d", stream, ce, known[k]))
					}
					known[k] = ce.Actual
				default:
					problems = append(problems, err.Error())
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(problems) > 0 {
		t.Fatalf("%d problems, first: %s", len(problems), strings.Join(problems[:min(5, len(problems))], "; "))
	}
	t.Logf("%d appends: %d written (%d events), %d conflicts", per*goroutines, written, len(wins), conflicts)
	if written < streams {
		t.Fatalf("only %d appends won", written)
	}
	// Each stream: versions 1..n, each success's event at its version.
	byStream := map[string]map[int64][16]byte{}
	for _, w := range wins {
		if byStream[w.stream] == nil {
			byStream[w.stream] = map[int64][16]byte{}
		}
		if _, dup := byStream[w.stream][w.version]; dup {
			t.Fatalf("%s: version %d reported to two winners", w.stream, w.version)
		}
		byStream[w.stream][w.version] = w.id
	}
	for stream, want := range byStream {
		recs := collect(t, s.ReadStream(c, stream, eventstore.ReadStreamOptions{}))
		if len(recs) != len(want) {
			t.Fatalf("%s: %d events stored, %d appends reported written", stream, len(recs), len(want))
		}
		for i, r := range recs {
			if r.StreamVersion != int64(i+1) {
				t.Fatalf("%s: version %d at index %d: a gap", stream, r.StreamVersion, i)
			}
			if r.ID != want[r.StreamVersion] {
				t.Fatalf("%s: version %d holds %s, not the event reported there", stream, r.StreamVersion, r.ID)
			}
		}
	}
	// The global log keeps each stream in version order.
	last := map[string]int64{}
	for r, err := range s.ReadAll(c, eventstore.ReadAllOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.StreamVersion != last[r.StreamID]+1 {
			t.Fatalf("global log: %s version %d after %d: out of order", r.StreamID, r.StreamVersion, last[r.StreamID])
		}
		last[r.StreamID] = r.StreamVersion
	}
	// At most one append per stream per transaction: an event ID's first
	// four bytes name its append.
	var twice int
	q := pgx.Identifier{s.Schema()}.Sanitize()
	if err := pool.QueryRow(c, `SELECT count(*) FROM (SELECT 1 FROM `+q+`.events
		GROUP BY transaction_id, stream_id HAVING count(DISTINCT left(event_id::text, 8)) > 1) AS d`).Scan(&twice); err != nil {
		t.Fatal(err)
	}
	if twice > 0 {
		t.Fatalf("%d transactions appended twice to one stream", twice)
	}
}

// Concurrent one-event appends to different streams share transactions
// (and so round trips and WAL flushes); with WithGroupCommit(false) each
// has its own.
func TestGroupCommitCoalescesConcurrentAppends(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		s, pool := newStore(t, espg.WithGroupCommit(on))
		t.Cleanup(s.Close)
		c := ctx(t)
		const goroutines, each = 16, 50
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*each)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := s.Append(c, fmt.Sprintf("own-%d", g), eventstore.Exact(int64(i)), events(1)...); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var txs, shared int
		q := pgx.Identifier{s.Schema()}.Sanitize()
		if err := pool.QueryRow(c, `SELECT count(DISTINCT transaction_id),
			count(DISTINCT transaction_id) FILTER (WHERE n > 1)
			FROM (SELECT transaction_id, count(*) OVER (PARTITION BY transaction_id) AS n FROM `+q+`.events) AS e`).Scan(&txs, &shared); err != nil {
			t.Fatal(err)
		}
		t.Logf("group commit %v: %d appends in %d transactions, %d of them shared", on, goroutines*each, txs, shared)
		if on && shared == 0 {
			t.Fatalf("group commit on: %d appends from %d goroutines took %d transactions, none shared", goroutines*each, goroutines, txs)
		}
		if !on && txs != goroutines*each {
			t.Fatalf("group commit off: %d appends took %d transactions", goroutines*each, txs)
		}
	}
}

// A caller whose context ends while its append waits in the queue gets the
// context's error and the append is never written (X, alone, on the first
// flusher's connection, and the O appends, a batch on the second flusher's,
// keep both busy so that A and B queue); one whose append was
// already sent in a batch is told the outcome is unknown (not "not
// written"), and here it is written once the batch can go on.
func TestGroupCommitContextEnds(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	t.Cleanup(s.Close)
	// The flusher waits for a busy stream lock until the test ends it,
	// not for 100 ms: X must hold it while A queues, and A's batch wait
	// until A's context ends, however slow the machine.
	espg.SetGroupLockTimeout(s, time.Minute)
	c := ctx(t)
	if espg.GroupConns != 2 {
		t.Fatalf("this test keeps 2 flushers busy; the store has %d", espg.GroupConns)
	}
	held := []string{"held-1", "held-2", "held-o"}
	for _, stream := range held {
		mustAppend(t, s, stream, eventstore.NoStream, events(1)...)
	}
	holder := holdStreamLocks(t, pool, s.Schema(), held...)
	// X, alone, waits for held-1 on the flusher's connection.
	ctxX, cancelX := context.WithCancel(c)
	defer cancelX()
	errX := make(chan error, 1)
	go func() {
		_, err := s.Append(ctxX, "held-1", eventstore.Exact(1), events(1)...)
		errX <- err
	}()
	waitForLockWait(t, pool, s.Schema(), "held-1")
	// The O appends, while X is being sent, queue until there are enough
	// of them for the second flusher, which sends them in one batch that
	// waits for held-o.
	ostreams := []string{"held-o"}
	for i := 1; i < espg.GroupSecondAt; i++ {
		ostreams = append(ostreams, fmt.Sprintf("free-o%d", i))
	}
	errO := make(chan error, len(ostreams))
	for i, stream := range ostreams {
		exp := eventstore.NoStream
		if i == 0 {
			exp = eventstore.Exact(1)
		}
		go func() {
			_, err := s.Append(c, stream, exp, events(1)...)
			errO <- err
		}()
	}
	waitForLockWait(t, pool, s.Schema(), "held-o")
	// A queues behind X; once X gives up, A is sent in a batch that waits
	// for held-2.
	sent := events(1)
	sent[0].ID = [16]byte{0x5e, 0x47}
	ctxA, cancelA := context.WithCancel(c)
	defer cancelA()
	errA := make(chan error, 1)
	go func() {
		_, err := s.Append(ctxA, "held-2", eventstore.Exact(1), sent...)
		errA <- err
	}()
	waitForQueued(t, s, 1) // A must not come after X is done: it would then be sent alone, with its own context
	cancelX()
	if err := <-errX; !errors.Is(err, context.Canceled) {
		t.Fatalf("X returned %v, want context.Canceled", err)
	}
	waitForLockWait(t, pool, s.Schema(), "held-2")
	// B: queued behind that batch, then given up.
	ctxB, cancelB := context.WithCancel(c)
	errB := make(chan error, 1)
	go func() {
		_, err := s.Append(ctxB, "queued-1", eventstore.NoStream, events(1)...)
		errB <- err
	}()
	cancelB()
	if err := <-errB; !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "unknown") {
		t.Fatalf("queued append whose context ended returned %v, want context.Canceled, not an unknown outcome", err)
	}
	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "outcome unknown") || !strings.Contains(err.Error(), `"held-2"`) {
		t.Fatalf("sent append whose context ended returned %v, want an unknown outcome wrapping context.Canceled", err)
	}
	if err := holder.Rollback(c); err != nil {
		t.Fatal(err)
	}
	for range ostreams {
		if err := <-errO; err != nil {
			t.Fatalf("O: %v", err)
		}
	}
	// The batch goes on: the next append to held-2 queues behind it.
	res := mustAppend(t, s, "held-2", eventstore.Any, events(1)...)
	recs := collect(t, s.ReadStream(c, "held-2", eventstore.ReadStreamOptions{}))
	if res.Version != 3 || len(recs) != 3 || recs[1].ID != sent[0].ID {
		t.Fatalf("held-2 after the lock was released: %d events, last append at %d; want the sent append at version 2", len(recs), res.Version)
	}
	if info, err := s.StreamInfo(c, "queued-1"); err != nil || info.Exists {
		t.Fatalf("queued-1: %+v, %v; the given-up append must not be written", info, err)
	}
}

// lockKey is the SQL expression of a stream's advisory lock key, as the
// store computes it (see the lock query in store.go).
func lockKey(schema, stream string) string {
	return `hashtextextended('` + strings.ReplaceAll(pgx.Identifier{schema}.Sanitize(), `'`, `''`) + `.' || '` +
		strings.ReplaceAll(stream, `'`, `''`) + `', 7157402093)`
}

// holdStreamLocks takes the advisory locks of streams in a transaction of
// its own, as an appender would, and returns it; rolling it back (which
// the test's cleanup also does) frees them.
func holdStreamLocks(t *testing.T, pool *pgxpool.Pool, schema string, streams ...string) pgx.Tx {
	t.Helper()
	holder, err := pool.Begin(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Rollback(context.Background()) })
	for _, stream := range streams {
		if _, err := holder.Exec(ctx(t), `SELECT pg_advisory_xact_lock(`+lockKey(schema, stream)+`)`); err != nil {
			t.Fatal(err)
		}
	}
	return holder
}

// waitForLockWait waits until a transaction waits for stream's advisory
// lock.
func waitForLockWait(t *testing.T, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, schema, stream string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := pool.QueryRow(ctx(t), `SELECT count(*) FROM pg_locks, (SELECT `+lockKey(schema, stream)+` AS k) AS key
			WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
			  AND classid::bigint = (key.k >> 32) & 4294967295 AND objid::bigint = key.k & 4294967295`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no append waited for the lock of stream %s", stream)
}

// waitForQueued waits until n appends wait in s's group commit queue.
func waitForQueued(t *testing.T, s *espg.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for espg.GroupQueued(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d appends queued after 10s, want %d", espg.GroupQueued(s), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Close is safe to call twice, and appends still work after it (alone).
func TestStoreCloseTwice(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	mustAppend(t, s, "close-1", eventstore.NoStream, events(1)...)
	s.Close()
	s.Close()
	res := mustAppend(t, s, "close-1", eventstore.Exact(1), events(1)...)
	if res.Version != 2 {
		t.Fatalf("append after Close: version %d, want 2", res.Version)
	}
}

// One batch answers each of its appends as if it had run alone: a new
// stream, an exact version, a conflict, a missing stream expected to exist,
// and an idempotent retry of an append already stored, in one transaction.
// A batch whose appends hold one event each runs the one-event statement,
// one with a larger append the general one: both give the same answers.
// GroupCommitStats counts the batch and its appends.
func TestGroupCommitBatchAnswersEachAppend(t *testing.T) {
	t.Parallel()
	for _, larger := range []bool{false, true} {
		t.Run(fmt.Sprintf("larger append %v", larger), func(t *testing.T) {
			t.Parallel()
			s, pool := newStore(t)
			t.Cleanup(s.Close)
			espg.SetGroupLockTimeout(s, time.Minute)
			c := ctx(t)
			mustAppend(t, s, "held", eventstore.NoStream, events(1)...)
			mustAppend(t, s, "exact", eventstore.NoStream, events(2)...)
			mustAppend(t, s, "conflict", eventstore.NoStream, events(3)...)
			stored := events(1)
			stored[0].ID = [16]byte{0xba, 0x7c}
			original := mustAppend(t, s, "retry", eventstore.NoStream, stored...)

			// X, alone on the first flusher's connection, waits for the
			// lock of "held" while the batch's appends queue behind it.
			holder := holdStreamLocks(t, pool, s.Schema(), "held")
			errX := make(chan error, 1)
			go func() {
				_, err := s.Append(c, "held", eventstore.Exact(1), events(1)...)
				errX <- err
			}()
			waitForLockWait(t, pool, s.Schema(), "held")
			before := s.GroupCommitStats()

			newEvents := events(1)
			if larger {
				newEvents = events(3)
			}
			type outcome struct {
				res eventstore.AppendResult
				err error
			}
			appends := []struct {
				stream   string
				expected eventstore.ExpectedVersion
				evs      []eventstore.Event
			}{
				{"new", eventstore.NoStream, newEvents},
				{"exact", eventstore.Exact(2), events(1)},
				{"conflict", eventstore.Exact(1), events(1)},
				{"missing", eventstore.StreamExists, events(1)},
				{"retry", eventstore.NoStream, stored},
			}
			if len(appends) >= espg.GroupSecondAt {
				t.Fatalf("%d appends would go to the second flusher", len(appends))
			}
			outs := make([]chan outcome, len(appends))
			for i, a := range appends {
				outs[i] = make(chan outcome, 1)
				go func() {
					res, err := s.Append(c, a.stream, a.expected, a.evs...)
					outs[i] <- outcome{res, err}
				}()
			}
			waitForQueued(t, s, len(appends))
			if err := holder.Rollback(c); err != nil {
				t.Fatal(err)
			}
			if err := <-errX; err != nil {
				t.Fatalf("X: %v", err)
			}
			got := make([]outcome, len(appends))
			for i := range appends {
				got[i] = <-outs[i]
			}

			if o := got[0]; o.err != nil || o.res.Version != int64(len(newEvents)) {
				t.Errorf("new stream: %+v, %v; want version %d", o.res, o.err, len(newEvents))
			}
			if o := got[1]; o.err != nil || o.res.Version != 3 {
				t.Errorf("exact version: %+v, %v; want version 3", o.res, o.err)
			}
			var ce *eventstore.ConflictError
			if o := got[2]; !errors.As(o.err, &ce) || ce.Stream != "conflict" || ce.Actual != 3 || ce.Expected != eventstore.Exact(1) {
				t.Errorf("conflict: %+v, %v; want a conflict at actual version 3", o.res, o.err)
			}
			if o := got[3]; !errors.As(o.err, &ce) || ce.Stream != "missing" || ce.Actual != 0 {
				t.Errorf("missing stream expected to exist: %+v, %v; want a conflict at actual version 0", o.res, o.err)
			}
			if o := got[4]; o.err != nil || o.res != original {
				t.Errorf("idempotent retry: %+v, %v; want the original result %+v", o.res, o.err, original)
			}
			if info, err := s.StreamInfo(c, "missing"); err != nil || info.Exists {
				t.Errorf("missing: %+v, %v; the refused append must write nothing", info, err)
			}
			if recs := collect(t, s.ReadStream(c, "conflict", eventstore.ReadStreamOptions{})); len(recs) != 3 {
				t.Errorf("conflict: %d events, want the 3 it had", len(recs))
			}
			after := s.GroupCommitStats()
			if d := after.Batches - before.Batches; d != 1 {
				t.Errorf("GroupCommitStats: %d batches after X, want the 5 appends in 1 (before %+v, after %+v)", d, before, after)
			}
			if d := after.Batched - before.Batched; d != int64(len(appends)) {
				t.Errorf("GroupCommitStats: %d appends batched, want %d", d, len(appends))
			}
			if after.Alone <= before.Alone || after.Fallback != before.Fallback {
				t.Errorf("GroupCommitStats: X must count as alone and nothing as sent back (before %+v, after %+v)", before, after)
			}
		})
	}
}
