package projection

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Store keeps projections' checkpoints, registrations and dead letters, and
// opens the units of work in which handlers write their read models.
// [MemoryStore] keeps them in memory; projection/postgres keeps them in
// PostgreSQL, in the transaction of the read model.
type Store interface {
	// Begin opens a unit of work for build b. It knows b's checkpoint as
	// committed; with a transactional store it also holds a lock on it, so
	// two runners of one build apply each event once.
	Begin(ctx context.Context, b Build) (UnitOfWork, error)
	// Atomic reports whether a rolled back unit of work also undoes the
	// handler's writes. When it does not, the runner commits after every
	// event.
	Atomic() bool
	// Checkpoint returns b's committed checkpoint; zero when b has none.
	Checkpoint(ctx context.Context, b Build) (eventstore.Position, error)
	// Registration returns what the store knows of a projection's builds;
	// a projection never seen has a zero Registration with only its Name.
	Registration(ctx context.Context, name string) (Registration, error)
	// SetTarget records b as the build under way for its projection.
	SetTarget(ctx context.Context, b Build) error
	// DeadLetters lists a projection's dead letters in log order.
	DeadLetters(ctx context.Context, name string) ([]DeadLetter, error)
}

// Tx is what a handler (and Setup) gets: the build it writes and the names
// of that build's tables. A backend hands its own transaction through it
// (projection/postgres: [From] there returns the pgx transaction's view).
// It has none of the runner's controls: the checkpoint, dead letters, the
// switch and the commit belong to the [UnitOfWork] behind it.
type Tx interface {
	// Build is the build this unit of work writes.
	Build() Build
	// Table returns the name of the build's copy of a read-model table,
	// ready to use in a statement: for Postgres the quoted, schema
	// qualified "schema"."balances_v2".
	Table(base string) string
}

// UnitOfWork is the runner's transaction on one build: the handlers'
// writes (through [UnitOfWork.Handlers]), the build's checkpoint and dead
// letters, and the switch, committed together. Only the runner and
// [Admin] hold it; a store implements it.
type UnitOfWork interface {
	// Handlers returns the view handed to handlers and Setup.
	Handlers() Tx
	// Checkpoint is the build's checkpoint as seen by this unit of work.
	Checkpoint() eventstore.Position
	// SetCheckpoint records the position of the last applied event; the
	// runner calls it last, just before Commit.
	SetCheckpoint(ctx context.Context, pos eventstore.Position, applied int) error
	// AddDeadLetter records a dead letter (replacing one for the same
	// projection and event).
	AddDeadLetter(ctx context.Context, dl DeadLetter) error
	// DeleteDeadLetter removes the build's projection's dead letter of an
	// event; removing one that does not exist is not an error.
	DeleteDeadLetter(ctx context.Context, eventID uuid.UUID) error
	// Activate makes the build current, re-pointing the stable names of
	// tables at its tables.
	Activate(ctx context.Context, tables []string) error
	// Commit commits the unit of work.
	Commit(ctx context.Context) error
	// Rollback abandons it; after Commit it does nothing.
	Rollback(ctx context.Context) error
}

// TransientChecker is implemented by a [Store] that can tell a passing
// failure of its own (a lost connection, a serialization failure, a server
// shutting down) from an error the event caused. The runner retries the
// former in place, with backoff and without counting an attempt against
// the event, so an outage never sends healthy events to dead letters.
type TransientChecker interface {
	Transient(err error) bool
}

// DeadLetter is an event a projection failed to apply MaxAttempts times.
type DeadLetter struct {
	// Projection is the projection's name.
	Projection string
	// Build is the build that failed on it.
	Build Build
	// EventID, StreamID, StreamVersion, Position and Type identify the
	// event.
	EventID       uuid.UUID
	StreamID      string
	StreamVersion int64
	Position      eventstore.Position
	Type          string
	// Error is the last error.
	Error string
	// Attempts is how many times it was tried.
	Attempts int
	// FailedAt is when it was set aside.
	FailedAt time.Time
}

func deadLetterOf(b Build, rec eventstore.Record, err error, attempts int, now time.Time) DeadLetter {
	return DeadLetter{
		Projection: b.Name, Build: b, EventID: rec.ID, StreamID: rec.StreamID, StreamVersion: rec.StreamVersion,
		Position: rec.Position, Type: rec.Type, Error: err.Error(), Attempts: attempts, FailedAt: now,
	}
}
