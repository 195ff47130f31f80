package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/console"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/process"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

type orderState struct{}

func (*orderState) Apply(any) {}

// processesFixture runs an "order" process type with one process
// completed, one running with a timer, one failed, and returns the console.
func processesFixture(t *testing.T) (*console.Handler, *projection.Admin) {
	t.Helper()
	ctx := testCtx(t)
	pool, schema := testenv.Postgres(t)
	es, err := espg.New(pool, espg.WithSchema(schema), espg.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := projpg.New(pool, projpg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	typ := &process.Type[*orderState]{
		Name: "order", Starts: []string{"Ordered"}, Categories: []string{"order"}, Correlate: process.ByStream,
		New: func(string) *orderState { return &orderState{} },
		Handle: func(ctx context.Context, p *process.Process[*orderState], tr process.Trigger) error {
			if !tr.Is("Ordered") {
				return nil
			}
			var req struct{ Then string }
			if err := json.Unmarshal(tr.Event.Record.Data, &req); err != nil {
				return err
			}
			switch req.Then {
			case "complete":
				p.Complete()
			case "fail":
				p.Fail("<script>alert(1)</script>")
			default:
				p.Schedule("reminder", time.Hour)
			}
			return nil
		},
	}
	r, err := process.NewRunner(pool, es, ps, []process.Definition{typ}, process.WithTimerPoll(20*time.Millisecond),
		process.WithProjectionOptions(projection.WithHeartbeat(0)))
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("process runner: %v", err)
		}
	})
	select {
	case <-r.Ready():
	case err := <-done:
		t.Fatalf("process runner stopped: %v", err)
	case <-ctx.Done():
		t.Fatal("process runner not ready")
	}
	var last eventstore.AppendResult
	for id, then := range map[string]string{"1": "complete", "2": "wait", "3": "fail"} {
		if last, err = es.Append(ctx, "order-"+id, eventstore.NoStream, eventstore.Event{Type: "Ordered", Data: []byte(`{"Then":"` + then + `"}`)}); err != nil {
			t.Fatal(err)
		}
		if err := r.Projections().WaitFor(ctx, process.ProjectionName("order"), last.Position); err != nil {
			t.Fatal(err)
		}
	}
	h, err := console.New(r.Projections().Admin(), console.WithProcesses(r.Admin()))
	if err != nil {
		t.Fatal(err)
	}
	return h, r.Projections().Admin()
}

// The overview counts the processes of each type by state, with their
// timers; the page lists a type's processes and shows one's history.
func TestProcesses(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	h, admin := processesFixture(t)
	o, err := h.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Processes) != 1 {
		t.Fatalf("process types: %+v", o.Processes)
	}
	pt := o.Processes[0]
	if pt.Type != "order" || pt.Counts["completed"] != 1 || pt.Counts["running"] != 1 || pt.Counts["failed"] != 1 ||
		pt.PendingTimers != 1 || pt.OldestTimer == nil {
		t.Fatalf("order processes: %+v", pt)
	}

	var list []console.ProcessView
	if code := getJSON(t, h, "/api/processes?type=order&status=running", &list); code != http.StatusOK || len(list) != 1 || list[0].ID != "2" {
		t.Fatalf("running orders: %d %+v", code, list)
	}
	list = nil
	if code := getJSON(t, h, "/api/processes?type=order", &list); code != http.StatusOK || len(list) != 3 {
		t.Fatalf("orders: %d %+v", code, list)
	}
	var p console.ProcessView
	if code := getJSON(t, h, "/api/process?type=order&id=3", &p); code != http.StatusOK || p.Status != "failed" ||
		p.Reason != "<script>alert(1)</script>" || p.StreamID != "process_order-3" || len(p.History) == 0 {
		t.Fatalf("order 3: %d %+v", code, p)
	}
	if code := getJSON(t, h, "/api/process?type=order&id=nope", nil); code != http.StatusNotFound {
		t.Fatalf("unknown process: %d", code)
	}
	if code := getJSON(t, h, "/api/process?type=order", nil); code != http.StatusBadRequest {
		t.Fatalf("no id: %d", code)
	}

	// Without WithProcesses, no process is shown.
	plain, err := console.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	if o, err := plain.Overview(ctx); err != nil || o.Processes != nil {
		t.Fatalf("overview without processes: %+v, %v", o.Processes, err)
	}
	if code := getJSON(t, plain, "/api/processes", nil); code != http.StatusNotFound {
		t.Fatalf("processes without WithProcesses: %d", code)
	}
}

// In Chromium: the process counts, a click lists the failed orders, and
// another shows one's history; the failure reason is text, not markup.
func TestProcessesInChromium(t *testing.T) {
	t.Parallel()
	h, _ := processesFixture(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	b := newBrowser(t)
	b.navigate(srv.URL + "/")
	b.waitEval(`document.body.dataset.loaded ? "loaded" : ""`, "loaded")
	row := `document.querySelector('#processtypes tr[data-type="order"] .`
	b.waitEval(row+`count-running').textContent`, "1")
	b.waitEval(row+`count-completed').textContent`, "1")
	b.waitEval(row+`count-failed').textContent`, "1")
	b.waitEval(row+`timers').textContent`, "1")
	b.eval(row + `count-failed a').click(); "listed"`)
	b.waitEval(`document.body.dataset.processlist || ""`, "order/failed")
	b.waitEval(`document.querySelector("#processlist tbody td.reason").textContent`, "<script>alert(1)</script>")
	b.eval(`document.querySelector("#processlist a.process").click(); "shown"`)
	b.waitEval(`document.body.dataset.process || ""`, "order/3")
	b.waitEval(`(document.querySelectorAll("#processhistory tbody tr").length > 0).toString()`, "true")
	b.waitEval(`document.querySelectorAll("#processes script").length.toString()`, "0")
}

// When the process tables cannot be read (not migrated), the overview
// still shows the rest, with the error in the processes' section.
func TestProcessesNotMigrated(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, schema := testenv.Postgres(t)
	es, err := espg.New(pool, espg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := projpg.New(pool, projpg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []func(context.Context) error{es.Migrate, ps.Migrate} {
		if err := m(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r, err := projection.NewRunner(es, ps, []projection.Projection{{Name: "noop",
		Handler: projection.HandlerFunc(func(context.Context, projection.Tx, projection.Event) error { return nil })}})
	if err != nil {
		t.Fatal(err)
	}
	pa, err := process.NewAdmin(pool, es, schema)
	if err != nil {
		t.Fatal(err)
	}
	h, err := console.New(r.Admin(), console.WithProcesses(pa))
	if err != nil {
		t.Fatal(err)
	}
	var o console.Overview
	if code := getJSON(t, h, "/api/overview", &o); code != http.StatusOK || len(o.Projections) != 1 ||
		!strings.Contains(o.ProcessesError, "process") || o.Processes == nil {
		t.Fatalf("overview without process tables: %d %+v", code, o)
	}
}
