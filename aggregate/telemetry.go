package aggregate

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
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
// no-op until the service sets one.
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
