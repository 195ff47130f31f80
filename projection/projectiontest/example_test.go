package projectiontest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/projection/projectiontest"
)

// balances is an in-memory read model.
type balances struct {
	mu sync.Mutex
	by map[string]int
}

func (b *balances) projection() projection.Projection {
	return projection.Projection{
		Name:       "balances",
		Categories: []string{"account"},
		Handler: projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
			var d struct{ Amount int }
			if err := json.Unmarshal(ev.Record.Data, &d); err != nil {
				return err
			}
			if d.Amount < 0 {
				return fmt.Errorf("negative amount %d", d.Amount)
			}
			b.mu.Lock()
			defer b.mu.Unlock()
			b.by[ev.Record.StreamID] += d.Amount
			return nil
		}),
		MaxAttempts: 1,
	}
}

func deposited(n int) eventstore.Event {
	return eventstore.Event{Type: "Deposited", Data: fmt.Appendf(nil, `{"Amount":%d}`, n)}
}

func TestBalances(t *testing.T) {
	b := &balances{by: map[string]int{}}
	f := projectiontest.New(t, b.projection())
	f.Given("account-1", deposited(10), deposited(5)).
		Given("account-2", deposited(7)).
		Given("user-1", deposited(100)). // another category: ignored
		Run()
	if b.by["account-1"] != 15 || b.by["account-2"] != 7 || len(b.by) != 2 {
		t.Fatalf("balances = %v", b.by)
	}
	// Later events continue from the checkpoint.
	f.Given("account-1", deposited(1)).Run()
	if b.by["account-1"] != 16 {
		t.Fatalf("balances = %v", b.by)
	}
}

func TestPoisonGoesToDeadLetters(t *testing.T) {
	b := &balances{by: map[string]int{}}
	f := projectiontest.New(t, b.projection())
	f.Given("account-1", deposited(10), deposited(-1), deposited(2)).Run()
	if b.by["account-1"] != 12 {
		t.Fatalf("balances = %v", b.by)
	}
	dls := f.DeadLetters()
	if len(dls) != 1 || dls[0].StreamVersion != 2 {
		t.Fatalf("dead letters = %+v", dls)
	}
}
