package jetstream_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/relay/wire"
	"github.com/chronicle-go/chronicle/upcast"
)

type fundsDeposited struct {
	Amount int `json:"amount"`
}

// A projection listing a type's new name gets, through JetStream, the
// events stored (and so published) under its old name: its consumer's
// filter cannot be narrowed to the new name's subjects.
func TestTypesMatchRenamedEventsThroughJetStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.startRelay()
	reg := codec.NewRegistry()
	codec.MustRegister[fundsDeposited](reg, "FundsDeposited", 1)
	codec.MustRegister[struct{}](reg, "Noted", 1)
	chain, err := upcast.New(reg, upcast.Rename("MoneyIn", 1, "FundsDeposited", 1))
	if err != nil {
		t.Fatal(err)
	}
	put := func(stream, typ string, amount int) eventstore.Position {
		data, _ := json.Marshal(fundsDeposited{amount})
		res, err := e.events.Append(ctx, stream, eventstore.Any, eventstore.Event{Type: typ, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		return res.Position
	}
	var mu sync.Mutex
	sums := map[string]int{}
	var types []string
	p := projection.Projection{
		Name:       "deposits",
		Types:      []string{"FundsDeposited"},
		Categories: []string{"acct"},
		Handler: projection.HandlerFunc(func(_ context.Context, _ projection.Tx, ev projection.Event) error {
			mu.Lock()
			defer mu.Unlock()
			sums[ev.Record.StreamID] += ev.Data.(fundsDeposited).Amount
			types = append(types, ev.Record.Type)
			return nil
		}),
	}
	put("acct-1", "MoneyIn", 1) // caught up from the store
	src := e.source()
	r := e.runner(src, []projection.Projection{p}, projection.WithDecoder(chain))
	run(t, r)
	waitFor(t, r, "deposits", put("acct-1", "FundsDeposited", 10))
	// Live, through the consumer.
	put("acct-1", "Noted", 0)
	put("other-1", "MoneyIn", 1000) // another category
	put("acct-2", "FundsDeposited", 100)
	last := put("acct-2", "MoneyIn", 200)
	waitFor(t, r, "deposits", last)
	mu.Lock()
	got, n := sums, len(types)
	for _, typ := range types {
		if typ != "FundsDeposited" {
			t.Errorf("handler got a record of type %q, want the upcast FundsDeposited", typ)
		}
	}
	mu.Unlock()
	if got["acct-1"] != 11 || got["acct-2"] != 300 || len(got) != 2 || n != 4 {
		t.Fatalf("sums %v over %d events, want acct-1 11 and acct-2 300 over 4", got, n)
	}
	cons, err := e.js.Consumer(ctx, e.topo().Stream, src.ConsumerName(projection.Build{Name: "deposits", Version: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if f := cons.CachedInfo().Config.FilterSubject; f != wire.FilterSubject(e.topo().SubjectPrefix, "acct", "") {
		t.Fatalf("consumer filter %q, want the category's subjects, every type", f)
	}
}
