package aggregate_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/snapshot"
	"github.com/chronicle-go/chronicle/upcast"
)

// Events are plain values.
type CartOpened struct {
	Customer string `json:"customer"`
}

type ItemAdded struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// Cart is an aggregate: it embeds aggregate.Root and applies events.
type Cart struct {
	aggregate.Root
	Customer string         `json:"customer"`
	Items    map[string]int `json:"items"`
}

func NewCart(id string) *Cart { return &Cart{Items: map[string]int{}} }

// Apply moves state; it never fails.
func (c *Cart) Apply(event any) {
	switch e := event.(type) {
	case CartOpened:
		c.Customer = e.Customer
	case ItemAdded:
		c.Items[e.SKU] += e.Qty
	}
}

// SnapshotRevision is the revision of Cart's snapshot shape.
func (c *Cart) SnapshotRevision() int { return 1 }

// Open and Add are commands: they check, then raise.
func (c *Cart) Open(customer string) error {
	if c.Version() > 0 {
		return errors.New("cart already open")
	}
	aggregate.Raise(c, CartOpened{Customer: customer})
	return nil
}

func (c *Cart) Add(sku string, qty int) error {
	if qty <= 0 {
		return fmt.Errorf("cannot add %d of %s", qty, sku)
	}
	aggregate.Raise(c, ItemAdded{SKU: sku, Qty: qty})
	return nil
}

func cartRegistry() *codec.Registry {
	reg := codec.NewRegistry()
	codec.MustRegister[CartOpened](reg, "CartOpened", 1)
	codec.MustRegister[ItemAdded](reg, "ItemAdded", 1)
	return reg
}

// Define an aggregate, create it, update it and load it.
func Example() {
	ctx := context.Background()
	store := memory.New()
	carts, err := aggregate.NewRepository(store, cartRegistry(), NewCart, aggregate.WithCategory("cart"))
	if err != nil {
		fmt.Println(err)
		return
	}

	if _, err := carts.Create(ctx, "7", func(c *Cart) error { return c.Open("ada") }); err != nil {
		fmt.Println(err)
		return
	}
	ctx = eventstore.WithCorrelationID(ctx, "request-1")
	res, err := carts.Update(ctx, "7", func(c *Cart) error { return c.Add("apple", 3) })
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("stream version", res.Version)

	cart, err := carts.Load(ctx, "7")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cart.ID(), cart.Version(), cart.Customer, cart.Items["apple"])

	_, err = carts.Load(ctx, "8")
	fmt.Println(errors.Is(err, aggregate.ErrNotFound))
	// Output:
	// stream version 2
	// 7 2 ada 3
	// true
}

// Save an aggregate loaded by hand; a stale save conflicts.
func ExampleRepository_Save() {
	ctx := context.Background()
	carts, err := aggregate.NewRepository(memory.New(), cartRegistry(), NewCart)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = carts.Create(ctx, "cart-1", func(c *Cart) error { return c.Open("ada") })

	first, _ := carts.Load(ctx, "cart-1")
	second, _ := carts.Load(ctx, "cart-1")
	_ = first.Add("pear", 1)
	_ = second.Add("plum", 1)
	_, err = carts.Save(ctx, first)
	fmt.Println(err)
	_, err = carts.Save(ctx, second)
	fmt.Println(errors.Is(err, eventstore.ErrConcurrencyConflict))
	// Output:
	// <nil>
	// true
}

// Snapshots every 100 events: loading reads the snapshot and the events
// after it.
func ExampleWithSnapshots() {
	ctx := context.Background()
	snaps := snapshot.NewMemoryStore()
	carts, err := aggregate.NewRepository(memory.New(), cartRegistry(), NewCart,
		aggregate.WithCategory("cart"), aggregate.WithSnapshots(snaps, snapshot.Every(100)))
	if err != nil {
		fmt.Println(err)
		return
	}

	_, _ = carts.Create(ctx, "1", func(c *Cart) error { return c.Open("ada") })
	for range 149 {
		if _, err := carts.Update(ctx, "1", func(c *Cart) error { return c.Add("apple", 1) }); err != nil {
			fmt.Println(err)
			return
		}
	}
	s, _ := snaps.Load(ctx, "cart-1")
	fmt.Println("snapshot at version", s.Version)

	cart, _ := carts.Load(ctx, "1")
	fmt.Println(cart.Version(), cart.Items["apple"])
	// Output:
	// snapshot at version 100
	// 150 149
}

// A repository given an upcaster chain (built on the registry) instead of
// the registry brings events stored by older code to the current shape on
// every load.
func ExampleNewRepository_upcast() {
	ctx := context.Background()
	store := memory.New()
	reg := codec.NewRegistry()
	codec.MustRegister[CartOpened](reg, "CartOpened", 1)
	codec.MustRegister[ItemAdded](reg, "ItemAdded", 2) // v1 called the field "product"

	chain, err := upcast.New(reg, upcast.Fields("ItemAdded", 1, func(m map[string]any) error {
		m["sku"] = m["product"]
		delete(m, "product")
		return nil
	}))
	if err != nil {
		fmt.Println(err)
		return
	}
	// Events written by the old code.
	_, _ = store.Append(ctx, "cart-9", eventstore.NoStream,
		eventstore.Event{Type: "CartOpened", SchemaVersion: 1, Data: []byte(`{"customer":"ada"}`)},
		eventstore.Event{Type: "ItemAdded", SchemaVersion: 1, Data: []byte(`{"product":"fig","qty":2}`)})

	carts, err := aggregate.NewRepository(store, chain, NewCart, aggregate.WithCategory("cart"))
	if err != nil {
		fmt.Println(err)
		return
	}
	cart, err := carts.Load(ctx, "9")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cart.Items["fig"])
	// Output:
	// 2
}
