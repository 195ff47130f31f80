package aggregate_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/snapshot"
	snappg "github.com/chronicle-go/chronicle/snapshot/postgres"
)

// With PostgreSQL snapshots on the event store's pool, an Update without a
// cached state reads the snapshot and the events after it in one query:
// it sends what an Append sends plus exactly one statement. Loads give the
// same state as the two-read path, with or without a snapshot, with a
// snapshot of another revision, and with a tail longer than a read batch.
func TestUpdateWithSnapshotsIsOneReadPlusAppend(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, schema := testenv.Postgres(t)
	cfg := pool.Config()
	qc := &queryCounter{}
	cfg.ConnConfig.Tracer = qc
	traced, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(traced.Close)
	store, err := espg.New(traced, espg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	snaps, err := snappg.New(traced, snappg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := snaps.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t, store, registry(t), newAccount, aggregate.WithSnapshots(snaps, snapshot.Every(10)), aggregate.WithReadBatchSize(8))
	seed(t, repo, "q-1", 13) // snapshot at 10, 3 events after it
	seed(t, repo, "q-2", 5)  // no snapshot
	seed(t, repo, "q-3", 25) // snapshot at 20

	qc.n.Store(0)
	if _, err := store.Append(ctx, "q-2", eventstore.Exact(5), eventstore.Event{Type: "Deposited", SchemaVersion: 2, Data: []byte(`{"amount":1}`)}); err != nil {
		t.Fatal(err)
	}
	appendQueries := qc.n.Swap(0)
	if _, err := repo.Update(ctx, "q-1", func(a *Account) error { return a.Deposit(1) }); err != nil {
		t.Fatal(err)
	}
	if got := qc.n.Load(); got != appendQueries+1 {
		t.Fatalf("Update with a snapshot sent %d statements, an Append alone %d; want the Append's plus one read", got, appendQueries)
	}
	if st := repo.Stats(); st.OneQueryLoads == 0 {
		t.Fatalf("Stats = %+v: no one-query load", st)
	}

	// The same states as a repository reading snapshots and events apart.
	plain := newRepo(t, store, registry(t), newAccount)
	for _, id := range []string{"q-1", "q-2", "q-3"} {
		got, err := repo.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want, err := plain.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version() != want.Version() || got.Balance != want.Balance || got.Deposits != want.Deposits || got.Owner != want.Owner {
			t.Fatalf("%s: one-query load %+v (version %d), replay %+v (version %d)", id, got, got.Version(), want, want.Version())
		}
	}
	// A snapshot of another revision is ignored: the stream is replayed.
	other := newRepo(t, store, registry(t), func(string) *Account { return &Account{revision: 2} }, aggregate.WithSnapshots(snaps, snapshot.Every(0)))
	got, err := other.Load(ctx, "q-3")
	if err != nil || got.Version() != 25 || got.Deposits != 24 {
		t.Fatalf("load with another revision: %+v (version %d), %v", got, got.Version(), err)
	}
	// A missing aggregate is ErrNotFound.
	if _, err := repo.Load(ctx, "nobody"); !errors.Is(err, aggregate.ErrNotFound) {
		t.Fatalf("load of a missing aggregate: %v, want ErrNotFound", err)
	}
}
