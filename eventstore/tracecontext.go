package eventstore

// Metadata keys holding the W3C trace context of the append that wrote an
// event (https://www.w3.org/TR/trace-context/), set by a store whose
// append runs inside a recording OpenTelemetry span. They travel with the
// event next to its correlation and causation IDs, in PostgreSQL and in
// NATS headers, so that a consumer's span can link to the append's.
const (
	// TraceParentKey holds the traceparent: version, trace ID, the
	// append's span ID and flags.
	TraceParentKey = "traceparent"
	// TraceStateKey holds the vendor-specific tracestate, when any.
	TraceStateKey = "tracestate"
)
