package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/google/uuid"
)

// testOrderingSequential appends one after another to several streams: the
// log holds the events in append order, at increasing positions.
func testOrderingSequential(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	streams := []string{"account-1", "order-1", "account-2"}
	var (
		want []uuid.UUID
		last eventstore.Position
	)
	for i := range 12 {
		events := newEvents(fmt.Sprintf("T%d", i%4), 1+i%3)
		res := mustAppend(t, ctx, s, streams[i%3], eventstore.Any, events...)
		if !last.Before(res.Position) {
			t.Fatalf("append %d returned position %s, not after the previous %s", i, res.Position, last)
		}
		last = res.Position
		want = append(want, eventIDs(events)...)
	}
	all := readAllUpTo(t, ctx, s, last)
	if !slices.Equal(ids(all), want) {
		t.Fatalf("ReadAll order differs from append order:\n got %v\nwant %v", ids(all), want)
	}
	checkLogOrder(t, all)
	if all[len(all)-1].Position != last {
		t.Errorf("last record at %s, last append returned %s", all[len(all)-1].Position, last)
	}
}

// checkLogOrder checks that positions strictly increase and that each
// stream's versions appear in order from 1 with no holes.
func checkLogOrder(t *testing.T, all []eventstore.Record) {
	t.Helper()
	next := make(map[string]int64)
	for i, r := range all {
		if i > 0 && !all[i-1].Position.Before(r.Position) {
			t.Errorf("record %d at %s is not after record %d at %s", i, r.Position, i-1, all[i-1].Position)
		}
		if want := next[r.StreamID] + 1; r.StreamVersion != want {
			t.Errorf("record %d: %q v%d appears where v%d was due", i, r.StreamID, r.StreamVersion, want)
		}
		next[r.StreamID] = r.StreamVersion
	}
}

// testOrderingConcurrent has writers append concurrently while a follower
// reads the log: every record is in the log exactly once, in an order that
// keeps each stream's versions in order, and the follower sees exactly what
// a later ReadAll sees, so nothing was skipped while writers raced.
func testOrderingConcurrent(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	const (
		writers = 8
		appends = 6
	)

	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	var (
		followed  []eventstore.Record
		followErr error
		followMu  sync.Mutex // guards followed until following is closed
		following = make(chan struct{})
	)
	go func() {
		defer close(following)
		for r, err := range s.Follow(followCtx, eventstore.ReadAllOptions{BatchSize: 5}) {
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					followErr = err
				}
				return
			}
			followMu.Lock()
			followed = append(followed, r)
			followMu.Unlock()
		}
	}()

	type appended struct {
		stream string
		ids    []uuid.UUID
		res    eventstore.AppendResult
	}
	var (
		mu   sync.Mutex
		done []appended
		errs []error
		wg   sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			own := fmt.Sprintf("writer%d-1", w)
			var version int64
			for a := range appends {
				events := newEvents(fmt.Sprintf("W%d", w), 1+(w+a)%3)
				stream := own
				expected := eventstore.Exact(version)
				if a%2 == 1 {
					stream, expected = "shared-1", eventstore.Any
				}
				res, err := s.Append(ctx, stream, expected, events...)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("writer %d append %d: %w", w, a, err))
				} else {
					done = append(done, appended{stream, eventIDs(events), res})
				}
				mu.Unlock()
				if err != nil {
					return
				}
				if stream == own {
					version = res.Version
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent appends failed: %v", errors.Join(errs...))
	}

	var (
		total int
		last  eventstore.Position
		where = make(map[uuid.UUID]string)
	)
	for _, a := range done {
		total += len(a.ids)
		if last.Before(a.res.Position) {
			last = a.res.Position
		}
		for _, id := range a.ids {
			where[id] = a.stream
		}
	}
	all := readAllUpTo(t, ctx, s, last)
	if len(all) != total {
		t.Fatalf("ReadAll returned %d records, want %d", len(all), total)
	}
	checkLogOrder(t, all)
	byID := make(map[uuid.UUID]eventstore.Record)
	for _, r := range all {
		if _, dup := byID[r.ID]; dup {
			t.Errorf("event %s appears twice in the log", r.ID)
		}
		byID[r.ID] = r
		if where[r.ID] != r.StreamID {
			t.Errorf("event %s is in stream %q, was appended to %q", r.ID, r.StreamID, where[r.ID])
		}
	}
	for _, a := range done {
		lastRec, ok := byID[a.ids[len(a.ids)-1]]
		if !ok {
			t.Fatalf("event %s of an append to %q is missing from the log", a.ids[len(a.ids)-1], a.stream)
		}
		if lastRec.Position != a.res.Position || lastRec.StreamVersion != a.res.Version {
			t.Errorf("append to %q returned %+v, its last record is v%d at %s",
				a.stream, a.res, lastRec.StreamVersion, lastRec.Position)
		}
	}

	// The follower must end up with the same records in the same order.
	deadline := time.After(Deadline)
	for {
		followMu.Lock()
		n := len(followed)
		followMu.Unlock()
		if n >= total {
			break
		}
		select {
		case <-deadline:
			stopFollow()
			<-following
			t.Fatalf("Follow received %d of %d records within %s", len(followed), total, Deadline)
		case <-following:
			t.Fatalf("Follow ended after %d of %d records: %v", len(followed), total, followErr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	stopFollow()
	select {
	case <-following:
	case <-time.After(Deadline):
		t.Fatalf("Follow did not end within %s of its context being canceled", Deadline)
	}
	if followErr != nil {
		t.Fatalf("Follow: %v", followErr)
	}
	if !slices.Equal(ids(followed), ids(all)) {
		t.Fatalf("Follow saw a different sequence than ReadAll:\nfollow  %v\nreadall %v", ids(followed), ids(all))
	}
	for i := range followed {
		if followed[i].Position != all[i].Position {
			t.Fatalf("record %d: Follow saw position %s, ReadAll %s", i, followed[i].Position, all[i].Position)
		}
	}
}
