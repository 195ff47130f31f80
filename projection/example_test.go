package projection_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/upcast"
)

type Deposited struct{ Amount int }
type Withdrawn struct{ Amount int }

// A projection over an in-memory read model, with typed handlers, read
// straight from an in-memory event store, and read-your-writes.
func Example() {
	ctx := context.Background()
	reg := codec.NewRegistry()
	codec.MustRegister[Deposited](reg, "Deposited", 1)
	codec.MustRegister[Withdrawn](reg, "Withdrawn", 1)

	var mu sync.Mutex
	balances := map[string]int{}
	mux := projection.NewMux()
	projection.On(mux, func(ctx context.Context, tx projection.Tx, e Deposited, rec eventstore.Record) error {
		mu.Lock()
		defer mu.Unlock()
		balances[rec.StreamID] += e.Amount
		return nil
	})
	projection.On(mux, func(ctx context.Context, tx projection.Tx, e Withdrawn, rec eventstore.Record) error {
		mu.Lock()
		defer mu.Unlock()
		balances[rec.StreamID] -= e.Amount
		return nil
	})

	events := memory.New()
	runner, err := projection.NewRunner(events, projection.NewMemoryStore(),
		[]projection.Projection{{Name: "balances", Categories: []string{"account"}, Handler: mux}},
		projection.WithDecoder(projection.SingleDecoder(reg.DecodeRecord)))
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(runCtx) }()

	var res eventstore.AppendResult
	for _, v := range []any{Deposited{100}, Withdrawn{30}} {
		name, version, data, err := reg.Encode(v)
		if err != nil {
			panic(err)
		}
		res, err = events.Append(ctx, "account-1", eventstore.Any,
			eventstore.Event{Type: name, SchemaVersion: version, Data: data})
		if err != nil {
			panic(err)
		}
	}
	if err := runner.WaitFor(ctx, "balances", res.Position); err != nil {
		panic(err)
	}
	mu.Lock()
	fmt.Println("account-1:", balances["account-1"])
	mu.Unlock()

	stop()
	fmt.Println("run:", <-done)
	// Output:
	// account-1: 70
	// run: <nil>
}

// MoneyDeposited was stored as "FundsAdded" by older code.
type MoneyDeposited struct{ Amount int }

// With an upcast chain as the decoder, a projection lists current type
// names and receives events stored under old ones, upcast.
func ExampleUpcastingDecoder() {
	ctx := context.Background()
	reg := codec.NewRegistry()
	codec.MustRegister[MoneyDeposited](reg, "MoneyDeposited", 1)
	chain, err := upcast.New(reg, upcast.Rename("FundsAdded", 1, "MoneyDeposited", 1))
	if err != nil {
		panic(err)
	}
	events := memory.New()
	for _, typ := range []string{"FundsAdded", "MoneyDeposited"} {
		if _, err := events.Append(ctx, "account-1", eventstore.Any,
			eventstore.Event{Type: typ, Data: []byte(`{"Amount":5}`)}); err != nil {
			panic(err)
		}
	}
	var mu sync.Mutex
	var seen []string
	deposits := projection.Projection{
		Name:  "deposits",
		Types: []string{"MoneyDeposited"},
		Handler: projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("%s v%d %+v", ev.Record.Type, ev.Record.StreamVersion, ev.Data))
			return nil
		}),
	}
	runner, err := projection.NewRunner(events, projection.NewMemoryStore(), []projection.Projection{deposits},
		projection.WithDecoder(chain)) // the chain itself, not chain.Decode
	if err != nil {
		panic(err)
	}
	if err := runner.Rebuild(ctx, "deposits"); err != nil { // catch up once, without Run
		panic(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		fmt.Println(s)
	}
	// Output:
	// MoneyDeposited v1 {Amount:5}
	// MoneyDeposited v2 {Amount:5}
}
