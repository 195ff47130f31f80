package aggregate

import (
	"log/slog"
	"time"

	"github.com/chronicle-go/chronicle/snapshot"
	"github.com/chronicle-go/chronicle/upcast"
)

// Option configures a [Repository].
type Option func(*config)

type config struct {
	category    string
	chain       *upcast.Chain
	snapshots   snapshot.Store
	policy      snapshot.Policy
	async       bool
	snapTimeout time.Duration
	maxInFlight int
	logger      *slog.Logger
	retries     int
	backoffMin  time.Duration
	backoffMax  time.Duration
	readBatch   int
	cacheSize   int
}

func defaults() config {
	return config{
		snapTimeout: 5 * time.Second,
		maxInFlight: 8,
		retries:     10,
		backoffMin:  time.Millisecond,
		backoffMax:  100 * time.Millisecond,
	}
}

// WithCategory makes the stream ID of the aggregate id category + "-" + id
// ("account" and "42" give "account-42"). Without it the stream ID is the
// aggregate ID as given.
func WithCategory(category string) Option { return func(c *config) { c.category = category } }

// WithUpcaster runs every loaded event through chain, so events stored at
// older schema versions reach Apply at their current shape. It applies to
// every load: Load, LoadAt, Update, with or without a snapshot.
func WithUpcaster(chain *upcast.Chain) Option { return func(c *config) { c.chain = chain } }

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

// WithSnapshotTimeout bounds each snapshot write (default 5s).
func WithSnapshotTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.snapTimeout = d
		}
	}
}

// WithLogger sets the logger for warnings about ignored or failed
// snapshots and retried updates (default, and with nil: slog.Default()).
// Errors are logged under the key "err".
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithRetries sets how many times Update runs a command again after a
// concurrency conflict before it returns the conflict (default 10; 0 never
// retries).
func WithRetries(n int) Option {
	return func(c *config) {
		if n >= 0 {
			c.retries = n
		}
	}
}

// WithBackoff sets the bounds of the jittered exponential wait before each
// retry of Update: the k-th wait is random in [0, min(longest, first*2^k)]
// (defaults 1ms and 100ms). A bound of 0 or less keeps its default; a
// longest shorter than first is raised to first.
func WithBackoff(first, longest time.Duration) Option {
	return func(c *config) {
		if first > 0 {
			c.backoffMin = first
		}
		if longest > 0 {
			c.backoffMax = longest
		}
		c.backoffMax = max(c.backoffMax, c.backoffMin)
	}
}

// WithReadBatchSize sets how many events a load fetches per round trip
// (default: the store's default).
func WithReadBatchSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.readBatch = n
		}
	}
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
// so it never returns stale state. Use it when one process does most of the writing to
// an aggregate; n <= 0 disables the cache (the default).
func WithCache(n int) Option { return func(c *config) { c.cacheSize = n } }
