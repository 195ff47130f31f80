package cli_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/chronicle-go/chronicle/cli"
	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
	"github.com/chronicle-go/chronicle/upcast"
)

type AccountOpened struct {
	Owner string `json:"owner"`
}

type MoneyDeposited struct {
	Cents int64 `json:"cents"`
}

// A service builds its own operations binary, bankctl, with its events,
// upcasters and projections registered, so that "bankctl projections
// rebuild balances" runs the service's own projection code and "bankctl
// streams show" upcasts stored events. This is the whole of its main
// function.
func Example() {
	reg := codec.NewRegistry()
	codec.MustRegister[AccountOpened](reg, "AccountOpened", 1)
	codec.MustRegister[MoneyDeposited](reg, "MoneyDeposited", 2)
	chain, err := upcast.New(reg,
		// Version 1 held the amount in a field named "amount".
		upcast.Fields("MoneyDeposited", 1, func(m map[string]any) error {
			m["cents"] = m["amount"]
			delete(m, "amount")
			return nil
		}))
	if err != nil {
		log.Fatal(err)
	}

	balances := projection.Projection{
		Name:   "balances",
		Types:  []string{"MoneyDeposited"},
		Tables: []string{"balances"},
		Setup: func(ctx context.Context, tx projection.Tx) error {
			_, err := projpg.From(tx).Exec(ctx, `CREATE TABLE IF NOT EXISTS `+tx.Table("balances")+
				` (account text PRIMARY KEY, cents bigint NOT NULL)`)
			return err
		},
		Handler: projpg.Handler(func(ctx context.Context, tx *projpg.Tx, ev projection.Event) error {
			d := ev.Data.(MoneyDeposited)
			tx.Queue(`INSERT INTO `+tx.Table("balances")+` AS b VALUES ($1, $2)
				ON CONFLICT (account) DO UPDATE SET cents = b.cents + EXCLUDED.cents`, ev.Record.StreamID, d.Cents)
			return nil
		}),
	}

	app := cli.New(
		cli.WithName("bankctl"),
		cli.WithSchema("bank"),
		cli.WithUpcasters(chain),
		cli.WithProjections(balances),
		cli.WithRelayStream(relay.StreamConfig{Topology: wire.Topology{Stream: "BANK", SubjectPrefix: "bank.events"}}),
	)
	// In the service's main function, the last line is:
	//
	//	app.Main()
	_ = app
}

// A failing command prints one line on stderr and returns a non-zero exit
// code; usage errors return cli.ExitUsage.
func ExampleApp_Run() {
	app := cli.New(cli.WithEnv(func(string) string { return "" }))
	code := app.Run(context.Background(), []string{"streams", "show"}, os.Stdout, os.Stdout)
	fmt.Println("exit code", code)

	code = app.Run(context.Background(), []string{"streams", "list"}, os.Stdout, os.Stdout)
	fmt.Println("exit code", code)
	// Output:
	// chronicle: streams show: missing STREAM_ID (see --help)
	// exit code 2
	// chronicle: streams list: no database: set DATABASE_URL or pass --database-url
	// exit code 1
}
