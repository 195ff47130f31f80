package postgres

import "time"

// GroupQueued returns how many appends wait in s's group commit queue or
// (queued behind an append of their stream being sent): tests wait on it instead of
// racing a goroutine's start.
func GroupQueued(s *Store) int {
	if s.group == nil {
		return 0
	}
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.queue)
}

// GroupConns is how many group commit flushers, each with a connection of
// its own, send batches at a time.
const GroupConns = groupConns

// GroupSecondAt is how many appends must wait while the first flusher is
// sending for the second one to send them.
const GroupSecondAt = groupSecondAt

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
