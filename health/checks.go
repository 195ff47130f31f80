package health

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/relay"
)

// ProjectionLimits are the thresholds past which a projection makes a
// service unready. A zero limit is not checked. A halted or failing
// projection is always a problem.
type ProjectionLimits struct {
	// MaxLag is the most events a projection may be behind.
	MaxLag int
	// MaxLagTime is the oldest an event not applied yet may be.
	MaxLagTime time.Duration
	// MaxDeadLetters is the most dead letters a projection may have; zero
	// does not check them (a projection that skips poison events goes on).
	MaxDeadLetters int
}

// ProjectionStatuser reports the status of projections:
// *projection.Admin and *projection.Runner are ones.
type ProjectionStatuser interface {
	Status(ctx context.Context) ([]projection.Status, error)
}

// Projections checks the projections s reports against lim (see
// [ProjectionProblems]).
func Projections(s ProjectionStatuser, lim ProjectionLimits) Check {
	return Check{Component: "projection", Run: func(ctx context.Context) ([]Problem, error) {
		sts, err := s.Status(ctx)
		if err != nil {
			return nil, err
		}
		return ProjectionProblems(sts, lim), nil
	}}
}

// ProjectionProblems returns what is wrong with the projections: halted,
// failing (with their last error), or past a limit of lim.
func ProjectionProblems(sts []projection.Status, lim ProjectionLimits) []Problem {
	var ps []Problem
	for _, st := range sts {
		add := func(format string, args ...any) {
			ps = append(ps, Problem{Component: "projection", Name: st.Name, Reason: fmt.Sprintf(format, args...)})
		}
		switch st.State {
		case projection.Halted, projection.Failing:
			switch {
			case st.LastError != "":
				add("%s: %s", st.State, st.LastError)
			case st.DeadLetters > 0:
				add("%s (%d dead letters)", st.State, st.DeadLetters)
			default:
				add("%s", st.State)
			}
		}
		if lim.MaxLag > 0 && st.Lag > lim.MaxLag {
			add("lag %d events is above %d", st.Lag, lim.MaxLag)
		}
		if lim.MaxLagTime > 0 && st.LagTime > lim.MaxLagTime {
			add("lag %s is above %s", st.LagTime.Round(time.Millisecond), lim.MaxLagTime)
		}
		if lim.MaxDeadLetters > 0 && st.DeadLetters > lim.MaxDeadLetters {
			add("%d dead letters is above %d", st.DeadLetters, lim.MaxDeadLetters)
		}
	}
	return ps
}

// RelayLeader checks that a relay built with opts (its schema and name)
// leads somewhere: with no leader, nothing publishes the log to NATS.
func RelayLeader(pool *pgxpool.Pool, opts ...relay.Option) Check {
	return Check{Component: "relay", Run: func(ctx context.Context) ([]Problem, error) {
		l, err := relay.ReadLeadership(ctx, pool, opts...)
		if err != nil {
			return nil, err
		}
		return RelayProblems(l), nil
	}}
}

// RelayProblems returns a problem when no relay holds the leadership l
// describes.
func RelayProblems(l relay.Leadership) []Problem {
	if l.Held {
		return nil
	}
	return []Problem{{Component: "relay", Name: l.Name, Reason: "no relay leads (none holds the leadership lock in PostgreSQL)"}}
}

// LogStatuser reports how far open transactions hold readers of the log
// back; *espg.Store is one.
type LogStatuser interface {
	Status(ctx context.Context) (espg.LogStatus, error)
}

// Log checks that no open transaction holds readers of the log back for
// longer than maxHeldBack (see [LogProblems]).
func Log(s LogStatuser, maxHeldBack time.Duration) Check {
	return Check{Component: "log", Run: func(ctx context.Context) ([]Problem, error) {
		st, err := s.Status(ctx)
		if err != nil {
			return nil, err
		}
		return LogProblems(st, maxHeldBack), nil
	}}
}

// LogProblems returns a problem when committed events are held back from
// every reader by a transaction open for longer than maxHeldBack, naming
// that transaction (pid, age, application). A zero maxHeldBack reports
// any held-back event.
func LogProblems(st espg.LogStatus, maxHeldBack time.Duration) []Problem {
	if st.HeldBack == 0 || st.Oldest == nil || st.Oldest.Age <= maxHeldBack {
		return nil
	}
	o := st.Oldest
	return []Problem{{Component: "log", Reason: fmt.Sprintf(
		"%d events held back for %s (above %s) by transaction pid %d (state %q, application %q, user %q)",
		st.HeldBack, o.Age.Round(time.Millisecond), maxHeldBack, o.PID, o.State, o.Application, o.User)}}
}
