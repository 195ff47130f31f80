package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/google/uuid"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// benchRelay measures the relay's catch-up publish rate over a stored log
// beside a raw JetStream PublishAsync (window 256) of the same messages,
// each into its own fresh stream, in the same run.
func benchRelay(ctx context.Context, env *Env) ([]Row, error) {
	n := env.N(100_000, 2_000)
	schema := env.Schema("relay")
	store, err := espg.New(env.Pool, espg.WithSchema(schema))
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx); err != nil {
		return nil, err
	}
	if err := fillLog(ctx, store, n); err != nil {
		return nil, err
	}
	var recs []eventstore.Record
	for rec, err := range store.ReadAll(ctx, eventstore.ReadAllOptions{BatchSize: 2000}) {
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	if len(recs) != n {
		return nil, fmt.Errorf("stored %d events, read %d", n, len(recs))
	}

	nc, err := nats.Connect(env.NATSURL)
	if err != nil {
		return nil, fmt.Errorf("NATS at %s: %w", env.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}

	// Best of three runs each, alternating, to damp the noise of a shared
	// machine.
	var raw, rel time.Duration
	for i := 0; i < 3; i++ {
		d, err := rawPublish(ctx, js, recs)
		if err != nil {
			return nil, fmt.Errorf("raw PublishAsync: %w", err)
		}
		if raw == 0 || d < raw {
			raw = d
		}
		d, err = relayCatchUp(ctx, env, js, nc, store, schema, n)
		if err != nil {
			return nil, fmt.Errorf("relay: %w", err)
		}
		if rel == 0 || d < rel {
			rel = d
		}
	}
	return []Row{ratioRow(fmt.Sprintf("Relay catch-up publish rate, %d stored events", n),
		rate(n, rel), rate(n, raw), "msgs/s", 0.5, true)}, nil
}

// fillLog appends n small events in batches of 100 from four writers.
func fillLog(ctx context.Context, store *espg.Store, n int) error {
	const batch = 100
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			for b := w; b*batch < n; b += 4 {
				size := min(batch, n-b*batch)
				evs := make([]eventstore.Event, size)
				for i := range evs {
					evs[i] = eventstore.Event{Type: "FundsDeposited",
						Data:     fmt.Appendf(nil, `{"account":"acc-%d","amount":%d,"currency":"EUR"}`, b, i),
						Metadata: eventstore.Metadata{eventstore.CorrelationIDKey: fmt.Sprintf("req-%d", b)}}
				}
				if _, err := store.Append(ctx, fmt.Sprintf("account-%d", b), eventstore.NoStream, evs...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func benchStream(kind string) relay.StreamConfig {
	id := time.Now().UnixNano()
	return relay.StreamConfig{Topology: wire.Topology{Stream: fmt.Sprintf("BENCH_%s_%d", kind, id), SubjectPrefix: fmt.Sprintf("bench.%s.%d", kind, id)}}
}

// rawPublish publishes the records' messages with PublishAsync, at most 256
// in flight, into a fresh stream, and returns the time until all are acked.
func rawPublish(ctx context.Context, js0 jetstream.JetStream, recs []eventstore.Record) (time.Duration, error) {
	cfg := benchStream("RAW")
	if _, err := js0.CreateStream(ctx, jetstream.StreamConfig{Name: cfg.Stream, Subjects: []string{cfg.SubjectPrefix + ".>"}}); err != nil {
		return 0, err
	}
	defer func() { _ = js0.DeleteStream(context.WithoutCancel(ctx), cfg.Stream) }()
	js, err := jetstream.New(js0.Conn(), jetstream.WithPublishAsyncMaxPending(256))
	if err != nil {
		return 0, err
	}
	msgs := make([]*nats.Msg, len(recs))
	store := uuid.New() // the relay stamps its store's identity too
	for i, rec := range recs {
		msgs[i] = wire.NewMsg(cfg.SubjectPrefix, store, rec)
	}
	var failed error
	var mu sync.Mutex
	start := time.Now()
	futs := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return 0, err
		}
		futs = append(futs, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(2 * time.Minute):
		return 0, errors.New("acks did not arrive within 2 minutes")
	}
	d := time.Since(start)
	for _, f := range futs {
		select {
		case err := <-f.Err():
			mu.Lock()
			failed = err
			mu.Unlock()
		default:
		}
	}
	return d, failed
}

// relayCatchUp runs a fresh relay over the stored log into a fresh stream
// and returns the time from Run until the stream holds n messages.
func relayCatchUp(ctx context.Context, env *Env, js jetstream.JetStream, nc *nats.Conn, store *espg.Store, schema string, n int) (time.Duration, error) {
	cfg := benchStream("RELAY")
	r, err := relay.New(store, nc, env.Pool, relay.WithSchema(schema), relay.WithName(cfg.Stream), relay.WithStream(cfg))
	if err != nil {
		return 0, err
	}
	if err := r.Migrate(ctx); err != nil {
		return 0, err
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), cfg.Stream) }()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Run(rctx) }()
	exited := false
	defer func() {
		cancel()
		if !exited {
			<-done
		}
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if time.Now().After(deadline) {
			return 0, errors.New("the relay did not publish everything within 2 minutes")
		}
		if s, err := js.Stream(ctx, cfg.Stream); err == nil {
			if info, err := s.Info(ctx); err == nil && info.State.Msgs >= uint64(n) {
				d := time.Since(start)
				if info.State.Msgs != uint64(n) {
					return 0, fmt.Errorf("stream holds %d messages, want %d", info.State.Msgs, n)
				}
				return d, nil
			}
		}
		select {
		case err := <-done:
			exited = true
			return 0, fmt.Errorf("Run returned early: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
