package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
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
	h, err := benchHandover(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("handover: %w", err)
	}
	return append(rows, h...), nil
}

// benchHandover measures how long a partition stays unapplied after its
// runner dies: two runners share 4 partitions (lease TTL 2s), one is killed
// (its leases left to expire), an event is appended to one of its
// partitions, and the other runner applies it. The row gives the time from
// the dead runner's lease expiry to the event applied (the handover proper)
// beside the time from the kill.
func benchHandover(ctx context.Context, env *Env) ([]Row, error) {
	st, err := prNewStores(ctx, env, "handover")
	if err != nil {
		return nil, err
	}
	const ttl = 2 * time.Second
	p := projection.Projection{Name: "handover", Partitions: 4,
		Handler: projection.HandlerFunc(func(context.Context, projection.Tx, projection.Event) error { return nil })}
	quiet := projection.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	start := func(owner string) (*projection.Runner, context.CancelFunc, chan error, error) {
		r, err := projection.NewRunner(st.events, st.proj, []projection.Projection{p}, quiet,
			projection.WithOwner(owner), projection.WithLeaseTTL(ttl))
		if err != nil {
			return nil, nil, nil, err
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		return r, cancel, done, nil
	}
	_, killA, doneA, err := start("a")
	if err != nil {
		return nil, err
	}
	rb, stopB, doneB, err := start("b")
	if err != nil {
		killA()
		return nil, err
	}
	defer func() {
		stopB()
		<-doneB
	}()
	b := projection.Build{Name: "handover", Version: 1}
	var victim projection.Lease
	deadline := time.Now().Add(30 * time.Second)
	for victim.Owner == "" {
		states, err := st.proj.Partitions(ctx, b)
		if err != nil {
			killA()
			return nil, err
		}
		owners := map[string]int{}
		for _, s := range states {
			owners[s.Lease.Owner[:min(1, len(s.Lease.Owner))]]++
		}
		if owners["a"] == 2 && owners["b"] == 2 {
			for _, s := range states {
				if s.Lease.Owner[0] == 'a' {
					victim = s.Lease
					break
				}
			}
			break
		}
		if time.Now().After(deadline) {
			killA()
			return nil, fmt.Errorf("partitions never spread over two runners: %v", owners)
		}
		time.Sleep(20 * time.Millisecond)
	}
	killA() // no release: its leases expire
	killed := time.Now()
	if err := <-doneA; err != nil {
		return nil, err
	}
	stream := ""
	for i := 0; stream == ""; i++ {
		if id := fmt.Sprintf("acct-%d", i); projection.PartitionOf(id, 4) == victim.Partition {
			stream = id
		}
	}
	res, err := st.events.Append(ctx, stream, eventstore.Any, eventstore.Event{Type: "Opened", Data: []byte(`{}`)})
	if err != nil {
		return nil, err
	}
	states, err := st.proj.Partitions(ctx, b)
	if err != nil {
		return nil, err
	}
	expires := states[victim.Partition].Lease.Expires
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := rb.WaitForStream(wctx, "handover", stream, res.Position); err != nil {
		return nil, err
	}
	applied := time.Now()
	return []Row{{Figure: fmt.Sprintf("Handover after a runner dies (lease TTL %s): lease expiry -> first event applied by the new owner", ttl),
		Value: ms(applied.Sub(expires)), Baseline: ms(applied.Sub(killed)) + " from the kill"}}, nil
}
