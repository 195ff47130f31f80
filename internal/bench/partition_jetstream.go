package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/projection"
	projjs "github.com/chronicle-go/chronicle/projection/jetstream"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// benchPartitionJS is the "partition_js" section (ADR 0020): live
// throughput of a projection whose handler waits 1 ms per event (I/O), fed
// over JetStream on a bucketed topology, with 2 and 4 partitions in one
// process (each partition reading its own filtered consumer) beside the
// same projection unpartitioned (one consumer), in the same run. The
// runner is live (its consumers open) before the appends start, and its
// handlers wait at a gate while the events are appended, so that they
// wait in JetStream; each figure runs from the gate's opening to the last
// event applied.
func benchPartitionJS(ctx context.Context, env *Env) ([]Row, error) {
	nc, err := nats.Connect(env.NATSURL)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	n := env.N(4000, 800)
	live := func(name string, parts int) (float64, error) {
		st, err := prNewStores(ctx, env, "pjs"+name)
		if err != nil {
			return 0, err
		}
		topo := wire.DefaultTopology(st.schema)
		topo.Buckets = 16
		rl, err := relay.New(st.events, nc, env.Pool, relay.WithSchema(st.schema), relay.WithStream(relay.StreamConfig{Topology: topo}))
		if err != nil {
			return 0, err
		}
		if err := rl.Migrate(ctx); err != nil {
			return 0, err
		}
		src, err := projjs.NewSource(js, st.events, projjs.WithTopology(topo))
		if err != nil {
			return 0, err
		}
		gate := make(chan struct{})
		p := projection.Projection{Name: name, Partitions: parts, BatchSize: 64,
			Handler: gatedIOHandler(gate)}
		r, err := projection.NewRunner(st.events, st.proj, []projection.Projection{p}, projection.WithSource(src),
			projection.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
		if err != nil {
			return 0, err
		}
		rctx, cancel := context.WithCancel(ctx)
		relayDone, runDone := make(chan error, 1), make(chan error, 1)
		go func() { relayDone <- rl.Run(rctx) }()
		defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), topo.Stream) }()
		stop := func() error {
			cancel()
			return errors.Join(<-relayDone, <-runDone)
		}
		select {
		case <-rl.Ready():
		case err := <-relayDone:
			cancel()
			return 0, fmt.Errorf("%s: relay: %w", name, err)
		case <-time.After(30 * time.Second):
			cancel()
			return 0, errors.Join(fmt.Errorf("%s: the relay was not ready within 30s", name), <-relayDone)
		}
		go func() { runDone <- r.Run(rctx) }()
		select {
		case <-r.Ready():
		case <-time.After(30 * time.Second):
			return 0, errors.Join(fmt.Errorf("%s: the runner was not ready within 30s", name), stop())
		}
		if parts > 0 {
			// Every partition's consumer is open.
			if err := pjsWaitConsumers(ctx, js, src, topo.Stream, projection.Build{Name: name, Version: 1}, parts); err != nil {
				return 0, errors.Join(err, stop())
			}
		}
		_, last, err := prAppend(ctx, st.events, n, 0, nil)
		if err != nil {
			close(gate)
			return 0, errors.Join(fmt.Errorf("%s: append: %w", name, err), stop())
		}
		// Let the relay publish them all before the gate opens.
		if err := pjsWaitPublished(ctx, js, topo.Stream, uint64(n)); err != nil {
			close(gate)
			return 0, errors.Join(err, stop())
		}
		start := time.Now()
		close(gate)
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
		err = r.WaitFor(wctx, name, last)
		took := time.Since(start)
		wcancel()
		if err := errors.Join(err, stop()); err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		return rate(n, took), nil
	}
	base, err := live("js_one", 0)
	if err != nil {
		return nil, err
	}
	rows := []Row{{Figure: fmt.Sprintf("Live over JetStream (16 buckets), 1 ms/event handler, %d events waiting in the stream: one consumer (unpartitioned)", n),
		Value: perSec(base, "events")}}
	for _, parts := range []int{2, 4} {
		v, err := live(fmt.Sprintf("js_parts_%d", parts), parts)
		if err != nil {
			return nil, err
		}
		rows = append(rows, ratioRow(fmt.Sprintf("Live over JetStream, 1 ms/event handler: %d partitions (a consumer each) in one process vs one consumer", parts),
			v, base, "events/s", 0.8*float64(parts), true))
	}
	return rows, nil
}

// pjsWaitPublished waits until stream holds n messages.
func pjsWaitPublished(ctx context.Context, js jetstream.JetStream, stream string, n uint64) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := js.Stream(ctx, stream)
		if err == nil && st.CachedInfo().State.Msgs >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stream %s: the relay did not publish %d messages within 2 minutes", stream, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pjsWaitConsumers waits until the n partition consumers of b exist.
func pjsWaitConsumers(ctx context.Context, js jetstream.JetStream, src *projjs.Source, stream string, b projection.Build, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for part := 0; part < n; {
		if _, err := js.Consumer(ctx, stream, src.PartitionConsumerName(b, part)); err == nil {
			part++
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: the consumer of partition %d was not created within 30s", b, part)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
