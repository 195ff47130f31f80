package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/chronicle-go/chronicle/projection"
)

// benchPartition is the "partition" section: a projection whose handler
// waits 1 ms per event (I/O), caught up over the same history with 2
// and 4 partitions in one process, beside the same projection in one
// partition (the plain runner), in the same run.
func benchPartition(ctx context.Context, env *Env) ([]Row, error) {
	st, err := prNewStores(ctx, env, "part")
	if err != nil {
		return nil, err
	}
	n := env.N(4000, 800)
	if _, _, err := prAppend(ctx, st.events, n, 0, nil); err != nil {
		return nil, fmt.Errorf("append history: %w", err)
	}
	head, err := st.events.Head(ctx)
	if err != nil {
		return nil, err
	}
	catchUp := func(name string, parts int) (float64, error) {
		p := projection.Projection{Name: name, Partitions: parts, BatchSize: 64,
			Handler: projection.HandlerFunc(func(ctx context.Context, _ projection.Tx, _ projection.Event) error {
				time.Sleep(time.Millisecond) // the handler's I/O
				return nil
			})}
		r, err := projection.NewRunner(st.events, st.proj, []projection.Projection{p},
			projection.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
		if err != nil {
			return 0, err
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- r.Run(rctx) }()
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
		err = r.WaitFor(wctx, name, head)
		took := time.Since(start)
		wcancel()
		cancel()
		if rerr := <-done; err == nil {
			err = rerr
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		return rate(n, took), nil
	}
	base, err := catchUp("one_partition", 0)
	if err != nil {
		return nil, err
	}
	rows := []Row{{Figure: fmt.Sprintf("Catch-up, 1 ms/event handler, %d events: plain runner (one partition)", n),
		Value: perSec(base, "events")}}
	for _, parts := range []int{2, 4} {
		r, err := catchUp(fmt.Sprintf("partitions_%d", parts), parts)
		if err != nil {
			return nil, err
		}
		goal := 0.8 * float64(parts)
		rows = append(rows, ratioRow(fmt.Sprintf("Catch-up, 1 ms/event handler: %d partition(s) in one process vs plain runner", parts),
			r, base, "events/s", goal, true))
	}
	return rows, nil
}
