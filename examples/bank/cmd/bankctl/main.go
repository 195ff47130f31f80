// Command bankctl is the bank example's operations tool: Chronicle's cli
// package with the bank's event types, upcasters and projections
// registered, so that it can show bank events at their current schema,
// report the projections' status, rebuild them and retry their dead
// letters, which the generic chronicle binary cannot do.
//
// Its default schema is bank_demo, the one make demo writes, so after a
// demo:
//
//	export DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//	go run ./examples/bank/cmd/bankctl projections status
//	go run ./examples/bank/cmd/bankctl streams show account-acct-02
//	go run ./examples/bank/cmd/bankctl projections rebuild statements
//
// Usage:
//
//	bankctl [command] [flags]
//	bankctl --help
package main

import (
	"fmt"
	"os"

	"github.com/chronicle-go/chronicle/cli"
	"github.com/chronicle-go/chronicle/examples/bank"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

func main() {
	app, err := newApp()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bankctl:", err)
		os.Exit(1)
	}
	app.Main()
}

// newApp returns the CLI with the bank's upcasters (and, through them, its
// codec registry), projections and JetStream stream registered; extra
// options (a test's environment) come last.
func newApp(extra ...cli.Option) (*cli.App, error) {
	chain, err := bank.NewChain()
	if err != nil {
		return nil, err
	}
	opts := []cli.Option{
		cli.WithName("bankctl"),
		cli.WithDescription("Operations tool of the Chronicle bank example"),
		cli.WithSchema(bank.Schema),
		cli.WithUpcasters(chain),
		cli.WithProjections(bank.PostgresProjections()...),
		cli.WithRelayStream(relay.StreamConfig{Topology: wire.Topology{Stream: bank.Stream, SubjectPrefix: bank.SubjectPrefix}}),
	}
	return cli.New(append(opts, extra...)...), nil
}
