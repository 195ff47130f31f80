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
