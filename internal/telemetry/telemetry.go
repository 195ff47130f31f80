// Package telemetry is what Chronicle's packages share to trace and
// measure through the OpenTelemetry API: the W3C trace context carried in
// event metadata, span links to the appends that wrote records, and the
// instruments of each component. It depends on the API only (otel,
// otel/trace, otel/metric, otel/propagation), never on an SDK or exporter:
// with no provider set, every span and instrument is a no-op.
package telemetry

import (
	"context"
	"encoding/hex"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-go/chronicle"
	"github.com/chronicle-go/chronicle/eventstore"
)

// Scope is the instrumentation scope of every tracer and meter Chronicle
// creates.
const Scope = "github.com/chronicle-go/chronicle"

// Providers are the tracer and meter providers a component uses; a nil
// field means OpenTelemetry's global provider (otel.GetTracerProvider,
// otel.GetMeterProvider), which is a no-op until the service sets one.
type Providers struct {
	Tracer trace.TracerProvider
	Meter  metric.MeterProvider
}

// tracer returns the tracer of p.
func (p Providers) tracer() trace.Tracer {
	tp := p.Tracer
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(Scope, trace.WithInstrumentationVersion(chronicle.Version))
}

// meter returns the meter of p.
func (p Providers) meter() metric.Meter {
	mp := p.Meter
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(Scope, metric.WithInstrumentationVersion(chronicle.Version))
}

// carrier adapts event metadata to a propagation.TextMapCarrier.
type carrier eventstore.Metadata

func (c carrier) Get(key string) string { return c[key] }
func (c carrier) Set(key, value string) { c[key] = value }
func (c carrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject returns events with the W3C trace context of ctx's span in their
// metadata (replacing any they carry), copying the events and their
// metadata; when ctx has no valid span context it returns events as they
// are, without allocating. The traceparent (and tracestate) values are
// formatted once, whatever the number of events.
func Inject(ctx context.Context, events []eventstore.Event) []eventstore.Event {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || len(events) == 0 {
		return events
	}
	parent, state := traceParent(sc), sc.TraceState().String()
	n := 1
	if state != "" {
		n = 2
	}
	out := make([]eventstore.Event, len(events))
	for i, e := range events {
		md := make(eventstore.Metadata, len(e.Metadata)+n)
		for k, v := range e.Metadata {
			if k != eventstore.TraceParentKey && k != eventstore.TraceStateKey {
				md[k] = v
			}
		}
		md[eventstore.TraceParentKey] = parent
		if state != "" {
			md[eventstore.TraceStateKey] = state
		}
		e.Metadata = md
		out[i] = e
	}
	return out
}

// traceParent formats sc as a W3C traceparent, version 00, as
// propagation.TraceContext does (keeping the sampled and random flags
// only): one string, without the propagator's carrier.
func traceParent(sc trace.SpanContext) string {
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	flags := [1]byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))}
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], flags[:])
	return string(b[:])
}

// SpanContext returns the span context carried in md (of the append that
// wrote the event), or an invalid one.
func SpanContext(md eventstore.Metadata) trace.SpanContext {
	if md[eventstore.TraceParentKey] == "" {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier(md)))
}

// MaxLinks bounds the links a span of a batch carries to the appends that
// wrote its records.
const MaxLinks = 128

// Links returns a link to the span of each distinct append that wrote
// records 0..n-1 (rec(i)), at most MaxLinks.
func Links(n int, rec func(i int) eventstore.Metadata) []trace.Link {
	var links []trace.Link
	for i := 0; i < n && len(links) < MaxLinks; i++ {
		sc := SpanContext(rec(i))
		if !sc.IsValid() {
			continue
		}
		dup := false
		for _, l := range links {
			if l.SpanContext.Equal(sc) {
				dup = true
				break
			}
		}
		if !dup {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	return links
}

// Attribute keys of Chronicle's spans and metrics.
const (
	KeyStream          = attribute.Key("chronicle.stream")
	KeyEventCount      = attribute.Key("chronicle.event.count")
	KeyExpectedVersion = attribute.Key("chronicle.expected_version")
	KeyVersion         = attribute.Key("chronicle.stream.version")
	KeyPosition        = attribute.Key("chronicle.position")
	KeyConflict        = attribute.Key("chronicle.conflict")
	KeyOutcome         = attribute.Key("chronicle.outcome")
	KeyProjection      = attribute.Key("chronicle.projection")
	KeyBuild           = attribute.Key("chronicle.projection.build")
	KeyCheckpoint      = attribute.Key("chronicle.checkpoint")
	KeyRelay           = attribute.Key("chronicle.relay")
	KeyFromSnapshot    = attribute.Key("chronicle.load.from_state")
	KeyReplayFrom      = attribute.Key("chronicle.load.from_version")
	KeyReplayed        = attribute.Key("chronicle.event.replayed")
	KeyDBSystem        = attribute.Key("db.system.name")
)

// Outcomes of an operation, the values of KeyOutcome.
const (
	OutcomeOK       = "ok"
	OutcomeConflict = "conflict"
	OutcomeError    = "error"
	OutcomeTimeout  = "timeout"
)

// outcomeOpts returns one precomputed measurement option per outcome, with
// extra attributes, so that recording allocates nothing.
func outcomeOpts(extra ...attribute.KeyValue) map[string][]metric.RecordOption {
	m := map[string][]metric.RecordOption{}
	for _, o := range []string{OutcomeOK, OutcomeConflict, OutcomeError, OutcomeTimeout} {
		m[o] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{KeyOutcome.String(o)}, extra...)...))}
	}
	return m
}

// histogram returns a latency histogram in seconds, with boundaries from
// 0.5 ms to 10 s.
func histogram(m metric.Meter, name, desc string) metric.Float64Histogram {
	h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	errHandler(err)
	return h
}

// counter returns an integer counter.
func counter(m metric.Meter, name, unit, desc string) metric.Int64Counter {
	c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	errHandler(err)
	return c
}

// errHandler reports an instrument that could not be created to
// OpenTelemetry's error handler; the instrument is then a no-op.
func errHandler(err error) {
	if err != nil {
		otel.Handle(err)
	}
}

func attributeReplayFrom(v int64) attribute.KeyValue { return KeyReplayFrom.Int64(v) }
