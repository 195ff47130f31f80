package projection_test

import (
	"context"
	"errors"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/internal/runnertest"
	"github.com/chronicle-go/chronicle/projection"
)

// An event that fails once and then applies counts one retry, by cause
// "event", and one event applied.
func TestRetryMetrics(t *testing.T) {
	t.Parallel()
	es := memory.New()
	failed := false
	p := projection.Projection{Name: "flaky", MaxAttempts: 3,
		Handler: projection.HandlerFunc(func(context.Context, projection.Tx, projection.Event) error {
			if !failed {
				failed = true
				return errors.New("not yet")
			}
			return nil
		})}
	reader := sdkmetric.NewManualReader()
	r, err := projection.NewRunner(es, projection.NewMemoryStore(), []projection.Projection{p},
		projection.WithBackoff(time.Millisecond, time.Millisecond),
		projection.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	if err != nil {
		t.Fatal(err)
	}
	runnertest.Run(t, r)
	res, err := es.Append(context.Background(), "acct-1", eventstore.Any, eventstore.Event{Type: "Opened", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	runnertest.WaitFor(t, r, "flaky", res.Position)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range s.DataPoints {
					k := m.Name
					if v, ok := dp.Attributes.Value("chronicle.retry.cause"); ok {
						k += "." + v.AsString()
					}
					got[k] += dp.Value
				}
			}
		}
	}
	if got["chronicle.projection.retries.event"] != 1 || got["chronicle.projection.events.applied"] != 1 {
		t.Fatalf("counters %v; want 1 retry of the event and 1 event applied", got)
	}
}
