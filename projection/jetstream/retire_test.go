package jetstream_test

import (
	"errors"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/projection"
)

// waitConsumer waits until the consumer exists (want) or is gone (!want).
func (e *env) waitConsumer(name string, want bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.js.Consumer(testCtx(e.t), e.topo().Stream, name)
		switch {
		case err == nil && want, errors.Is(err, njs.ErrConsumerNotFound) && !want:
			return
		case err != nil && !errors.Is(err, njs.ErrConsumerNotFound):
			e.t.Fatalf("look up consumer %s: %v", name, err)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("consumer %s: exists = %v after 10s", name, !want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After a rebuild switches, the old build's consumer is deleted once the
// new build reads its own; events keep flowing, applied once each.
func TestRebuildDeletesTheOldBuildsConsumer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.startRelay()
	src := e.source()
	r := e.runner(src, []projection.Projection{counting("counts")})
	run(t, r)
	_, last := e.write("acct", 4, 50)
	waitFor(t, r, "counts", last)
	v1 := src.ConsumerName(projection.Build{Name: "counts", Version: 1})
	v1g1 := src.ConsumerName(projection.Build{Name: "counts", Version: 1, Generation: 1})
	e.waitConsumer(v1, true)

	if err := r.Rebuild(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	e.waitConsumer(v1g1, true)
	e.waitConsumer(v1, false)
	reg, err := e.store.Registration(ctx, "counts")
	if err != nil {
		t.Fatal(err)
	}
	if reg.Current.String() != "counts@v1_1" || reg.Previous.String() != "counts@v1" {
		t.Fatalf("registration after the switch: %+v", reg)
	}

	want, last := e.write("acct", 4, 100)
	waitFor(t, r, "counts", last)
	for id := range want {
		want[id] += 50 // written before the rebuild
	}
	e.checkCounts(want)
	cons, err := e.js.Consumer(ctx, e.topo().Stream, v1g1)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer < 100 {
		t.Fatalf("new consumer delivered %d messages: the events after the switch did not come through JetStream", info.Delivered.Consumer)
	}
}

// A switch made by a process without the JetStream source (the CLI's
// rebuild) leaves the old consumer; the service's runner deletes it when
// it goes live on the new build.
func TestRunnerRetiresTheBuildAnotherProcessSwitchedFrom(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.startRelay()
	src := e.source()
	ps := []projection.Projection{counting("counts")}
	service := e.runner(src, ps)
	stop := run(t, service)
	_, last := e.write("acct", 2, 20)
	waitFor(t, service, "counts", last)
	v1 := src.ConsumerName(projection.Build{Name: "counts", Version: 1})
	e.waitConsumer(v1, true)
	stop()

	cli, err := projection.NewRunner(e.events, e.store, ps) // the store source, as the CLI has
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Rebuild(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	e.waitConsumer(v1, true) // nobody deleted it yet

	service = e.runner(src, ps)
	run(t, service)
	e.waitConsumer(src.ConsumerName(projection.Build{Name: "counts", Version: 1, Generation: 1}), true)
	e.waitConsumer(v1, false)
	want, last := e.write("acct", 2, 40)
	waitFor(t, service, "counts", last)
	for id := range want {
		want[id] += 20 // written before the rebuild
	}
	e.checkCounts(want)
}
