package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
)

// Open a store, create its tables, append to a stream and read it back.
// (It needs a database, so it is compiled but not run by go test.)
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	store, err := espg.New(pool, espg.WithSchema("billing"))
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil { // idempotent; run it at start-up
		log.Fatal(err)
	}

	res, err := store.Append(ctx, "account-42", eventstore.NoStream,
		eventstore.Event{Type: "AccountOpened", Data: []byte(`{"owner":"Ada"}`)},
		eventstore.Event{Type: "MoneyDeposited", Data: []byte(`{"amount":100}`)},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("account-42 is at version", res.Version)

	for rec, err := range store.ReadStream(ctx, "account-42", eventstore.ReadStreamOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.StreamVersion, rec.Type, string(rec.Data))
	}
}

// A conflicting append tells the caller the stream's actual version.
func ExampleStore_Append_conflict() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := espg.New(pool)
	if err != nil {
		log.Fatal(err)
	}

	_, err = store.Append(ctx, "account-42", eventstore.Exact(1),
		eventstore.Event{Type: "MoneyWithdrawn", Data: []byte(`{"amount":30}`)})
	if ce, ok := errors.AsType[*eventstore.ConflictError](err); ok {
		fmt.Println("reload: the stream is at version", ce.Actual)
	}
}

// Follow the global log from a checkpoint: it catches up, then waits for new
// events until ctx ends.
func ExampleStore_Follow() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := espg.New(pool)
	if err != nil {
		log.Fatal(err)
	}

	var checkpoint eventstore.Position // load it from where you keep it
	for rec, err := range store.Follow(ctx, eventstore.ReadAllOptions{After: checkpoint, Categories: []string{"account"}}) {
		if err != nil {
			log.Println("follow stopped:", err)
			return
		}
		fmt.Println(rec.Position, rec.StreamID, rec.Type)
		checkpoint = rec.Position
	}
}

// Status shows how far an old open transaction holds readers back.
func ExampleStore_Status() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := espg.New(pool)
	if err != nil {
		log.Fatal(err)
	}
	st, err := store.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("head", st.Head, "held back", st.HeldBack)
	if st.Oldest != nil {
		fmt.Printf("oldest open transaction: pid %d, open for %s (%s)\n", st.Oldest.PID, st.Oldest.Age, st.Oldest.State)
	}
}

// GroupCommitStats tells how well concurrent appends share transactions:
// appends per transaction, and how many a flusher sent back to run alone
// (a refused batch, or a stream lock that AppendTx transactions hold for
// long). The same counts are OpenTelemetry metrics (WithMeterProvider).
func ExampleStore_GroupCommitStats() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := espg.New(pool)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // stops the flushers and gives back their connections

	// ... appends from many goroutines ...

	st := store.GroupCommitStats()
	if tx := st.Alone + st.Batches; tx > 0 {
		fmt.Printf("%.1f appends per transaction, %d sent back to run alone\n",
			float64(st.Alone+st.Batched)/float64(tx), st.Fallback)
	}
}
