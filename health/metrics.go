package health

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/chronicle-go/chronicle"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/relay"
)

// meter returns the meter of mp, or of OpenTelemetry's global provider
// when mp is nil.
func meter(mp metric.MeterProvider) metric.Meter {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter("github.com/chronicle-go/chronicle", metric.WithInstrumentationVersion(chronicle.Version))
}

// ObserveProjections registers OpenTelemetry gauges read from s.Status
// each time the metrics are collected (so every collection reads the
// projection store and counts lag, as Status does):
//
//   - chronicle.projection.lag ({event}) and chronicle.projection.lag.age
//     (s): events not applied yet, and the age of the oldest;
//   - chronicle.projection.dead_letters.pending ({event}): dead letters
//     waiting for a retry or a discard;
//   - chronicle.projection.state ({state}): 1 for the projection's current
//     state (attribute chronicle.projection.state);
//   - chronicle.log.held_back ({event}) and chronicle.log.held_back.age
//     (s): committed events an open transaction holds back from every
//     reader, and how long it has been open.
//
// Every projection gauge has the attribute chronicle.projection. A nil mp
// means OpenTelemetry's global meter provider. Unregister the returned
// registration to stop.
func ObserveProjections(mp metric.MeterProvider, s ProjectionStatuser) (metric.Registration, error) {
	if s == nil {
		return nil, errors.New("health: observe projections: nil status source")
	}
	m := meter(mp)
	lag, err1 := m.Int64ObservableGauge("chronicle.projection.lag", metric.WithUnit("{event}"),
		metric.WithDescription("Events after a projection's checkpoint it has not applied yet (counted up to 10,000)."))
	age, err2 := m.Float64ObservableGauge("chronicle.projection.lag.age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest event a projection has not applied yet."))
	dead, err3 := m.Int64ObservableGauge("chronicle.projection.dead_letters.pending", metric.WithUnit("{event}"),
		metric.WithDescription("Dead letters of a projection waiting for a retry or a discard."))
	state, err4 := m.Int64ObservableGauge("chronicle.projection.state", metric.WithUnit("{state}"),
		metric.WithDescription("1 for a projection's current state (attribute chronicle.projection.state)."))
	held, err5 := m.Int64ObservableGauge("chronicle.log.held_back", metric.WithUnit("{event}"),
		metric.WithDescription("Committed events an open transaction holds back from every reader of the log."))
	heldAge, err6 := m.Float64ObservableGauge("chronicle.log.held_back.age", metric.WithUnit("s"),
		metric.WithDescription("How long the oldest open transaction holding the log back has been open."))
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		sts, err := s.Status(ctx)
		if err != nil {
			return err
		}
		for i, st := range sts {
			attrs := metric.WithAttributes(attribute.String("chronicle.projection", st.Name))
			o.ObserveInt64(lag, int64(st.Lag), attrs)
			o.ObserveFloat64(age, st.LagTime.Seconds(), attrs)
			o.ObserveInt64(dead, int64(st.DeadLetters), attrs)
			o.ObserveInt64(state, 1, metric.WithAttributes(attribute.String("chronicle.projection", st.Name),
				attribute.String("chronicle.projection.state", string(st.State))))
			if i == 0 {
				o.ObserveInt64(held, st.HeldBack)
				o.ObserveFloat64(heldAge, st.OldestOpen.Seconds())
			}
		}
		return nil
	}, lag, age, dead, state, held, heldAge)
}

// ObserveRelayLeader registers the OpenTelemetry gauge
// chronicle.relay.leader ({leader}): 1 while a relay built with opts (its
// schema and name) leads anywhere, 0 while none does, read with
// [relay.ReadLeadership] at each collection, with the attribute
// chronicle.relay. A nil mp means OpenTelemetry's global meter provider.
func ObserveRelayLeader(mp metric.MeterProvider, pool *pgxpool.Pool, opts ...relay.Option) (metric.Registration, error) {
	m := meter(mp)
	g, err := m.Int64ObservableGauge("chronicle.relay.leader", metric.WithUnit("{leader}"),
		metric.WithDescription("1 while a relay of this schema and name leads anywhere, else 0."))
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		l, err := relay.ReadLeadership(ctx, pool, opts...)
		if err != nil {
			return err
		}
		v := int64(0)
		if l.Held {
			v = 1
		}
		o.ObserveInt64(g, v, metric.WithAttributes(attribute.String("chronicle.relay", l.Name)))
		return nil
	}, g)
}

// MaxRelayLag is the most events [ObserveRelayLag] counts behind a relay's
// checkpoint at each collection.
const MaxRelayLag = 100000

// ObserveRelayLag registers OpenTelemetry gauges of how far the relay
// built with opts (schema and name) is behind the log, read at each
// collection from its stored checkpoint and store's log (as `relay
// status` counts it): chronicle.relay.lag ({event}: events not published
// yet, up to MaxRelayLag, plus those an open transaction holds back) and
// chronicle.relay.lag.age (s: the age of the oldest of them), with the
// attribute chronicle.relay. A nil mp means OpenTelemetry's global meter
// provider.
func ObserveRelayLag(mp metric.MeterProvider, store *espg.Store, pool *pgxpool.Pool, opts ...relay.Option) (metric.Registration, error) {
	if store == nil || pool == nil {
		return nil, errors.New("health: observe relay lag: nil store or pool")
	}
	m := meter(mp)
	lag, err1 := m.Int64ObservableGauge("chronicle.relay.lag", metric.WithUnit("{event}"),
		metric.WithDescription("Events of the log the relay has not published yet (counted up to 100,000, plus those held back)."))
	age, err2 := m.Float64ObservableGauge("chronicle.relay.lag.age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest event the relay has not published yet."))
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		cp, err := relay.ReadCheckpoint(ctx, pool, opts...)
		if err != nil {
			return err
		}
		st, err := store.Status(ctx)
		if err != nil {
			return err
		}
		var (
			n      int64
			oldest time.Time
		)
		for rec, err := range store.ReadAll(ctx, eventstore.ReadAllOptions{After: cp.Position, Limit: MaxRelayLag, BatchSize: 2000}) {
			if err != nil {
				return err
			}
			if n == 0 {
				oldest = rec.RecordedAt
			}
			n++
		}
		var a time.Duration
		switch {
		case !oldest.IsZero():
			a = max(time.Since(oldest), 0)
		case st.HeldBack > 0 && st.Oldest != nil:
			a = st.Oldest.Age
		}
		attrs := metric.WithAttributes(attribute.String("chronicle.relay", cp.Name))
		o.ObserveInt64(lag, n+st.HeldBack, attrs)
		o.ObserveFloat64(age, a.Seconds(), attrs)
		return nil
	}, lag, age)
}
