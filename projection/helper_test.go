package projection_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/runnertest"
	"github.com/chronicle-go/chronicle/projection"
)

// counter is an in-memory read model: events seen per stream, in order.
type counter struct {
	mu      sync.Mutex
	seen    map[string][]int64 // stream -> versions applied, in order
	byID    map[string]int     // event id -> times applied
	failing map[string]bool    // event types that always fail
}

func newCounter() *counter {
	return &counter{seen: map[string][]int64{}, byID: map[string]int{}, failing: map[string]bool{}}
}

func (c *counter) handler() projection.Handler {
	return projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.failing[ev.Record.Type] {
			return fmt.Errorf("cannot handle %s", ev.Record.Type)
		}
		c.seen[ev.Record.StreamID] = append(c.seen[ev.Record.StreamID], ev.Record.StreamVersion)
		c.byID[ev.Record.ID.String()]++
		return nil
	})
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.byID {
		n += v
	}
	return n
}

func (c *counter) setFailing(typ string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failing[typ] = on
}

// check asserts every stream's versions were applied once each, in order.
func (c *counter) check(t *testing.T, streams map[string]int64) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.byID {
		if n != 1 {
			t.Errorf("event %s applied %d times", id, n)
		}
	}
	for s, want := range streams {
		got := c.seen[s]
		if int64(len(got)) != want {
			t.Errorf("stream %s: applied %d events, want %d", s, len(got), want)
			continue
		}
		for i, v := range got {
			if v != int64(i+1) {
				t.Errorf("stream %s: event %d has version %d: out of order", s, i, v)
				break
			}
		}
	}
}

func appendN(t *testing.T, ctx context.Context, store eventstore.Store, stream, typ string, n int) eventstore.AppendResult {
	t.Helper()
	var res eventstore.AppendResult
	for i := 0; i < n; i++ {
		data, _ := json.Marshal(map[string]int{"n": i})
		r, err := store.Append(ctx, stream, eventstore.Any, eventstore.Event{Type: typ, Data: data})
		if err != nil {
			t.Fatalf("append to %s: %v", stream, err)
		}
		res = r
	}
	return res
}

// run starts r.Run in the background and stops it at the end of the test,
// failing the test if Run returned an error.
func run(t *testing.T, r *projection.Runner) (stop func()) {
	t.Helper()
	return runnertest.Run(t, r)
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
