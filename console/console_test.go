package console_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/console"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/runnertest"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
	"github.com/chronicle-go/chronicle/relay"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// The console, in headless Chromium, shows the figures Status reports, and
// retries a dead letter from the page; read-only by default.
func TestConsoleInChromium(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, schema, es, ps := newStores(t, true, espg.WithPollInterval(50*time.Millisecond))
	var failing atomic.Bool
	failing.Store(true)
	picky := projection.Projection{Name: "picky", MaxAttempts: 1, OnFailure: projection.Skip,
		Handler: projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, e projection.Event) error {
			if e.Record.Type == "Bad" && failing.Load() {
				return errors.New("cannot stomach it")
			}
			return nil
		})}
	totals := projection.Projection{Name: "totals", Handler: projection.HandlerFunc(func(context.Context, projection.Tx, projection.Event) error { return nil })}
	r, err := projection.NewRunner(es, ps, []projection.Projection{picky, totals}, projection.WithBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runnertest.Run(t, r)
	bad, err := es.Append(ctx, "acct-1", eventstore.Any, eventstore.Event{Type: "Bad", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitFor(ctx, "picky", bad.Position); !errors.Is(err, projection.ErrDeadLettered) {
		t.Fatalf("WaitFor = %v, want the dead letter", err)
	}
	last, err := es.Append(ctx, "acct-2", eventstore.Any, eventstore.Event{Type: "Opened", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	runnertest.WaitFor(t, r, "picky", last.Position)
	runnertest.WaitFor(t, r, "totals", last.Position)
	failing.Store(false)

	h, err := console.New(r.Admin(), console.WithActions(true), console.WithLog(es), console.WithStreams(es), console.WithRelay(pool, relay.WithSchema(schema)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	b := newBrowser(t)
	b.navigate(srv.URL + "/")
	b.waitEval(`document.body.dataset.loaded ? "loaded" : ""`, "loaded")

	sts, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		row := `document.querySelector('#projections tr[data-name="` + st.Name + `"] .`
		b.waitEval(row+`state').textContent`, string(st.State))
		b.waitEval(row+`checkpoint').textContent`, st.Checkpoint.String())
		b.waitEval(row+`lag').textContent`, strconv.Itoa(st.Lag))
		b.waitEval(row+`deadletters').textContent`, strconv.Itoa(st.DeadLetters))
	}
	b.waitEval(`document.getElementById("head").textContent`, sts[0].Head.String())
	// No relay runs: the page says so as a warning, with the relay's lag
	// (the two events, nothing published).
	b.waitEval(`document.getElementById("relay").textContent`, "no relay is leading")
	b.waitEval(`document.getElementById("relay").className`, "warning")
	b.waitEval(`/^2 events, oldest [0-9.]+(ms|s|m) \(nothing published yet\)$/.test(document.getElementById("relaylag").textContent) ? "lag" : document.getElementById("relaylag").textContent`, "lag")
	b.waitEval(`document.getElementById("mode").textContent`, "actions enabled")
	b.waitEval(`document.querySelectorAll('#deadletters tbody tr').length.toString()`, "1")

	// Inspect the dead letter: its event, marked, in its stream.
	o, err := h.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.DeadLetters) != 1 || o.DeadLetters[0].Build != "picky@v1" || o.DeadLetters[0].Position != bad.Position.String() ||
		o.DeadLetters[0].FailedAt.IsZero() || o.DeadLetters[0].Stream != "acct-1" {
		t.Fatalf("dead letters: %+v", o.DeadLetters)
	}
	b.eval(`document.querySelector('#deadletters a.inspect').click(); "inspected"`)
	b.waitEval(`document.body.dataset.inspected || ""`, o.DeadLetters[0].EventID)
	b.waitEval(`document.body.dataset.stream || ""`, "acct-1")
	b.waitEval(`document.querySelector("#events tr.inspected") ? document.querySelector("#events tr.inspected").dataset.event : ""`, o.DeadLetters[0].EventID)

	// Retry the dead letter from the page.
	b.eval(`document.querySelector('#deadletters button.retry').click(); "clicked"`)
	b.waitEval(`document.querySelectorAll('#deadletters tbody tr').length.toString()`, "0")
	b.waitEval(`document.querySelector('#projections tr[data-name="picky"] .deadletters').textContent`, "0")
	if dls, err := r.Admin().DeadLetters(ctx, "picky"); err != nil || len(dls) != 0 {
		t.Fatalf("dead letters after the retry from the page: %v, %v", dls, err)
	}

	// Discard another one, after the page's confirmation.
	failing.Store(true)
	bad2, err := es.Append(ctx, "acct-3", eventstore.Any, eventstore.Event{Type: "Bad", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitFor(ctx, "picky", bad2.Position); !errors.Is(err, projection.ErrDeadLettered) {
		t.Fatalf("WaitFor = %v, want the dead letter", err)
	}
	b.waitEval(`document.querySelectorAll('#deadletters tbody tr').length.toString()`, "1")
	b.eval(`window.confirm = () => false; document.querySelector('#deadletters button.discard').click(); "refused"`)
	if dls, err := r.Admin().DeadLetters(ctx, "picky"); err != nil || len(dls) != 1 {
		t.Fatalf("dead letters after a refused confirmation: %v, %v", dls, err)
	}
	b.eval(`window.confirm = () => true; document.querySelector('#deadletters button.discard').click(); "confirmed"`)
	b.waitEval(`document.querySelectorAll('#deadletters tbody tr').length.toString()`, "0")
	if dls, err := r.Admin().DeadLetters(ctx, "picky"); err != nil || len(dls) != 0 {
		t.Fatalf("dead letters after the discard from the page: %v, %v", dls, err)
	}

	// Rebuild a projection from the page, after the confirmation, and
	// watch it end.
	before, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.eval(`window.confirm = () => true; document.querySelector('#projections tr[data-name="totals"] button.rebuild').click(); "rebuilt"`)
	b.waitEval(`document.querySelector('#projections tr[data-name="totals"] .rebuildstate').textContent`, "done ")
	after, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range after {
		want := before[i].Current
		if after[i].Name == "totals" {
			want.Generation++
		}
		if after[i].Current != want {
			t.Fatalf("%s after the rebuild from the page: build %s, want %s", after[i].Name, after[i].Current, want)
		}
	}
	b.waitEval(`document.querySelector('#projections tr[data-name="totals"] .build').textContent`, after[1].Current.String())

	// The builds the store keeps: the old one of totals, with a Drop
	// button, the current ones without; the rate column once the page
	// has two samples a second apart.
	oldTotals := before[1].Current
	oldRow := `document.querySelector('#builds tr[data-build="` + oldTotals.String() + `"] `
	b.waitEval(oldRow+`.status').textContent`, "old")
	b.waitEval(`document.querySelector('#builds tr[data-build="`+after[1].Current.String()+`"] .status').textContent`, "current")
	b.waitEval(`document.querySelectorAll('#builds button.drop').length.toString()`, "1")
	for _, name := range []string{"picky", "totals"} {
		b.waitEval(`/^\d+\.\d$/.test(document.querySelector('#projections tr[data-name="`+name+`"] .rate').textContent) ? "rate" : ""`, "rate")
	}

	// A dead letter waiting, for the screenshot docs/operations.md shows
	// (CHRONICLE_CONSOLE_SCREENSHOT=$PWD/../docs/images/console.png).
	failing.Store(true)
	bad3, err := es.Append(ctx, "acct-4", eventstore.Any, eventstore.Event{Type: "Bad", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitFor(ctx, "picky", bad3.Position); !errors.Is(err, projection.ErrDeadLettered) {
		t.Fatalf("WaitFor = %v, want the dead letter", err)
	}
	failing.Store(false)
	b.waitEval(`document.querySelectorAll('#deadletters tbody tr').length.toString()`, "1")
	shot := filepath.Join(t.TempDir(), "console.png")
	if p := os.Getenv("CHRONICLE_CONSOLE_SCREENSHOT"); p != "" {
		shot = p
	}
	b.eval(`window.scrollTo(0, 0); "top"`)
	b.screenshot(shot)

	// Drop the old build from the page, after the confirmation.
	b.eval(`window.confirm = () => false; document.querySelector('#builds button.drop').click(); "refused"`)
	if bs, err := r.Admin().Builds(ctx, "totals"); err != nil || len(bs) != 2 {
		t.Fatalf("builds after a refused confirmation: %+v, %v", bs, err)
	}
	b.eval(`window.confirm = () => true; document.querySelector('#builds button.drop').click(); "confirmed"`)
	b.waitEval(`document.querySelectorAll('#builds tr[data-build="`+oldTotals.String()+`"]').length.toString()`, "0")
	if bs, err := r.Admin().Builds(ctx, "totals"); err != nil || len(bs) != 1 || !bs[0].Current {
		t.Fatalf("builds after the drop from the page: %+v, %v", bs, err)
	}
	b.waitEval(`document.getElementById("error").textContent`, "")

	// Read-only by default: no action, and the server refuses one.
	ro, err := console.New(r.Admin())
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	ro.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/deadletters/retry",
		strings.NewReader(`{"projection":"picky","event_id":"`+bad.Position.String()+`"}`)))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("read-only console answered %d to an action", rec.Code)
	}
	if o, err := ro.Overview(ctx); err != nil || o.Actions {
		t.Fatalf("read-only overview: %+v, %v", o, err)
	}
	rec = httptest.NewRecorder()
	ro.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/projections/drop", strings.NewReader(`{"projection":"totals","version":1}`)))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("read-only console answered %d to a drop", rec.Code)
	}
}

// newStores returns an event store (with opts) and a projection store in a
// schema of their own, migrated, with the relay's tables too when
// withRelay, and their pool and schema.
func newStores(t *testing.T, withRelay bool, opts ...espg.Option) (*pgxpool.Pool, string, *espg.Store, *projpg.Store) {
	t.Helper()
	ctx := testCtx(t)
	pool, schema := testenv.Postgres(t)
	es, err := espg.New(pool, append([]espg.Option{espg.WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := projpg.New(pool, projpg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	migrate := []func(context.Context) error{es.Migrate, ps.Migrate}
	if withRelay {
		migrate = append(migrate, func(ctx context.Context) error { return relay.Migrate(ctx, pool, schema) })
	}
	for _, m := range migrate {
		if err := m(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return pool, schema, es, ps
}
