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
// completed (its timer cancelled by the end), one running with timers, one
// failed, and returns the console. The running one, order 2, schedules a
// reminder, an escalation and a nudge due at once; when the nudge fires it
// cancels the escalation and schedules the reminder again. Unless fire is
// false (no runner fires timers: the nudge stays pending, overdue), the
// fixture returns once the nudge has fired and been handled.
func processesFixture(t *testing.T, fire bool) (*console.Handler, *projection.Admin) {
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
			if tr.Kind == process.TimerTrigger && tr.Timer == "nudge" {
				p.Cancel("escalate")
				p.Schedule("reminder", 2*time.Hour)
				return nil
			}
			if !tr.Is("Ordered") {
				return nil
			}
			var req struct{ Then string }
			if err := json.Unmarshal(tr.Event.Record.Data, &req); err != nil {
				return err
			}
			switch req.Then {
			case "complete":
				p.Schedule("unused", time.Hour)
				p.Complete()
			case "fail":
				p.Fail("<script>alert(1)</script>")
			default:
				p.Schedule("reminder", time.Hour)
				p.Schedule("escalate", time.Hour)
				p.Schedule("nudge", time.Millisecond)
			}
			return nil
		},
	}
	opts := []process.Option{process.WithTimerPoll(20 * time.Millisecond), process.WithProjectionOptions(projection.WithHeartbeat(0))}
	if !fire {
		opts = append(opts, process.WithoutTimers())
	}
	r, err := process.NewRunner(pool, es, ps, []process.Definition{typ}, opts...)
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
	if fire {
		// The nudge fired and was handled (the escalation cancelled), and
		// its row is gone from the pending timers.
		for {
			p, err := h.Process(ctx, "order", "2")
			if err != nil {
				t.Fatal(err)
			}
			o, err := h.Overview(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if timerStates(p.Timers) == "reminder:replaced escalate:cancelled nudge:fired reminder:pending" &&
				len(o.Processes) == 1 && o.Processes[0].PendingTimers == 1 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the nudge of order 2 was not handled: timers %s, overview %+v", timerStates(p.Timers), o.Processes)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return h, r.Projections().Admin()
}

// timerStates shows timers as "name:state" (":overdue" added), in order.
func timerStates(ts []process.Timer) string {
	var b strings.Builder
	for i, tv := range ts {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(tv.Name + ":" + string(tv.State))
		if tv.Overdue {
			b.WriteString(":overdue")
		}
	}
	return b.String()
}

// The overview counts the processes of each type by state, with their
// timers; the page lists a type's processes and shows one's history.
func TestProcesses(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	h, admin := processesFixture(t, true)
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
	if len(p.Timers) != 0 {
		t.Fatalf("timers of order 3, which scheduled none: %+v", p.Timers)
	}
	p = console.ProcessView{}
	if code := getJSON(t, h, "/api/process?type=order&id=1", &p); code != http.StatusOK || timerStates(p.Timers) != "unused:cancelled" ||
		p.Timers[0].EndedAt == nil {
		t.Fatalf("order 1, completed with a timer pending: %d %+v", code, p.Timers)
	}
	p = console.ProcessView{}
	if code := getJSON(t, h, "/api/process?type=order&id=2", &p); code != http.StatusOK ||
		timerStates(p.Timers) != "reminder:replaced escalate:cancelled nudge:fired reminder:pending" {
		t.Fatalf("order 2's timers: %d %+v", code, p.Timers)
	}
	if due := p.Timers[3].Due; due.Before(time.Now().Add(time.Hour)) || p.Timers[3].EndedAt != nil || p.Timers[3].ID == "" {
		t.Fatalf("order 2's pending reminder: %+v", p.Timers[3])
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
	h, _ := processesFixture(t, true)
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
	b.waitEval(`document.querySelector("#processtimers").hidden.toString()`, "true")

	// The running order, with its timers: the pending reminder, the fired
	// nudge, the cancelled escalation, the replaced first reminder.
	b.eval(row + `count-running a').click(); "listed"`)
	b.waitEval(`document.body.dataset.processlist || ""`, "order/running")
	b.waitEval(`document.querySelector("#processlist tbody tr") ? document.querySelector("#processlist tbody tr").dataset.id : ""`, "2")
	b.eval(`document.querySelector("#processlist a.process").click(); "shown"`)
	b.waitEval(`document.body.dataset.process || ""`, "order/2")
	b.waitEval(`document.querySelector("#processtimers").hidden.toString()`, "false")
	b.waitEval(`Array.from(document.querySelectorAll("#processtimers tbody tr")).map(tr => tr.dataset.timer + ":" + tr.querySelector(".state").textContent).join(" ")`,
		"reminder:replaced escalate:cancelled nudge:fired reminder:pending")
	b.waitEval(`document.querySelector('#processtimers tbody tr.timer-pending .due').textContent.length > 0 ? "due" : ""`, "due")
}

// When the process tables cannot be read (not migrated), the overview
// still shows the rest, with the error in the processes' section.
func TestProcessesNotMigrated(t *testing.T) {
	t.Parallel()
	pool, schema, es, ps := newStores(t, false)
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

// With no runner firing timers, a timer past its due time is pending and
// overdue; the others are pending, not overdue.
func TestProcessTimersOverdue(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	h, _ := processesFixture(t, false)
	for {
		p, err := h.Process(ctx, "order", "2")
		if err != nil {
			t.Fatal(err)
		}
		got := timerStates(p.Timers)
		if got == "reminder:pending escalate:pending nudge:pending:overdue" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("order 2's timers: %s", got)
		case <-time.After(20 * time.Millisecond):
		}
	}
	o, err := h.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Processes) != 1 || o.Processes[0].PendingTimers != 3 {
		t.Fatalf("process types: %+v", o.Processes)
	}
}
