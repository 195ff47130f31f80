package projection_test

import (
	"context"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/projection"
)

func TestMemoryStoreHeartbeatsAndList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	es := memory.New()
	store := projection.NewMemoryStore()
	ps := []projection.Projection{{Name: "counter", Handler: newCounter().handler()}}
	r, err := projection.NewRunner(es, store, ps, projection.WithHeartbeat(20*time.Millisecond), projection.WithOwner("me"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := projection.NewRunner(es, store, ps)
	if err != nil {
		t.Fatal(err)
	}
	last := appendN(t, ctx, es, "acct-1", "Deposited", 3)
	stop := run(t, r)
	waitUntil(t, "the other runner to see it running", 5*time.Second, func() bool {
		st, err := other.Status(ctx)
		return err == nil && st[0].State == projection.Running && st[0].Heartbeat.Owner == "me"
	})
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.WaitFor(wctx, "counter", last.Position); err != nil {
		t.Fatal(err)
	}
	sums, err := store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 || sums[0].Name != "counter" || sums[0].Checkpoint != last.Position ||
		sums[0].State(time.Now()) != projection.Running || sums[0].Heartbeat(time.Now()).Build.String() != "counter@v1" {
		t.Fatalf("List = %+v", sums)
	}
	// Not heard from for three intervals: stopped.
	if got := sums[0].State(time.Now().Add(time.Second)); got != projection.Stopped {
		t.Fatalf("state a second later without a beat = %s", got)
	}
	stop()
	st, err := other.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].State != projection.Stopped || st[0].Heartbeat.State != projection.Stopped || st[0].Heartbeat.Owner != "me" {
		t.Fatalf("status after stop = %+v", st[0])
	}
}

func TestHeartbeatAlive(t *testing.T) {
	t.Parallel()
	now := time.Now()
	h := projection.Heartbeat{State: projection.Running, Interval: time.Second, SeenAt: now.Add(-2 * time.Second)}
	if !h.Alive(now) {
		t.Error("seen two intervals ago: want alive")
	}
	if h.Alive(now.Add(2 * time.Second)) {
		t.Error("seen four intervals ago: want dead")
	}
	h.State = projection.Stopped
	if h.Alive(now) {
		t.Error("a stopped heartbeat is not alive")
	}
	if (projection.Heartbeat{}).Alive(now) {
		t.Error("the zero heartbeat is not alive")
	}
}
