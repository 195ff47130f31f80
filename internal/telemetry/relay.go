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

// Relay instruments a relay: a span per batch it publishes (linked to the
// appends that wrote the records), the records JetStream confirmed, the
// batches' publish duration and the leaderships taken.
type Relay struct {
	tracer     trace.Tracer
	name       attribute.KeyValue
	publishDur metric.Float64Histogram
	published  metric.Int64Counter
	leaders    metric.Int64Counter
	add        []metric.AddOption
	outcome    map[string][]metric.RecordOption
}

// NewRelay returns the instrumentation of the relay called name.
func NewRelay(p Providers, name string) *Relay {
	m := p.meter()
	a := KeyRelay.String(name)
	return &Relay{
		tracer:     p.tracer(),
		name:       a,
		publishDur: histogram(m, "chronicle.relay.publish.duration", "Duration of sending a batch of records to JetStream, by outcome."),
		published:  counter(m, "chronicle.relay.events.published", "{event}", "Records JetStream confirmed."),
		leaders:    counter(m, "chronicle.relay.leader.changes", "{change}", "Leaderships this relay took."),
		add:        []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(a))},
		outcome:    outcomeOpts(a),
	}
}

// PublishOp is a batch being published.
type PublishOp struct {
	r     *Relay
	span  trace.Span
	start time.Time
}

// StartPublish starts the span of publishing batch.
func (r *Relay) StartPublish(ctx context.Context, batch []eventstore.Record) PublishOp {
	_, span := r.tracer.Start(ctx, "chronicle.relay.publish", trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() && len(batch) > 0 {
		span.SetAttributes(r.name, KeyEventCount.Int(len(batch)), KeyPosition.String(batch[len(batch)-1].Position.String()),
			attribute.String("messaging.system", "nats"))
		for _, l := range Links(len(batch), func(i int) eventstore.Metadata { return batch[i].Metadata }) {
			span.AddLink(l)
		}
	}
	return PublishOp{r: r, span: span, start: time.Now()}
}

// End ends the batch's span with its error, if any.
func (op PublishOp) End(err error) {
	outcome := OutcomeOK
	if err != nil {
		outcome = OutcomeError
		if op.span.IsRecording() {
			op.span.RecordError(err)
			op.span.SetStatus(codes.Error, err.Error())
		}
	}
	op.r.publishDur.Record(context.Background(), time.Since(op.start).Seconds(), op.r.outcome[outcome]...)
	op.span.End()
}

// Published counts n records JetStream confirmed.
func (r *Relay) Published(n int) { r.published.Add(context.Background(), int64(n), r.add...) }

// Led counts a leadership taken.
func (r *Relay) Led() { r.leaders.Add(context.Background(), 1, r.add...) }
