package postgres_test

import (
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/eventstoretest"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
)

func TestConformance(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		pool, schema := newPool(t)
		s, err := espg.New(pool, espg.WithSchema(schema))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if err := s.Migrate(ctx(t)); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		return s
	})
}
