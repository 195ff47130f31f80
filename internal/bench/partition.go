package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// benchPartition is the "partition" section: a projection whose handler
// waits 1 ms per event (I/O), caught up over the same history with 2
// and 4 partitions in one process, and with 1, 2 and 4 instances (separate
// runners with separate pools) holding one partition each, beside the same
// projection in one partition (the plain runner), in the same run; then a
// rebuild of 1M events with 8 partitions beside the single-partition
// rebuild, and the handover time.
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
	for _, k := range []int{1, 2, 4} {
		r, err := benchInstances(ctx, env, st, head, n, k)
		if err != nil {
			return nil, fmt.Errorf("%d instances: %w", k, err)
		}
		rows = append(rows, ratioRow(fmt.Sprintf("Catch-up, 1 ms/event handler: %d instance(s) (own runner and pool, one partition each) vs plain runner", k),
			r, base, "events/s", 0.8*float64(k), true))
	}
	rb, err := benchPartitionedRebuild(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	rows = append(rows, rb...)
	h, err := benchHandover(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("handover: %w", err)
	}
	return append(rows, h...), nil
}

// gatedIOHandler is a handler that waits for gate to close, then spends
// 1 ms per event waiting (the handler's I/O).
func gatedIOHandler(gate <-chan struct{}) projection.Handler {
	return projection.HandlerFunc(func(ctx context.Context, _ projection.Tx, _ projection.Event) error {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		time.Sleep(time.Millisecond) // the handler's I/O
		return nil
	})
}

// benchInstances catches the 1 ms/event projection up over the history
// (n events up to head) with k instances, each a runner with its own pool,
// the projection in k partitions (one partition each; k = 1 is the plain
// runner on its own pool). The handlers wait for a start signal until the
// partitions have spread over the instances (lease TTL 3 s), so the figure
// is the instances' throughput, not the time they take to share the work.
func benchInstances(ctx context.Context, env *Env, st *prStores, head eventstore.Position, n, k int) (float64, error) {
	name := fmt.Sprintf("instances_%d", k)
	parts := k
	if k == 1 {
		parts = 0
	}
	gate := make(chan struct{})
	p := projection.Projection{Name: name, Partitions: parts, BatchSize: 64,
		Handler: gatedIOHandler(gate)}
	quiet := projection.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, k)
	var runners []*projection.Runner
	var pools []*pgxpool.Pool
	defer func() {
		cancel()
		wg.Wait()
		for _, pool := range pools {
			pool.Close()
		}
	}()
	for i := 0; i < k; i++ {
		cfg, err := pgxpool.ParseConfig(env.DatabaseURL)
		if err != nil {
			return 0, err
		}
		cfg.MaxConns = 8
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return 0, err
		}
		pools = append(pools, pool)
		es, err := espg.New(pool, espg.WithSchema(st.schema))
		if err != nil {
			return 0, err
		}
		ps, err := projpg.New(pool, projpg.WithSchema(st.schema))
		if err != nil {
			return 0, err
		}
		r, err := projection.NewRunner(es, ps, []projection.Projection{p}, quiet,
			projection.WithOwner(fmt.Sprintf("i%d", i)), projection.WithLeaseTTL(3*time.Second))
		if err != nil {
			return 0, err
		}
		runners = append(runners, r)
		wg.Go(func() {
			if err := r.Run(rctx); err != nil && rctx.Err() == nil {
				errs <- err
			}
		})
	}
	if parts > 1 {
		b := projection.Build{Name: name, Version: 1}
		deadline := time.Now().Add(time.Minute)
		for {
			states, err := st.proj.Partitions(ctx, b)
			if err != nil {
				return 0, err
			}
			owners := map[string]bool{}
			for _, s := range states {
				if s.Lease.Owner != "" && time.Until(s.Lease.Expires) > 0 {
					owners[s.Lease.Owner] = true
				}
			}
			if len(states) == parts && len(owners) == k {
				break
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("partitions never spread over %d instances: %d owners", k, len(owners))
			}
			select {
			case err := <-errs:
				return 0, err
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	start := time.Now()
	close(gate)
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer wcancel()
	if err := runners[0].WaitFor(wctx, name, head); err != nil {
		return 0, err
	}
	took := time.Since(start)
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return rate(n, took), nil
}

// benchPartitionedRebuild rebuilds a Postgres read model (a per-stream
// upsert) over 1M events (scaled), first in one partition, then in 8, in
// the same run and over the same log: each is the first build of its
// projection, run by Rebuild outside Run (an Admin's rebuild).
func benchPartitionedRebuild(ctx context.Context, env *Env) ([]Row, error) {
	st, err := prNewStores(ctx, env, "partrebuild")
	if err != nil {
		return nil, err
	}
	n := env.N(1_000_000, 20_000)
	if err := fillLog(ctx, st.events, n); err != nil {
		return nil, fmt.Errorf("fill the log: %w", err)
	}
	rebuild := func(name string, parts int) (float64, error) {
		var applied atomic.Int64
		p := prBalances(name, func(projection.Tx, eventstore.Record) { applied.Add(1) })
		p.Partitions = parts
		r, err := projection.NewRunner(st.events, st.proj, []projection.Projection{p},
			projection.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
		if err != nil {
			return 0, err
		}
		start := time.Now()
		if err := r.Rebuild(ctx, name); err != nil {
			return 0, err
		}
		took := time.Since(start)
		if got := applied.Load(); got < int64(n) {
			return 0, fmt.Errorf("%s applied %d events, want %d", name, got, n)
		}
		var rows, events int64
		if err := env.Pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(events), 0) FROM `+pgmigrate.Quote(st.schema)+`.`+pgmigrate.Quote(name)).Scan(&rows, &events); err != nil {
			return 0, err
		}
		if events != int64(n) {
			return 0, fmt.Errorf("%s: the read model counts %d events, want %d", name, events, n)
		}
		return rate(n, took), nil
	}
	one, err := rebuild("rebuild_one", 0)
	if err != nil {
		return nil, err
	}
	eight, err := rebuild("rebuild_eight", 8)
	if err != nil {
		return nil, err
	}
	row := ratioRow(fmt.Sprintf("Rebuild of %d events into a Postgres read model (per-stream upsert): 8 partitions vs one partition", n),
		eight, one, "events/s", 1, true)
	row.Goal = ""
	row.Pass = ""
	return []Row{row}, nil
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
