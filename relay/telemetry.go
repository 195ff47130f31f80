package relay

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// WithTracerProvider sets the OpenTelemetry tracer provider of the relay's
// spans: one per batch of records it sends to JetStream
// (chronicle.relay.publish: relay, records, last position), linked to the
// span of each append that wrote them (from the W3C trace context in
// their metadata, which each message also carries in its traceparent
// header). The default is OpenTelemetry's global provider, a no-op until
// the service sets one.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.telemetry.Tracer = tp }
}

// WithMeterProvider sets the OpenTelemetry meter provider of the relay's
// metrics (records published, publish duration, leader changes; see
// docs/operations.md). The default is OpenTelemetry's global provider, a
// no-op until the service sets one.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.telemetry.Meter = mp }
}
