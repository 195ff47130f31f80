package process_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/process"
)

// Each step of a process is a span linked to the append that wrote its
// trigger, and the runner counts the processes started and ended per type,
// with their durations.
func TestStepSpansAndMetrics(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) }()
	start(t, e.runner(e.pool, jobType(time.Hour), process.WithTracerProvider(tp), process.WithMeterProvider(mp)))

	// The trigger of "ok" carries the trace context of the caller's span.
	cctx, caller := tp.Tracer("test").Start(ctx, "caller")
	md := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(cctx, md)
	caller.End()
	data, _ := json.Marshal(JobRequested{})
	if _, err := e.es.Append(ctx, "job-ok", eventstore.NoStream, eventstore.Event{Type: "JobRequested", Data: data,
		Metadata: eventstore.Metadata{eventstore.TraceParentKey: md.Get("traceparent")}}); err != nil {
		t.Fatal(err)
	}
	e.request(ctx, "closed", JobRequested{Closed: true})
	e.waitStatus(ctx, "ok", process.Completed)
	e.waitStatus(ctx, "closed", process.Compensated)

	var linked, ended bool
	for _, s := range rec.Ended() {
		if s.Name() != "chronicle.process.step" {
			continue
		}
		attrs := map[string]string{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		if attrs["chronicle.process.type"] != "job" {
			t.Errorf("step span of type %q: %v", attrs["chronicle.process.type"], attrs)
		}
		if attrs["chronicle.process.id"] == "ok" && attrs["chronicle.event.type"] == "JobRequested" {
			if attrs["chronicle.event.id"] == "" || attrs["chronicle.outcome"] != "ok" || attrs["chronicle.process.status"] != "running" {
				t.Errorf("first step of job/ok: %v", attrs)
			}
			for _, l := range s.Links() {
				if l.SpanContext.SpanID() == caller.SpanContext().SpanID() {
					linked = true
				}
			}
		}
		if attrs["chronicle.process.id"] == "ok" && attrs["chronicle.process.status"] == "completed" {
			ended = true
		}
	}
	if !linked {
		t.Error("the first step of job/ok is not linked to the span of the append of its trigger")
	}
	if !ended {
		t.Error("no step span of job/ok ends with status completed")
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	var durations uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					if v, _ := dp.Attributes.Value("chronicle.process.type"); v.AsString() == "job" {
						got[m.Name] += dp.Value
					}
				}
			case metricdata.Histogram[float64]:
				if m.Name == "chronicle.process.duration" {
					for _, dp := range d.DataPoints {
						durations += dp.Count
					}
				}
			}
		}
	}
	for k, want := range map[string]int64{"chronicle.process.started": 2, "chronicle.process.completed": 1,
		"chronicle.process.compensated": 1, "chronicle.process.failed": 0} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], want, got)
		}
	}
	if durations != 2 {
		t.Errorf("chronicle.process.duration has %d measurements, want 2", durations)
	}
}

// A process that fails counts as failed, with its duration.
func TestFailedProcessMetric(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	typ := jobType(time.Hour)
	typ.Handle = func(_ context.Context, p *process.Process[*jobState], _ process.Trigger) error {
		p.Fail("refused at once")
		return nil
	}
	start(t, e.runner(e.pool, typ, process.WithMeterProvider(mp)))
	e.request(ctx, "doomed", JobRequested{})
	e.waitStatus(ctx, "doomed", process.Failed)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					got[m.Name] += dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					if v, _ := dp.Attributes.Value("chronicle.process.status"); m.Name == "chronicle.process.duration" && v.AsString() == "failed" {
						got[m.Name+"/failed"] += int64(dp.Count)
					}
				}
			}
		}
	}
	for k, want := range map[string]int64{"chronicle.process.started": 1, "chronicle.process.failed": 1,
		"chronicle.process.completed": 0, "chronicle.process.duration/failed": 1} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], want, got)
		}
	}
}

// A process that ends in the trigger that started it (here failed at
// once) has an end time like any other ended process.
func TestProcessEndedInItsFirstTriggerHasAnEndTime(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	typ := jobType(time.Hour)
	typ.Handle = func(_ context.Context, p *process.Process[*jobState], _ process.Trigger) error {
		p.Fail("refused at once")
		return nil
	}
	start(t, e.runner(e.pool, typ))
	e.request(ctx, "doomed", JobRequested{})
	e.waitStatus(ctx, "doomed", process.Failed)
	if n := e.scalar(ctx, `SELECT count(*) FROM %s.process_instances WHERE process_id = $1 AND ended_at IS NOT NULL`, "doomed"); n != 1 {
		t.Fatalf("failed process doomed has no ended_at (%d rows with one)", n)
	}
}
