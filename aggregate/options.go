package aggregate

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chronicle-go/chronicle/internal/backoff"
	"github.com/chronicle-go/chronicle/internal/telemetry"
	"github.com/chronicle-go/chronicle/snapshot"
)

// Option configures a [Repository]. An option given a value it cannot use
// makes [NewRepository] fail; a nil Option is ignored.
type Option func(*config)

type config struct {
	category    string
	snapshots   snapshot.Store
	policy      snapshot.Policy
	async       bool
	snapTimeout time.Duration
	maxInFlight int
	logger      *slog.Logger
	retries     int
	backoff     backoff.Policy
	readBatch   int
	cacheSize   int

	telemetry telemetry.Providers

	errs []error // what the options could not use
}

// Defaults of the repository's options.
const (
	// DefaultRetries is how many times Update runs a command again after a
	// conflict unless [WithRetries] says otherwise.
	DefaultRetries = 10
	// DefaultBackoffFirst and DefaultBackoffLongest bound the wait between
	// Update's retries unless [WithBackoff] says otherwise.
	DefaultBackoffFirst   = time.Millisecond
	DefaultBackoffLongest = 100 * time.Millisecond
	// DefaultSnapshotTimeout bounds each snapshot write unless
	// [WithSnapshotTimeout] says otherwise.
	DefaultSnapshotTimeout = 5 * time.Second
)

func defaults() config {
	return config{
		snapTimeout: DefaultSnapshotTimeout,
		maxInFlight: 8,
		retries:     DefaultRetries,
		backoff:     backoff.Policy{First: DefaultBackoffFirst, Longest: DefaultBackoffLongest},
	}
}

// apply applies the options, skipping nil ones, and returns the config
// or every problem found.
func apply(opts []Option) (config, error) {
	cfg := defaults()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return cfg, errors.Join(cfg.errs...)
}

func (c *config) bad(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("aggregate: "+format, args...))
}

// WithCategory makes the stream ID of the aggregate id category + "-" + id
// ("account" and "42" give "account-42"). Without it the stream ID is the
// aggregate ID as given.
func WithCategory(category string) Option { return func(c *config) { c.category = category } }

// WithSnapshots loads aggregates from the latest snapshot in store and takes
// a new one when policy says so after a save (for example
// snapshot.Every(100)). A nil store or policy disables snapshots.
func WithSnapshots(store snapshot.Store, policy snapshot.Policy) Option {
	return func(c *config) { c.snapshots, c.policy = store, policy }
}

// WithAsyncSnapshots writes snapshots in the background instead of during
// Save: the state is encoded during Save, and the write happens in a
// goroutine bounded by the snapshot timeout. At most a few writes run at
// once per repository; a snapshot due while they are busy is skipped (the
// next one due is taken). Call [Repository.Flush] or [Repository.Close] to
// wait for them, for instance before shutting down.
func WithAsyncSnapshots() Option { return func(c *config) { c.async = true } }

// WithSnapshotTimeout bounds each snapshot write (default 5s). d must be
// positive.
func WithSnapshotTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.bad("WithSnapshotTimeout(%s): want a positive duration", d)
			return
		}
		c.snapTimeout = d
	}
}

// WithLogger sets the logger for warnings about ignored or failed
// snapshots and retried updates (default, and with nil: slog.Default()).
// Errors are logged under the key "err".
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithRetries sets how many times Update runs a command again after a
// concurrency conflict before it returns the conflict (default 10; 0 never
// retries). n must not be negative.
func WithRetries(n int) Option {
	return nonNegative("WithRetries", n, func(c *config) *int { return &c.retries })
}

// WithBackoff sets the wait between [Repository.Update]'s retries, the only
// wait it governs: after the k-th concurrency conflict in a row (k = 1,
// 2, ...), Update waits a random duration between half and all of
// min(longest, first*2^(k-1)) before it loads the aggregate and runs the
// command again (defaults 1ms and 100ms). A cached state found stale is
// reloaded once at once, without a wait. Want 0 < first <= longest.
func WithBackoff(first, longest time.Duration) Option {
	return func(c *config) {
		p := backoff.Policy{First: first, Longest: longest}
		if !p.Valid() {
			c.bad("WithBackoff(%s, %s): want 0 < first <= longest", first, longest)
			return
		}
		c.backoff = p
	}
}

// WithReadBatchSize sets how many events a load fetches per round trip
// (default, and with 0: the store's default). n must not be negative.
func WithReadBatchSize(n int) Option {
	return nonNegative("WithReadBatchSize", n, func(c *config) *int { return &c.readBatch })
}

// WithCache keeps the state of up to n recently saved aggregates in memory,
// encoded like a snapshot (so the aggregate must survive encoding/json, as
// for snapshots). Update then runs the command on the cached state and
// appends expecting the cached version, without reading the stream first;
// when another writer got there first the append conflicts, the entry is
// dropped and the command runs again on a fresh load. When the command
// fails or raises nothing on the cached state, Update reads the events
// after it and, if there are any, runs the command again on the caught-up
// state, so a stale entry never yields a wrong rejection or no-op. Load
// uses a cached state like a snapshot and reads only the events after it,
// so it never returns stale state. Use it when one process does most of the
// writing to an aggregate. n = 0 disables the cache (the default); n must
// not be negative.
func WithCache(n int) Option {
	return nonNegative("WithCache", n, func(c *config) *int { return &c.cacheSize })
}

// nonNegative returns the option called name, which sets the field that
// field points to to n, or records that n is negative.
func nonNegative(name string, n int, field func(*config) *int) Option {
	return func(c *config) {
		if n < 0 {
			c.bad("%s(%d): want 0 or more", name, n)
			return
		}
		*field(c) = n
	}
}
