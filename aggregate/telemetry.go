package aggregate

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-go/chronicle/internal/telemetry"
)

// WithTracerProvider sets the OpenTelemetry tracer provider of the
// repository's load spans (chronicle.aggregate.load: stream, version the
// replay started from, whether it started from a snapshot or cached state,
// events replayed, resulting version). The event store's own spans, for
// the reads and the append, come from the store's provider. The default is
// OpenTelemetry's global provider, a no-op until the service sets one.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.telemetry.Tracer = tp }
}

// WithMeterProvider sets the OpenTelemetry meter provider of the
// repository's metrics (load duration, events replayed per load; see
// docs/operations.md). The default is OpenTelemetry's global provider, a
// no-op until the service sets one. With a provider given here, the
// repository's [Stats] are exported too, as counters of conflicts,
// retries, snapshots (taken, failed, skipped, ignored), snapshot loads
// (hit, miss, failed) and cache hits,
// until [Repository.Close].
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.telemetry.Meter = mp }
}

// versionOf is the version of a loaded aggregate, or 0 after an error.
func versionOf[T Aggregate](a T, err error) int64 {
	if err != nil || isNil(a) || a.root() == nil {
		return 0
	}
	return a.root().version
}

// observeStats exports the repository's Stats as counters when a meter
// provider was given.
func (r *Repository[T]) observeStats() {
	r.obs = telemetry.ObserveRepository(r.cfg.telemetry, func() telemetry.RepoStats {
		s := r.Stats()
		return telemetry.RepoStats{Retries: s.Retries, Conflicts: s.Conflicts, SnapshotsTaken: s.SnapshotsTaken,
			SnapshotsFailed: s.SnapshotsFailed, SnapshotsSkipped: s.SnapshotsSkipped, SnapshotsIgnored: s.SnapshotsIgnored,
			SnapshotHits: s.SnapshotHits, SnapshotMisses: s.SnapshotMisses, SnapshotLoadsFailed: s.SnapshotLoadsFailed,
			CacheHits: s.CacheHits, CacheStale: s.CacheStale}
	})
}

// unobserveStats stops exporting the Stats.
func (r *Repository[T]) unobserveStats() {
	if r.obs != nil {
		_ = r.obs.Unregister()
	}
}
