package jetstream_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
	projjs "github.com/chronicle-go/chronicle/projection/jetstream"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// beforeOpen runs hook once, before the first Open after it is armed.
type beforeOpen struct {
	projection.Source
	armed atomic.Bool
	hook  func(ctx context.Context, req projection.SourceRequest)
}

func (s *beforeOpen) Open(ctx context.Context, req projection.SourceRequest) (projection.Feed, error) {
	if s.armed.CompareAndSwap(true, false) {
		s.hook(ctx, req)
	}
	return s.Source.Open(ctx, req)
}

// Another process sharing the projection's durable consumer holds an
// earlier record, not applied yet, when this runner's feed opens: the
// runner must not apply the later records first and move its checkpoint
// past the held one.
func TestFirstDeliveryAfterARecordHeldElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.startRelay()
	src := e.source(projjs.WithAckWait(time.Second))
	p := counting("counts")

	// The consumer exists, with the first record applied and acked.
	r1 := e.runner(src, []projection.Projection{p})
	stop1 := run(t, r1)
	first, err := e.events.Append(ctx, "acct-1", eventstore.NoStream, eventstore.Event{Type: "Counted"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, r1, "counts", first.Position)
	for deadline := time.Now().Add(10 * time.Second); ; {
		cons, err := e.js.Consumer(ctx, e.topo().Stream, src.ConsumerName(projection.Build{Name: "counts", Version: 1}))
		if err == nil {
			if info, err := cons.Info(ctx); err == nil && info.AckFloor.Stream >= 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the first runner's consumer never acked the first record")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop1()

	var last eventstore.Position
	opened := make(chan struct{})
	hooked := &beforeOpen{Source: src, hook: func(ctx context.Context, req projection.SourceRequest) {
		defer close(opened)
		// Between this runner's catch-up and its feed's opening, two
		// records arrive and another process pulls the first of them.
		for _, s := range []string{"acct-2", "acct-3"} {
			res, err := e.events.Append(ctx, s, eventstore.NoStream, eventstore.Event{Type: "Counted"})
			if err != nil {
				t.Error(err)
				return
			}
			last = res.Position
		}
		st, err := e.js.Stream(ctx, e.topo().Stream)
		if err != nil {
			t.Error(err)
			return
		}
		for deadline := time.Now().Add(10 * time.Second); ; {
			info, err := st.Info(ctx)
			if err == nil && info.State.Msgs >= 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Error("relay did not publish the records")
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		cons, err := e.js.Consumer(ctx, e.topo().Stream, src.ConsumerName(req.Build))
		if err != nil {
			t.Error(err)
			return
		}
		batch, err := cons.Fetch(1, njs.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Error(err)
			return
		}
		for m := range batch.Messages() {
			if m.Headers().Get(wire.HeaderStream) != "acct-2" {
				t.Errorf("the other process pulled %s, want acct-2", m.Headers().Get(wire.HeaderStream))
			}
			// held: neither acked nor applied yet
		}
	}}
	hooked.armed.Store(true)
	r2 := e.runner(hooked, []projection.Projection{p})
	run(t, r2)
	select {
	case <-opened:
	case <-time.After(20 * time.Second):
		t.Fatal("the feed never opened")
	}
	if last.IsZero() {
		t.FailNow()
	}
	waitFor(t, r2, "counts", last)
	e.checkCounts(map[string]int64{"acct-1": 1, "acct-2": 1, "acct-3": 1})
}
