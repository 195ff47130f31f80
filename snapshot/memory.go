package snapshot

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// MemoryStore is a [Store] in memory, for tests and single-process use. The
// zero value is not usable: call [NewMemoryStore].
type MemoryStore struct {
	mu    sync.RWMutex
	snaps map[string]Snapshot
}

// NewMemoryStore returns an empty memory store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{snaps: map[string]Snapshot{}} }

// Load implements [Store]. The returned snapshot's Data is a copy.
func (m *MemoryStore) Load(ctx context.Context, streamID string) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: load %q: %w", streamID, err)
	}
	if err := ValidateStreamID(streamID); err != nil {
		return Snapshot{}, err
	}
	m.mu.RLock()
	s, ok := m.snaps[streamID]
	m.mu.RUnlock()
	if !ok {
		return Snapshot{}, fmt.Errorf("snapshot: stream %q: %w", streamID, ErrNotFound)
	}
	s.Data = slices.Clone(s.Data)
	return s, nil
}

// Save implements [Store]. It keeps a copy of s.Data; a zero TakenAt is
// stored as now.
func (m *MemoryStore) Save(ctx context.Context, s Snapshot) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("snapshot: save %q at version %d: %w", s.StreamID, s.Version, err)
	}
	if err := s.Validate(); err != nil {
		return err
	}
	if s.TakenAt.IsZero() {
		s.TakenAt = time.Now()
	}
	s.Data = slices.Clone(s.Data)
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.snaps[s.StreamID]; ok && !Newer(s, old) {
		return nil
	}
	m.snaps[s.StreamID] = s
	return nil
}

// Len returns the number of streams with a snapshot.
func (m *MemoryStore) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.snaps)
}
