package aggregate_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/snapshot"
)

// A load has a span saying where its replay started (a snapshot's version,
// or 0) and how many events it replayed, on both backends.
func TestLoadSpan(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		seed(t, newRepo(t, b.events, registry(t), newAccount, aggregate.WithSnapshots(b.snaps, snapshot.Every(4))), "l-1", 6)
		for _, tc := range []struct {
			name           string
			opts           []aggregate.Option
			from, replayed int64
		}{
			{"snapshot", []aggregate.Option{aggregate.WithSnapshots(b.snaps, snapshot.Every(4))}, 4, 2},
			{"no snapshot", nil, 0, 6},
		} {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			repo := newRepo(t, b.events, registry(t), newAccount, append(tc.opts, aggregate.WithTracerProvider(tp))...)
			if _, err := repo.Load(ctx, "l-1"); err != nil {
				t.Fatal(err)
			}
			spans := rec.Ended()
			if len(spans) != 1 || spans[0].Name() != "chronicle.aggregate.load" {
				t.Fatalf("%s: spans %v", tc.name, spans)
			}
			a := map[attribute.Key]attribute.Value{}
			for _, kv := range spans[0].Attributes() {
				a[kv.Key] = kv.Value
			}
			if a["chronicle.stream"].AsString() != repo.StreamID("l-1") || a["chronicle.stream.version"].AsInt64() != 6 ||
				a["chronicle.load.from_version"].AsInt64() != tc.from || a["chronicle.event.replayed"].AsInt64() != tc.replayed ||
				a["chronicle.load.from_state"].AsBool() != (tc.from > 0) {
				t.Fatalf("%s: load span attributes %v", tc.name, a)
			}
		}
	})
}

// With a meter provider, the repository's Stats are counters: a conflict
// met by Update, its retry, and the snapshot taken.
func TestRepositoryStatsMetrics(t *testing.T) {
	t.Parallel()
	b := pgBackend(t)
	ctx := testCtx(t)
	reader := sdkmetric.NewManualReader()
	repo := newRepo(t, b.events, registry(t), newAccount, aggregate.WithSnapshots(b.snaps, snapshot.Every(2)),
		aggregate.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	seed(t, repo, "m-1", 3)
	// A writer behind the repository's back makes the next Update conflict once.
	other := newRepo(t, b.events, registry(t), newAccount)
	first := true
	if _, err := repo.Update(ctx, "m-1", func(a *Account) error {
		if first {
			first = false
			if _, err := other.Update(ctx, "m-1", func(a *Account) error { return a.Deposit(1) }); err != nil {
				return err
			}
		}
		return a.Deposit(1)
	}); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range s.DataPoints {
					k := m.Name
					if v, ok := dp.Attributes.Value("chronicle.snapshot.result"); ok {
						k += "." + v.AsString()
					}
					got[k] += dp.Value
				}
			}
		}
	}
	if got["chronicle.aggregate.conflicts"] != 1 || got["chronicle.aggregate.retries"] != 1 || got["chronicle.aggregate.snapshots.taken"] < 1 {
		t.Fatalf("repository counters %v; want 1 conflict, 1 retry, a snapshot taken", got)
	}
	if err := repo.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// unreadableSnapshots is a snapshot store whose reads fail.
type unreadableSnapshots struct{ snapshot.Store }

func (unreadableSnapshots) Load(context.Context, string) (snapshot.Snapshot, error) {
	return snapshot.Snapshot{}, errors.New("snapshot store down")
}

// Loads that look for a snapshot count as hits, misses or failures, in
// Stats and as chronicle.aggregate.snapshot.loads, on both backends (the
// PostgreSQL one reads snapshot and events in one query).
func TestSnapshotLoadMetrics(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		seed(t, newRepo(t, b.events, registry(t), newAccount, aggregate.WithSnapshots(b.snaps, snapshot.Every(4))), "s-1", 6)
		seed(t, newRepo(t, b.events, registry(t), newAccount), "s-2", 2)
		reader := sdkmetric.NewManualReader()
		repo := newRepo(t, b.events, registry(t), newAccount, aggregate.WithSnapshots(b.snaps, snapshot.Every(100)),
			aggregate.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
		failing := newRepo(t, b.events, registry(t), newAccount, aggregate.WithSnapshots(unreadableSnapshots{b.snaps}, snapshot.Every(100)))
		for _, id := range []string{"s-1", "s-2"} {
			if _, err := repo.Load(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := failing.Load(ctx, "s-1"); err != nil {
			t.Fatal(err)
		}
		if st := repo.Stats(); st.SnapshotHits != 1 || st.SnapshotMisses != 1 || st.SnapshotLoadsFailed != 0 {
			t.Errorf("stats %+v; want 1 snapshot hit, 1 miss", st)
		}
		if st := failing.Stats(); st.SnapshotLoadsFailed != 1 || st.SnapshotHits != 0 {
			t.Errorf("stats with a failing snapshot store %+v; want 1 failed snapshot load", st)
		}
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "chronicle.aggregate.snapshot.loads" {
					for _, dp := range s.DataPoints {
						v, _ := dp.Attributes.Value("chronicle.snapshot.result")
						got[v.AsString()] += dp.Value
					}
				}
			}
		}
		if got["hit"] != 1 || got["miss"] != 1 || got["failed"] != 0 {
			t.Errorf("chronicle.aggregate.snapshot.loads %v; want hit 1, miss 1", got)
		}
	})
}
