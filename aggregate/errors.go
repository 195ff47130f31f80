package aggregate

import (
	"errors"
	"strconv"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound means the aggregate's stream does not exist. It wraps
	// [eventstore.ErrStreamNotFound], so either sentinel matches.
	ErrNotFound error = sentinel{"aggregate: not found", eventstore.ErrStreamNotFound}
	// ErrAlreadyExists means Create found the aggregate's stream already
	// there. The error returned also matches
	// [eventstore.ErrConcurrencyConflict].
	ErrAlreadyExists = errors.New("aggregate: already exists")
	// ErrVersionNotFound means LoadAt asked for a version the stream has
	// not reached.
	ErrVersionNotFound = errors.New("aggregate: version not found")
)

// sentinel is an error with its own message that wraps another sentinel.
type sentinel struct {
	msg  string
	wrap error
}

func (e sentinel) Error() string { return e.msg }
func (e sentinel) Unwrap() error { return e.wrap }

// notFoundError reports a missing stream once, without repeating the
// prefixes of the sentinels it matches: `aggregate: load "account-3": not
// found`. It matches [ErrNotFound] and eventstore.ErrStreamNotFound.
type notFoundError struct{ stream string }

func (e notFoundError) Error() string {
	return "aggregate: load " + strconv.Quote(e.stream) + ": not found"
}
func (e notFoundError) Unwrap() error { return ErrNotFound }
