package relay_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/relay"
)

// Example runs a relay next to a service: it publishes every event the
// service appends to the JetStream stream CHRONICLE, on subjects
// chronicle.events.<category>.<type>.
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

	store, err := postgres.New(pool)
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

// ExampleRecordFromMsg shows the message the relay publishes for a record,
// and how a consumer reads the record back.
func ExampleRecordFromMsg() {
	rec := eventstore.Record{
		ID:            uuid.MustParse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
		StreamID:      "account-42",
		StreamVersion: 3,
		Position:      eventstore.Position{TxID: 1234, Seq: 77},
		Type:          "FundsDeposited",
		SchemaVersion: 1,
		Data:          []byte(`{"amount":100}`),
		Metadata:      eventstore.Metadata{eventstore.CorrelationIDKey: "req-7"},
		RecordedAt:    time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
	}
	msg := relay.NewMsg(relay.DefaultSubjectPrefix, rec)
	fmt.Println(msg.Subject)
	for _, h := range []string{relay.HeaderMsgID, relay.HeaderStream, relay.HeaderVersion, relay.HeaderPosition,
		relay.HeaderType, relay.HeaderSchemaVersion, relay.HeaderRecordedAt, relay.HeaderMetadata} {
		fmt.Printf("%s: %s\n", h, msg.Header.Get(h))
	}

	got, err := relay.RecordFromMsg(msg.Subject, msg.Header, msg.Data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.StreamID, got.StreamVersion, got.Position, got.Metadata.CorrelationID(), string(got.Data))
	// Output:
	// chronicle.events.account.FundsDeposited
	// Nats-Msg-Id: 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b
	// Chronicle-Stream: account-42
	// Chronicle-Version: 3
	// Chronicle-Position: 1234/77
	// Chronicle-Type: FundsDeposited
	// Chronicle-Schema-Version: 1
	// Chronicle-Recorded-At: 2024-05-06T07:08:09Z
	// Chronicle-Metadata: {"correlation_id":"req-7"}
	// account-42 3 1234/77 req-7 {"amount":100}
}
