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

	// A chain with a hole is refused when it is built: stored v1 records
	// of AccountClosed could not be read.
	reg2 := codec.NewRegistry()
	codec.MustRegister[struct{}](reg2, "AccountClosed", 3)
	_, err = upcast.New(reg2, upcast.Bump("AccountClosed", 2))
	fmt.Println(err)

	// Unless v1 was never stored: say so.
	_, err = upcast.New(reg2, upcast.Bump("AccountClosed", 2), upcast.NeverWritten("AccountClosed", 1))
	fmt.Println(err)
	// Output:
	// {Owner:ada}
	// upcast: "AccountClosed" is at version 3 but no upcaster reads v1 (a hole in the chain: records stored there could not be read); add an upcaster from each, or declare a version that was never stored with upcast.NeverWritten("AccountClosed", version)
	// <nil>
}
