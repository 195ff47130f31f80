package projection

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// WithTracerProvider sets the OpenTelemetry tracer provider of the
// runner's spans: one per batch of deliveries a projection applies
// (chronicle.projection.batch: projection, build, events, checkpoint after
// it), linked to the span of each append that wrote its events (from the
// W3C trace context in their metadata, see eventstore.TraceParentKey), and
// one per WaitFor (chronicle.projection.wait_for). Handlers run in the
// batch's span, so commands they issue continue its trace. The default is
// OpenTelemetry's global provider, a no-op until the service sets one.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.telemetry.Tracer = tp }
}

// WithMeterProvider sets the OpenTelemetry meter provider of the runner's
// metrics (events applied, batch duration, dead letters, WaitFor duration;
// see docs/operations.md). The default is OpenTelemetry's global provider,
// a no-op until the service sets one.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.telemetry.Meter = mp }
}
