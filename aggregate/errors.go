package aggregate

import (
	"errors"
	"fmt"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound means the aggregate's stream does not exist. It wraps
	// [eventstore.ErrStreamNotFound], so either sentinel matches.
	ErrNotFound = fmt.Errorf("aggregate: not found: %w", eventstore.ErrStreamNotFound)
	// ErrAlreadyExists means Create found the aggregate's stream already
	// there. The error returned also matches
	// [eventstore.ErrConcurrencyConflict].
	ErrAlreadyExists = errors.New("aggregate: already exists")
	// ErrVersionNotFound means LoadAt asked for a version the stream has
	// not reached.
	ErrVersionNotFound = errors.New("aggregate: version not found")
)
