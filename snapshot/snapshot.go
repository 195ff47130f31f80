// Package snapshot keeps the state of an aggregate at a stream version, so
// that loading a long stream reads the latest snapshot and only the events
// after it.
//
// A [Snapshot] holds the stream ID, the stream version it was taken at, a
// revision of the shape of the state, the encoded state and when it was
// taken. A [Store] keeps the latest snapshot of each stream: [MemoryStore]
// here, and a PostgreSQL store in snapshot/postgres. A [Policy] such as
// [Every] decides when a save takes one.
//
// Snapshots are a cache: the events stay the source of truth. The aggregate
// repository ignores a snapshot whose revision is not the current one, or
// that fails to decode, and replays the stream from the start instead; and a
// snapshot that cannot be stored never fails the command that triggered it.
// So a snapshot store can be emptied at any time, and bumping the revision
// is how a change of the state's shape retires old snapshots.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// ErrNotFound means a stream has no snapshot.
var ErrNotFound = errors.New("snapshot: not found")

// Snapshot is the encoded state of an aggregate at a version of its stream.
type Snapshot struct {
	// StreamID is the aggregate's stream.
	StreamID string
	// Version is the stream version the state includes: the state after
	// applying events 1..Version.
	Version int64
	// Revision is the revision of the state's shape when the snapshot was
	// taken. A reader expecting another revision ignores the snapshot.
	Revision int
	// Data is the encoded state.
	Data []byte
	// TakenAt is when the snapshot was taken.
	TakenAt time.Time
}

// Store keeps the latest snapshot of each stream. Implementations are safe
// for concurrent use.
type Store interface {
	// Load returns the latest snapshot of a stream, or an error matching
	// [ErrNotFound] when there is none. A stream ID that
	// [ValidateStreamID] refuses is an error matching
	// eventstore.ErrInvalidInput.
	Load(ctx context.Context, streamID string) (Snapshot, error)
	// Save stores s as the stream's latest snapshot, unless the store holds
	// a snapshot of the same revision at a higher version (snapshots saved
	// out of order never move a stream's snapshot backwards). A snapshot
	// that [Snapshot.Validate] refuses is not written; the error matches
	// eventstore.ErrInvalidInput.
	Save(ctx context.Context, s Snapshot) error
}

// Policy decides when saving an aggregate takes a snapshot.
type Policy interface {
	// Due reports whether a save that moved a stream from version before to
	// version after should take a snapshot.
	Due(before, after int64) bool
}

// PolicyFunc adapts a function to a [Policy].
type PolicyFunc func(before, after int64) bool

// Due calls f.
func (f PolicyFunc) Due(before, after int64) bool { return f(before, after) }

// Every returns a policy that takes a snapshot when a save crosses a
// multiple of n: from version 95 to 103 with Every(100), for instance. With
// n below 1 it never takes one.
func Every(n int64) Policy {
	return PolicyFunc(func(before, after int64) bool {
		return n > 0 && after/n > before/n
	})
}

// Newer reports whether s should replace old as a stream's latest snapshot:
// it does unless old has the same revision and a higher version. Store
// implementations use it so they all agree.
func Newer(s, old Snapshot) bool {
	return s.Revision != old.Revision || s.Version >= old.Version
}

// Validate checks what every store requires of a snapshot to save: a
// valid stream ID (as [eventstore.ValidateStreamID] checks it) and a
// version of 1 or more. The error names the stream and matches
// [eventstore.ErrInvalidInput]. Store implementations call it before they
// write anything, so they all refuse the same input.
func (s Snapshot) Validate() error {
	if err := eventstore.ValidateStreamID(s.StreamID); err != nil {
		return fmt.Errorf("snapshot: save snapshot at version %d: %w", s.Version, err)
	}
	if s.Version < 1 {
		return fmt.Errorf("snapshot: save snapshot of stream %q at version %d: want a version of 1 or more: %w",
			s.StreamID, s.Version, eventstore.ErrInvalidInput)
	}
	return nil
}

// ValidateStreamID checks a stream ID given to a store's Load the way
// [Snapshot.Validate] does; the error matches [eventstore.ErrInvalidInput].
func ValidateStreamID(streamID string) error {
	if err := eventstore.ValidateStreamID(streamID); err != nil {
		return fmt.Errorf("snapshot: load snapshot: %w", err)
	}
	return nil
}
