package eventstore

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrConcurrencyConflict means an append's expected version did not
	// match the stream. The error is a [*ConflictError] with the details.
	ErrConcurrencyConflict = errors.New("eventstore: concurrency conflict")
	// ErrStreamNotFound means a stream that must exist does not.
	ErrStreamNotFound = errors.New("eventstore: stream not found")
	// ErrInvalidInput means an argument was rejected before anything was
	// written. The error is a [*ValidationError] with the details.
	ErrInvalidInput = errors.New("eventstore: invalid input")
	// ErrEventTooLarge means an append was refused because one of its
	// events is larger than the store's maximum event size. The error is a
	// [*ValidationError] about the "size" of the event, and matches
	// [ErrInvalidInput] too.
	ErrEventTooLarge = errors.New("eventstore: event too large")
)

// ConflictError is returned when an append's expected version does not match
// the stream's actual version. It matches [ErrConcurrencyConflict].
type ConflictError struct {
	// Stream is the ID of the stream appended to.
	Stream string
	// Expected is the expected version given to the append.
	Expected ExpectedVersion
	// Actual is the stream's version when the append was refused; 0 when the
	// stream does not exist.
	Actual int64
	// Reason, when set, says why the append conflicts beyond a version
	// mismatch, for example an event ID already stored elsewhere.
	Reason string
}

// Error implements error.
func (e *ConflictError) Error() string {
	msg := fmt.Sprintf("eventstore: concurrency conflict on stream %q: expected version %s, actual %d",
		e.Stream, e.Expected, e.Actual)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Is reports whether target is [ErrConcurrencyConflict].
func (e *ConflictError) Is(target error) bool { return target == ErrConcurrencyConflict }

// ValidationError reports bad input to a store method. It matches
// [ErrInvalidInput].
type ValidationError struct {
	// Stream is the stream ID involved, if any.
	Stream string
	// Index is the position of the offending event in the append, or -1.
	Index int
	// Type is the offending event's type, when Index is not -1 and the
	// type itself is printable (it is empty when the type is what was
	// wrong).
	Type string
	// Field names what was wrong: "stream id", "type", "schema version",
	// "data", "metadata", "id", "size", "expected version", "events",
	// "options".
	Field string
	// Problem says what was wrong with it.
	Problem string
	// Err, when set, is the backend's own error refusing the input.
	Err error
}

// Error implements error.
func (e *ValidationError) Error() string {
	msg := "eventstore: invalid " + e.Field
	if e.Index >= 0 {
		msg += fmt.Sprintf(" of event %d", e.Index)
		if e.Type != "" {
			msg += fmt.Sprintf(" (type %q)", truncate(e.Type, 80))
		}
	}
	if e.Stream != "" {
		msg += fmt.Sprintf(" in stream %q", truncate(e.Stream, 80))
	}
	return msg + ": " + e.Problem
}

// Is reports whether target is [ErrInvalidInput], or [ErrEventTooLarge]
// for an error about an event's size.
func (e *ValidationError) Is(target error) bool {
	return target == ErrInvalidInput || (target == ErrEventTooLarge && e.Field == "size")
}

// Unwrap returns the error the input was refused with by the store's
// backend, if any (a *pgconn.PgError, for example).
func (e *ValidationError) Unwrap() error { return e.Err }

// IsRetryable reports whether err is worth retrying after reloading state:
// true for a concurrency conflict, false for anything else, including
// invalid input and a missing stream.
func IsRetryable(err error) bool { return errors.Is(err, ErrConcurrencyConflict) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
