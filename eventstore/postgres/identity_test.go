package postgres_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore/memory"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
)

// TestStoreIdentity: Migrate gives each schema one identity, shared by
// every Store on it and kept across migrations; another schema (or a
// memory store) has another.
func TestStoreIdentity(t *testing.T) {
	t.Parallel()
	s1, pool := newStore(t)
	id1, err := s1.StoreID(ctx(t))
	if err != nil || id1 == uuid.Nil {
		t.Fatalf("StoreID: %v, %v", id1, err)
	}
	s2, err := espg.New(pool, espg.WithSchema(s1.Schema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Migrate(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if id2, err := s2.StoreID(ctx(t)); err != nil || id2 != id1 {
		t.Fatalf("a second Store on schema %s: identity %v, %v; want %v", s1.Schema(), id2, err, id1)
	}
	other, _ := newStore(t)
	if id3, err := other.StoreID(ctx(t)); err != nil || id3 == id1 {
		t.Fatalf("another schema: identity %v, %v; want one other than %v", id3, err, id1)
	}
	unmigrated, err := espg.New(pool, espg.WithSchema("never_migrated_identity"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unmigrated.StoreID(ctx(t)); err == nil {
		t.Fatal("StoreID of a schema never migrated: no error")
	}
	m1, m2 := memory.New(), memory.New()
	a, _ := m1.StoreID(ctx(t))
	b, _ := m1.StoreID(ctx(t))
	c, _ := m2.StoreID(ctx(t))
	if a == uuid.Nil || a != b || a == c {
		t.Fatalf("memory identities %v %v %v: want one per store, stable", a, b, c)
	}
}
