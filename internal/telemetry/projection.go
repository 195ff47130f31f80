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

// Projections instruments a projection runner: a span per batch of
// deliveries (linked to the appends that wrote them) and per WaitFor, and
// the metrics of each projection.
type Projections struct {
	tracer   trace.Tracer
	batchDur metric.Float64Histogram
	applied  metric.Int64Counter
	dead     metric.Int64Counter
	retries  metric.Int64Counter
	waitDur  metric.Float64Histogram
	byName   map[string]projAttrs
}

type projAttrs struct {
	attr    attribute.KeyValue
	add     []metric.AddOption
	outcome map[string][]metric.RecordOption
	byEvent []metric.AddOption
	byStore []metric.AddOption
}

// NewProjections returns the instrumentation of the projections names.
func NewProjections(p Providers, names []string) *Projections {
	m := p.meter()
	t := &Projections{
		tracer:   p.tracer(),
		batchDur: histogram(m, "chronicle.projection.batch.duration", "Duration of a projection's batch of deliveries (handlers, checkpoint and commit), by outcome."),
		applied:  counter(m, "chronicle.projection.events.applied", "{event}", "Events a projection applied (or passed as already applied)."),
		dead:     counter(m, "chronicle.projection.dead_letters", "{event}", "Events a projection set aside as dead letters."),
		retries:  counter(m, "chronicle.projection.retries", "{retry}", "Events a projection applied again after a failure, by cause (event: the handler failed; store: the store was unavailable)."),
		waitDur:  histogram(m, "chronicle.projection.wait_for.duration", "Duration of WaitFor calls, by outcome (ok, timeout, error)."),
		byName:   map[string]projAttrs{},
	}
	for _, n := range names {
		a := KeyProjection.String(n)
		t.byName[n] = projAttrs{attr: a, add: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(a))}, outcome: outcomeOpts(a),
			byEvent: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(a, attribute.String("chronicle.retry.cause", "event")))},
			byStore: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(a, attribute.String("chronicle.retry.cause", "store")))}}
	}
	return t
}

// BatchOp is a batch under way.
type BatchOp struct {
	t     *Projections
	a     projAttrs
	span  trace.Span
	start time.Time
}

// StartBatch starts the span of a batch of n deliveries of projection name
// to build; md(i) is the metadata of the i-th record, whose trace context
// links the span to the append that wrote it.
func (t *Projections) StartBatch(ctx context.Context, name, build string, n int, md func(i int) eventstore.Metadata) (context.Context, BatchOp) {
	a := t.byName[name]
	ctx, span := t.tracer.Start(ctx, "chronicle.projection.batch")
	if span.IsRecording() {
		span.SetAttributes(a.attr, KeyBuild.String(build), KeyEventCount.Int(n))
		for _, l := range Links(n, md) {
			span.AddLink(l)
		}
	}
	return ctx, BatchOp{t: t, a: a, span: span, start: time.Now()}
}

// End records the batch's end: the build's checkpoint after it, and its
// error.
func (op BatchOp) End(checkpoint eventstore.Position, err error) {
	outcome := OutcomeOK
	if err != nil {
		outcome = OutcomeError
	}
	op.t.batchDur.Record(context.Background(), time.Since(op.start).Seconds(), op.a.outcome[outcome]...)
	if op.span.IsRecording() {
		op.span.SetAttributes(KeyCheckpoint.String(checkpoint.String()))
		if err != nil {
			op.span.RecordError(err)
			op.span.SetStatus(codes.Error, err.Error())
		}
	}
	op.span.End()
}

// DeadLettered counts a dead letter of projection name.
func (t *Projections) DeadLettered(name string) {
	t.dead.Add(context.Background(), 1, t.byName[name].add...)
}

// Applied counts n deliveries projection name committed (applied, or
// passed as applied already). The runner counts them before it publishes
// its progress, so that a caller woken by that progress (WaitFor) finds
// them counted.
func (t *Projections) Applied(name string, n int) {
	if n > 0 {
		t.applied.Add(context.Background(), int64(n), t.byName[name].add...)
	}
}

// Retried counts a retry of projection name: of the store when it was
// unavailable (store), else of the event.
func (t *Projections) Retried(name string, store bool) {
	a := t.byName[name]
	if store {
		t.retries.Add(context.Background(), 1, a.byStore...)
		return
	}
	t.retries.Add(context.Background(), 1, a.byEvent...)
}

// WaitOp is a WaitFor under way.
type WaitOp struct {
	t     *Projections
	a     projAttrs
	span  trace.Span
	start time.Time
}

// StartWaitFor starts the span of a WaitFor of projection name for pos.
func (t *Projections) StartWaitFor(ctx context.Context, name string, pos eventstore.Position) (context.Context, WaitOp) {
	a := t.byName[name]
	ctx, span := t.tracer.Start(ctx, "chronicle.projection.wait_for")
	if span.IsRecording() {
		span.SetAttributes(a.attr, KeyPosition.String(pos.String()))
	}
	return ctx, WaitOp{t: t, a: a, span: span, start: time.Now()}
}

// End records the WaitFor's result.
func (op WaitOp) End(err *error) {
	outcome := OutcomeOK
	switch {
	case *err == nil:
	case errors.Is(*err, context.DeadlineExceeded):
		outcome = OutcomeTimeout
	default:
		outcome = OutcomeError
	}
	op.t.waitDur.Record(context.Background(), time.Since(op.start).Seconds(), op.a.outcome[outcome]...)
	if op.span.IsRecording() {
		op.span.SetAttributes(KeyOutcome.String(outcome))
		if *err != nil {
			op.span.RecordError(*err)
			op.span.SetStatus(codes.Error, (*err).Error())
		}
	}
	op.span.End()
}
