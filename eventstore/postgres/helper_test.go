package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
)

// newStore returns a migrated store in a fresh schema, and its pool.
func newStore(t *testing.T, opts ...espg.Option) (*espg.Store, *pgxpool.Pool) {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	s, err := espg.New(pool, append([]espg.Option{espg.WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx(t)); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s, pool
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// events returns n events of type "Tested" with data {"n": i}.
func events(n int) []eventstore.Event {
	out := make([]eventstore.Event, n)
	for i := range out {
		out[i] = eventstore.Event{Type: "Tested", Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	return out
}

func mustAppend(t *testing.T, s eventstore.Store, stream string, expected eventstore.ExpectedVersion, evs ...eventstore.Event) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(ctx(t), stream, expected, evs...)
	if err != nil {
		t.Fatalf("Append(%q, %s): %v", stream, expected, err)
	}
	return res
}

func collect(t *testing.T, seq func(func(eventstore.Record, error) bool)) []eventstore.Record {
	t.Helper()
	recs, err := eventstore.Collect(seq)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return recs
}

func versions(recs []eventstore.Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.StreamVersion
	}
	return out
}

func postgresListOpts(category string) eventstore.ListStreamsOptions {
	return eventstore.ListStreamsOptions{Category: category}
}

func newPool(t *testing.T) (*pgxpool.Pool, string) { return testenv.Postgres(t) }
