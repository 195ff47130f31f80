// Command observe runs the bank example as an observable service (make
// demo-observe): the demo's steps, then the service, with its metrics for
// Prometheus at /metrics (an OpenTelemetry SDK meter provider and the
// Prometheus exporter), the operations console at /console/ (read-only
// unless -enable-actions) and /livez and /readyz, until Ctrl-C. It prints
// their addresses. -traces writes every span to stderr as JSON lines.
//
// It chooses PostgreSQL and NATS like make demo (DATABASE_URL, NATS_URL,
// or the local PostgreSQL and an in-process NATS server; in memory with
// -memory or without PostgreSQL).
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
	"github.com/chronicle-go/chronicle/examples/bank/observe"
)

func main() {
	addr := flag.String("addr", observe.DefaultAddr, "the address to serve /metrics, /console/, /livez and /readyz on")
	actions := flag.Bool("enable-actions", false, "allow the console's actions (retry and discard dead letters, rebuild projections, drop old builds; logged)")
	traces := flag.Bool("traces", false, "write every span to stderr as JSON lines (the OpenTelemetry SDK's stdout exporter)")
	inMemory := flag.Bool("memory", false, "run in memory: memory event store and read models, no PostgreSQL, no NATS")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env, err := demo.Choose(ctx, *inMemory)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := observe.Config{Demo: env.Config, Addr: *addr, Actions: *actions, Out: os.Stdout,
		// Warnings and errors on stderr, and the console's actions.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	cfg.Demo.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.Demo.Seed = 42
	if *traces {
		cfg.Traces = os.Stderr
	}
	err = observe.Run(ctx, cfg)
	env.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
