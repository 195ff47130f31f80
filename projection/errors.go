package projection

import (
	"errors"
	"fmt"
)

// ErrUnknownProjection is returned for a projection name the runner was not
// given.
var ErrUnknownProjection = errors.New("projection: unknown projection")

// ErrHalted is wrapped by errors about a projection halted on a dead letter.
var ErrHalted = errors.New("projection: halted on a dead letter")

// ErrDeadLettered is wrapped by errors about an event set aside as a dead
// letter (see [DeadLetterError]).
var ErrDeadLettered = errors.New("projection: event dead-lettered")

// ErrDeadLetterNotFound is returned when a dead letter to retry or discard
// does not exist.
var ErrDeadLetterNotFound = errors.New("projection: dead letter not found")

// DeadLetterError says that an event went to the dead letters, with the
// dead letter. [Runner.WaitFor] returns it when the caller's write is the
// event. It matches [ErrDeadLettered], and [ErrHalted] when the projection
// halted on it (Policy Halt).
type DeadLetterError struct {
	// DeadLetter is the dead letter: event, build, error and attempts.
	DeadLetter DeadLetter
	// Policy is what the projection did: skipped the event or halted.
	Policy Policy
}

// Error describes the dead letter.
func (e *DeadLetterError) Error() string {
	dl := e.DeadLetter
	what := "dead-lettered"
	if e.Policy == Halt {
		what = "halted on a dead letter:"
	}
	return fmt.Sprintf("projection %q %s event %s (%s, stream %q version %d, position %s) after %d attempts: %s",
		dl.Projection, what, dl.EventID, dl.Type, dl.StreamID, dl.StreamVersion, dl.Position, dl.Attempts, dl.Error)
}

// Is matches ErrDeadLettered, and ErrHalted when the projection halted.
func (e *DeadLetterError) Is(target error) bool {
	return target == ErrDeadLettered || (target == ErrHalted && e.Policy == Halt)
}
