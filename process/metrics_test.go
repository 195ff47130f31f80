package process_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/chronicle-go/chronicle/process"
)

// The process gauges read the status per type: one completed and one
// compensation_failed process, no timer left, one failed command.
func TestObserveGauges(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	start(t, e.runner(e.pool, jobType(time.Hour), process.WithCommandAttempts(3)))
	e.request(ctx, "ok", JobRequested{})
	e.request(ctx, "stuck", JobRequested{Closed: true, FailUndo: 1})
	e.waitStatus(ctx, "ok", process.Completed)
	e.waitStatus(ctx, "stuck", process.CompensationFailed)

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	reg, err := process.Observe(mp, e.runnerAdmin())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = reg.Unregister() }()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Gauge[int64]); ok {
				for _, dp := range d.DataPoints {
					key := m.Name
					if v, ok := dp.Attributes.Value("chronicle.process.status"); ok {
						key += "/" + v.AsString()
					}
					got[key] = dp.Value
				}
			}
		}
	}
	for k, want := range map[string]int64{
		"chronicle.process.instances/completed": 1, "chronicle.process.instances/compensation_failed": 1,
		"chronicle.process.instances/running": 0, "chronicle.process.timers.pending": 0,
		"chronicle.process.commands.failed": 2, // the refused credit and the refused undo
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], want, got)
		}
	}
}
