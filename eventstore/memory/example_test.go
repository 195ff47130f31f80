package memory_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
)

func Example() {
	ctx := context.Background()
	store := memory.New()

	res, err := store.Append(ctx, "account-42", eventstore.NoStream,
		eventstore.Event{Type: "AccountOpened", Data: []byte(`{"owner":"Ada"}`)},
		eventstore.Event{Type: "MoneyDeposited", Data: []byte(`{"amount":100}`)},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("version:", res.Version)

	for r, err := range store.ReadStream(ctx, "account-42", eventstore.ReadStreamOptions{}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(r.StreamVersion, r.Type, string(r.Data))
	}
	// Output:
	// version: 2
	// 1 AccountOpened {"owner":"Ada"}
	// 2 MoneyDeposited {"amount":100}
}

// A writer that appends with a stale expected version gets a conflict that
// says what the stream's version really is.
func ExampleStore_Append_conflict() {
	ctx := context.Background()
	store := memory.New()

	_, _ = store.Append(ctx, "account-42", eventstore.NoStream, eventstore.Event{Type: "AccountOpened"})
	_, _ = store.Append(ctx, "account-42", eventstore.Exact(1), eventstore.Event{Type: "MoneyDeposited"})

	// This writer loaded the stream at version 1 and is now behind.
	_, err := store.Append(ctx, "account-42", eventstore.Exact(1), eventstore.Event{Type: "MoneyWithdrawn"})
	fmt.Println(errors.Is(err, eventstore.ErrConcurrencyConflict))
	var conflict *eventstore.ConflictError
	if errors.As(err, &conflict) {
		fmt.Println("expected", conflict.Expected, "actual", conflict.Actual)
	}
	fmt.Println(eventstore.IsRetryable(err))
	// Output:
	// true
	// expected 1 actual 2
	// true
}

func ExampleStore_ReadStream() {
	ctx := context.Background()
	store := memory.New()
	for _, t := range []string{"Opened", "Deposited", "Withdrawn", "Closed"} {
		if _, err := store.Append(ctx, "account-7", eventstore.Any, eventstore.Event{Type: t}); err != nil {
			fmt.Println(err)
			return
		}
	}

	// The last two events, newest first.
	opts := eventstore.ReadStreamOptions{Direction: eventstore.Backward, Limit: 2}
	for r, err := range store.ReadStream(ctx, "account-7", opts) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(r.StreamVersion, r.Type)
	}

	// A stream that does not exist is an error.
	for _, err := range store.ReadStream(ctx, "account-8", eventstore.ReadStreamOptions{}) {
		fmt.Println(errors.Is(err, eventstore.ErrStreamNotFound))
	}
	// Output:
	// 4 Closed
	// 3 Withdrawn
	// true
}

func ExampleStore_ReadAll() {
	ctx := context.Background()
	store := memory.New()
	_, _ = store.Append(ctx, "account-1", eventstore.Any, eventstore.Event{Type: "AccountOpened"})
	_, _ = store.Append(ctx, "order-1", eventstore.Any, eventstore.Event{Type: "OrderPlaced"})
	_, _ = store.Append(ctx, "account-2", eventstore.Any, eventstore.Event{Type: "AccountOpened"})

	for r, err := range store.ReadAll(ctx, eventstore.ReadAllOptions{Categories: []string{"account"}}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(r.StreamID, r.Type)
	}
	// Output:
	// account-1 AccountOpened
	// account-2 AccountOpened
}

// Follow reads what is already stored, then waits for new records. Here the
// consumer appends from inside its own loop, which the store allows.
func ExampleStore_Follow() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memory.New()
	_, _ = store.Append(ctx, "order-1", eventstore.NoStream, eventstore.Event{Type: "OrderPlaced"})

	for r, err := range store.Follow(ctx, eventstore.ReadAllOptions{}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(r.StreamID, r.StreamVersion, r.Type)
		switch r.Type {
		case "OrderPlaced":
			_, _ = store.Append(ctx, "shipment-1", eventstore.NoStream, eventstore.Event{Type: "ShipmentRequested"})
		case "ShipmentRequested":
			cancel()
		}
	}
	// Output:
	// order-1 1 OrderPlaced
	// shipment-1 1 ShipmentRequested
	// memory: follow: context canceled
}

func ExampleStore_ListStreams() {
	ctx := context.Background()
	store := memory.New()
	for _, id := range []string{"order-2", "account-1", "order-1"} {
		_, _ = store.Append(ctx, id, eventstore.Any, eventstore.Event{Type: "Created"})
	}
	for info, err := range store.ListStreams(ctx, eventstore.ListStreamsOptions{Category: "order"}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(info.StreamID, info.Version)
	}
	// Output:
	// order-1 1
	// order-2 1
}
