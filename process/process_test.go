package process_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/process"
	"github.com/chronicle-go/chronicle/upcast"
)

func TestProcessCompletesAndCompensates(t *testing.T) {
	modes(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		start(t, e.runner(e.pool, jobType(300*time.Millisecond)))
		e.request(ctx, "ok", JobRequested{})
		e.request(ctx, "closed", JobRequested{Closed: true})
		e.request(ctx, "slow", JobRequested{NoAnswer: true})
		e.waitStatus(ctx, "ok", process.Completed)
		e.waitStatus(ctx, "closed", process.Compensated)
		e.waitStatus(ctx, "slow", process.Compensated)
		for id, want := range map[string][2]int{"ok": {1, 0}, "closed": {1, 1}, "slow": {1, 1}} {
			if inc, dec := e.count(ctx, "a-"+id, "Incremented"), e.count(ctx, "a-"+id, "Decremented"); inc != want[0] || dec != want[1] {
				t.Errorf("a-%s: %d increments, %d decrements; want %v", id, inc, dec, want)
			}
		}
		if n := e.count(ctx, "b-ok", "Incremented"); n != 1 {
			t.Errorf("b-ok: %d increments, want 1", n)
		}
		if n := e.count(ctx, "b-closed", "Incremented"); n != 0 {
			t.Errorf("b-closed: %d increments, want 0", n)
		}
		// Every event the command appended carries the process's
		// correlation and the command as causation.
		h, err := e.runnerAdmin().History(ctx, "job", "ok")
		if err != nil {
			t.Fatal(err)
		}
		if len(h) == 0 || h[0].Type != "process.Triggered" {
			t.Fatalf("history of job/ok starts with %v", h)
		}
		// Local commands ran in their triggers: no outcome came back
		// through the log, and the process recorded each command's end.
		if e.local {
			if n := e.count(ctx, "process_job-ok", "process.CommandSucceeded"); n != 0 {
				t.Errorf("%d CommandSucceeded in the stream of job/ok, want 0 with local commands", n)
			}
			if n := e.count(ctx, "process_job-ok", "process.CommandDone"); n != 2 {
				t.Errorf("%d CommandDone in the stream of job/ok, want 2", n)
			}
			if n := e.scalar(ctx, `SELECT count(*) FROM %s.process_commands WHERE status = 'failed' AND process_id = 'closed'`); n != 1 {
				t.Errorf("%d failed commands of job/closed, want 1 (the refused increment)", n)
			}
		}
	})
}

func (e *env) runnerAdmin() *process.Admin {
	a, err := process.NewAdmin(e.pool, e.es, e.schema)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// A timer due while no runner is alive fires after one starts.
func TestTimerDueWhileNoRunnerFiresAfterStart(t *testing.T) {
	modes(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		var now atomic.Int64
		now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
		clock := process.WithClock(func() time.Time { return time.Unix(0, now.Load()).UTC() })
		stop := start(t, e.runner(e.pool, jobType(time.Hour), clock))
		e.request(ctx, "late", JobRequested{NoAnswer: true})
		e.waitFor(ctx, "the deadline scheduled", func() (bool, error) {
			return e.scalar(ctx, `SELECT count(*) FROM %s.process_timers`) == 1 && e.count(ctx, "a-late", "Incremented") == 1, nil
		})
		stop()
		now.Add(int64(2 * time.Hour)) // due while no runner is alive
		if s := e.status(ctx, "late"); s != process.Running {
			t.Fatalf("status %s before a runner starts, want running", s)
		}
		start(t, e.runner(e.pool, jobType(time.Hour), clock))
		e.waitStatus(ctx, "late", process.Compensated)
		if n := e.count(ctx, "process_job-late", "process.TimerFired"); n != 1 {
			t.Errorf("timer fired %d times, want 1", n)
		}
		if n := e.count(ctx, "a-late", "Decremented"); n != 1 {
			t.Errorf("a-late decremented %d times, want 1", n)
		}
	})
}

// A late event and a late timer after completion change nothing.
func TestLateEventAndTimerAfterCompletionChangeNothing(t *testing.T) {
	modes(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		var now atomic.Int64
		now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
		clock := process.WithClock(func() time.Time { return time.Unix(0, now.Load()).UTC() })
		r := e.runner(e.pool, jobType(time.Hour), clock)
		start(t, r)
		e.request(ctx, "done", JobRequested{})
		e.waitStatus(ctx, "done", process.Completed)
		// A late event for the process: another JobRequested on its stream.
		res, err := e.es.Append(ctx, "job-done", eventstore.Any, eventstore.Event{Type: "JobRequested", Data: []byte(`{"closed":true}`)})
		if err != nil {
			t.Fatal(err)
		}
		// A late timer: the poller fired it just as the process completed
		// (a TimerFired of the deadline lands in the stream after Completed).
		hist, err := e.runnerAdmin().History(ctx, "job", "done")
		if err != nil {
			t.Fatal(err)
		}
		var sched []byte
		for _, h := range hist {
			if h.Type == "process.TimerScheduled" {
				sched = h.Data
			}
		}
		if sched == nil {
			t.Fatal("no TimerScheduled in the history")
		}
		fired, err := e.es.Append(ctx, "process_job-done", eventstore.Any, eventstore.Event{Type: "process.TimerFired", Data: sched})
		if err != nil {
			t.Fatal(err)
		}
		now.Add(int64(2 * time.Hour))
		if err := r.Projections().WaitFor(ctx, process.ProjectionName("job"), fired.Position); err != nil {
			t.Fatal(err)
		}
		_ = res
		if s := e.status(ctx, "done"); s != process.Completed {
			t.Errorf("status %s after late event and timer, want completed", s)
		}
		if inc, dec := e.count(ctx, "a-done", "Incremented"), e.count(ctx, "a-done", "Decremented"); inc != 1 || dec != 0 {
			t.Errorf("a-done: %d increments, %d decrements after late triggers; want 1, 0", inc, dec)
		}
		if n := e.count(ctx, "process_job-done", "process.Ignored"); n != 1 {
			t.Errorf("%d Ignored records for the late event, want 1", n)
		}
		if n := e.scalar(ctx, `SELECT count(*) FROM %s.process_commands WHERE process_id = 'done'`); n != 2 {
			t.Errorf("%d commands sent, want 2 (nothing after completion)", n)
		}
	})
}

// Compensation failure then retry completes the compensation once.
func TestCompensationFailureThenRetry(t *testing.T) {
	modes(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		start(t, e.runner(e.pool, jobType(time.Hour), process.WithCommandAttempts(3)))
		e.request(ctx, "stuck", JobRequested{Closed: true, FailUndo: 1})
		e.waitStatus(ctx, "stuck", process.CompensationFailed)
		if n := e.count(ctx, "a-stuck", "Decremented"); n != 0 {
			t.Fatalf("a-stuck decremented %d times before the retry", n)
		}
		a := e.runnerAdmin()
		if _, err := a.Retry(ctx, "job", "stuck"); err != nil {
			t.Fatal(err)
		}
		e.waitStatus(ctx, "stuck", process.Compensated)
		if n := e.count(ctx, "a-stuck", "Decremented"); n != 1 {
			t.Errorf("a-stuck decremented %d times, want 1", n)
		}
		if _, err := a.Retry(ctx, "job", "stuck"); !errors.Is(err, process.ErrNotRetryable) {
			t.Errorf("second retry: %v, want ErrNotRetryable", err)
		}
	})
}

// Many processes across three runners with their own pools, killed and
// restarted at random points: every process ends terminal, each command is
// applied once, no timer fires twice, nothing stays pending. 1,000
// processes with local commands (issue 10's figure), and 300 more with
// commands delivered by the dispatcher, the path of commands to other
// services.
func TestKilledRunnersLoseAndRepeatNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		local bool
		n     int
	}{{"local", true, 1000}, {"dispatched", false, 300}} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.n
			if testing.Short() {
				n /= 5
			}
			e := newEnv(t)
			e.local = tc.local
			killedRunners(t, e, n)
		})
	}
}

func killedRunners(t *testing.T, e *env, n int) {
	ctx := testCtx(t)
	began := time.Now()
	typ := jobType(1500 * time.Millisecond)
	var wg sync.WaitGroup
	stopKiller := make(chan struct{})
	var kills atomic.Int64
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for {
				pool := e.newPool()
				r := e.runner(pool, typ, process.WithCommandAttempts(1000))
				rctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- r.Run(rctx) }()
				select {
				case <-stopKiller:
					cancel()
					<-done
					pool.Close()
					return
				case <-time.After(time.Duration(200+rng.IntN(800)) * time.Millisecond):
				}
				cancel()
				<-done
				pool.Close()
				kills.Add(1)
			}
		}()
	}
	// A last runner that stays, started once the killing is over.
	for i := range n {
		req := JobRequested{}
		switch i % 4 {
		case 1:
			req.Closed = true
		case 2:
			req.NoAnswer = true
		}
		e.request(ctx, fmt.Sprint(i), req)
	}
	// The requests are all in; the runners work on them while being killed.
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) && e.scalar(ctx, `SELECT count(*) FROM %s.process_instances WHERE status IN ('completed', 'compensated')`) < n/2 {
		time.Sleep(100 * time.Millisecond)
	}
	close(stopKiller)
	wg.Wait()
	start(t, e.runner(e.pool, typ, process.WithCommandAttempts(1000)))
	e.waitFor(ctx, "every process terminal", func() (bool, error) {
		return e.scalar(ctx, `SELECT count(*) FROM %s.process_instances WHERE status IN ('completed', 'compensated')`) == n, nil
	})
	t.Logf("%d processes, %d runner kills, all terminal after %s", n, kills.Load(), time.Since(began).Round(time.Millisecond))
	if c := e.scalar(ctx, `SELECT count(*) FROM %s.process_instances`); c != n {
		t.Errorf("%d processes, want %d", c, n)
	}
	// Each command applied once: per process, a has one increment, and
	// one decrement when compensated; b one increment when completed.
	if bad := e.scalar(ctx, `SELECT count(*) FROM %[1]s.process_instances i WHERE
		(SELECT count(*) FROM %[1]s.events WHERE stream_id = 'a-' || i.process_id AND type = 'Incremented') <> 1
		OR (SELECT count(*) FROM %[1]s.events WHERE stream_id = 'a-' || i.process_id AND type = 'Decremented') <> (i.status = 'compensated')::int
		OR (SELECT count(*) FROM %[1]s.events WHERE stream_id = 'b-' || i.process_id AND type = 'Incremented') <> (i.status = 'completed')::int`); bad != 0 {
		t.Errorf("%d processes whose commands were not applied exactly once", bad)
		rows, _ := e.pool.Query(ctx, fmt.Sprintf(`SELECT i.process_id || ' ' || i.status || ' a+' ||
			(SELECT count(*) FROM %[1]s.events WHERE stream_id = 'a-' || i.process_id AND type = 'Incremented') || ' a-' ||
			(SELECT count(*) FROM %[1]s.events WHERE stream_id = 'a-' || i.process_id AND type = 'Decremented') || ' b+' ||
			(SELECT count(*) FROM %[1]s.events WHERE stream_id = 'b-' || i.process_id AND type = 'Incremented')
			FROM %[1]s.process_instances i ORDER BY 1`, pgx.Identifier{e.schema}.Sanitize()))
		lines, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		var odd []string
		for _, l := range lines {
			f := strings.Fields(l)
			id, _ := strconv.Atoi(f[0])
			want := map[int]string{0: "completed a+1 a-0 b+1", 1: "compensated a+1 a-1 b+0", 2: "compensated a+1 a-1 b+0", 3: "completed a+1 a-0 b+1"}[id%4]
			if strings.Join(f[1:], " ") != want {
				odd = append(odd, l)
			}
		}
		t.Logf("odd: %v", odd)
	}
	if c := e.scalar(ctx, `SELECT count(*) FROM %s.process_instances WHERE status = 'completed' AND process_id::int %% 4 <> 0 AND process_id::int %% 4 <> 3`); c != 0 {
		t.Errorf("%d processes completed that should have been compensated", c)
	}
	if c := e.scalar(ctx, `SELECT count(*) FROM (SELECT stream_id FROM %s.events WHERE type = 'process.TimerFired' GROUP BY stream_id HAVING count(*) > 1) x`); c != 0 {
		t.Errorf("%d processes whose timer fired twice", c)
	}
	if c := e.scalar(ctx, `SELECT count(*) FROM (SELECT stream_id FROM %s.events WHERE type = 'process.TimerExpired' GROUP BY stream_id HAVING count(*) > 1) x`); c != 0 {
		t.Errorf("%d processes that acted on a timer twice", c)
	}
	e.waitFor(ctx, "no command pending", func() (bool, error) {
		return e.scalar(ctx, `SELECT count(*) FROM %s.process_commands WHERE status = 'pending'`) == 0, nil
	})
	if c := e.scalar(ctx, `SELECT count(*) FROM %s.process_timers`); c != 0 {
		t.Errorf("%d timers left", c)
	}
}

// Commands to another service go to JetStream at least once, with
// Nats-Msg-Id = the command's ID: a redelivery is dropped.
func TestPublishSetsMsgID(t *testing.T) {
	srv := testenv.NATS(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	name := testenv.Name("CMDS")
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	h := process.Publish(js, func(c process.Envelope) string { return name + "." + c.Name })
	env := process.Envelope{ID: process.StepID("job", "1", uuid.New(), "command/1"), Type: "job", ProcessID: "1", Name: "ship",
		Data: []byte(`{"n":1}`), Metadata: eventstore.Metadata{eventstore.CorrelationIDKey: "c-1"}}
	for range 3 { // delivered three times
		if err := h(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("%d messages in the stream, want 1", info.State.Msgs)
	}
	msg, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("Nats-Msg-Id"); got != env.ID.String() {
		t.Errorf("Nats-Msg-Id %q, want %s", got, env.ID)
	}
	if got := msg.Header.Get(process.HeaderCorrelation); got != "c-1" {
		t.Errorf("correlation header %q", got)
	}
}

// A partitioned type handles triggers in parallel partitions, and still
// applies each command once.
func TestPartitionedType(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	typ := jobType(300 * time.Millisecond)
	typ.Partitions = 4
	start(t, e.runner(e.pool, typ))
	const n = 100
	for i := range n {
		req := JobRequested{}
		switch i % 3 {
		case 1:
			req.Closed = true
		case 2:
			req.NoAnswer = true
		}
		e.request(ctx, fmt.Sprint(i), req)
	}
	e.waitFor(ctx, "every process terminal", func() (bool, error) {
		return e.scalar(ctx, `SELECT count(*) FROM %s.process_instances WHERE status IN ('completed', 'compensated')`) == n, nil
	})
	if bad := e.scalar(ctx, `SELECT count(*) FROM %[1]s.process_instances i WHERE
		(SELECT count(*) FROM %[1]s.events WHERE stream_id = 'a-' || i.process_id AND type = 'Incremented') <> 1
		OR (SELECT count(*) FROM %[1]s.events WHERE stream_id = 'a-' || i.process_id AND type = 'Decremented') <> (i.status = 'compensated')::int
		OR (i.status = 'completed') <> (process_id::int %% 3 = 0)`); bad != 0 {
		t.Errorf("%d processes whose commands were not applied exactly once or that ended wrongly", bad)
	}
}

// A trigger whose handling keeps failing goes to the dead letters of the
// type's projection, its error naming the process; with Skip the type
// goes on with the next trigger.
func TestFailingTriggerGoesToDeadLettersWithTheProcessID(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	typ := jobType(time.Hour)
	typ.MaxAttempts = 2
	handle := typ.Handle
	typ.Handle = func(ctx context.Context, p *process.Process[*jobState], tr process.Trigger) error {
		if p.ID() == "poison" {
			return errors.New("cannot handle this one")
		}
		return handle(ctx, p, tr)
	}
	r := e.runner(e.pool, typ)
	start(t, r)
	e.request(ctx, "poison", JobRequested{})
	e.request(ctx, "fine", JobRequested{})
	e.waitStatus(ctx, "fine", process.Completed)
	dls, err := e.ps.DeadLetters(ctx, process.ProjectionName("job"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].StreamID != "job-poison" || !strings.Contains(dls[0].Error, "process job/poison") ||
		!strings.Contains(dls[0].Error, "cannot handle this one") {
		t.Fatalf("dead letters %+v, want one for job-poison naming the process", dls)
	}
	if s := e.status(ctx, "poison"); s != "" {
		t.Errorf("the poisoned process has status %q, want none (nothing was committed)", s)
	}
}

// The process's own events are upcast when it is loaded: a JobNoted
// stored at schema 1 under its old name reaches the state renamed.
func TestProcessEventsAreUpcastOnLoad(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	reg := codec.NewRegistry()
	codec.MustRegister[JobRequested](reg, "JobRequested", 1)
	codec.MustRegister[JobNoted](reg, "JobNoted", 2)
	chain, err := upcast.New(reg,
		upcast.Rename("JobRemark", 1, "JobNoted", 1),
		upcast.Transform("JobNoted", 1, func(data []byte) ([]byte, error) {
			return []byte(`{"step":"from v1"}`), nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	typ := jobType(time.Hour)
	typ.Codec = chain
	var seen atomic.Value
	handle := typ.Handle
	typ.Handle = func(ctx context.Context, p *process.Process[*jobState], tr process.Trigger) error {
		seen.CompareAndSwap(nil, append([]string(nil), p.State().Notes...))
		return handle(ctx, p, tr)
	}
	// A process written by older code: its stream holds a JobRemark v1.
	if _, err := e.es.Append(ctx, "process_job-old", eventstore.NoStream, eventstore.Event{Type: "JobRemark", SchemaVersion: 1, Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	start(t, e.runner(e.pool, typ))
	e.request(ctx, "old", JobRequested{})
	e.waitFor(ctx, "the handler ran", func() (bool, error) { return seen.Load() != nil, nil })
	if got, _ := seen.Load().([]string); len(got) != 1 || got[0] != "from v1" {
		t.Errorf("state notes %v when handling, want the upcast [from v1]", got)
	}
}
