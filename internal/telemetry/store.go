package telemetry

import (
	"context"
	"errors"
	"iter"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Store instruments an event store: a span per Append and per ReadAll, the
// append latency by outcome and the events appended.
type Store struct {
	tracer    trace.Tracer
	system    attribute.KeyValue
	appendDur metric.Float64Histogram
	appended  metric.Int64Counter
	retries   metric.Int64Counter
	outcome   map[string][]metric.RecordOption
	addOpts   []metric.AddOption
	// group commit and group loads: batches, and the appends or loads by
	// kind (see GroupCommit and GroupLoad).
	commitBatches, commitAppends metric.Int64Counter
	loadBatches, loadLoads       metric.Int64Counter
	kindOpts                     map[string][]metric.AddOption
}

// KeyGroupKind says how an append or a load of a group commit or group
// loads went: GroupAlone, GroupBatched or GroupFallback.
const KeyGroupKind = attribute.Key("chronicle.group.kind")

// The values of KeyGroupKind.
const (
	// GroupAlone: in a transaction or query of its own, on a flusher's
	// connection or at once (nothing else was waiting).
	GroupAlone = "alone"
	// GroupBatched: in a flusher's batch (of two appends or more; of the
	// loads that queued behind another read).
	GroupBatched = "batched"
	// GroupFallback: sent back by a flusher to run alone outside the group
	// (a refused batch, a busy stream lock, no connection, closing).
	GroupFallback = "fallback"
)

// NewStore returns the instrumentation of an event store; system is the
// db.system.name of its database ("postgresql"). When on is false it
// returns nil, whose methods make no OpenTelemetry call.
func NewStore(p Providers, system string, on bool) *Store {
	if !on {
		return nil
	}
	m := p.meter()
	sys := KeyDBSystem.String(system)
	return &Store{
		tracer:    p.tracer(),
		system:    sys,
		appendDur: histogram(m, "chronicle.eventstore.append.duration", "Duration of event store appends, by outcome (ok, conflict, error)."),
		appended:  counter(m, "chronicle.eventstore.events.appended", "{event}", "Events appended to the event store."),
		retries: counter(m, "chronicle.eventstore.append.idempotent_retries", "{append}",
			"Appends whose events were stored already, at the same versions: the original result was returned and nothing written."),
		outcome: outcomeOpts(sys),
		addOpts: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(sys))},
		commitBatches: counter(m, "chronicle.eventstore.group_commit.batches", "{transaction}",
			"Group commit transactions that carried two appends or more."),
		commitAppends: counter(m, "chronicle.eventstore.group_commit.appends", "{append}",
			"Appends through group commit, by kind: alone (a transaction of its own), batched, or fallback (sent back to run alone on a pool connection)."),
		loadBatches: counter(m, "chronicle.eventstore.group_load.batches", "{query}",
			"Group load queries a flusher sent for the loads queued behind another read."),
		loadLoads: counter(m, "chronicle.eventstore.group_load.loads", "{load}",
			"Loads through group loads, by kind: alone (a query of its own) or batched."),
		kindOpts: kindOpts(sys),
	}
}

// kindOpts returns one precomputed option per KeyGroupKind value.
func kindOpts(extra ...attribute.KeyValue) map[string][]metric.AddOption {
	m := map[string][]metric.AddOption{}
	for _, k := range []string{GroupAlone, GroupBatched, GroupFallback} {
		m[k] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{KeyGroupKind.String(k)}, extra...)...))}
	}
	return m
}

// GroupCommit counts n appends of a group commit of kind GroupAlone,
// GroupBatched (one batch of n) or GroupFallback.
func (s *Store) GroupCommit(kind string, n int) {
	if s == nil {
		return
	}
	ctx := context.Background()
	if kind == GroupBatched {
		s.commitBatches.Add(ctx, 1, s.addOpts...)
	}
	s.commitAppends.Add(ctx, int64(n), s.kindOpts[kind]...)
}

// GroupLoad counts n loads of group loads of kind GroupAlone or
// GroupBatched (one flusher's query for n queued loads).
func (s *Store) GroupLoad(kind string, n int) {
	if s == nil {
		return
	}
	ctx := context.Background()
	if kind == GroupBatched {
		s.loadBatches.Add(ctx, 1, s.addOpts...)
	}
	s.loadLoads.Add(ctx, int64(n), s.kindOpts[kind]...)
}

// AppendOp is an append under way; End it with the append's result.
type AppendOp struct {
	s        *Store
	span     trace.Span
	start    time.Time
	n        int
	stream   string
	expected eventstore.ExpectedVersion
}

// StartAppend starts the span of an append to stream and returns the
// context for the append and the events to write, carrying the span's
// trace context in their metadata when the span is recorded.
func (s *Store) StartAppend(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []eventstore.Event) (context.Context, []eventstore.Event, AppendOp) {
	if s == nil {
		return ctx, events, AppendOp{}
	}
	ctx, span := s.tracer.Start(ctx, "chronicle.eventstore.append")
	if span.IsRecording() {
		events = Inject(ctx, events)
	}
	return ctx, events, AppendOp{s: s, span: span, start: time.Now(), n: len(events), stream: stream, expected: expected}
}

// End records the append's result or error.
func (op AppendOp) End(res *eventstore.AppendResult, err *error) {
	if op.s == nil {
		return
	}
	outcome := OutcomeOK
	switch {
	case *err == nil:
	case errors.Is(*err, eventstore.ErrConcurrencyConflict):
		outcome = OutcomeConflict
	default:
		outcome = OutcomeError
	}
	op.s.appendDur.Record(context.Background(), time.Since(op.start).Seconds(), op.s.outcome[outcome]...)
	if *err == nil && op.s.appended.Enabled(context.Background()) {
		op.s.appended.Add(context.Background(), int64(op.n), op.s.addOpts...)
	}
	if op.span.IsRecording() {
		// One SetAttributes call: the span's attributes grow once.
		if *err != nil {
			op.span.SetAttributes(op.s.system, KeyStream.String(op.stream), KeyEventCount.Int(op.n), expectedAttr(op.expected),
				KeyConflict.Bool(outcome == OutcomeConflict))
			op.span.RecordError(*err)
			op.span.SetStatus(codes.Error, (*err).Error())
		} else {
			op.span.SetAttributes(op.s.system, KeyStream.String(op.stream), KeyEventCount.Int(op.n), expectedAttr(op.expected),
				KeyConflict.Bool(false), KeyVersion.Int64(res.Version), KeyPosition.String(positionString(res.Position)))
		}
	}
	op.span.End()
}

// KeyIdempotentRetry marks the span of an append that found its events
// stored already and returned the original result.
const KeyIdempotentRetry = attribute.Key("chronicle.append.idempotent_retry")

// IdempotentRetry counts an append of ctx that found its events stored
// already and returned the original result, and marks its span.
func (s *Store) IdempotentRetry(ctx context.Context) {
	if s == nil {
		return
	}
	s.retries.Add(context.Background(), 1, s.addOpts...)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(KeyIdempotentRetry.Bool(true))
	}
}

// ReadAll wraps a read of the global log after after in a span that ends
// when the iteration does, counting the records read.
func (s *Store) ReadAll(ctx context.Context, after eventstore.Position, read func(ctx context.Context) iter.Seq2[eventstore.Record, error]) iter.Seq2[eventstore.Record, error] {
	if s == nil {
		return read(ctx)
	}
	return func(yield func(eventstore.Record, error) bool) {
		ctx, span := s.tracer.Start(ctx, "chronicle.eventstore.read_all")
		defer span.End()
		if !span.IsRecording() {
			for rec, err := range read(ctx) {
				if !yield(rec, err) {
					return
				}
			}
			return
		}
		n := 0
		defer func() { span.SetAttributes(s.system, KeyPosition.String(after.String()), KeyEventCount.Int(n)) }()
		for rec, err := range read(ctx) {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			} else {
				n++
			}
			if !yield(rec, err) {
				return
			}
		}
	}
}

// positionString is p.String() in one allocation: "txid/seq".
func positionString(p eventstore.Position) string {
	var b [41]byte
	out := strconv.AppendUint(b[:0], p.TxID, 10)
	out = append(out, '/')
	out = strconv.AppendUint(out, p.Seq, 10)
	return string(out)
}

// expectedAttr is the expected version as an attribute: the exact version,
// or the condition's name.
func expectedAttr(e eventstore.ExpectedVersion) attribute.KeyValue {
	if v, ok := e.ExactVersion(); ok {
		return KeyExpectedVersion.Int64(v)
	}
	return KeyExpectedVersion.String(e.String())
}
