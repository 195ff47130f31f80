package jetstream_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/projection"
	projjs "github.com/chronicle-go/chronicle/projection/jetstream"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// The relay publishes the log to JetStream; the runner reads it through one
// durable consumer per projection and dead letters are announced on NATS.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/app")
	if err != nil {
		log.Fatal(err)
	}
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	js, _ := njs.New(nc)
	events, _ := espg.New(pool)
	store, _ := projpg.New(pool)
	rl, _ := relay.New(events, nc, pool)
	src, _ := projjs.NewSource(js, events)  // the stream and subjects of the events' schema
	var projections []projection.Projection // the service's projections
	runner, err := projection.NewRunner(events, store, projections,
		projection.WithSource(src),
		projection.WithDeadLetterPublisher(projjs.NewDeadLetterPublisher(nc, "")))
	if err != nil {
		log.Fatal(err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rl.Run(ctx) })
	g.Go(func() error { return runner.Run(ctx) })
	log.Fatal(g.Wait())
}

// A projection in 8 partitions over JetStream: the relay and the source
// share a topology with buckets, so each partition a runner holds a lease
// on reads its own consumer, filtered on the partition's buckets. Start
// this service in several instances: the partitions spread over them.
func Example_partitions() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/app")
	if err != nil {
		log.Fatal(err)
	}
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	js, _ := njs.New(nc)
	events, _ := espg.New(pool)
	store, _ := projpg.New(pool)
	// A bucketed topology has its own stream and prefix (ADR 0020).
	topo := wire.Topology{Stream: "APP_B64", SubjectPrefix: "app.b64", Buckets: wire.DefaultBuckets}
	rl, _ := relay.New(events, nc, pool, relay.WithTopology(topo))
	src, _ := projjs.NewSource(js, events, projjs.WithTopology(topo))
	invoices := projection.Projection{
		Name:       "invoices",
		Partitions: 8, // divides the 64 buckets
		Handler: projpg.Handler(func(ctx context.Context, tx *projpg.Tx, ev projection.Event) error {
			return nil // the read model's work, in per-stream order
		}),
	}
	runner, err := projection.NewRunner(events, store, []projection.Projection{invoices}, projection.WithSource(src))
	if err != nil {
		log.Fatal(err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rl.Run(ctx) })
	g.Go(func() error { return runner.Run(ctx) })
	log.Fatal(g.Wait())
}
