package memory

import (
	"context"
	"sync"

	"github.com/google/uuid"
)

// identity is a store's identity, created on first use.
type identity struct {
	once sync.Once
	id   uuid.UUID
}

// StoreID returns the store's identity: a random UUID, the same for the
// store's whole life and different for every store. The relay stamps it on
// each message it publishes, so that a stream or a message of another
// store is refused instead of silently mixed in.
func (s *Store) StoreID(context.Context) (uuid.UUID, error) {
	s.identity.once.Do(func() { s.identity.id = uuid.New() })
	return s.identity.id, nil
}
