package projection

import (
	"context"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// MaxLagCount is the most events Status counts when it measures a
// projection's lag; a larger lag is reported as MaxLagCount with LagCapped.
const MaxLagCount = 10000

// Status is a snapshot of one projection, for operators.
type Status struct {
	// Name is the projection's name.
	Name string
	// Version is the version of the projection in this runner's code.
	Version int
	// Current is the build readers see; Target the build under way (equal
	// to Current unless rebuilding).
	Current, Target Build
	// State is what the projection is doing: in this runner when it runs
	// it; otherwise as the freshest alive heartbeat of another runner says
	// (see [Heartbeat.Alive]); otherwise Rebuilding while a build other
	// than the current one is registered, else Stopped.
	State State
	// Heartbeat is the heartbeat that speaks for the projection (the
	// freshest alive one, else the freshest one): the runner's Owner and
	// when it was last seen (SeenAt). It is zero when the store records
	// none.
	Heartbeat Heartbeat
	// Checkpoint is the position of the last event Target has applied.
	Checkpoint eventstore.Position
	// Head is the last position of the log readers can see.
	Head eventstore.Position
	// Lag is the number of events after Checkpoint that the projection
	// reads (those of its Categories, and of its Types unless its decoder
	// upcasts, see [Projection.Types]), counted up to MaxLagCount (then
	// LagCapped is set), plus HeldBack: events committed but held back
	// from every reader by an old open transaction are not applied either
	// (they are counted whatever their stream or type).
	Lag       int
	LagCapped bool
	// LagTime is how long ago the oldest event not applied yet was
	// recorded; zero when there is none. While events are held back, it is
	// at least OldestOpen: they committed after that transaction began,
	// and no reader sees them.
	LagTime time.Duration
	// DeadLetters is the number of dead letters.
	DeadLetters int
	// HeldBack is the number of committed events that readers of the log
	// cannot see yet because an older transaction is still open, and
	// OldestOpen how long that transaction has been open, when the event
	// store reports it (see [WithLogStatus]).
	HeldBack   int64
	OldestOpen time.Duration
	// LastError is the last error that stopped or halted the projection.
	LastError string
}

// LogStatusFunc reports how far readers of the event log are held back by
// an old open transaction: the number of committed events not yet
// visible, and how long the oldest open transaction has been open.
type LogStatusFunc func(ctx context.Context) (heldBack int64, oldestOpen time.Duration, err error)

// HeldBackReporter is implemented by an event store that can say how far
// an old open transaction holds readers of its log back: the committed
// events not yet visible and how long the oldest open transaction has been
// open. When the runner's event store is one and no [WithLogStatus] is
// given, Status uses it.
type HeldBackReporter interface {
	HeldBack(ctx context.Context) (events int64, oldestOpen time.Duration, err error)
}

// WithLogStatus lets Status report how far an old open transaction holds
// readers back (and count those events as lag); projection/postgres adapts
// the PostgreSQL event store's Status to it (projpg.LogStatus). An event
// store that is a [HeldBackReporter] needs none.
func WithLogStatus(f LogStatusFunc) Option { return func(o *options) { o.logStatus = f } }
