package jetstream_test

import (
	"context"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/projection"
)

// gate holds back the catch-up of one build, from its progress callback
// (outside any transaction, so the log is not held back), until released:
// its runner can neither finish the catch-up nor switch.
type gate struct {
	build   projection.Build
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	opened  sync.Once
}

func newGate(b projection.Build) *gate {
	return &gate{build: b, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) open() { g.opened.Do(func() { close(g.release) }) }

func (g *gate) progress(p projection.Progress) {
	if p.Build != g.build {
		return
	}
	g.once.Do(func() { close(g.entered) })
	<-g.release
}

// A rebuild asked for by another process (the CLI) while the service runs
// on JetStream: the service takes the new build over at its next heartbeat
// and, until the switch, keeps applying live events to the current build
// through that build's own durable consumer, so readers of the view do not
// fall behind. After the switch the view is over the new build, every
// event applied once, and the old build's consumer is deleted.
func TestRebuildByAnotherProcessKeepsTheCurrentBuildLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.startRelay()
	src := e.source()
	next := projection.Build{Name: "counts", Version: 1, Generation: 1}
	g := newGate(next)
	ps := []projection.Projection{counting("counts")}
	service := e.runner(src, ps, projection.WithHeartbeat(50*time.Millisecond), projection.WithCatchUpBatchSize(20),
		projection.WithProgress(g.progress))
	run(t, service)
	t.Cleanup(g.open) // before Run stops, when the test fails early
	want, last := e.write("acct", 3, 40)
	waitFor(t, service, "counts", last)
	v1 := src.ConsumerName(projection.Build{Name: "counts", Version: 1})
	e.waitConsumer(v1, true)

	cli, err := projection.NewRunner(e.events, e.store, ps, projection.WithCatchUpBatchSize(20), projection.WithProgress(g.progress))
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := make(chan error, 1)
	go func() { rebuilt <- cli.Rebuild(ctx, "counts") }()
	select {
	case <-g.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the rebuild never started")
	}
	// Let the service notice the rebuild and take it over.
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := service.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].State == projection.Rebuilding {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service never took the rebuild over: %+v", st[0])
		}
		time.Sleep(20 * time.Millisecond)
	}

	delivered := func() uint64 {
		t.Helper()
		cons, err := e.js.Consumer(ctx, e.topo().Stream, v1)
		if err != nil {
			t.Fatal(err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.Delivered.Consumer
	}
	before := delivered()
	more, last := e.write("more", 2, 30)
	maps.Copy(want, more)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := service.WaitFor(wctx, "counts", last); err != nil {
		t.Fatalf("WaitFor during the rebuild: %v", err)
	}
	e.checkCounts(want) // the view, still over counts_v1, kept live
	if n := delivered() - before; n < 60 {
		t.Fatalf("the current build's consumer delivered %d messages during the rebuild, want >= 60", n)
	}
	reg, err := e.store.Registration(ctx, "counts")
	if err != nil {
		t.Fatal(err)
	}
	if reg.Current.String() != "counts@v1" || reg.Target != next {
		t.Fatalf("the rebuild switched before it was released: %+v", reg)
	}

	g.open()
	select {
	case err := <-rebuilt:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the rebuild did not finish after its release")
	}
	after, last := e.write("after", 2, 30)
	maps.Copy(want, after)
	waitFor(t, service, "counts", last)
	e.waitConsumer(src.ConsumerName(next), true)
	e.waitConsumer(v1, false)
	reg, err = e.store.Registration(ctx, "counts")
	if err != nil {
		t.Fatal(err)
	}
	if reg.Current != next || reg.Rebuilding() {
		t.Fatalf("registration after the rebuild: %+v", reg)
	}
	e.checkCounts(want)
}
