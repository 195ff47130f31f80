package eventstore_test

import (
	"errors"
	"fmt"

	"github.com/chronicle-go/chronicle/eventstore"
)

func ExampleCategory() {
	fmt.Println(eventstore.Category("account-42"))
	fmt.Println(eventstore.Category("order-2024-0001"))
	fmt.Println(eventstore.Category("settings"))
	// Output:
	// account
	// order
	// settings
}

// A projection stores its checkpoint as text and reads it back.
func ExampleParsePosition() {
	checkpoint := eventstore.Position{TxID: 740, Seq: 1021}.String()
	fmt.Println(checkpoint)

	p, err := eventstore.ParsePosition(checkpoint)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.TxID, p.Seq)

	_, err = eventstore.ParsePosition("740")
	fmt.Println(err)
	// Output:
	// 740/1021
	// 740 1021
	// eventstore: invalid position "740": want TXID/SEQ
}

func ExamplePosition_Compare() {
	a := eventstore.Position{TxID: 7, Seq: 90}
	b := eventstore.Position{TxID: 8, Seq: 12} // a later transaction that took a lower sequence
	fmt.Println(a.Compare(b), b.Compare(a), a.Compare(a))
	fmt.Println(a.Before(b))
	// Output:
	// -1 1 0
	// true
}

func ExampleExpectedVersion() {
	for _, v := range []eventstore.ExpectedVersion{
		eventstore.Any, eventstore.NoStream, eventstore.StreamExists, eventstore.Exact(3),
	} {
		fmt.Printf("%-13s exact=%v\n", v, v.IsExact())
	}
	// Output:
	// any           exact=false
	// no stream     exact=false
	// stream exists exact=false
	// 3             exact=true
}

func ExampleConflictError() {
	// What a store returns when the stream moved on since it was loaded.
	err := fmt.Errorf("save order: %w", &eventstore.ConflictError{
		Stream: "order-7", Expected: eventstore.Exact(3), Actual: 4,
	})

	fmt.Println(errors.Is(err, eventstore.ErrConcurrencyConflict))
	var conflict *eventstore.ConflictError
	if errors.As(err, &conflict) {
		fmt.Println(conflict.Stream, conflict.Expected, conflict.Actual)
	}
	fmt.Println(eventstore.IsRetryable(err))
	fmt.Println(err)
	// Output:
	// true
	// order-7 3 4
	// true
	// save order: eventstore: concurrency conflict on stream "order-7": expected version 3, actual 4
}

func ExamplePrepareAppend() {
	_, err := eventstore.PrepareAppend("order-7", eventstore.Any, []eventstore.Event{
		{Type: "OrderPlaced", Data: []byte(`{"total":`)},
	}, 0)
	fmt.Println(errors.Is(err, eventstore.ErrInvalidInput))
	fmt.Println(err)

	events, _ := eventstore.PrepareAppend("order-7", eventstore.Any, []eventstore.Event{{Type: "OrderPlaced"}}, 0)
	fmt.Println(events[0].SchemaVersion, string(events[0].Data), events[0].ID.Version())
	// Output:
	// true
	// eventstore: invalid data of event 0 (type "OrderPlaced") in stream "order-7": not valid JSON
	// 1 {} VERSION_7
}
