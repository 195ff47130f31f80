package cli_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/cli"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

type statusJSON struct {
	Name        string     `json:"name"`
	Current     string     `json:"current"`
	Target      string     `json:"target"`
	State       string     `json:"state"`
	Checkpoint  string     `json:"checkpoint"`
	DeadLetters int        `json:"dead_letters"`
	Owner       string     `json:"owner"`
	LastSeenAt  *time.Time `json:"last_seen_at"`
}

// startService runs the projections in this process as a service would,
// with a fast heartbeat, until the returned stop is called (or the test
// ends).
func (e *env) startService(owner string, ps []projection.Projection, opts ...projection.Option) (stop func()) {
	e.t.Helper()
	store, err := projpg.New(e.pool, projpg.WithSchema(e.schema))
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := projection.NewRunner(e.es, store, ps, append([]projection.Option{
		projection.WithDecoder(chain(e.t)), projection.WithHeartbeat(50 * time.Millisecond), projection.WithOwner(owner),
		projection.WithBackoff(time.Millisecond, time.Millisecond),
	}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("service Run: %v", err)
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// waitStatus runs "projections status --json" with app until every
// projection's state is want.
func (e *env) waitStatus(app *cli.App, want string) []statusJSON {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		sts := jsonValue[[]statusJSON](e.t, mustOK(e.t, e.run(app, "projections", "status", "--json")).stdout)
		ok := len(sts) > 0
		for _, st := range sts {
			ok = ok && st.State == want
		}
		if ok {
			return sts
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("projections never all %s: %+v", want, sts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServiceBinaryStatusSeesTheRunningService(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var failing atomic.Bool
	ps := projections(&failing)
	app := e.app(cli.WithUpcasters(chain(t)), cli.WithProjections(ps...))
	e.visible(e.append("account-1", ev("Opened", `{"owner":"ada"}`)).Position)

	stop := e.startService("bank-7", ps)
	sts := e.waitStatus(app, "running")
	for _, st := range sts {
		if st.Owner != "bank-7" || st.LastSeenAt == nil || time.Since(*st.LastSeenAt) > 5*time.Second {
			t.Fatalf("status of the running service: %+v", st)
		}
	}
	r := mustOK(t, e.run(app, "projections", "status"))
	contains(t, r.stdout, "OWNER", "LAST SEEN", "running", "bank-7", "ago")

	stop()
	sts = e.waitStatus(app, "stopped")
	if sts[0].Owner != "bank-7" || sts[0].LastSeenAt == nil {
		t.Fatalf("a stopped service keeps who ran it last, and when: %+v", sts[0])
	}
}

// The generic binary, without the service's code, lists every projection
// and every dead letter from the database.
func TestGenericBinaryListsProjectionsFromTheDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var failing atomic.Bool
	failing.Store(true)
	ps := projections(&failing)
	generic := e.app()
	acct := e.append("account-1", ev("Opened", `{"owner":"ada"}`), eventstore.Event{Type: "Deposited", SchemaVersion: 2, Data: []byte(`{"cents":25}`)})
	bad := e.append("misc-1", ev("Bad", `{}`))
	e.visible(bad.Position)

	stop := e.startService("bank-9", ps)
	var sts []statusJSON
	deadline := time.Now().Add(15 * time.Second)
	for {
		sts = e.waitStatus(generic, "running")
		if len(sts) == 2 && sts[0].Checkpoint == bad.Position.String() && sts[1].Checkpoint == acct.Position.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the generic status never showed both projections caught up: %+v", sts)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// By name: picky, then totals.
	if sts[0].Name != "picky" || sts[1].Name != "totals" || sts[0].Current != "picky@v1" || sts[1].Target != "totals@v1" ||
		sts[0].DeadLetters != 1 || sts[1].DeadLetters != 0 || sts[0].Owner != "bank-9" || sts[1].LastSeenAt == nil {
		t.Fatalf("generic status: %+v", sts)
	}
	r := mustOK(t, e.run(generic, "projections", "status"))
	contains(t, r.stdout, "NAME", "CURRENT", "TARGET", "STATE", "CHECKPOINT", "HEAD", "DEAD LETTERS", "OWNER", "LAST SEEN",
		"picky@v1", "totals@v1", "running", "bank-9", bad.Position.String())
	notContains(t, r.stdout, "LAG")

	r = mustOK(t, e.run(generic, "dlq", "list"))
	contains(t, r.stdout, "PROJECTION", "picky", "misc-1@1", "Bad", "cannot stomach misc-1")
	dls := jsonValue[[]struct {
		Projection string `json:"projection"`
		StreamID   string `json:"stream_id"`
	}](t, mustOK(t, e.run(generic, "dlq", "list", "--json")).stdout)
	if len(dls) != 1 || dls[0].Projection != "picky" || dls[0].StreamID != "misc-1" {
		t.Fatalf("generic dlq list --json: %+v", dls)
	}

	stop()
	sts = e.waitStatus(generic, "stopped")
	if sts[0].Owner != "bank-9" {
		t.Fatalf("generic status after the service stopped: %+v", sts)
	}
}
