package telemetry

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Loads instruments an aggregate repository's loads: a span per load
// (stream, version the replay started from, events replayed, resulting
// version), the load duration by outcome and the events replayed per load.
type Loads struct {
	tracer   trace.Tracer
	dur      metric.Float64Histogram
	replayed metric.Int64Histogram
	outcome  map[string][]metric.RecordOption
}

// NewLoads returns the instrumentation of a repository's loads.
func NewLoads(p Providers) *Loads {
	m := p.meter()
	replayed, err := m.Int64Histogram("chronicle.aggregate.load.events_replayed", metric.WithUnit("{event}"),
		metric.WithDescription("Events an aggregate load applied after its snapshot or cached state (all of the stream's without one)."),
		metric.WithExplicitBucketBoundaries(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000))
	errHandler(err)
	return &Loads{
		tracer:   p.tracer(),
		dur:      histogram(m, "chronicle.aggregate.load.duration", "Duration of aggregate loads, by outcome (ok, error)."),
		replayed: replayed,
		outcome:  outcomeOpts(),
	}
}

type loadKey struct{}

// loadInfo is what a load notes on its way: the version its replay
// started from.
type loadInfo struct {
	from int64
	set  bool
}

// LoadOp is a load under way.
type LoadOp struct {
	l     *Loads
	span  trace.Span
	info  *loadInfo
	start time.Time
}

// StartLoad starts the span of a load of stream; the context it returns
// lets the load note where its replay started ([NoteReplayFrom]) when the
// span is recorded or the replay histogram is enabled.
func (l *Loads) StartLoad(ctx context.Context, stream string) (context.Context, LoadOp) {
	ctx, span := l.tracer.Start(ctx, "chronicle.aggregate.load")
	op := LoadOp{l: l, span: span, start: time.Now()}
	if span.IsRecording() {
		span.SetAttributes(KeyStream.String(stream))
	}
	if span.IsRecording() || l.replayed.Enabled(ctx) {
		op.info = &loadInfo{}
		ctx = context.WithValue(ctx, loadKey{}, op.info)
	}
	return ctx, op
}

// NoteReplayFrom notes that the load of ctx replays the stream from
// version (0: from its start; a snapshot's or cached state's version
// otherwise). Only the first note of a load counts.
func NoteReplayFrom(ctx context.Context, version int64) {
	if info, ok := ctx.Value(loadKey{}).(*loadInfo); ok && !info.set {
		info.from, info.set = version, true
	}
}

// End records the load's result: the aggregate's version, or the error.
func (op LoadOp) End(version int64, err *error) {
	outcome := OutcomeOK
	if *err != nil {
		outcome = OutcomeError
	}
	op.l.dur.Record(context.Background(), time.Since(op.start).Seconds(), op.l.outcome[outcome]...)
	if op.info != nil && *err == nil {
		// Without attributes, as documented: only successful loads
		// replay (an outcome label would always say ok).
		op.l.replayed.Record(context.Background(), version-op.info.from)
	}
	if op.span.IsRecording() {
		if *err != nil {
			op.span.RecordError(*err)
			if !errors.Is(*err, eventstore.ErrStreamNotFound) {
				op.span.SetStatus(codes.Error, (*err).Error())
			}
		} else {
			op.span.SetAttributes(KeyVersion.Int64(version))
			if op.info != nil {
				op.span.SetAttributes(KeyFromSnapshot.Bool(op.info.from > 0), attributeReplayFrom(op.info.from), KeyReplayed.Int64(version-op.info.from))
			}
		}
	}
	op.span.End()
}

// RepoStats are a repository's counts since it was made (aggregate.Stats).
type RepoStats struct {
	Retries, Conflicts                                                  int64
	SnapshotsTaken, SnapshotsFailed, SnapshotsSkipped, SnapshotsIgnored int64
	SnapshotHits, SnapshotMisses, SnapshotLoadsFailed                   int64
	CacheHits, CacheStale                                               int64
}

// ObserveRepository registers observable counters read from stats at each
// collection: chronicle.aggregate.conflicts, chronicle.aggregate.retries,
// chronicle.aggregate.snapshots (by chronicle.snapshot.result: taken,
// failed, skipped, ignored), chronicle.aggregate.snapshot.loads (by
// chronicle.snapshot.result: hit, miss, failed) and
// chronicle.aggregate.cache (by
// chronicle.cache.result: hit, stale). It registers nothing, and returns
// nil, unless p names a meter provider: a callback registered with the
// global provider before one is set would be kept for as long as the
// process runs, once per repository.
func ObserveRepository(p Providers, stats func() RepoStats) metric.Registration {
	if p.Meter == nil {
		return nil
	}
	m := p.meter()
	conflicts, err1 := m.Int64ObservableCounter("chronicle.aggregate.conflicts", metric.WithUnit("{conflict}"),
		metric.WithDescription("Concurrency conflicts Update or Save met."))
	retries, err2 := m.Int64ObservableCounter("chronicle.aggregate.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Commands Update ran again after a conflict."))
	snaps, err3 := m.Int64ObservableCounter("chronicle.aggregate.snapshots", metric.WithUnit("{snapshot}"),
		metric.WithDescription("Snapshots taken, failed (could not be encoded or stored), skipped (writers busy) or ignored at load (unusable)."))
	cache, err4 := m.Int64ObservableCounter("chronicle.aggregate.cache", metric.WithUnit("{load}"),
		metric.WithDescription("Loads served from the state cache (hit) and cached states an append found out of date (stale)."))
	loads, err5 := m.Int64ObservableCounter("chronicle.aggregate.snapshot.loads", metric.WithUnit("{load}"),
		metric.WithDescription("Loads that looked for a snapshot: started from one (hit), found none (miss), or met a failing snapshot store (failed)."))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		errHandler(err)
		return nil
	}
	result := func(k, v string) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String(k, v)))
	}
	taken, failed, skipped, ignored := result("chronicle.snapshot.result", "taken"), result("chronicle.snapshot.result", "failed"),
		result("chronicle.snapshot.result", "skipped"), result("chronicle.snapshot.result", "ignored")
	hit, stale := result("chronicle.cache.result", "hit"), result("chronicle.cache.result", "stale")
	snapHit, snapMiss, snapFailed := result("chronicle.snapshot.result", "hit"), result("chronicle.snapshot.result", "miss"),
		result("chronicle.snapshot.result", "failed")
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(conflicts, s.Conflicts)
		o.ObserveInt64(retries, s.Retries)
		o.ObserveInt64(snaps, s.SnapshotsTaken, taken)
		o.ObserveInt64(snaps, s.SnapshotsFailed, failed)
		o.ObserveInt64(snaps, s.SnapshotsSkipped, skipped)
		o.ObserveInt64(snaps, s.SnapshotsIgnored, ignored)
		o.ObserveInt64(loads, s.SnapshotHits, snapHit)
		o.ObserveInt64(loads, s.SnapshotMisses, snapMiss)
		o.ObserveInt64(loads, s.SnapshotLoadsFailed, snapFailed)
		o.ObserveInt64(cache, s.CacheHits, hit)
		o.ObserveInt64(cache, s.CacheStale, stale)
		return nil
	}, conflicts, retries, snaps, loads, cache)
	if err != nil {
		errHandler(err)
		return nil
	}
	return reg
}
