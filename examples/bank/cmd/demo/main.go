// Command demo runs the bank example end to end (make demo): it migrates,
// runs a burst of commands from concurrent clients, waits for the
// projections, checks that the balances add up, rebuilds a projection and
// prints the projections' status.
//
// With DATABASE_URL and NATS_URL set it uses them. With nothing set it uses
// the local PostgreSQL at postgres://postgres@127.0.0.1:5432/test (schema
// bank_demo, dropped and recreated at each run) and a NATS server started
// in this process; with no PostgreSQL at all it runs in memory. Its first
// line says which. The -memory flag runs in memory whatever is configured.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/chronicle-go/chronicle/examples/bank/demo"
)

func main() {
	inMemory := flag.Bool("memory", false, "run in memory: memory event store and read models, no PostgreSQL, no NATS")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *inMemory); err != nil {
		fmt.Fprintln(os.Stderr, err) // errors say "demo: ..." already
		os.Exit(1)
	}
}

func run(ctx context.Context, inMemory bool) error {
	env, err := demo.Choose(ctx, inMemory)
	if err != nil {
		return err
	}
	defer env.Close()
	cfg := env.Config
	cfg.Out = os.Stdout
	// Warnings and errors on stderr; info lines would break the narration.
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.Seed = 42
	_, err = demo.Run(ctx, cfg)
	return err
}
