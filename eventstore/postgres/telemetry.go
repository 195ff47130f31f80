package postgres

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// WithTracerProvider sets the OpenTelemetry tracer provider of the store's
// spans: one per Append and AppendTx (chronicle.eventstore.append: stream,
// event count, expected version, resulting version and position, conflict)
// and per ReadAll (chronicle.eventstore.read_all). An append recorded in a
// span writes the span's W3C trace context into each event's metadata
// (eventstore.TraceParentKey), so that projections and other consumers
// link their spans to it. The default is OpenTelemetry's global provider,
// a no-op until the service sets one.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.telemetry.Tracer = tp }
}

// WithMeterProvider sets the OpenTelemetry meter provider of the store's
// metrics (chronicle.eventstore.append.duration by outcome,
// chronicle.eventstore.events.appended,
// chronicle.eventstore.append.idempotent_retries, and the counters of group
// commit and group loads, chronicle.eventstore.group_commit.appends and
// .batches, chronicle.eventstore.group_load.loads and .batches; see
// docs/operations.md). The
// default is OpenTelemetry's global provider, a no-op until the service
// sets one.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.telemetry.Meter = mp }
}

// WithInstrumentation turns the store's spans and metrics off (false) or
// on (true, the default). Off, Append and ReadAll make no OpenTelemetry
// call at all, not even to a no-op provider; events get no trace context.
// make bench compares the two with no provider set.
func WithInstrumentation(on bool) Option {
	return func(c *config) { c.noTelemetry = !on }
}
