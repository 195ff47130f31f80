package main

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
)

// benchOtel measures what the OpenTelemetry instrumentation costs Append
// and ReadAll: the store with its instrumentation off
// (postgres.WithInstrumentation(false)) is the baseline; against it, the
// default store with no provider set (OpenTelemetry's global no-op), and
// one with the SDK recording every span to an in-memory exporter and every
// metric to a manual reader. The three stores share one schema and run in
// alternating rounds, so load from elsewhere falls on all of them.
func benchOtel(ctx context.Context, env *Env) ([]Row, error) {
	b := &stBench{env: env}
	var err error
	if b.store, err = b.newStore(ctx, "otel"); err != nil {
		return nil, err
	}
	defer b.store.Close()
	schema := espg.WithSchema(b.store.Schema())
	off, err := espg.New(env.Pool, schema, espg.WithInstrumentation(false))
	if err != nil {
		return nil, err
	}
	defer off.Close()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	sdk, err := espg.New(env.Pool, schema, espg.WithTracerProvider(tp), espg.WithMeterProvider(mp))
	if err != nil {
		return nil, err
	}
	defer sdk.Close()
	def, err := espg.New(env.Pool, schema)
	if err != nil {
		return nil, err
	}
	defer def.Close()
	variants := []*espg.Store{off, def, sdk}

	// With the SDK, appends run inside a caller's span, as in a traced
	// service: they record a child span and write the trace context into
	// the events' metadata.
	const workers = 8
	n := env.N(24000, 800)
	per := max(n/stRounds/workers, 1) * workers
	runs := make([][]time.Duration, len(variants))
	cpus := make([]time.Duration, len(variants))
	for round := -1; round < 2*stRounds; round++ {
		// Each round starts with another variant, so that none always
		// follows the same one.
		for k := range variants {
			i := (k + max(round, 0)) % len(variants)
			s := variants[i]
			actx := ctx
			var span interface{ End(...trace.SpanEndOption) }
			if s == sdk {
				actx, span = tp.Tracer("bench").Start(ctx, "command")
			}
			c0 := clientCPU()
			d, err := b.appendRun(actx, s, per, 1, workers)
			if span != nil {
				span.End()
			}
			if err != nil {
				return nil, fmt.Errorf("append: %w", err)
			}
			if round >= 0 {
				runs[i] = append(runs[i], d)
				cpus[i] += clientCPU() - c0
			}
		}
		exp.Reset()
	}
	fig := fmt.Sprintf("Append 1 event/call, %d goroutines", workers)
	rows := []Row{
		otelRow(fig+", instrumented, no provider set", per, runs[1], runs[0], cpus[1], cpus[0], 0.97),
		otelRow(fig+", SDK tracing every append to an in-memory exporter, metrics to a reader", per, runs[2], runs[0], cpus[2], cpus[0], 0.90),
	}

	nRead := env.N(100_000, 5_000)
	if err := b.topUp(ctx, nRead); err != nil {
		return nil, err
	}
	runs = make([][]time.Duration, len(variants))
	cpus = make([]time.Duration, len(variants))
	for round := -1; round < 9; round++ {
		for k := range variants {
			i := (k + max(round, 0)) % len(variants)
			c0 := clientCPU()
			d, err := b.readAll(ctx, variants[i], nRead)
			if err != nil {
				return nil, fmt.Errorf("ReadAll: %w", err)
			}
			if round >= 0 {
				runs[i] = append(runs[i], d)
				cpus[i] += clientCPU() - c0
			}
		}
	}
	fig = fmt.Sprintf("ReadAll over %s events, decoded", stCount(nRead))
	rows = append(rows,
		otelRow(fig+", instrumented, no provider set", nRead, runs[1], runs[0], cpus[1], cpus[0], 0.97),
		otelRow(fig+", SDK tracing to an in-memory exporter", nRead, runs[2], runs[0], cpus[2], cpus[0], 0.90))
	return rows, nil
}

// otelRow compares an instrumented rate with the uninstrumented one, each
// the median of its rounds of n events (a noisy machine skews sums).
// The client CPU per event (this process's, summed over the rounds) shows
// what the instrumentation costs where it runs, less subject to the load
// of other processes than the rates.
func otelRow(figure string, n int, runs, baseline []time.Duration, cpu, cpuBase time.Duration, goal float64) Row {
	r := ratioRow(figure, rate(n, median(runs)), rate(n, median(baseline)), "events/s", goal, true)
	perEvent := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(n*len(runs)) }
	r.Value += fmt.Sprintf(" (median of %d rounds), client CPU %.2f µs/event", len(runs), perEvent(cpu))
	r.Baseline += fmt.Sprintf(", client CPU %.2f µs/event (instrumentation off)", perEvent(cpuBase))
	return r
}

// clientCPU is the CPU this process has spent.
func clientCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
