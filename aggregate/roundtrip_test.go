package aggregate_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
)

// queryCounter counts the statements and batches sent to PostgreSQL,
// except the store's trailing notifications: a timer sends those after an
// append's throttle window, so they land in whichever count runs then.
type queryCounter struct{ n atomic.Int64 }

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if !strings.Contains(d.SQL, "pg_notify") {
		q.n.Add(1)
	}
	return ctx
}
func (*queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (q *queryCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	q.n.Add(1)
	return ctx
}
func (*queryCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (*queryCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// On PostgreSQL, Update sends what an Append sends plus exactly one
// statement: the read of the stream.
func TestUpdateIsOneReadPlusAppendOnPostgres(t *testing.T) {
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
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t, store, registry(t), newAccount)
	seed(t, repo, "q-1", 5)
	seed(t, repo, "q-2", 5)

	qc.n.Store(0)
	if _, err := store.Append(ctx, "q-2", eventstore.Exact(5), eventstore.Event{Type: "Deposited", SchemaVersion: 2, Data: []byte(`{"amount":1}`)}); err != nil {
		t.Fatal(err)
	}
	appendQueries := qc.n.Swap(0)
	t.Logf("an Append of one event sends %d statements", appendQueries)
	if _, err := repo.Update(ctx, "q-1", func(a *Account) error { return a.Deposit(1) }); err != nil {
		t.Fatal(err)
	}
	if got := qc.n.Load(); got != appendQueries+1 {
		t.Fatalf("Update sent %d statements, an Append alone %d; want the Append's plus one read", got, appendQueries)
	}
}
