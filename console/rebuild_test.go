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

func post(h http.Handler, path, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
	return rec
}

// A rebuild started from the console (actions enabled) runs beside the
// current build, the overview shows it running then done, and the new
// build is current; read-only consoles refuse it.
func TestRebuildFromConsole(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, _, es, ps := newStores(t, false, espg.WithPollInterval(20*time.Millisecond))
	totals := projection.Projection{Name: "totals", Handler: projection.HandlerFunc(func(context.Context, projection.Tx, projection.Event) error { return nil })}
	r, err := projection.NewRunner(es, ps, []projection.Projection{totals}, projection.WithBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runnertest.Run(t, r)
	var last eventstore.AppendResult
	for i := range 20 {
		if last, err = es.Append(ctx, "acct-"+string(rune('a'+i)), eventstore.Any, eventstore.Event{Type: "Opened", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	runnertest.WaitFor(t, r, "totals", last.Position)
	before, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}

	ro, err := console.New(r.Admin())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if rec := post(ro, "/api/projections/rebuild", `{"projection":"totals"}`); rec.Code != http.StatusForbidden {
		t.Fatalf("read-only rebuild: %d", rec.Code)
	}

	h, err := console.New(r.Admin(), console.WithActions(true))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if rec := post(h, "/api/projections/rebuild", `{"projection":"nope"}`); rec.Code != http.StatusNotFound {
		t.Fatalf("rebuild of an unknown projection: %d %s", rec.Code, rec.Body)
	}
	if rec := post(h, "/api/projections/rebuild", `{"projection":"totals"}`); rec.Code != http.StatusAccepted {
		t.Fatalf("rebuild: %d %s", rec.Code, rec.Body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, err := h.Overview(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rb := o.Projections[0].Rebuild
		if rb == nil {
			t.Fatal("overview shows no rebuild")
		}
		if rb.State == "failed" {
			t.Fatalf("rebuild failed: %s", rb.Error)
		}
		if rb.State == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rebuild still %s after 30s", rb.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	after, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after[0].Current.Generation != before[0].Current.Generation+1 || after[0].Current != after[0].Target {
		t.Fatalf("after the rebuild: current %s target %s (before %s)", after[0].Current, after[0].Target, before[0].Current)
	}
	runnertest.WaitFor(t, r, "totals", last.Position)
}
