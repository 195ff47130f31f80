package projection_test

import (
	"context"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/projection"
)

// heldBackStore is an event store whose log an open transaction holds back.
type heldBackStore struct {
	*memory.Store
	events int64
	oldest time.Duration
}

func (s heldBackStore) HeldBack(context.Context) (int64, time.Duration, error) {
	return s.events, s.oldest, nil
}

// Events committed but held back by an open transaction are lag too: an
// alert on lag (in events or in time) fires while they wait.
func TestLagCountsHeldBackEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	es := heldBackStore{Store: memory.New(), events: 3, oldest: 20 * time.Second}
	appendN(t, ctx, es, "acct-1", "Deposited", 2)
	r, err := projection.NewRunner(es, projection.NewMemoryStore(), []projection.Projection{{Name: "counter", Handler: newCounter().handler()}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Lag != 5 || st[0].HeldBack != 3 || st[0].OldestOpen != 20*time.Second || st[0].LagTime < 20*time.Second {
		t.Fatalf("status = %+v, want lag 2 visible + 3 held back, lag time at least the open transaction's age", st[0])
	}
}
