package upcast_test

import (
	"fmt"

	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/upcast"
)

// AccountOpened v2 renamed the field "name" to "owner".
type AccountOpened struct {
	Owner string `json:"owner"`
}

func Example() {
	reg := codec.NewRegistry()
	codec.MustRegister[AccountOpened](reg, "AccountOpened", 2)

	chain, err := upcast.New(reg,
		upcast.Fields("AccountOpened", 1, func(m map[string]any) error {
			m["owner"] = m["name"]
			delete(m, "name")
			return nil
		}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}

	// A record written by the old code, as read from the store.
	old := eventstore.Record{StreamID: "account-1", StreamVersion: 1,
		Type: "AccountOpened", SchemaVersion: 1, Data: []byte(`{"name":"ada"}`)}
	values, err := chain.Decode(old)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%+v\n", values[0])

	// A chain with a hole is refused when it is built.
	codec.MustRegister[struct{}](reg, "AccountClosed", 3)
	_, err = upcast.New(reg, upcast.Bump("AccountClosed", 1))
	fmt.Println(err)
	// Output:
	// {Owner:ada}
	// upcast: "AccountClosed" v2, produced by the upcaster from "AccountClosed" v1, goes nowhere: the current version of "AccountClosed" is 3 and no upcaster reads version 2 (a hole in the chain)
}
