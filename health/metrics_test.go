package health_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/chronicle-go/chronicle/health"
	"github.com/chronicle-go/chronicle/internal/runnertest"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/relay"
)

// gauges collects the gauges of reader: name -> attribute value -> value.
func gauges(t *testing.T, reader *sdkmetric.ManualReader, attr string) map[string]map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = map[string]float64{}
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					v, _ := dp.Attributes.Value(attributeKey(attr))
					out[m.Name][v.Emit()] = float64(dp.Value)
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					v, _ := dp.Attributes.Value(attributeKey(attr))
					out[m.Name][v.Emit()] = dp.Value
				}
			}
		}
	}
	return out
}

// The gauges read from Status show a halted projection's state, its lag
// and its pending dead letter, through the SDK's manual reader; the relay
// leader gauge is 0 with no relay.
func TestObserveProjectionsAndRelayLeader(t *testing.T) {
	t.Parallel()
	es, ps, schema := newStores(t)
	r, err := projection.NewRunner(es, ps, []projection.Projection{picky()},
		projection.WithBackoff(time.Millisecond, 10*time.Millisecond), projection.WithHaltPoll(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runnertest.Run(t, r)
	appendEvents(t, es, "acct-1", "Opened")
	bad := appendEvents(t, es, "acct-1", "Poison", "Opened")
	if err := r.WaitFor(testCtx(t), "picky", bad.Position); err == nil {
		t.Fatal("WaitFor: want the halt")
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	reg, err := health.ObserveProjections(mp, r)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	pool, _ := testenv.Postgres(t)
	if _, err := health.ObserveRelayLeader(mp, pool, relay.WithSchema(schema)); err != nil {
		t.Fatal(err)
	}
	g := gauges(t, reader, "chronicle.projection")
	if g["chronicle.projection.lag"]["picky"] != 2 || g["chronicle.projection.dead_letters.pending"]["picky"] != 1 ||
		g["chronicle.projection.lag.age"]["picky"] <= 0 || g["chronicle.projection.state"]["picky"] != 1 {
		t.Fatalf("projection gauges %v", g)
	}
	if _, ok := g["chronicle.log.held_back"]; !ok {
		t.Fatalf("no chronicle.log.held_back gauge in %v", g)
	}
	st := gauges(t, reader, "chronicle.projection.state")["chronicle.projection.state"]
	if st["halted"] != 1 || len(st) != 1 {
		t.Fatalf("state gauge %v, want halted", st)
	}
	if _, err := health.ObserveRelayLag(mp, es, pool, relay.WithSchema(schema)); err != nil {
		t.Fatal(err)
	}
	rg := gauges(t, reader, "chronicle.relay")
	if l := rg["chronicle.relay.leader"]; len(l) != 1 || l[relay.DefaultName] != 0 {
		t.Fatalf("relay leader gauge %v, want 0", l)
	}
	// Nothing was published: the relay is behind by the whole log.
	if rg["chronicle.relay.lag"][relay.DefaultName] != 3 || rg["chronicle.relay.lag.age"][relay.DefaultName] <= 0 {
		t.Fatalf("relay lag gauges %v, want 3 events", rg)
	}
}

func attributeKey(k string) attribute.Key { return attribute.Key(k) }
