package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/snapshot"
	snappg "github.com/chronicle-go/chronicle/snapshot/postgres"
	"github.com/chronicle-go/chronicle/snapshot/snapshottest"
)

func newStore(t *testing.T) *snappg.Store {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	s, err := snappg.New(pool, snappg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	snapshottest.Run(t, func(t *testing.T) snapshot.Store { return newStore(t) })
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.Postgres(t)
	if _, err := snappg.New(pool, snappg.WithSchema("Bad-Name")); err == nil {
		t.Fatal("invalid schema accepted")
	}
	if _, err := snappg.New(nil); err == nil {
		t.Fatal("nil pool accepted")
	}
	s, err := snappg.New(pool)
	if err != nil || s.Schema() != "chronicle" {
		t.Fatalf("default schema: %v, %v", s, err)
	}
}
