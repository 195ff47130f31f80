package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/health"
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

func newStores(t *testing.T) (*espg.Store, *projpg.Store, string) {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	es, err := espg.New(pool, espg.WithSchema(schema), espg.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := projpg.New(pool, projpg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Migrate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := ps.Migrate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := relay.Migrate(testCtx(t), pool, schema); err != nil {
		t.Fatal(err)
	}
	return es, ps, schema
}

func appendEvents(t *testing.T, es *espg.Store, stream string, types ...string) eventstore.AppendResult {
	t.Helper()
	evs := make([]eventstore.Event, len(types))
	for i, typ := range types {
		evs[i] = eventstore.Event{Type: typ, Data: []byte(`{}`)}
	}
	res, err := es.Append(testCtx(t), stream, eventstore.Any, evs...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// picky halts on an event of type Poison.
func picky() projection.Projection {
	return projection.Projection{
		Name:        "picky",
		MaxAttempts: 1,
		OnFailure:   projection.Halt,
		Handler: projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, e projection.Event) error {
			if e.Record.Type == "Poison" {
				return errors.New("cannot apply poison")
			}
			return nil
		}),
	}
}

func ready(t *testing.T, h http.Handler) (int, health.Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var r health.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("readiness body %q: %v", rec.Body.String(), err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	return rec.Code, r
}

func wantProblem(t *testing.T, r health.Report, component, name string, words ...string) {
	t.Helper()
	for _, p := range r.Problems {
		if p.Component == component && p.Name == name {
			for _, w := range words {
				if !strings.Contains(p.Reason, w) {
					t.Fatalf("problem %s does not say %q", p, w)
				}
			}
			return
		}
	}
	t.Fatalf("no problem for %s %q in %+v", component, name, r)
}

// A halted projection makes the service unready (503, naming the
// projection and its error); a healthy one ready (200).
func TestReadinessFailsOnHaltedProjection(t *testing.T) {
	t.Parallel()
	es, ps, _ := newStores(t)
	r, err := projection.NewRunner(es, ps, []projection.Projection{picky()},
		projection.WithBackoff(time.Millisecond, 10*time.Millisecond), projection.WithHaltPoll(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	k := health.New(health.WithCheck(health.Projections(r, health.ProjectionLimits{})))
	runnertest.Run(t, r)
	ok := appendEvents(t, es, "acct-1", "Opened")
	runnertest.WaitFor(t, r, "picky", ok.Position)
	if code, rep := ready(t, k.Readiness()); code != http.StatusOK || !rep.Ready || len(rep.Problems) != 0 {
		t.Fatalf("healthy runner: %d %+v", code, rep)
	}
	bad := appendEvents(t, es, "acct-1", "Poison")
	if err := r.WaitFor(testCtx(t), "picky", bad.Position); !errors.Is(err, projection.ErrHalted) {
		t.Fatalf("WaitFor = %v, want ErrHalted", err)
	}
	code, rep := ready(t, k.Readiness())
	if code != http.StatusServiceUnavailable || rep.Ready {
		t.Fatalf("halted projection: %d %+v, want 503", code, rep)
	}
	wantProblem(t, rep, "projection", "picky", "halted", "poison")
}

// Lag above the user's limit, in events or in time, makes the service
// unready; at the limit it is ready.
func TestReadinessFailsOnLagAboveLimit(t *testing.T) {
	t.Parallel()
	es, ps, _ := newStores(t)
	a, err := projection.NewAdmin(es, ps, []projection.Projection{picky()})
	if err != nil {
		t.Fatal(err)
	}
	res := appendEvents(t, es, "acct-1", "Opened", "Opened", "Opened")
	waitVisible(t, es, res.Position)
	ctx := testCtx(t)
	if rep := health.New(health.WithCheck(health.Projections(a, health.ProjectionLimits{MaxLag: 3}))).Check(ctx); !rep.Ready {
		t.Fatalf("lag 3 at limit 3: %+v", rep)
	}
	rep := health.New(health.WithCheck(health.Projections(a, health.ProjectionLimits{MaxLag: 2}))).Check(ctx)
	wantProblem(t, rep, "projection", "picky", "lag 3 events", "above 2")
	rep = health.New(health.WithCheck(health.Projections(a, health.ProjectionLimits{MaxLagTime: time.Nanosecond}))).Check(ctx)
	wantProblem(t, rep, "projection", "picky", "above 1ns")
}

// No relay leading anywhere makes the service unready; a relay that leads
// (in any process: here, another connection) makes it ready, and its end
// unready again.
func TestReadinessFailsWithoutRelayLeader(t *testing.T) {
	t.Parallel()
	es, _, schema := newStores(t)
	pool, _ := testenv.Postgres(t) // another pool to the same database, as another process would have
	k := health.New(health.WithCheck(health.RelayLeader(pool, relay.WithSchema(schema))))
	ctx := testCtx(t)
	rep := k.Check(ctx)
	wantProblem(t, rep, "relay", relay.DefaultName, "no relay leads")

	ns := testenv.NATS(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rpool, _ := testenv.Postgres(t)
	rl, err := relay.New(es, nc, rpool, relay.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rl.Run(rctx) }()
	select {
	case <-rl.Ready():
	case err := <-done:
		t.Fatalf("relay Run: %v", err)
	case <-ctx.Done():
		t.Fatal("relay never led")
	}
	if rep := k.Check(ctx); !rep.Ready {
		t.Fatalf("a relay leads: %+v", rep)
	}
	l, err := relay.ReadLeadership(ctx, pool, relay.WithSchema(schema))
	if err != nil || !l.Held || l.PID == 0 {
		t.Fatalf("ReadLeadership = %+v, %v; want held with a pid", l, err)
	}
	// Another relay name in the same schema has no leader.
	if l, err := relay.ReadLeadership(ctx, pool, relay.WithSchema(schema), relay.WithName("other")); err != nil || l.Held {
		t.Fatalf("ReadLeadership(other) = %+v, %v; want not held", l, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("relay Run: %v", err)
	}
	// The relay closed its leadership connection; PostgreSQL frees the lock
	// when that backend has exited, a moment later.
	deadline := time.Now().Add(10 * time.Second)
	rep = k.Check(ctx)
	for rep.Ready && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		rep = k.Check(ctx)
	}
	wantProblem(t, rep, "relay", relay.DefaultName, "no relay leads")
}

// A transaction holding readers of the log back for longer than the limit
// makes the service unready, naming its pid; once it ends, ready.
func TestReadinessFailsWhenLogHeldBack(t *testing.T) {
	t.Parallel()
	es, _, _ := newStores(t)
	pool, _ := testenv.Postgres(t)
	ctx := testCtx(t)
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background())
	var pid int
	if err := holder.QueryRow(ctx, "SELECT pg_backend_pid(), pg_current_xact_id()::text").Scan(&pid, new(string)); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, es, "acct-1", "Opened")
	k := health.New(health.WithCheck(health.Log(es, time.Millisecond)))
	deadline := time.Now().Add(20 * time.Second)
	for {
		rep := k.Check(ctx)
		if !rep.Ready {
			// Another test's transaction may be the oldest for a moment;
			// wait until ours is the one named.
			if strings.Contains(rep.Problems[0].Reason, "pid "+itoa(pid)+" ") {
				wantProblem(t, rep, "log", "", "held back", "above 1ms")
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the held-back log was never reported naming pid %d: %+v", pid, rep)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Other tests' transactions may still hold the log back for a moment.
	k = health.New(health.WithCheck(health.Log(es, 10*time.Second)))
	if rep := k.Check(ctx); !rep.Ready {
		t.Fatalf("after commit: %+v", rep)
	}
}

// Liveness answers 200 without running any check; a check that fails or
// panics is a problem of its component, not a crash.
func TestLivenessAndFailingChecks(t *testing.T) {
	t.Parallel()
	k := health.New(
		health.WithCheck(health.Check{Component: "db", Run: func(context.Context) ([]health.Problem, error) {
			return nil, errors.New("connection refused")
		}}),
		health.WithCheck(health.Check{Component: "boom", Run: func(context.Context) ([]health.Problem, error) { panic("oops") }}),
		nil,
	)
	rec := httptest.NewRecorder()
	k.Liveness().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/livez", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("liveness = %d", rec.Code)
	}
	code, rep := ready(t, k.Readiness())
	if code != http.StatusServiceUnavailable {
		t.Fatalf("readiness = %d", code)
	}
	wantProblem(t, rep, "db", "", "check failed", "connection refused")
	wantProblem(t, rep, "boom", "", "panicked", "oops")
}

func itoa(n int) string { return strconv.Itoa(n) }

func waitVisible(t *testing.T, es *espg.Store, pos eventstore.Position) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		head, err := es.Head(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !head.Before(pos) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("position %s not visible after 20s", pos)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
