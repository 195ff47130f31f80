// Package runnertest holds the helpers Chronicle's projection tests share
// to run a projection.Runner in the background and wait on it.
package runnertest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
)

// Run starts r.Run in the background and returns a stop function, also run
// when the test ends, that cancels it and fails the test if Run returned an
// error or did not return within 20 seconds.
func Run(t testing.TB, r *projection.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// WaitFor waits, at most 30 seconds, until projection name has applied pos,
// and fails the test otherwise.
func WaitFor(t testing.TB, r *projection.Runner, name string, pos eventstore.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, name, pos); err != nil {
		t.Fatal(err)
	}
}

// Ready waits, at most 30 seconds, until every projection of r has started
// (see projection.Runner.Ready), and fails the test otherwise.
func Ready(t testing.TB, r *projection.Runner) {
	t.Helper()
	select {
	case <-r.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("runnertest: the runner's projections did not all start within 30s")
	}
}

// Spread counts, in the partition states of a build, the partitions each
// instance holds (the lease owner up to its first '/') and the partitions
// no live lease holds (free: no owner, or a lease expired over a second
// ago).
func Spread(states []projection.PartitionState) (held map[string]int, free int) {
	held = map[string]int{}
	for _, st := range states {
		if st.Lease.Owner == "" || time.Until(st.Lease.Expires) < -time.Second {
			free++
			continue
		}
		held[strings.SplitN(st.Lease.Owner, "/", 2)[0]]++
	}
	return held, free
}

// Even reports whether exactly owners hold n partitions between them, none
// free, each n/len(owners) or n/len(owners)+1 of them.
func Even(held map[string]int, free, n int, owners ...string) bool {
	ok := free == 0 && len(held) == len(owners)
	for _, o := range owners {
		k := held[o]
		ok = ok && k >= n/len(owners) && k <= (n+len(owners)-1)/len(owners)
	}
	return ok
}
