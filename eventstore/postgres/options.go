package postgres

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/internal/telemetry"
)

// DefaultPollInterval is how often [Store.Follow] polls when no notification
// wakes it.
const DefaultPollInterval = 500 * time.Millisecond

// maxEventSizeLimit bounds WithMaxEventSize: jsonb values hold at most
// 255 MiB.
const maxEventSizeLimit = 255 << 20

// Option configures a [Store].
type Option func(*config)

type config struct {
	schema       string
	logger       *slog.Logger
	pollInterval time.Duration
	notify       bool
	maxEventSize int
	groupCommit  bool
	groupLoads   bool
	telemetry    telemetry.Providers
	noTelemetry  bool
}

// WithSchema sets the PostgreSQL schema holding the store's tables; the
// default is "chronicle". The name must be a plain lower-case identifier.
func WithSchema(name string) Option { return func(c *config) { c.schema = name } }

// WithLogger sets the logger of what the store absorbs (a lost
// notification connection, a failed notification, a retried append); the
// default, and a nil logger, is slog.Default(). Errors are logged under
// the key "err".
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithPollInterval sets how often [Store.Follow] reads the log when no
// notification wakes it; the default is [DefaultPollInterval]. It bounds how
// late a follower sees events when notifications are off or lost.
func WithPollInterval(d time.Duration) Option { return func(c *config) { c.pollInterval = d } }

// WithNotify turns the notifications that wake followers on (the default)
// or off. With them on, an append that finds no notification sent by this
// Store within [NotifyWindow] runs pg_notify in a second implicit
// transaction pipelined after its own, in the same round trip; other
// appends leave it to one trailing notification, sent through the pool
// when the window ends. Followers therefore see an append at most
// NotifyWindow (plus a read) after it committed, and PostgreSQL runs at
// most about two notifying transactions per window, however many appends.
// With notifications off, followers see new events within the poll
// interval.
func WithNotify(on bool) Option { return func(c *config) { c.notify = on } }

// WithMaxEventSize sets the largest event the store accepts, in bytes, as
// [eventstore.EventSize] measures it: stream ID, type, and data and
// metadata as the store returns them (jsonb prints numbers in full, so a
// few bytes of exponent can read back as many kilobytes). The default is
// [eventstore.DefaultMaxEventSize], 900 KiB, below NATS's default
// max_payload of 1 MiB with room for the relay's headers; raise it only
// with the NATS server's max_payload. [Store.MaxEventSize] reports it.
func WithMaxEventSize(n int) Option { return func(c *config) { c.maxEventSize = n } }

// WithGroupCommit turns group commit on (the default) or off. With it on,
// concurrent calls to [Store.Append] are coalesced: one flusher per Store,
// on a connection of its own taken out of the pool when the first Append
// comes (and given back after a few idle seconds, or by [Store.Close]),
// sends the appends waiting at that moment, at most one per stream, in one
// transaction and one round trip, and hands each caller exactly the result
// or error it would have had alone (ADR 0013). A lone caller waits for no
// one. Every guarantee of Append holds; [Store.AppendTx] is not affected.
// It saves the server a third or more of its CPU per event when appends
// come together (see docs/benchmarks.md); a second flusher, on a second
// connection, sends while 8 or more appends wait for the first. Turn it
// off to give each
// Append its own pool connection and transaction, as before:
// espg.WithGroupCommit(false).
func WithGroupCommit(on bool) Option { return func(c *config) { c.groupCommit = on } }

// WithGroupLoads turns group loads on (the default) or off. With them on,
// concurrent calls to [Store.ReadStreamWithSnapshot] (the loads of
// aggregate.Repository with a snappg snapshot store) are coalesced: a
// load that finds no other read of the same snapshots table in flight runs
// its own query at once, as without group loads; loads that come while one
// is in flight queue, and one flusher per Store, on a connection of its own
// taken out of the pool (given back after a few idle seconds, or by
// [Store.Close]), reads them all in one query and one round trip and hands
// each caller exactly what its own query would have returned (ADR 0022).
// Turn them off to give each load its own query on a pool connection:
// espg.WithGroupLoads(false).
func WithGroupLoads(on bool) Option { return func(c *config) { c.groupLoads = on } }

func (c *config) validate() error {
	var errs []error
	if err := pgmigrate.ValidateSchema(c.schema); err != nil {
		errs = append(errs, fmt.Errorf("postgres: %w", err))
	}
	if c.maxEventSize <= 0 || c.maxEventSize > maxEventSizeLimit {
		errs = append(errs, fmt.Errorf("postgres: max event size must be between 1 and %d bytes, got %d", maxEventSizeLimit, c.maxEventSize))
	}
	if c.pollInterval <= 0 {
		errs = append(errs, fmt.Errorf("postgres: poll interval must be positive, got %s", c.pollInterval))
	}
	return errors.Join(errs...)
}
