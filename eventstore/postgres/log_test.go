package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
)

// readUntil reads the log after a position until it has n records or the
// deadline passes (other tests' transactions can hold the horizon back for
// a moment).
func readUntil(t *testing.T, s *espg.Store, after eventstore.Position, n int) []eventstore.Record {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		recs := collect(t, s.ReadAll(ctx(t), eventstore.ReadAllOptions{After: after}))
		if len(recs) >= n || time.Now().After(deadline) {
			return recs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGlobalLogNeverSkipsAnOutOfOrderCommit(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	c := ctx(t)
	mustAppend(t, s, "before-1", eventstore.NoStream, events(1)...)
	seen := readUntil(t, s, eventstore.Position{}, 1)
	if len(seen) != 1 {
		t.Fatalf("read %d records before the test, want 1", len(seen))
	}
	checkpoint := seen[0].Position

	// A takes its position first and stays open.
	txA, err := pool.Begin(c)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback(context.Background())
	resA, err := s.AppendTx(c, txA, "a-1", eventstore.NoStream, events(2)...)
	if err != nil {
		t.Fatalf("append in A: %v", err)
	}
	// B takes a later position and commits first.
	resB := mustAppend(t, s, "b-1", eventstore.NoStream, events(1)...)
	if !(resA.Position.Seq < resB.Position.Seq && resA.Position.TxID < resB.Position.TxID) {
		t.Fatalf("A at %v, B at %v: want A's position and transaction first", resA.Position, resB.Position)
	}

	// While A is open, nothing at or after A's horizon is readable: B is
	// committed but held back, so a reader that moves its checkpoint past
	// what it read cannot jump over A.
	for _, r := range collect(t, s.ReadAll(c, eventstore.ReadAllOptions{After: checkpoint})) {
		t.Fatalf("read %s at %v while A (at %v) is open", r.StreamID, r.Position, resA.Position)
	}
	if head, err := s.Head(c); err != nil || resA.Position.TxID <= head.TxID {
		t.Fatalf("Head = %v, %v while A (tx %d) is open", head, err, resA.Position.TxID)
	}
	st, err := s.Status(c)
	if err != nil {
		t.Fatal(err)
	}
	if st.HeldBack < 1 || st.Horizon > resA.Position.TxID || st.Oldest == nil || st.Oldest.Age < 0 {
		t.Fatalf("Status while A is open = %+v (oldest %+v), want B held back behind A", st, st.Oldest)
	}

	if err := txA.Commit(c); err != nil {
		t.Fatal(err)
	}
	recs := readUntil(t, s, checkpoint, 3)
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%s@%d", r.StreamID, r.StreamVersion))
	}
	if strings.Join(got, " ") != "a-1@1 a-1@2 b-1@1" {
		t.Fatalf("after A commits, read %v; want A's two events then B's", got)
	}
	st, err = s.Status(c)
	if err != nil {
		t.Fatal(err)
	}
	if st.Head != resB.Position {
		t.Errorf("Status.Head = %v, want %v", st.Head, resB.Position)
	}
}

func TestFollowCatchesUpThenWakesOnNotify(t *testing.T) {
	t.Parallel()
	// A poll interval of a minute: only a notification can wake Follow in
	// time.
	s, pool := newStore(t, espg.WithPollInterval(time.Minute))
	mustAppend(t, s, "f-1", eventstore.NoStream, events(3)...)
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	got := make(chan eventstore.Record, 100)
	done := make(chan error, 1)
	go func() {
		for r, err := range s.Follow(c, eventstore.ReadAllOptions{BatchSize: 2}) {
			if err != nil {
				done <- err
				return
			}
			got <- r
		}
		done <- errors.New("Follow ended without an error")
	}()
	for i := 0; i < 3; i++ {
		select {
		case r := <-got:
			if r.StreamVersion != int64(i+1) {
				t.Fatalf("catch-up record %d has version %d", i, r.StreamVersion)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("catch-up did not deliver")
		}
	}
	// Wait until the follower listens before appending.
	waitListening(t, pool, s.Channel())
	mustAppend(t, s, "f-1", eventstore.Exact(3), events(1)...)
	select {
	case r := <-got:
		if r.StreamVersion != 4 {
			t.Fatalf("live record has version %d, want 4", r.StreamVersion)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Follow did not wake on the notification")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Follow ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not end after cancel")
	}
}

// listenerWhere finds a follower's listening connection in
// pg_stat_activity: its last query is its LISTEN ($1) or, since a follower
// reads on that connection, the check for events held back that precedes
// each wait ($2, a LIKE pattern).
const listenerWhere = `(query = $1 OR query LIKE $2)`

// listenerHeldBack is the LIKE pattern of the held-back check of the store
// whose channel is channel (its schema followed by "_events").
func listenerHeldBack(channel string) string {
	schema := strings.TrimSuffix(channel, "_events")
	return "SELECT EXISTS (SELECT 1 FROM " + pgx.Identifier{schema}.Sanitize() + ".events%"
}

func waitListening(t *testing.T, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, channel string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := pool.QueryRow(ctx(t), `SELECT count(*) FROM pg_stat_activity WHERE `+listenerWhere,
			"LISTEN "+pgx.Identifier{channel}.Sanitize(), listenerHeldBack(channel)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no follower listening")
}

func TestFollowPollsWithoutNotify(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, espg.WithNotify(false), espg.WithPollInterval(20*time.Millisecond))
	c, cancel := context.WithTimeout(ctx(t), 20*time.Second)
	defer cancel()
	go func() {
		for i := 0; i < 5; i++ {
			time.Sleep(30 * time.Millisecond)
			if _, err := s.Append(c, fmt.Sprintf("p-%d", i), eventstore.NoStream, events(2)...); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var n int
	var last eventstore.Position
	for r, err := range s.Follow(c, eventstore.ReadAllOptions{Limit: 10}) {
		if err != nil {
			t.Fatalf("after %d records: %v", n, err)
		}
		if !last.Before(r.Position) {
			t.Fatalf("record at %v after %v", r.Position, last)
		}
		last = r.Position
		n++
	}
	if n != 10 {
		t.Fatalf("Follow with Limit 10 yielded %d records", n)
	}
}

func TestFollowWaitsForAnOpenTransaction(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t, espg.WithPollInterval(50*time.Millisecond))
	c, cancel := context.WithTimeout(ctx(t), 25*time.Second)
	defer cancel()
	txA, err := pool.Begin(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendTx(c, txA, "a-1", eventstore.NoStream, events(1)...); err != nil {
		_ = txA.Rollback(c)
		t.Fatal(err)
	}
	committed := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		committed <- txA.Commit(c)
	}()
	defer func() {
		if err := <-committed; err != nil {
			t.Errorf("commit A: %v", err)
		}
	}()
	mustAppend(t, s, "b-1", eventstore.NoStream, events(1)...)
	var got []string
	for r, err := range s.Follow(c, eventstore.ReadAllOptions{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.StreamID)
	}
	if strings.Join(got, ",") != "a-1,b-1" {
		t.Fatalf("Follow yielded %v, want a-1 then b-1", got)
	}
}

func TestAppendKilledMidwayWritesNothing(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	c := ctx(t)
	mustAppend(t, s, "victim-1", eventstore.NoStream, events(1)...)

	// Another transaction holds an uncommitted event with the ID of the
	// third event of the append, so the append inserts two rows and then
	// waits on the unique index.
	evs := events(3)
	for i := range evs {
		evs[i].ID = [16]byte{byte(i + 1), 0xab}
	}
	blocker, err := pool.Begin(c)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(context.Background())
	q := pgx.Identifier{s.Schema()}.Sanitize()
	if _, err := blocker.Exec(c, `INSERT INTO `+q+`.events (transaction_id, event_id, stream_id, stream_version, type, schema_version, data)
		VALUES (0, $1, 'other-1', 1, 'Blocker', 1, '{}')`, evs[2].ID); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := s.Append(c, "victim-1", eventstore.Exact(1), evs...)
		errc <- err
	}()
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for pid == 0 && time.Now().Before(deadline) {
		err := pool.QueryRow(c, `SELECT pid FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND position($1 in query) > 0 AND pid <> pg_backend_pid()`, q+".events").Scan(&pid)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatal("the append never waited on the blocker")
	}
	if _, err := pool.Exec(c, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), `"victim-1"`) {
			t.Fatalf("append on a killed connection returned %v, want an error naming the stream", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("append did not return after its backend was killed")
	}
	if err := blocker.Rollback(c); err != nil {
		t.Fatal(err)
	}
	recs := collect(t, s.ReadStream(c, "victim-1", eventstore.ReadStreamOptions{}))
	info, err := s.StreamInfo(c, "victim-1")
	if len(recs) != 1 || err != nil || info.Version != 1 {
		t.Fatalf("after the killed append: %d records, info %+v, %v; want only the first event", len(recs), info, err)
	}
	// The store still works.
	mustAppend(t, s, "victim-1", eventstore.Exact(1), evs...)
}

func TestListStreams(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	c := ctx(t)
	for i := 0; i < 7; i++ {
		mustAppend(t, s, fmt.Sprintf("cart-%d", i), eventstore.NoStream, events(i+1)...)
	}
	mustAppend(t, s, "user-1", eventstore.NoStream, events(1)...)
	var ids []string
	for info, err := range s.ListStreams(c, eventstore.ListStreamsOptions{Category: "cart", After: "cart-2", Limit: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, fmt.Sprintf("%s:%d", info.StreamID, info.Version))
	}
	if strings.Join(ids, " ") != "cart-3:4 cart-4:5 cart-5:6" {
		t.Fatalf("listed %v", ids)
	}
	n := 0
	for _, err := range s.ListStreams(c, eventstore.ListStreamsOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 8 {
		t.Fatalf("listed %d streams, want 8", n)
	}
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			s2, err := espg.New(pool, espg.WithSchema(s.Schema()))
			if err == nil {
				err = s2.Migrate(ctx(t))
			}
			errs <- err
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnmigratedSchemaSaysSo(t *testing.T) {
	t.Parallel()
	pool, schema := newPool(t)
	s, err := espg.New(pool, espg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(ctx(t), "x-1", eventstore.Any, events(1)...)
	if err == nil || !strings.Contains(err.Error(), "Migrate") || !strings.Contains(err.Error(), `"x-1"`) {
		t.Fatalf("append to an unmigrated schema: %v", err)
	}
}

func TestAppendTxFromAnOlderTransactionIsRefused(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	c := ctx(t)
	old, err := pool.Begin(c)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Rollback(context.Background())
	// The transaction takes its id now, by writing.
	if _, err := old.Exec(c, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "late-1", eventstore.NoStream, events(1)...)
	_, err = s.AppendTx(c, old, "late-1", eventstore.Exact(1), events(1)...)
	var ce *eventstore.ConflictError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "new transaction") {
		t.Fatalf("AppendTx from an older transaction: %v, want a conflict asking for a new transaction", err)
	}
	if err := old.Rollback(c); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.StreamInfo(c, "late-1"); info.Version != 1 {
		t.Fatalf("version %d after the refused append, want 1", info.Version)
	}
}

// Every commit is followed by a notification, so a follower that never polls
// sees all of many concurrent appends.
func TestFollowSeesConcurrentAppendsWithoutPolling(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t, espg.WithPollInterval(time.Minute))
	c, cancel := context.WithTimeout(ctx(t), 30*time.Second)
	defer cancel()
	const writers, appends = 8, 15
	got := make(chan int, 1)
	go func() {
		n := 0
		for _, err := range s.Follow(c, eventstore.ReadAllOptions{Limit: writers * appends}) {
			if err != nil {
				break
			}
			n++
		}
		got <- n
	}()
	waitListening(t, pool, s.Channel())
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < appends; i++ {
				if _, err := s.Append(c, fmt.Sprintf("w%d-1", w), eventstore.Any, events(1)...); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case n := <-got:
		if n != writers*appends {
			t.Fatalf("Follow yielded %d records, want %d", n, writers*appends)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Follow missed a wake-up: the last appends were not delivered")
	}
}

func TestFollowSurvivesLosingItsListener(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t, espg.WithPollInterval(50*time.Millisecond))
	c, cancel := context.WithTimeout(ctx(t), 30*time.Second)
	defer cancel()
	got := make(chan eventstore.Record, 10)
	go func() {
		for r, err := range s.Follow(c, eventstore.ReadAllOptions{}) {
			if err != nil {
				return
			}
			got <- r
		}
	}()
	waitListening(t, pool, s.Channel())
	if _, err := pool.Exec(c, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE `+listenerWhere,
		"LISTEN "+pgx.Identifier{s.Channel()}.Sanitize(), listenerHeldBack(s.Channel())); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "after-1", eventstore.NoStream, events(1)...)
	select {
	case r := <-got:
		if r.StreamID != "after-1" {
			t.Fatalf("got %s", r.StreamID)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Follow stopped delivering after its listening connection was killed")
	}
	// It listens again.
	waitListening(t, pool, s.Channel())
}

func TestAppendTxRetryAndRollback(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	c := ctx(t)
	evs := events(2)
	for i := range evs {
		evs[i].ID = [16]byte{0x42, byte(i + 1)}
	}
	first := mustAppend(t, s, "tx-1", eventstore.NoStream, evs...)
	tx, err := pool.Begin(c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.AppendTx(c, tx, "tx-1", eventstore.NoStream, evs...)
	if err != nil || again != first {
		t.Fatalf("AppendTx retry = %+v, %v; want %+v", again, err, first)
	}
	// A rolled-back AppendTx leaves nothing behind.
	if _, err := s.AppendTx(c, tx, "tx-1", eventstore.Exact(2), events(3)...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(c); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.StreamInfo(c, "tx-1"); info.Version != 2 {
		t.Fatalf("version %d after a rolled-back AppendTx, want 2", info.Version)
	}
	if _, err := s.AppendTx(c, nil, "tx-1", eventstore.Any, events(1)...); err == nil {
		t.Fatal("AppendTx accepted a nil transaction")
	}
}

// An append waiting for its stream's lock must not hold a transaction id
// yet: ids taken before the lock would let a later append to the stream
// sort before an earlier one in the global log.
func TestAppendTakesItsTransactionIDAfterTheStreamLock(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	c := ctx(t)
	mustAppend(t, s, "lock-1", eventstore.NoStream, events(1)...)
	holder, err := pool.Begin(c)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background())
	// The same lock append takes: see the lock query in store.go.
	key := `'` + strings.ReplaceAll(pgx.Identifier{s.Schema()}.Sanitize(), `'`, `''`) + `.' || 'lock-1'`
	if _, err := holder.Exec(c, `SELECT pg_advisory_xact_lock(hashtextextended(`+key+`, 7157402093))`); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := s.Append(c, "lock-1", eventstore.Exact(1), events(2)...)
		errc <- err
	}()
	var (
		xid   *string
		found bool
	)
	deadline := time.Now().Add(10 * time.Second)
	for !found && time.Now().Before(deadline) {
		err := pool.QueryRow(c, `SELECT backend_xid::text FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND pid <> pg_backend_pid()
			  AND position('pg_advisory_xact_lock' in query) > 0 AND position($1 in query) > 0`, s.Schema()).Scan(&xid)
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, pgx.ErrNoRows):
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !found {
		t.Fatal("the append never waited for the stream's lock")
	}
	if xid != nil {
		t.Fatalf("the append holds transaction id %s while it waits for the stream's lock", *xid)
	}
	if err := holder.Rollback(c); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("append after the lock was released: %v", err)
	}
}

// Appends notify at most once per NotifyWindow, the rest being covered by a
// trailing notification: after a burst of appends and then silence, a
// follower that never polls still sees the last one within the window plus
// a read.
func TestFollowSeesTheLastOfABurstWithoutPolling(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t, espg.WithPollInterval(10*time.Second))
	c, cancel := context.WithTimeout(ctx(t), 30*time.Second)
	defer cancel()
	type seen struct {
		rec eventstore.Record
		at  time.Time
	}
	got := make(chan seen, 1000)
	go func() {
		for r, err := range s.Follow(c, eventstore.ReadAllOptions{}) {
			if err != nil {
				return
			}
			got <- seen{r, time.Now()}
		}
	}()
	waitListening(t, pool, s.Channel())
	const writers, appends = 4, 40
	for round := 0; round < 3; round++ {
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			last     eventstore.AppendResult
			lastDone time.Time
		)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < appends; i++ {
					res, err := s.Append(c, fmt.Sprintf("burst%d-%d", round, w), eventstore.Any, events(1)...)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if now := time.Now(); now.After(lastDone) {
						last, lastDone = res, now
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		// Every record up to the last append must arrive, the last one
		// within a second of its commit (the window is 3ms; a missed notification would leave it for the 10s poll).
		deadline := time.After(5 * time.Second) // half the poll interval
		for done := false; !done; {
			select {
			case sn := <-got:
				if sn.rec.Position == last.Position {
					if d := sn.at.Sub(lastDone); d > time.Second {
						t.Errorf("round %d: the last append of the burst reached the follower %s after it returned, want <= 1s", round, d)
					}
					done = true
				}
			case <-deadline:
				t.Fatalf("round %d: the last append of the burst (%v) never reached the follower; only a notification could have woken it", round, last.Position)
			}
		}
		// Silence, longer than the window, before the next burst.
		time.Sleep(50 * time.Millisecond)
	}
}
