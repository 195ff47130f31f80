package projection

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// DefaultHeartbeatInterval is how often a running [Runner] records its
// heartbeats unless [WithHeartbeat] says otherwise.
const DefaultHeartbeatInterval = 5 * time.Second

// HeartbeatTolerance is how many heartbeat intervals may pass before a
// runner that has not been heard from is taken for dead.
const HeartbeatTolerance = 3

// Heartbeat is a runner's sign of life for one projection build, recorded
// in the projection store every few seconds while Run runs it, so that
// other processes (the CLI, a health check) can tell whether the
// projection runs anywhere.
type Heartbeat struct {
	// Build is the build the runner works on.
	Build Build
	// Owner names the runner: its host name and process ID by default
	// (see [WithOwner]).
	Owner string
	// State is what the runner was doing with the build.
	State State
	// Interval is the runner's heartbeat interval.
	Interval time.Duration
	// SeenAt is when the heartbeat was recorded, on the reader's clock.
	SeenAt time.Time
}

// Alive reports whether h comes from a runner that is running: it does
// not say Stopped and was recorded at most [HeartbeatTolerance] intervals
// before now.
func (h Heartbeat) Alive(now time.Time) bool {
	return !h.SeenAt.IsZero() && h.State != "" && h.State != Stopped &&
		now.Sub(h.SeenAt) <= HeartbeatTolerance*h.Interval
}

// HeartbeatStore is implemented by a [Store] that records runners'
// heartbeats. [MemoryStore] and projection/postgres do; a running
// [Runner] beats through it when its store is one.
type HeartbeatStore interface {
	// Beat records heartbeats, all in one call, each replacing the last
	// one of the same build and owner.
	Beat(ctx context.Context, beats []Heartbeat) error
	// Heartbeats returns the recorded heartbeats of a projection's builds,
	// freshest first.
	Heartbeats(ctx context.Context, name string) ([]Heartbeat, error)
}

// Summary is what a projection store knows of one projection, without its
// code: its builds, checkpoint, dead letters and runners' heartbeats.
type Summary struct {
	// Registration holds the projection's name and builds.
	Registration
	// Checkpoint is the position of the last event the target build
	// applied.
	Checkpoint eventstore.Position
	// DeadLetters is the number of dead letters.
	DeadLetters int
	// Heartbeats are the runners' heartbeats of the projection's builds,
	// freshest first.
	Heartbeats []Heartbeat
}

// Heartbeat returns the heartbeat that speaks for the projection at now:
// the freshest alive one, else the freshest one; zero when there is none.
func (s Summary) Heartbeat(now time.Time) Heartbeat { return pickHeartbeat(s.Heartbeats, now) }

// State returns what the projection is doing as far as the store tells at
// now: the state of an alive heartbeat (running, halted, rebuilding...),
// else Rebuilding while a build other than the current one is registered,
// else Stopped.
func (s Summary) State(now time.Time) State { return storedState(s.Registration, s.Heartbeats, now) }

// Lister is implemented by a [Store] that can list every projection it
// knows, for tools that do not have the projections' code (the generic
// chronicle binary). [MemoryStore] and projection/postgres do.
type Lister interface {
	// List returns a summary of every registered projection, by name.
	List(ctx context.Context) ([]Summary, error)
}

func pickHeartbeat(hbs []Heartbeat, now time.Time) Heartbeat {
	for _, h := range hbs {
		if h.Alive(now) {
			return h
		}
	}
	if len(hbs) > 0 {
		return hbs[0]
	}
	return Heartbeat{}
}

func storedState(reg Registration, hbs []Heartbeat, now time.Time) State {
	if h := pickHeartbeat(hbs, now); h.Alive(now) {
		return h.State
	}
	if reg.Rebuilding() {
		return Rebuilding
	}
	return Stopped
}

// sortHeartbeats orders heartbeats freshest first, as [HeartbeatStore]
// returns them.
func sortHeartbeats(hbs []Heartbeat) {
	slices.SortStableFunc(hbs, func(a, b Heartbeat) int { return b.SeenAt.Compare(a.SeenAt) })
}

// defaultOwner names this process: host name and process ID.
func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

// beats returns the heartbeats of the builds the runner's supervisors run.
func (r *Runner) beats() []Heartbeat {
	var out []Heartbeat
	for _, name := range r.e.order {
		snap := r.sups[name].prog.snapshot()
		if snap.running && !snap.build.IsZero() {
			out = append(out, Heartbeat{Build: snap.build, Owner: r.e.opts.owner, State: snap.state, Interval: r.e.opts.heartbeat})
		}
	}
	return out
}

// heartbeat records the runner's heartbeats until ctx ends, then marks the
// builds it ran as stopped (best effort: a failure is logged, and readers
// take a runner not heard from for stopped anyway). At each beat it also
// looks for builds switched or registered by another process (see
// [Runner.watchBuilds]).
func (r *Runner) heartbeat(ctx context.Context) {
	interval := r.e.opts.heartbeat
	if interval <= 0 {
		return
	}
	hs, ok := r.e.store.(HeartbeatStore)
	if !ok {
		hs = nil
	}
	beaten := map[Build]bool{}
	beat := func(ctx context.Context, beats []Heartbeat) {
		if len(beats) == 0 || hs == nil {
			return
		}
		bctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
		defer cancel()
		if err := hs.Beat(bctx, beats); err != nil {
			r.e.log.Warn("record projection heartbeats", "owner", r.e.opts.owner, "err", err)
			return
		}
		for _, b := range beats {
			beaten[b.Build] = true
		}
	}
	t := time.NewTimer(min(interval, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			var last []Heartbeat
			for b := range beaten {
				last = append(last, Heartbeat{Build: b, Owner: r.e.opts.owner, State: Stopped, Interval: interval})
			}
			beat(context.WithoutCancel(ctx), last)
			return
		case <-t.C:
		}
		// Not cancelled mid-flight: a beat the server would still apply
		// after the final one must never outlive it.
		beat(context.WithoutCancel(ctx), r.beats())
		r.watchBuilds(ctx)
		t.Reset(interval)
	}
}

// watchBuilds restarts the workers that run live on a build other than the
// one the store now says they should: a rebuild asked for by another
// process (the CLI) registered a new target, which this runner then takes
// over, or another process switched builds, which this runner then
// follows (and retires the old build from its source).
func (r *Runner) watchBuilds(ctx context.Context) {
	for _, name := range r.e.order {
		s := r.sups[name]
		snap := s.prog.snapshot()
		b, st, in := snap.build, snap.state, snap.running
		if !in || b.IsZero() || (st != Running && st != Halted) {
			continue
		}
		reg, err := r.e.store.Registration(ctx, name)
		if err != nil {
			if ctx.Err() == nil {
				r.e.log.Warn("read projection registration", "projection", name, "err", err)
			}
			continue
		}
		v := s.pr.p.version()
		want := b
		switch {
		case reg.Target.Version == v:
			want = reg.Target
		case reg.Target.Version > v && reg.Current.Version == v:
			want = reg.Current
		case reg.Target.Version > v:
			want = Build{} // newer code took over: idle
		}
		if want != b {
			r.e.log.Info("projection build changed in the store; restarting on it", "projection", name,
				"from", b.String(), "to", want.String())
			s.signal()
		}
	}
}
