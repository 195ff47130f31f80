package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Attribute keys of the process managers' spans and metrics.
const (
	KeyProcessType   = attribute.Key("chronicle.process.type")
	KeyProcessID     = attribute.Key("chronicle.process.id")
	KeyProcessStatus = attribute.Key("chronicle.process.status")
	KeyEventType     = attribute.Key("chronicle.event.type")
	KeyEventID       = attribute.Key("chronicle.event.id")
)

// Outcomes of a process step besides OutcomeOK and OutcomeError: the
// trigger concerned no process (ignored).
const OutcomeIgnored = "ignored"

// Processes instruments a process runner: a span per step (one trigger
// handled by one process), linked to the append that wrote the trigger,
// and the counts of processes started and ended per type, with the time
// from start to end.
type Processes struct {
	tracer  trace.Tracer
	started metric.Int64Counter
	ended   map[string]metric.Int64Counter
	dur     metric.Float64Histogram
	byType  map[string]procAttrs
}

type procAttrs struct {
	attr  attribute.KeyValue
	add   []metric.AddOption
	ended map[string][]metric.AddOption
	dur   map[string][]metric.RecordOption
}

// NewProcesses returns the instrumentation of the process types types.
func NewProcesses(p Providers, types []string) *Processes {
	m := p.meter()
	dur, err := m.Float64Histogram("chronicle.process.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from a process's start to its end (completed, compensated or failed), by type and status."),
		metric.WithExplicitBucketBoundaries(0.01, 0.1, 1, 10, 60, 300, 900, 3600, 4*3600, 86400, 7*86400))
	errHandler(err)
	t := &Processes{
		tracer:  p.tracer(),
		started: counter(m, "chronicle.process.started", "{process}", "Processes started, by type."),
		ended: map[string]metric.Int64Counter{
			"completed":   counter(m, "chronicle.process.completed", "{process}", "Processes completed, by type."),
			"compensated": counter(m, "chronicle.process.compensated", "{process}", "Processes compensated (every compensation ran), by type."),
			"failed":      counter(m, "chronicle.process.failed", "{process}", "Processes failed, by type."),
		},
		dur:    dur,
		byType: map[string]procAttrs{},
	}
	for _, n := range types {
		a := KeyProcessType.String(n)
		pa := procAttrs{attr: a, add: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(a))},
			ended: map[string][]metric.AddOption{}, dur: map[string][]metric.RecordOption{}}
		for _, s := range []string{"completed", "compensated", "failed"} {
			set := attribute.NewSet(a, KeyProcessStatus.String(s))
			pa.ended[s] = pa.add
			pa.dur[s] = []metric.RecordOption{metric.WithAttributeSet(set)}
		}
		t.byType[n] = pa
	}
	return t
}

// StepOp is a process step under way.
type StepOp struct {
	t    *Processes
	a    procAttrs
	span trace.Span
}

// StartStep starts the span of process typ handling the trigger rec,
// linked to the span of the append that wrote rec.
func (t *Processes) StartStep(ctx context.Context, typ string, rec eventstore.Record) (context.Context, StepOp) {
	a := t.byType[typ]
	ctx, span := t.tracer.Start(ctx, "chronicle.process.step", trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() {
		span.SetAttributes(a.attr, KeyEventType.String(rec.Type), KeyEventID.String(rec.ID.String()),
			KeyStream.String(rec.StreamID))
		if sc := SpanContext(rec.Metadata); sc.IsValid() {
			span.AddLink(trace.Link{SpanContext: sc})
		}
	}
	return ctx, StepOp{t: t, a: a, span: span}
}

// Process notes the process the step reached (its ID), once known.
func (op StepOp) Process(id string) {
	if op.span.IsRecording() {
		op.span.SetAttributes(KeyProcessID.String(id))
	}
}

// Started counts a process started by the step.
func (op StepOp) Started() { op.t.started.Add(context.Background(), 1, op.a.add...) }

// Ended counts a process the step ended with status (completed,
// compensated or failed) after running for d.
func (op StepOp) Ended(status string, d time.Duration) {
	opts, ok := op.a.ended[status]
	if !ok {
		return
	}
	op.t.ended[status].Add(context.Background(), 1, opts...)
	op.t.dur.Record(context.Background(), max(d, 0).Seconds(), op.a.dur[status]...)
}

// End ends the step's span with its outcome (OutcomeOK, OutcomeIgnored or
// OutcomeError, from err), and the process's status after it ("" when
// none).
func (op StepOp) End(outcome, status string, err error) {
	if !op.span.IsRecording() {
		op.span.End()
		return
	}
	if err != nil {
		outcome = OutcomeError
		op.span.RecordError(err)
		op.span.SetStatus(codes.Error, err.Error())
	}
	op.span.SetAttributes(KeyOutcome.String(outcome))
	if status != "" {
		op.span.SetAttributes(KeyProcessStatus.String(status))
	}
	op.span.End()
}
