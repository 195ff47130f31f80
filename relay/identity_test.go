package relay_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// runUntilReady runs r in the background and waits until it leads and
// publishes.
func runUntilReady(t *testing.T, r *relay.Relay) *running {
	t.Helper()
	run := start(t, r)
	select {
	case <-r.Ready():
	case err := <-run.done:
		run.done <- err
		t.Fatalf("Run ended before the relay was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the relay was not ready within 30s")
	}
	return run
}

// TestTwoStoresOnDefaultsPublishEverything: the relays of two schemas, both
// on the default options, must not share a stream: the second one used to
// resume after the first one's position and publish none of its own
// events.
func TestTwoStoresOnDefaultsPublishEverything(t *testing.T) {
	t.Parallel()
	a := newEnv(t)
	b := a.sibling()
	ctx := testCtx(t)
	if err := a.appendEvents(ctx, 20, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.appendEvents(ctx, 30, 0); err != nil {
		t.Fatal(err)
	}
	rb := b.relay(b.nc)
	runUntilReady(t, rb)
	stb, err := rb.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.waitCount(ctx, stb.Stream, 30)

	ra := a.relay(a.nc)
	runUntilReady(t, ra)
	sta, err := ra.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sta.Stream == stb.Stream {
		t.Fatalf("schemas %s and %s both publish to stream %s by default", a.schema, b.schema, sta.Stream)
	}
	a.waitCount(ctx, sta.Stream, 20)
	a.verify(ctx, sta.Stream, "")
	b.verify(ctx, stb.Stream, "")
}

// TestRelayRefusesAStreamOfAnotherStore: a relay given the stream another
// store's relay publishes to stops with an error naming both stores, the
// stream and its schema, instead of resuming after the other store's
// position.
func TestRelayRefusesAStreamOfAnotherStore(t *testing.T) {
	t.Parallel()
	a := newEnv(t)
	b := a.sibling()
	ctx := testCtx(t)
	if err := a.appendEvents(ctx, 10, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.appendEvents(ctx, 10, 0); err != nil {
		t.Fatal(err)
	}
	shared := relay.WithTopology(wire.Topology{Stream: "SHARED", SubjectPrefix: "shared.events"})
	rb := b.relay(b.nc, shared)
	run := runUntilReady(t, rb)
	b.waitCount(ctx, "SHARED", 10)
	run.stop(t)

	ra := a.relay(a.nc, shared)
	done := make(chan error, 1)
	go func() { done <- ra.Run(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the relay of another store kept running on the shared stream")
	}
	if !errors.Is(err, wire.ErrForeignStore) {
		t.Fatalf("Run: %v, want wire.ErrForeignStore", err)
	}
	ida, _ := a.store.StoreID(ctx)
	idb, _ := b.store.StoreID(ctx)
	for _, want := range []string{ida.String(), idb.String(), "SHARED", a.schema} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if st, err := ra.Status(ctx); err != nil || st.LastError == nil {
		t.Errorf("Status after the refusal: %+v, %v; want the error as LastError", st, err)
	}
}

// TestCheckpointAheadOfTheHeadIsAnError: a checkpoint after the head of
// the log (written for another store) stops the relay and fails Status,
// instead of skipping the log up to it with a lag of 0.
func TestCheckpointAheadOfTheHeadIsAnError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	if err := e.appendEvents(ctx, 5, 0); err != nil {
		t.Fatal(err)
	}
	r := e.relay(e.nc)
	head, err := e.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head.TxID += 1000
	e.setCheckpoint(ctx, head)
	if _, err := r.Status(ctx); !errors.Is(err, relay.ErrCheckpointAhead) {
		t.Errorf("Status: %v, want ErrCheckpointAhead", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = r.Run(rctx)
	if !errors.Is(err, relay.ErrCheckpointAhead) {
		t.Fatalf("Run: %v, want ErrCheckpointAhead", err)
	}
	if !strings.Contains(err.Error(), e.schema) || !strings.Contains(err.Error(), head.String()) {
		t.Errorf("error %q does not name the schema and the checkpoint", err)
	}
}
