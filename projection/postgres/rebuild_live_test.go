package postgres_test

import (
	"context"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
)

// gate holds back the catch-up of one build, from its progress callback
// (outside any transaction, so the log is not held back), until released,
// so its runner can neither finish the catch-up nor switch,
// and says when it first holds it.
type gate struct {
	build   projection.Build
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	opened  sync.Once
}

// open releases the build's catch-up; calling it again does nothing.
func (g *gate) open() { g.opened.Do(func() { close(g.release) }) }

func newGate(b projection.Build) *gate {
	return &gate{build: b, entered: make(chan struct{}), release: make(chan struct{})}
}

// progress is a projection.WithProgress callback that blocks on g's build.
func (g *gate) progress(p projection.Progress) {
	if p.Build != g.build {
		return
	}
	g.once.Do(func() { close(g.entered) })
	<-g.release
}

func (g *gate) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(20 * time.Second):
		t.Fatalf("the rebuild of %s never started applying events", g.build)
	}
}

// waitView waits until the stable view equals want, exactly once each.
func (e *env) waitView(want map[string]int64, why string) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, ok := e.counts("counts"), true
		if len(got) != len(want) {
			ok = false
		}
		for s, n := range want {
			if c := got[s]; c.n != n || c.last != n || c.bad != 0 {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			e.checkCounts("counts", want)
			e.t.Fatalf("the view did not reach the expected counts %s", why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// While an explicit rebuild builds the next generation, the runner keeps
// applying live events to the current build, so readers of the view do not
// fall behind until the switch; after it the view is over the new build,
// equal to a read model built live, every event applied once per build.
func TestExplicitRebuildKeepsTheCurrentBuildLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	g := newGate(projection.Build{Name: "counts", Version: 1, Generation: 1})
	r := e.runner([]projection.Projection{counting("counts", 1)}, projection.WithCatchUpBatchSize(50), projection.WithProgress(g.progress))
	run(t, r)
	t.Cleanup(g.open) // before Run stops, when the test fails early
	want, last := e.write("acct", 4, 50)
	waitFor(t, r, "counts", last)

	rebuilt := make(chan error, 1)
	go func() { rebuilt <- r.Rebuild(ctx, "counts") }()
	g.waitEntered(t)

	more, last := e.write("more", 3, 40)
	maps.Copy(want, more)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := r.WaitFor(wctx, "counts", last); err != nil {
		t.Fatalf("WaitFor during the rebuild: %v", err)
	}
	e.waitView(want, "during the rebuild (the current build was not kept live)")
	reg, err := e.store.Registration(ctx, "counts")
	if err != nil {
		t.Fatal(err)
	}
	if reg.Current != (projection.Build{Name: "counts", Version: 1}) || reg.Target != g.build {
		t.Fatalf("the rebuild switched before it was released: %+v", reg)
	}

	// Writers keep appending across the switch.
	var wg sync.WaitGroup
	var after map[string]int64
	var lastAfter eventstore.Position
	wg.Add(1)
	go func() {
		defer wg.Done()
		after, lastAfter = e.write("after", 2, 60)
	}()
	g.open()
	select {
	case err := <-rebuilt:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the rebuild did not finish after its release")
	}
	wg.Wait()
	maps.Copy(want, after)
	waitFor(t, r, "counts", lastAfter)
	reg, err = e.store.Registration(ctx, "counts")
	if err != nil {
		t.Fatal(err)
	}
	if reg.Current != g.build || reg.Rebuilding() {
		t.Fatalf("registration after the rebuild: %+v", reg)
	}
	e.checkCounts("counts", want)
	e.checkCounts("counts_v1_1", want)
}
