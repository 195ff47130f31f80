package cli_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/cli"
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
