package process

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/chronicle-go/chronicle"
)

// Observe registers gauges of the processes' status with mp (nil: the
// global provider), read from a at each collection (the queries of
// [Admin.Status]): processes per type and status, pending and overdue
// timers with the age of the oldest overdue one, pending and failed
// commands, and the mean completion time. Unregister the returned
// registration to stop.
func Observe(mp metric.MeterProvider, a *Admin) (metric.Registration, error) {
	if a == nil {
		return nil, errors.New("process: observe: nil admin")
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("github.com/chronicle-go/chronicle", metric.WithInstrumentationVersion(chronicle.Version))
	inst, err1 := m.Int64ObservableGauge("chronicle.process.instances", metric.WithUnit("{process}"),
		metric.WithDescription("Processes of a type in a status."))
	timers, err2 := m.Int64ObservableGauge("chronicle.process.timers.pending", metric.WithUnit("{timer}"),
		metric.WithDescription("Timers of a process type not fired yet."))
	overdue, err3 := m.Int64ObservableGauge("chronicle.process.timers.overdue", metric.WithUnit("{timer}"),
		metric.WithDescription("Timers due more than a minute ago and not fired: no runner of the type is firing them."))
	oldest, err4 := m.Float64ObservableGauge("chronicle.process.timers.oldest.age", metric.WithUnit("s"),
		metric.WithDescription("How long ago the oldest pending timer of a type was due; 0 when none is due."))
	cmds, err5 := m.Int64ObservableGauge("chronicle.process.commands.pending", metric.WithUnit("{command}"),
		metric.WithDescription("Commands of a process type not delivered yet."))
	failed, err6 := m.Int64ObservableGauge("chronicle.process.commands.failed", metric.WithUnit("{command}"),
		metric.WithDescription("Commands of a process type rejected or given up."))
	mean, err7 := m.Float64ObservableGauge("chronicle.process.completion.mean", metric.WithUnit("s"),
		metric.WithDescription("Mean time from start to completion of a type's completed processes."))
	if err := errors.Join(err1, err2, err3, err4, err5, err6, err7); err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		sts, err := a.Status(ctx)
		if err != nil {
			return err
		}
		now := a.clock()
		for _, st := range sts {
			typ := attribute.String("chronicle.process.type", st.Type)
			attrs := metric.WithAttributes(typ)
			for _, s := range []Status{Running, Completed, Failed, Compensating, Compensated, CompensationFailed} {
				o.ObserveInt64(inst, st.Counts[s], metric.WithAttributes(typ, attribute.String("chronicle.process.status", string(s))))
			}
			o.ObserveInt64(timers, st.PendingTimers, attrs)
			o.ObserveInt64(overdue, st.Stuck, attrs)
			age := 0.0
			if !st.OldestTimer.IsZero() && st.OldestTimer.Before(now) {
				age = now.Sub(st.OldestTimer).Seconds()
			}
			o.ObserveFloat64(oldest, age, attrs)
			o.ObserveInt64(cmds, st.PendingCommands, attrs)
			o.ObserveInt64(failed, st.FailedCommands, attrs)
			o.ObserveFloat64(mean, st.AvgCompletion.Seconds(), attrs)
		}
		return nil
	}, inst, timers, overdue, oldest, cmds, failed, mean)
}
