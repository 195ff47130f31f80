package relay_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/relay"
)

// Example runs a relay next to a service: it publishes every event the
// service appends (schema "chronicle") to the JetStream stream CHRONICLE,
// on subjects chronicle.events.<category>.<type>. A store in another schema
// publishes to its own stream by default (see wire.DefaultTopology).
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	nc, err := nats.Connect(os.Getenv("NATS_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	store, err := espg.New(pool)
	if err != nil {
		log.Fatal(err)
	}
	r, err := relay.New(store, nc, pool,
		relay.WithStream(relay.StreamConfig{MaxAge: 30 * 24 * time.Hour}))
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	// Migrations need only PostgreSQL; relay.Migrate needs no Relay.
	if err := relay.Migrate(ctx, pool, ""); err != nil {
		log.Fatal(err)
	}
	// Run blocks until ctx ends; run it beside the service's other work.
	if err := r.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
