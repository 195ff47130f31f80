package process_test

import (
	"context"
	"fmt"
	"time"

	"github.com/chronicle-go/chronicle/process"
)

type orderState struct{}

func (*orderState) Apply(any) {}

// A process type that reserves stock, charges the card, and releases the
// stock again when the charge is refused or takes longer than a minute.
// The Harness runs its logic in memory, as the runner would.
func ExampleHarness() {
	order := &process.Type[*orderState]{
		Name:      "order",
		Starts:    []string{"OrderPlaced"},
		Correlate: process.ByStream,
		New:       func(string) *orderState { return &orderState{} },
		Handle: func(ctx context.Context, p *process.Process[*orderState], t process.Trigger) error {
			switch {
			case t.Is("OrderPlaced"):
				p.SendCompensable("reserve", map[string]int{"sku-1": 2}, process.Command{Name: "release", Data: map[string]int{"sku-1": 2}})
				p.Schedule("payment", time.Minute)
			case t.Kind == process.CommandSucceeded && t.Command.Name == "reserve":
				p.Send("charge", map[string]int{"cents": 1999})
			case t.Kind == process.CommandSucceeded && t.Command.Name == "charge":
				p.Complete()
			case t.Kind == process.CommandFailed, t.Kind == process.TimerTrigger:
				p.Compensate("payment refused or late")
			}
			return nil
		},
	}
	ctx := context.Background()
	h, err := process.NewHarness(order, "o-1", time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	if err != nil {
		panic(err)
	}
	show := func(e process.Effects, err error) {
		if err != nil {
			panic(err)
		}
		for _, c := range e.Commands {
			fmt.Printf("  send %s %s (compensation: %v)\n", c.Name, c.Data, c.Compensation)
		}
		fmt.Println("  status:", e.Status)
	}
	fmt.Println("order placed")
	show(h.Event(ctx, "OrderPlaced", nil))
	fmt.Println("stock reserved")
	show(h.Succeeded(ctx, "reserve"))
	fmt.Println("card refused")
	show(h.Failed(ctx, "charge", "card declined", true))
	fmt.Println("stock released")
	show(h.Succeeded(ctx, "release"))
	// Output:
	// order placed
	//   send reserve {"sku-1":2} (compensation: false)
	//   status: running
	// stock reserved
	//   send charge {"cents":1999} (compensation: false)
	//   status: running
	// card refused
	//   send release {"sku-1":2} (compensation: true)
	//   status: compensating
	// stock released
	//   status: compensated
}
