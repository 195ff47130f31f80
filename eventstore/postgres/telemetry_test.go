package postgres_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
)

func attrs(kvs []attribute.KeyValue) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

// An append inside a span gets a span of its own, child of the caller's,
// with the stream, count, expected and resulting version; the events carry
// its W3C trace context in their metadata, read back from the store. A
// conflict is marked as such.
func TestAppendSpanAndTraceContext(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s, _ := newStore(t, espg.WithTracerProvider(tp))
	c, parent := tp.Tracer("test").Start(ctx(t), "command")
	res, err := s.Append(c, "acct-1", eventstore.NoStream, events(2)...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(c, "acct-1", eventstore.Exact(0), events(1)...)
	if !errors.Is(err, eventstore.ErrConcurrencyConflict) {
		t.Fatalf("want a conflict, got %v", err)
	}
	parent.End()
	var appends []sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.Name() == "chronicle.eventstore.append" {
			appends = append(appends, sp)
		}
	}
	if len(appends) != 2 {
		t.Fatalf("got %d append spans, want 2", len(appends))
	}
	ok, conflict := appends[0], appends[1]
	a := attrs(ok.Attributes())
	if ok.Parent().SpanID() != parent.SpanContext().SpanID() || a["chronicle.stream"].AsString() != "acct-1" ||
		a["chronicle.event.count"].AsInt64() != 2 || a["chronicle.stream.version"].AsInt64() != 2 ||
		a["chronicle.expected_version"].AsString() != eventstore.NoStream.String() || a["chronicle.conflict"].AsBool() ||
		a["chronicle.position"].AsString() != res.Position.String() {
		t.Fatalf("append span: parent %s, attributes %v", ok.Parent().SpanID(), a)
	}
	if a := attrs(conflict.Attributes()); !a["chronicle.conflict"].AsBool() || a["chronicle.expected_version"].AsInt64() != 0 {
		t.Fatalf("conflict span attributes %v", a)
	}
	for r, err := range s.ReadStream(ctx(t), "acct-1", eventstore.ReadStreamOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		tp := r.Metadata[eventstore.TraceParentKey]
		want := "00-" + ok.SpanContext().TraceID().String() + "-" + ok.SpanContext().SpanID().String() + "-01"
		if tp != want {
			t.Fatalf("event %d traceparent %q, want %q (the append's span)", r.StreamVersion, tp, want)
		}
	}
}

// Without a span in the context (or with a no-op provider), events are
// written as given: no trace context in their metadata.
func TestAppendWithoutSpanAddsNoMetadata(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	mustAppend(t, s, "acct-1", eventstore.NoStream, events(1)...)
	c := trace.ContextWithSpanContext(ctx(t), trace.SpanContext{})
	mustAppend(t, s, "acct-1", eventstore.Exact(1), events(1)...)
	for r, err := range s.ReadStream(c, "acct-1", eventstore.ReadStreamOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := r.Metadata[eventstore.TraceParentKey]; ok {
			t.Fatalf("event %d has a traceparent without a provider: %v", r.StreamVersion, r.Metadata)
		}
	}
}

// The store's metrics, read through the SDK's manual reader: append
// duration by outcome and events appended.
func TestAppendMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	s, _ := newStore(t, espg.WithMeterProvider(mp))
	mustAppend(t, s, "acct-1", eventstore.NoStream, events(3)...)
	if _, err := s.Append(ctx(t), "acct-1", eventstore.NoStream, events(1)...); !errors.Is(err, eventstore.ErrConcurrencyConflict) {
		t.Fatalf("want a conflict, got %v", err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx(t), &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	var appended int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				if m.Name != "chronicle.eventstore.append.duration" || m.Unit != "s" {
					continue
				}
				for _, dp := range d.DataPoints {
					o, _ := dp.Attributes.Value("chronicle.outcome")
					counts[o.AsString()] += dp.Count
				}
			case metricdata.Sum[int64]:
				if m.Name == "chronicle.eventstore.events.appended" {
					for _, dp := range d.DataPoints {
						appended += dp.Value
					}
				}
			}
		}
	}
	if counts["ok"] != 1 || counts["conflict"] != 1 || appended != 3 {
		t.Fatalf("append counts by outcome %v, events appended %d; want ok 1, conflict 1, 3 events", counts, appended)
	}
}

// An append whose events are stored already at the same versions returns
// the original result; it is counted as an idempotent retry and its span
// says so.
func TestIdempotentRetryMetric(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s, _ := newStore(t, espg.WithMeterProvider(mp), espg.WithTracerProvider(tp))
	evs := events(2)
	for i := range evs {
		evs[i].ID = uuid.New()
	}
	first := mustAppend(t, s, "acct-1", eventstore.NoStream, evs...)
	c, parent := tp.Tracer("test").Start(ctx(t), "retry")
	again, err := s.Append(c, "acct-1", eventstore.NoStream, evs...)
	parent.End()
	if err != nil || again != first {
		t.Fatalf("retry: %v, %v; want the original result %v", again, err, first)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx(t), &rm); err != nil {
		t.Fatal(err)
	}
	var retries int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "chronicle.eventstore.append.idempotent_retries" {
				for _, dp := range d.DataPoints {
					retries += dp.Value
				}
			}
		}
	}
	if retries != 1 {
		t.Errorf("chronicle.eventstore.append.idempotent_retries = %d, want 1", retries)
	}
	marked := 0
	for _, sp := range rec.Ended() {
		if sp.Name() == "chronicle.eventstore.append" && attrs(sp.Attributes())["chronicle.append.idempotent_retry"].AsBool() {
			marked++
		}
	}
	if marked != 1 {
		t.Errorf("%d append spans marked as an idempotent retry, want 1", marked)
	}
}

// sums returns the int64 sums of the metrics named name, by the value of
// attribute key ("" when a data point has none).
func sums(t *testing.T, reader *sdkmetric.ManualReader, name, key string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx(t), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range d.DataPoints {
					v, _ := dp.Attributes.Value(attribute.Key(key))
					out[v.AsString()] += dp.Value
				}
			}
		}
	}
	return out
}

// Group commit's counters, as metrics and as GroupCommitStats: appends
// alone, a batch and its appends, and an append sent back to run alone
// because its stream's lock stayed busy past the flusher's lock timeout.
func TestGroupCommitMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	s, pool := newStore(t, espg.WithMeterProvider(mp))
	espg.SetGroupLockTimeout(s, time.Minute)
	c := ctx(t)
	mustAppend(t, s, "held", eventstore.NoStream, events(1)...)

	// X waits for the lock of "held" alone on the flusher's connection;
	// three appends queue behind it and go in one batch.
	holder := holdStreamLocks(t, pool, s.Schema(), "held")
	errs := make(chan error, 4)
	go func() {
		_, err := s.Append(c, "held", eventstore.Exact(1), events(1)...)
		errs <- err
	}()
	waitForLockWait(t, pool, s.Schema(), "held")
	for i := range 3 {
		go func() {
			_, err := s.Append(c, fmt.Sprintf("queued-%d", i), eventstore.NoStream, events(1)...)
			errs <- err
		}()
	}
	waitForQueued(t, s, 3)
	if err := holder.Rollback(c); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st := s.GroupCommitStats()
	appends := sums(t, reader, "chronicle.eventstore.group_commit.appends", "chronicle.group.kind")
	batches := sums(t, reader, "chronicle.eventstore.group_commit.batches", "")
	if st.Alone != 2 || st.Batches != 1 || st.Batched != 3 || st.Fallback != 0 {
		t.Fatalf("GroupCommitStats %+v; want 2 alone, 1 batch of 3, none sent back", st)
	}
	if appends["alone"] != 2 || appends["batched"] != 3 || batches[""] != 1 {
		t.Fatalf("metrics: appends by kind %v, batches %v; want alone 2, batched 3, 1 batch", appends, batches)
	}
	if appends["fallback"] != 0 {
		t.Fatalf("metrics: %d appends sent back, want none yet", appends["fallback"])
	}
}

// An append whose stream's lock another transaction holds past the
// flusher's lock timeout is sent back to run alone on a pool connection:
// counted as a fallback, and written once the lock is free.
func TestGroupCommitFallbackMetric(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	s, pool := newStore(t, espg.WithMeterProvider(mp))
	espg.SetGroupLockTimeout(s, 20*time.Millisecond)
	c := ctx(t)
	mustAppend(t, s, "held", eventstore.NoStream, events(1)...)
	holder := holdStreamLocks(t, pool, s.Schema(), "held")
	errs := make(chan error, 1)
	go func() {
		_, err := s.Append(c, "held", eventstore.Exact(1), events(1)...)
		errs <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for s.GroupCommitStats().Fallback == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no append sent back after 10s: %+v", s.GroupCommitStats())
		}
		time.Sleep(time.Millisecond)
	}
	if err := holder.Rollback(c); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if got := sums(t, reader, "chronicle.eventstore.group_commit.appends", "chronicle.group.kind"); got["fallback"] != 1 {
		t.Fatalf("appends by kind %v, want 1 fallback", got)
	}
	if recs := collect(t, s.ReadStream(c, "held", eventstore.ReadStreamOptions{})); len(recs) != 2 {
		t.Fatalf("held: %d events, want the fallback append written after the lock was freed", len(recs))
	}
}
