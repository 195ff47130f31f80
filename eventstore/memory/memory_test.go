package memory_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/eventstoretest"
	"github.com/chronicle-go/chronicle/eventstore/memory"
)

func TestConformance(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return memory.New() })
}

func TestListStreams(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memory.New()
	for _, id := range []string{"order-2", "account-10", "account-2", "order-1", "account-1", "ledger"} {
		if _, err := s.Append(ctx, id, eventstore.Any, eventstore.Event{Type: "E"}, eventstore.Event{Type: "E"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, "account-2", eventstore.Exact(2), eventstore.Event{Type: "E"}); err != nil {
		t.Fatal(err)
	}
	list := func(opts eventstore.ListStreamsOptions) []string {
		t.Helper()
		var out []string
		for info, err := range s.ListStreams(ctx, opts) {
			if err != nil {
				t.Fatalf("ListStreams(%+v): %v", opts, err)
			}
			if !info.Exists || info.Version < 2 {
				t.Errorf("ListStreams gave %+v", info)
			}
			if info.StreamID == "account-2" && info.Version != 3 {
				t.Errorf("account-2 listed at version %d, want 3", info.Version)
			}
			out = append(out, info.StreamID)
		}
		return out
	}
	cases := []struct {
		opts eventstore.ListStreamsOptions
		want []string
	}{
		{eventstore.ListStreamsOptions{}, []string{"account-1", "account-10", "account-2", "ledger", "order-1", "order-2"}},
		{eventstore.ListStreamsOptions{Category: "account"}, []string{"account-1", "account-10", "account-2"}},
		{eventstore.ListStreamsOptions{Category: "account", After: "account-10"}, []string{"account-2"}},
		{eventstore.ListStreamsOptions{After: "ledger", Limit: 1}, []string{"order-1"}},
		{eventstore.ListStreamsOptions{Limit: 2}, []string{"account-1", "account-10"}},
		{eventstore.ListStreamsOptions{Category: "none"}, nil},
		{eventstore.ListStreamsOptions{After: "zzz"}, nil},
	}
	for _, c := range cases {
		if got := list(c.opts); !slices.Equal(got, c.want) {
			t.Errorf("ListStreams(%+v) = %v, want %v", c.opts, got, c.want)
		}
	}
	// Paging with After visits every stream once.
	var paged []string
	after := ""
	for {
		page := list(eventstore.ListStreamsOptions{After: after, Limit: 4})
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, cases[0].want) {
		t.Errorf("paging gave %v", paged)
	}
	for _, err := range s.ListStreams(ctx, eventstore.ListStreamsOptions{Limit: -1}) {
		if !errors.Is(err, eventstore.ErrInvalidInput) {
			t.Errorf("Limit -1: %v, want ErrInvalidInput", err)
		}
	}
	// Breaking early is fine.
	for range s.ListStreams(ctx, eventstore.ListStreamsOptions{}) {
		break
	}
}

func TestWithClock(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600))
	s := memory.New(memory.WithClock(func() time.Time { return at }), memory.WithClock(nil))
	if _, err := s.Append(t.Context(), "a-1", eventstore.NoStream, eventstore.Event{Type: "E"}); err != nil {
		t.Fatal(err)
	}
	recs, err := eventstore.Collect(s.ReadStream(t.Context(), "a-1", eventstore.ReadStreamOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	// Stored in UTC at microsecond precision, like PostgreSQL's timestamptz.
	want := at.UTC().Truncate(time.Microsecond)
	if !recs[0].RecordedAt.Equal(want) || recs[0].RecordedAt.Location() != time.UTC {
		t.Errorf("RecordedAt = %v, want %v", recs[0].RecordedAt, want)
	}
}

// TestSparseFilter reads with a filter that matches little across far more
// records than one locked scan examines.
func TestSparseFilter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memory.New()
	const n = 10000
	events := make([]eventstore.Event, 100)
	for i := range events {
		events[i] = eventstore.Event{Type: "Noise"}
	}
	for i := 0; i < n/len(events); i++ {
		if _, err := s.Append(ctx, fmt.Sprintf("noise-%d", i), eventstore.NoStream, events...); err != nil {
			t.Fatal(err)
		}
		if i == 30 || i == 99 {
			if _, err := s.Append(ctx, "rare-1", eventstore.Any, eventstore.Event{Type: "Rare"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, opts := range []eventstore.ReadAllOptions{
		{Types: []string{"Rare"}},
		{Categories: []string{"rare"}, BatchSize: 1},
	} {
		recs, err := eventstore.Collect(s.ReadAll(ctx, opts))
		if err != nil || len(recs) != 2 || recs[0].StreamVersion != 1 || recs[1].StreamVersion != 2 {
			t.Errorf("ReadAll(%+v) = %d records, %v", opts, len(recs), err)
		}
	}
	// A follower with the same filter catches up, then waits.
	fctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	got := 0
	var last error
	for _, err := range s.Follow(fctx, eventstore.ReadAllOptions{Types: []string{"Rare"}}) {
		if err != nil {
			last = err
			break
		}
		got++
	}
	if got != 2 || !errors.Is(last, context.DeadlineExceeded) {
		t.Errorf("Follow yielded %d records then %v", got, last)
	}
}

// TestConcurrentFollowers has many followers wait while writers append; each
// follower sees every record once, in order.
func TestConcurrentFollowers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s := memory.New()
	const followers, writers, appends = 8, 4, 50
	var wg sync.WaitGroup
	counts := make([]int, followers)
	for f := range followers {
		wg.Go(func() {
			var last eventstore.Position
			for r, err := range s.Follow(ctx, eventstore.ReadAllOptions{BatchSize: 7}) {
				if err != nil {
					t.Errorf("follower %d: %v", f, err)
					return
				}
				if !last.Before(r.Position) {
					t.Errorf("follower %d: %s after %s", f, r.Position, last)
				}
				last = r.Position
				counts[f]++
				if counts[f] == writers*appends {
					return
				}
			}
		})
	}
	var ww sync.WaitGroup
	for w := range writers {
		ww.Go(func() {
			for range appends {
				if _, err := s.Append(ctx, fmt.Sprintf("w-%d", w), eventstore.Any, eventstore.Event{Type: "E"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	ww.Wait()
	wg.Wait()
	for f, c := range counts {
		if c != writers*appends {
			t.Errorf("follower %d saw %d records, want %d", f, c, writers*appends)
		}
	}
}
