package postgres

import "time"

// GroupQueued returns how many appends wait in s's group commit queue or
// are held by its flusher for the next batch: tests wait on it instead of
// racing a goroutine's start.
func GroupQueued(s *Store) int {
	if s.group == nil {
		return 0
	}
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.queue) + s.group.held
}

// GroupOverflow is how many appends at most run on pool connections while
// a group commit batch is in flight.
const GroupOverflow = groupOverflow

// SetGroupLockTimeout sets how long s's flusher waits for a stream lock
// (groupLockTimeout otherwise); call it before s's first Append.
func SetGroupLockTimeout(s *Store, d time.Duration) { s.group.lockTimeout = d }

// GroupLoads returns how many loads wait in s's group loads queues, and
// how many the batch in flight serves: tests wait on them instead of
// racing a goroutine's start.
func GroupLoads(s *Store) (queued, batch int) {
	if s.loads == nil {
		return 0, 0
	}
	s.loads.mu.Lock()
	defer s.loads.mu.Unlock()
	for _, g := range s.loads.groups {
		g.mu.Lock()
		for _, r := range g.queue {
			if r.state.Load() == reqQueued {
				queued++
			}
		}
		batch += g.batch
		g.mu.Unlock()
	}
	return queued, batch
}
