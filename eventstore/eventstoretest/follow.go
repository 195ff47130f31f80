package eventstoretest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/google/uuid"
)

// follower runs Follow in a goroutine and hands over what it yields.
type follower struct {
	records chan eventstore.Record
	err     chan error // receives the final error, or nil when the loop ended
	cancel  context.CancelFunc
}

func follow(t *testing.T, s eventstore.Store, opts eventstore.ReadAllOptions) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(testContext(t))
	f := &follower{records: make(chan eventstore.Record), err: make(chan error, 1), cancel: cancel}
	go func() {
		for r, err := range s.Follow(ctx, opts) {
			if err != nil {
				f.err <- err
				return
			}
			select {
			case f.records <- r:
			case <-ctx.Done():
			}
		}
		f.err <- nil
	}()
	t.Cleanup(cancel)
	return f
}

// next waits for n records.
func (f *follower) next(t *testing.T, n int) []eventstore.Record {
	t.Helper()
	var out []eventstore.Record
	timeout := time.After(Deadline)
	for len(out) < n {
		select {
		case r := <-f.records:
			out = append(out, r)
		case err := <-f.err:
			t.Fatalf("Follow ended after %d of %d records: %v", len(out), n, err)
		case <-timeout:
			t.Fatalf("Follow yielded %d of %d records within %s", len(out), n, Deadline)
		}
	}
	return out
}

// quiet checks that no record arrives for a short while.
func (f *follower) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case r := <-f.records:
		t.Fatalf("Follow yielded %s v%d %s, want nothing", r.StreamID, r.StreamVersion, r.Type)
	case err := <-f.err:
		t.Fatalf("Follow ended early: %v", err)
	case <-time.After(d):
	}
}

// stop cancels the follower and checks that it yields ctx's error.
func (f *follower) stop(t *testing.T) {
	t.Helper()
	f.cancel()
	select {
	case err := <-f.err:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Follow ended with %v after its context was canceled, want an error matching context.Canceled", err)
		}
	case <-time.After(Deadline):
		t.Fatalf("Follow did not end within %s of its context being canceled", Deadline)
	}
}

func testFollowCatchUpThenLive(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	before := newEvents("Before", 3)
	mustAppend(t, ctx, s, "follow-1", eventstore.NoStream, before...)
	mustAppend(t, ctx, s, "follow-2", eventstore.NoStream, newEvent("Other", 1))

	f := follow(t, s, eventstore.ReadAllOptions{BatchSize: 2})
	caught := f.next(t, 4)
	if !slices.Equal(ids(caught[:3]), eventIDs(before)) || caught[3].StreamID != "follow-2" {
		t.Fatalf("catch-up yielded %v, want the existing records in order", describe(caught))
	}

	// Appends after the follower caught up arrive, in order.
	var want []uuid.UUID
	for i := range 3 {
		events := newEvents("Live", 1+i)
		mustAppend(t, ctx, s, "follow-1", eventstore.Any, events...)
		want = append(want, eventIDs(events)...)
	}
	live := f.next(t, len(want))
	if !slices.Equal(ids(live), want) {
		t.Fatalf("live records %v, want %v", ids(live), want)
	}
	checkLogOrder(t, append(caught, live...))

	// One more after a pause, when the follower is surely waiting.
	time.Sleep(50 * time.Millisecond)
	e := newEvent("Late", 9)
	mustAppend(t, ctx, s, "follow-3", eventstore.NoStream, e)
	if got := f.next(t, 1); got[0].ID != e.ID {
		t.Fatalf("got %v, want the late event", describe(got))
	}
	f.stop(t)
}

func testFollowFiltered(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	first := mustAppend(t, ctx, s, "account-1", eventstore.NoStream, newEvent("Opened", 1))
	mustAppend(t, ctx, s, "account-1", eventstore.Exact(1), newEvent("Deposited", 2))
	mustAppend(t, ctx, s, "order-1", eventstore.NoStream, newEvent("Deposited", 3))

	f := follow(t, s, eventstore.ReadAllOptions{
		After:      first.Position,
		Categories: []string{"account"},
		Types:      []string{"Deposited"},
		BatchSize:  1,
	})
	got := f.next(t, 1)
	if got[0].StreamID != "account-1" || got[0].StreamVersion != 2 {
		t.Fatalf("catch-up yielded %v, want account-1 v2", describe(got))
	}
	// Non-matching appends are skipped, matching ones arrive.
	mustAppend(t, ctx, s, "order-2", eventstore.Any, newEvents("Deposited", 3)...)
	mustAppend(t, ctx, s, "account-2", eventstore.Any, newEvent("Opened", 4))
	want := newEvent("Deposited", 5)
	mustAppend(t, ctx, s, "account-2", eventstore.Any, want)
	if got := f.next(t, 1); got[0].ID != want.ID {
		t.Fatalf("live yielded %v, want account-2 v2 Deposited", describe(got))
	}
	mustAppend(t, ctx, s, "order-3", eventstore.Any, newEvent("Deposited", 6))
	f.quiet(t, 100*time.Millisecond)
	f.stop(t)

	// A follower with a limit stops by itself once it has that many.
	n := 0
	within(t, "Follow with a Limit", func() {
		lctx, cancel := context.WithTimeout(ctx, Deadline)
		defer cancel()
		for _, err := range s.Follow(lctx, eventstore.ReadAllOptions{Limit: 2}) {
			if err != nil {
				t.Errorf("Follow with a Limit: %v", err)
				return
			}
			n++
		}
	})
	if n != 2 {
		t.Errorf("Follow with Limit 2 yielded %d records", n)
	}
}

func testFollowEmpty(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	f := follow(t, s, eventstore.ReadAllOptions{})
	f.quiet(t, 50*time.Millisecond)
	e := newEvent("First", 1)
	mustAppend(t, ctx, s, "first-1", eventstore.NoStream, e)
	if got := f.next(t, 1); got[0].ID != e.ID || got[0].StreamVersion != 1 {
		t.Fatalf("got %v, want the first event", describe(got))
	}
	f.stop(t)
}

func testFollowCanceled(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	mustAppend(t, ctx, s, "cancel-1", eventstore.NoStream, newEvents("E", 2)...)
	// A context that is already canceled ends the read with its error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	within(t, "Follow with a canceled context", func() {
		var last error
		for _, err := range s.Follow(cctx, eventstore.ReadAllOptions{}) {
			last = err
		}
		if !errors.Is(last, context.Canceled) {
			t.Errorf("Follow with a canceled context ended with %v, want context.Canceled", last)
		}
	})
	// A deadline ends a waiting follower with DeadlineExceeded.
	within(t, "Follow with a deadline", func() {
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		var (
			n    int
			last error
		)
		for _, err := range s.Follow(dctx, eventstore.ReadAllOptions{}) {
			if err != nil {
				last = err
				continue
			}
			n++
		}
		if n > 2 {
			t.Errorf("Follow yielded %d records, want at most 2", n)
		}
		if !errors.Is(last, context.DeadlineExceeded) {
			t.Errorf("Follow ended with %v after its deadline, want context.DeadlineExceeded", last)
		}
	})
}
