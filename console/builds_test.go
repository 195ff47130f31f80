package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/console"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/runnertest"
	"github.com/chronicle-go/chronicle/projection"
)

// The overview's rate is the events applied between two samples a second
// or more apart, divided by the time between them; the builds are listed,
// and the drop action refuses the current build (409) and drops an old
// one.
func TestConsoleRateAndBuilds(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, _, es, ps := newStores(t, false, espg.WithPollInterval(20*time.Millisecond))
	nop := projection.Projection{Name: "nop", Handler: projection.HandlerFunc(func(context.Context, projection.Tx, projection.Event) error { return nil })}
	r, err := projection.NewRunner(es, ps, []projection.Projection{nop})
	if err != nil {
		t.Fatal(err)
	}
	runnertest.Run(t, r)
	appendN := func(n int) eventstore.Position {
		var last eventstore.AppendResult
		for i := range n {
			if last, err = es.Append(ctx, "s-"+string(rune('a'+i%26)), eventstore.Any, eventstore.Event{Type: "E", Data: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
		}
		runnertest.WaitFor(t, r, "nop", last.Position)
		return last.Position
	}
	appendN(5)
	h, err := console.New(r.Admin(), console.WithActions(true))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// The first sample is taken during this Overview: the time since it
	// is at most the time since before the call (under load the call
	// itself can take tens of milliseconds).
	first := time.Now()
	o, err := h.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o.Projections[0].Rate != nil {
		t.Fatalf("rate %v from one sample", *o.Projections[0].Rate)
	}
	appendN(20)
	var rate *float64
	for deadline := time.Now().Add(10 * time.Second); rate == nil && time.Now().Before(deadline); {
		if o, err = h.Overview(ctx); err != nil {
			t.Fatal(err)
		}
		rate = o.Projections[0].Rate
		time.Sleep(50 * time.Millisecond)
	}
	// 20 events over at least a second, and over no more than the time
	// since the first sample.
	if rate == nil {
		t.Fatal("no rate after 10s")
	}
	if since := time.Since(first); *rate > 20 || *rate < 20/since.Seconds() {
		t.Fatalf("rate = %v, want 20 events over at least 1s and at most %s", *rate, since)
	}

	if err := r.Rebuild(ctx, "nop"); err != nil {
		t.Fatal(err)
	}
	if o, err = h.Overview(ctx); err != nil {
		t.Fatal(err)
	}
	if len(o.Builds) != 2 || o.Builds[0].Status != "old" || o.Builds[0].Applied != 25 || o.Builds[1].Status != "current" || o.Builds[1].Generation != 1 {
		t.Fatalf("builds = %+v", o.Builds)
	}
	drop := func(body string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/projections/drop", strings.NewReader(body)))
		return rec.Code
	}
	if code := drop(`{"projection":"nop","version":1,"generation":1}`); code != http.StatusConflict {
		t.Fatalf("drop of the current build: %d, want 409", code)
	}
	if code := drop(`{"projection":"what","version":1}`); code != http.StatusNotFound {
		t.Fatalf("drop of an unknown projection: %d, want 404", code)
	}
	if code := drop(`{"projection":"nop","version":1,"generation":0}`); code != http.StatusNoContent {
		t.Fatalf("drop of the old build: %d, want 204", code)
	}
	if o, err = h.Overview(ctx); err != nil || len(o.Builds) != 1 {
		t.Fatalf("builds after the drop = %+v, %v", o.Builds, err)
	}
}
