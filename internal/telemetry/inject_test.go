package telemetry_test

import (
	"context"
	"testing"

	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/telemetry"
)

// Inject writes the same traceparent and tracestate the W3C propagator
// writes, into copies of the events' metadata, keeping their other keys
// and replacing a trace context they carry; the caller's events are left
// as they were.
func TestInjectMatchesThePropagator(t *testing.T) {
	ts, err := trace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		flags trace.TraceFlags
		state trace.TraceState
	}{
		{"sampled", trace.FlagsSampled, trace.TraceState{}},
		{"not sampled", 0, trace.TraceState{}},
		{"sampled random, with state", trace.FlagsSampled | trace.FlagsRandom, ts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := trace.NewSpanContext(trace.SpanContextConfig{
				TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
				SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
				TraceFlags: tc.flags, TraceState: tc.state,
			})
			ctx := trace.ContextWithSpanContext(context.Background(), sc)
			want := propagation.MapCarrier{}
			propagation.TraceContext{}.Inject(ctx, want)
			in := []eventstore.Event{
				{Type: "A"},
				{Type: "B", Metadata: eventstore.Metadata{"correlation_id": "c1", eventstore.TraceParentKey: "00-old-old-01", eventstore.TraceStateKey: "old=1"}},
			}
			out := telemetry.Inject(ctx, in)
			for i, e := range out {
				if got := e.Metadata[eventstore.TraceParentKey]; got != want["traceparent"] {
					t.Errorf("event %d: traceparent %q, want %q", i, got, want["traceparent"])
				}
				if got, ok := e.Metadata[eventstore.TraceStateKey]; got != want["tracestate"] || ok != (want["tracestate"] != "") {
					t.Errorf("event %d: tracestate %q (%v), want %q", i, got, ok, want["tracestate"])
				}
			}
			if out[1].Metadata["correlation_id"] != "c1" {
				t.Errorf("the correlation ID was lost: %v", out[1].Metadata)
			}
			if in[0].Metadata != nil || in[1].Metadata[eventstore.TraceParentKey] != "00-old-old-01" {
				t.Errorf("the caller's events changed: %+v", in)
			}
			if got := telemetry.SpanContext(out[0].Metadata); !got.Equal(trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: sc.TraceID(), SpanID: sc.SpanID(), TraceFlags: sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom), TraceState: sc.TraceState(), Remote: true})) {
				t.Errorf("SpanContext of the metadata = %+v, want %+v", got, sc)
			}
		})
	}
}

// The append span's chronicle.position is the position as
// Position.String writes it.
func TestAppendSpanPosition(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	s := telemetry.NewStore(telemetry.Providers{Tracer: tp, Meter: noopmetric.NewMeterProvider()}, "postgresql", true)
	for _, pos := range []eventstore.Position{{TxID: 1, Seq: 0}, {TxID: 18446744073709551615, Seq: 18446744073709551615}, {TxID: 987654, Seq: 12}} {
		exp.Reset()
		_, _, op := s.StartAppend(context.Background(), "acct-1", eventstore.Any, []eventstore.Event{{Type: "A"}})
		var err error
		op.End(&eventstore.AppendResult{Version: 1, Position: pos}, &err)
		spans := exp.GetSpans()
		if len(spans) != 1 {
			t.Fatalf("%d spans", len(spans))
		}
		found := false
		for _, a := range spans[0].Attributes {
			if a.Key == telemetry.KeyPosition {
				found = true
				if a.Value.AsString() != pos.String() {
					t.Errorf("chronicle.position = %q, want %q", a.Value.AsString(), pos.String())
				}
			}
		}
		if !found {
			t.Errorf("no chronicle.position on the span of an append at %s", pos)
		}
	}
}
