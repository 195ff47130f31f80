package projection_test

import (
	"context"
	"errors"
	"iter"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/projection"
)

// slowStop is an event store whose ReadAll takes a while to finish once
// its reader stops or its context ends, like a query being cancelled, and
// counts the reads still running.
type slowStop struct {
	eventstore.Store
	open atomic.Int64
}

func (s *slowStop) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.Record, error] {
	inner := s.Store.ReadAll(ctx, opts)
	return func(yield func(eventstore.Record, error) bool) {
		s.open.Add(1)
		defer s.open.Add(-1)
		defer func() {
			if ctx.Err() != nil {
				time.Sleep(300 * time.Millisecond)
			}
		}()
		for rec, err := range inner {
			if !yield(rec, err) {
				return
			}
		}
	}
}

// Run returns only once the goroutine reading ahead during a catch-up has
// exited.
func TestRunWaitsForTheCatchUpReader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := memory.New()
	for i := 0; i < 20; i++ {
		if _, err := mem.Append(ctx, "acct-1", eventstore.Any, eventstore.Event{Type: "Counted", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	es := &slowStop{Store: mem}
	started := make(chan struct{})
	var once atomic.Bool
	p := projection.Projection{Name: "blocked", BatchSize: 1,
		Handler: projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
			if once.CompareAndSwap(false, true) {
				close(started)
			}
			<-ctx.Done()
			return ctx.Err()
		})}
	r, err := projection.NewRunner(es, projection.NewMemoryStore(), []projection.Projection{p},
		projection.WithCatchUpBatchSize(1), projection.WithHeartbeat(-1))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never ran")
	}
	time.Sleep(50 * time.Millisecond) // the reader fills its buffer and waits
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if n := es.open.Load(); n != 0 {
		t.Fatalf("Run returned with %d reads of the log still running", n)
	}
}
