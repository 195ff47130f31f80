package process

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// WithTracerProvider sets the OpenTelemetry tracer provider of the
// runner's spans: one per process step (chronicle.process.step: process
// type and ID, the trigger's type, ID and stream, outcome, the process's
// status after it), linked to the span of the append that wrote the
// trigger (from the W3C trace context in its metadata). The events and
// commands the step records are appended in its span, so the trace goes
// on through them. It is passed to the projection runner under the
// process runner too (its batch spans are the steps' parents). The default
// is OpenTelemetry's global provider, a no-op until the service sets one.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.telemetry.Tracer = tp }
}

// WithMeterProvider sets the OpenTelemetry meter provider of the runner's
// metrics per process type: processes started, completed, compensated and
// failed, and the time from start to end (see docs/operations.md; the
// gauges of timers pending and overdue are [Observe]'s). It is passed to
// the projection runner under the process runner too. The default is
// OpenTelemetry's global provider, a no-op until the service sets one.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.telemetry.Meter = mp }
}
