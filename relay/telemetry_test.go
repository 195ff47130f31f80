package relay_test

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// The relay's publish span links to the append that wrote the records (in
// another process: its own tracer provider); each message carries the
// append's traceparent header; the relay counts what JetStream confirmed
// and the leadership it took.
func TestRelayPublishSpanAndTraceHeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	writerSpans, relaySpans := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	writerTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(writerSpans))
	writer, err := espg.New(e.pool, espg.WithSchema(e.schema), espg.WithTracerProvider(writerTP))
	if err != nil {
		t.Fatal(err)
	}
	cctx, cmd := writerTP.Tracer("test").Start(ctx, "command")
	if _, err := writer.Append(cctx, "acct-1", eventstore.Any, eventstore.Event{Type: "Opened", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	cmd.End()
	appendSpan := writerSpans.Ended()[0].SpanContext()

	reader := sdkmetric.NewManualReader()
	r := e.relay(e.nc, relay.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(relaySpans))),
		relay.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	run := start(t, r)
	name := e.topo().Stream
	e.waitCount(ctx, name, 1)
	s, err := e.js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := "00-" + appendSpan.TraceID().String() + "-" + appendSpan.SpanID().String() + "-01"
	if got := m.Header.Get(wire.HeaderTraceParent); got != want {
		t.Fatalf("message traceparent header %q, want %q", got, want)
	}
	run.stop(t)

	linked := false
	for _, sp := range relaySpans.Ended() {
		if sp.Name() != "chronicle.relay.publish" {
			continue
		}
		for _, l := range sp.Links() {
			linked = linked || l.SpanContext.SpanID() == appendSpan.SpanID() && l.SpanContext.TraceID() == appendSpan.TraceID()
		}
	}
	if !linked {
		t.Fatal("no chronicle.relay.publish span links to the append")
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range d.DataPoints {
					if v, _ := dp.Attributes.Value(attribute.Key("chronicle.relay")); v.AsString() == relay.DefaultName {
						sums[m.Name] += dp.Value
					}
				}
			}
		}
	}
	if sums["chronicle.relay.events.published"] != 1 || sums["chronicle.relay.leader.changes"] != 1 {
		t.Fatalf("relay metrics %v; want 1 published, 1 leadership", sums)
	}
}
