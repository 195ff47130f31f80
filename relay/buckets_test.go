package relay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/relay"
)

// TestRelayRefusesToChangeTheLayoutOfAStream: a relay given buckets on a
// stream published without them (ADR 0020: a bucketed topology needs its
// own stream and prefix) stops with an error instead of mixing the two
// layouts, which consumers would filter wrongly.
func TestRelayRefusesToChangeTheLayoutOfAStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	if err := e.appendEvents(ctx, 5, 0); err != nil {
		t.Fatal(err)
	}
	run := runUntilReady(t, e.relay(e.nc))
	e.waitCount(ctx, e.topo().Stream, 5)
	run.stop(t)

	topo := e.topo()
	topo.Buckets = 16
	r := e.relay(e.nc, relay.WithTopology(topo))
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "bucket") {
			t.Fatalf("Run: %v, want a refusal naming the buckets", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the relay kept running with buckets on a stream without them")
	}
}
