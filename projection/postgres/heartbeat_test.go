package postgres_test

import (
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/projection"
)

// A runner in one process beats; a runner of the same projections that
// does not run them (the CLI) reports the first one's state, owner and
// last-seen time, and the store lists the projection without its code.
func TestStatusAcrossProcessesThroughHeartbeats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	ps := []projection.Projection{counting("counts", 1)}
	service := e.runner(ps, projection.WithHeartbeat(50*time.Millisecond), projection.WithOwner("service-1"))
	cliRunner := e.runner(ps)
	_, last := e.write("acct", 3, 10)

	st, err := cliRunner.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].State != projection.Stopped || st[0].Heartbeat != (projection.Heartbeat{}) {
		t.Fatalf("status before any runner ran: %+v", st[0])
	}

	stop := run(t, service)
	waitFor(t, service, "counts", last)
	var hb projection.Heartbeat
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err = cliRunner.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		hb = st[0].Heartbeat
		if st[0].State == projection.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never reported the other runner running: %+v", st[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if hb.Owner != "service-1" || hb.Build.String() != "counts@v1" || hb.Interval != 50*time.Millisecond ||
		time.Since(hb.SeenAt) > time.Second || time.Since(hb.SeenAt) < -time.Second {
		t.Fatalf("heartbeat = %+v", hb)
	}
	// The heartbeat keeps being refreshed.
	time.Sleep(200 * time.Millisecond)
	st, err = cliRunner.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st[0].Heartbeat.SeenAt.After(hb.SeenAt) || st[0].State != projection.Running {
		t.Fatalf("heartbeat not refreshed: %+v then %+v", hb, st[0].Heartbeat)
	}

	sums, err := e.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 || sums[0].Name != "counts" || sums[0].Current.String() != "counts@v1" || sums[0].Target != sums[0].Current ||
		sums[0].Checkpoint != last || sums[0].DeadLetters != 0 || sums[0].State(time.Now()) != projection.Running ||
		sums[0].Heartbeat(time.Now()).Owner != "service-1" {
		t.Fatalf("List = %+v", sums)
	}

	// A clean stop records the builds as stopped, keeping who and when.
	stop()
	st, err = cliRunner.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].State != projection.Stopped || st[0].Heartbeat.Owner != "service-1" || st[0].Heartbeat.State != projection.Stopped {
		t.Fatalf("status after the runner stopped: %+v", st[0])
	}
}

// A runner that died without a word is taken for stopped once three
// intervals have passed; a fresh one of another owner wins over it.
func TestStaleHeartbeatMeansStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	b := projection.Build{Name: "counts", Version: 1}
	if err := e.store.SetTarget(ctx, b); err != nil {
		t.Fatal(err)
	}
	// An interval long enough that a loaded machine still lists the
	// heartbeat as fresh, short enough to wait out.
	const interval = 250 * time.Millisecond
	dead := projection.Heartbeat{Build: b, Owner: "dead:1", State: projection.Halted, Interval: interval}
	if err := e.store.Beat(ctx, []projection.Heartbeat{dead}); err != nil {
		t.Fatal(err)
	}
	sums, err := e.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 || sums[0].State(time.Now()) != projection.Halted {
		t.Fatalf("fresh heartbeat: %+v", sums)
	}
	time.Sleep(projection.HeartbeatTolerance*interval + 100*time.Millisecond)
	sums, err = e.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The target is registered but never became current: rebuilding.
	if got := sums[0].State(time.Now()); got != projection.Rebuilding || sums[0].Heartbeat(time.Now()).Owner != "dead:1" {
		t.Fatalf("stale heartbeat: state %s, %+v", got, sums[0])
	}
	alive := projection.Heartbeat{Build: b, Owner: "alive:2", State: projection.Running, Interval: time.Minute}
	if err := e.store.Beat(ctx, []projection.Heartbeat{alive, {Build: projection.Build{Name: "other", Version: 2}, Owner: "alive:2", State: projection.Running, Interval: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	hbs, err := e.store.Heartbeats(ctx, "counts")
	if err != nil {
		t.Fatal(err)
	}
	if len(hbs) != 2 || hbs[0].Owner != "alive:2" || hbs[1].Owner != "dead:1" {
		t.Fatalf("heartbeats, freshest first: %+v", hbs)
	}
	sums, err = e.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 || sums[0].State(time.Now()) != projection.Running || sums[0].Heartbeat(time.Now()).Owner != "alive:2" {
		t.Fatalf("List with a live and a dead runner: %+v", sums)
	}
}

// A rebuild made by another process (the CLI) while the service runs:
// the service notices the new build at its next heartbeat and follows it,
// so the read model readers see keeps up after the switch.
func TestRunnerFollowsARebuildMadeByAnotherProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	ps := []projection.Projection{counting("counts", 1)}
	service := e.runner(ps, projection.WithHeartbeat(50*time.Millisecond), projection.WithOwner("service"))
	run(t, service)
	want, last := e.write("acct", 3, 20)
	waitFor(t, service, "counts", last)

	cli := e.runner(ps)
	if err := cli.Rebuild(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	more, last := e.write("more", 2, 20)
	for k, v := range more {
		want[k] = v
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := service.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].State == projection.Running && st[0].Heartbeat.Build.String() == "counts@v1_1" && !st[0].Checkpoint.Before(last) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service never followed the switch to counts@v1_1: %+v", st[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.checkCounts("counts", want) // the view, now over counts_v1_1
}
