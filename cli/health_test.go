package cli_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/cli"
	"github.com/chronicle-go/chronicle/projection"
)

// halting is a projection that halts on an event of type Poison.
func halting() projection.Projection {
	return projection.Projection{
		Name:        "strict",
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

// projections status exits 3 (unhealthy) when a projection running
// elsewhere is halted, in the service's binary and in the generic one,
// after printing the status, with the problem on stderr; 0 while it runs.
func TestProjectionsStatusExitsUnhealthyWhenHalted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ps := []projection.Projection{halting()}
	app := e.app(cli.WithProjections(ps...))
	e.visible(e.append("account-1", ev("Opened", `{}`)).Position)
	e.startService("svc-1", ps)
	e.waitStatus(app, "running")
	e.append("account-1", ev("Poison", `{}`))
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := e.run(app, "projections", "status")
		if r.code == cli.ExitUnhealthy {
			mustUnhealthy(t, r, "projection strict: halted (1 dead letters)")
			contains(t, r.stdout, "STATE", "halted")
			break
		}
		mustOK(t, r)
		if time.Now().After(deadline) {
			t.Fatalf("the projection never halted: %s", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := mustUnhealthy(t, e.run(e.app(), "projections", "status", "--json"), "projection strict: halted")
	if !strings.Contains(r.stdout, `"state": "halted"`) {
		t.Fatalf("generic status JSON: %s", r)
	}
}

// Lag past --max-lag or --max-lag-time is unhealthy; within it, healthy.
func TestProjectionsStatusMaxLag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(cli.WithProjections(halting()))
	e.visible(e.append("account-1", ev("Opened", `{}`), ev("Opened", `{}`), ev("Opened", `{}`)).Position)
	mustOK(t, e.run(app, "projections", "status", "--max-lag", "3"))
	mustUnhealthy(t, e.run(app, "projections", "status", "--max-lag", "2"), "projection strict: lag 3 events is above 2")
	mustUnhealthy(t, e.run(app, "projections", "status", "--json", "--max-lag-time", "1ns"), "projection strict: lag ", "above 1ns")
}

// Events held back by an open transaction for longer than
// --max-held-back are unhealthy, in both status commands.
func TestStatusMaxHeldBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t, 30*time.Second)
	holder, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.Background()) }()
	if _, err := holder.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	e.append("account-1", ev("Opened", `{}`))
	app := e.app(cli.WithProjections(halting()))
	mustUnhealthy(t, e.run(app, "projections", "status", "--max-held-back", "1ns"), "log: 1 events held back", "by transaction pid")
	mustUnhealthy(t, e.run(e.app(), "projections", "status", "--max-held-back", "1ns"), "log: 1 events held back")
	mustUnhealthy(t, e.run(e.app(), "relay", "status", "--max-held-back", "1ns"), "no relay leads", "log: 1 events held back")
	mustOK(t, e.run(app, "projections", "status", "--max-held-back", "1h"))
}
