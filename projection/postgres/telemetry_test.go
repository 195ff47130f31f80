package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/projection"
)

func spanAttrs(kvs []attribute.KeyValue) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

// A projection's batch span links to the span of the append that wrote
// its events, across processes: the writer and the runner have their own
// tracer providers, and the trace context travels in the events' metadata
// through PostgreSQL. Handlers run in the batch's span; WaitFor has its own.
func TestProjectionBatchLinksToAppend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	writerSpans, runnerSpans := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	writerTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(writerSpans))
	runnerTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(runnerSpans))
	writer, err := espg.New(e.pool, espg.WithSchema(e.schema), espg.WithTracerProvider(writerTP))
	if err != nil {
		t.Fatal(err)
	}
	// The two events may be applied in one batch or in two (both link the
	// append): record the span of every handler call.
	var (
		mu           sync.Mutex
		handlerSpans = map[trace.SpanID]bool{}
	)
	p := counting("traced", 1, func(p *projection.Projection) {
		h := p.Handler
		p.Handler = projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
			mu.Lock()
			handlerSpans[trace.SpanContextFromContext(ctx).SpanID()] = true
			mu.Unlock()
			return h.Handle(ctx, tx, ev)
		})
	})
	reader := sdkmetric.NewManualReader()
	r := e.runner([]projection.Projection{p}, projection.WithTracerProvider(runnerTP),
		projection.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	run(t, r)

	cmdCtx, cmd := writerTP.Tracer("test").Start(testCtx(t), "command")
	res, err := writer.Append(cmdCtx, "acct-1", eventstore.Any, eventstore.Event{Type: "Opened", Data: []byte(`{}`)},
		eventstore.Event{Type: "Deposited", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	cmd.End()
	waitCtx, waitSpan := runnerTP.Tracer("test").Start(testCtx(t), "caller")
	if err := r.WaitFor(waitCtx, "traced", res.Position); err != nil {
		t.Fatal(err)
	}
	waitSpan.End()

	var appendSpan trace.SpanContext
	for _, sp := range writerSpans.Ended() {
		if sp.Name() == "chronicle.eventstore.append" {
			appendSpan = sp.SpanContext()
		}
	}
	if !appendSpan.IsValid() {
		t.Fatal("no append span")
	}
	var linked, waited bool
	deadline := time.Now().Add(10 * time.Second)
	for !linked && time.Now().Before(deadline) {
		for _, sp := range runnerSpans.Ended() {
			a := spanAttrs(sp.Attributes())
			switch sp.Name() {
			case "chronicle.projection.batch":
				for _, l := range sp.Links() {
					if l.SpanContext.TraceID() == appendSpan.TraceID() && l.SpanContext.SpanID() == appendSpan.SpanID() && l.SpanContext.IsRemote() {
						linked = true
						if a["chronicle.projection"].AsString() != "traced" || a["chronicle.projection.build"].AsString() == "" ||
							a["chronicle.event.count"].AsInt64() < 1 || a["chronicle.checkpoint"].AsString() == "" {
							t.Fatalf("batch span attributes %v", a)
						}
						mu.Lock()
						inBatch := handlerSpans[sp.SpanContext().SpanID()]
						mu.Unlock()
						if !inBatch {
							t.Fatalf("no handler ran in the batch's span %s", sp.SpanContext().SpanID())
						}
					}
				}
			case "chronicle.projection.wait_for":
				waited = sp.Parent().SpanID() == waitSpan.SpanContext().SpanID() && a["chronicle.outcome"].AsString() == "ok" &&
					a["chronicle.position"].AsString() == res.Position.String()
			}
		}
		if !linked {
			time.Sleep(10 * time.Millisecond) // the batch span ends just after the commit WaitFor saw
		}
	}
	if !linked || !waited {
		t.Fatalf("batch span linked to the append: %v; WaitFor span under the caller's: %v", linked, waited)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(testCtx(t), &rm); err != nil {
		t.Fatal(err)
	}
	var applied int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "chronicle.projection.events.applied" {
				for _, dp := range s.DataPoints {
					if v, _ := dp.Attributes.Value("chronicle.projection"); v.AsString() == "traced" {
						applied += dp.Value
					}
				}
			}
		}
	}
	if applied < 2 {
		t.Fatalf("chronicle.projection.events.applied = %d, want at least 2", applied)
	}
}
