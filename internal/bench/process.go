package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/process"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// pcCounter is the aggregate the process benchmark's commands update.
type pcCounter struct {
	aggregate.Root
	N int
}

type pcBumped struct{}

func (c *pcCounter) Apply(ev any) {
	if _, ok := ev.(pcBumped); ok {
		c.N++
	}
}

type pcState struct{}

func (*pcState) Apply(any) {}

// benchProcess measures process steps per second (processes of 3 steps,
// each step one aggregate update delivered by the dispatcher) beside the
// same updates done with Repository.Update from 8 goroutines, and how fast
// 10,000 timers due at once fire.
func benchProcess(ctx context.Context, env *Env) ([]Row, error) {
	schema := env.Schema("process")
	es, err := espg.New(env.Pool, espg.WithSchema(schema))
	if err != nil {
		return nil, err
	}
	ps, err := projpg.New(env.Pool, projpg.WithSchema(schema))
	if err != nil {
		return nil, err
	}
	if err := es.Migrate(ctx); err != nil {
		return nil, err
	}
	reg := codec.NewRegistry()
	codec.MustRegister[pcBumped](reg, "Bumped", 1)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	repo, err := aggregate.NewRepository(process.TxStore{Store: es}, reg, func(string) *pcCounter { return &pcCounter{} }, aggregate.WithCategory("pc"))
	if err != nil {
		return nil, err
	}
	bump := func(ctx context.Context, id string) error {
		a, err := repo.Load(ctx, id)
		if errors.Is(err, aggregate.ErrNotFound) {
			a, err = &pcCounter{}, nil
			aggregate.SetID(a, id)
		}
		if err != nil {
			return err
		}
		aggregate.Raise(a, pcBumped{})
		_, err = repo.Save(ctx, a)
		return err
	}
	const steps = 3
	stepsType := func(name string, partitions int) *process.Type[*pcState] {
		return &process.Type[*pcState]{
			Name: name, Starts: []string{"Go"}, Types: []string{"Go"}, Categories: []string{"go" + name}, Partitions: partitions,
			Correlate: process.ByStream, New: func(string) *pcState { return &pcState{} },
			Handle: func(ctx context.Context, p *process.Process[*pcState], t process.Trigger) error {
				switch {
				case t.Is("Go"):
					p.Send("bump", p.ID()+"-1")
				case t.Kind == process.CommandSucceeded:
					var n int
					fmt.Sscanf(t.Command.Name, "bump%d", &n)
					if n+1 >= steps {
						p.Complete()
						return nil
					}
					p.Send(fmt.Sprintf("bump%d", n+1), fmt.Sprintf("%s-%d", p.ID(), n+2))
				}
				return nil
			},
		}
	}
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	ticks := &process.Type[*pcState]{
		Name: "ticks", Starts: []string{"Tick"}, Types: []string{"Tick"}, Categories: []string{"tick"}, Partitions: 4,
		Correlate: process.ByStream, New: func(string) *pcState { return &pcState{} },
		Handle: func(ctx context.Context, p *process.Process[*pcState], t process.Trigger) error {
			switch {
			case t.Is("Tick"):
				p.Schedule("t", time.Minute)
			case t.Kind == process.TimerTrigger:
				p.Complete()
			}
			return nil
		},
	}
	handler := func(ctx context.Context, cmd process.Envelope) error {
		var id string
		if err := cmd.Decode(&id); err != nil {
			return process.Reject(err)
		}
		return bump(ctx, id)
	}
	opts := []process.Option{process.WithLogger(quiet), process.WithClock(clock), process.WithTimerPoll(10 * time.Millisecond),
		process.WithCommandPoll(50 * time.Millisecond), process.WithDispatchWorkers(8)}
	// run runs a runner of types until the returned stop.
	run := func(types []process.Definition, local bool) (stop func(), err error) {
		o := slices.Clone(opts)
		with := process.WithCommand
		if local {
			with = process.WithLocalCommand
		}
		for i := range steps {
			name := "bump"
			if i > 0 {
				name = fmt.Sprintf("bump%d", i)
			}
			o = append(o, with(name, handler))
		}
		r, err := process.NewRunner(env.Pool, es, ps, types, o...)
		if err != nil {
			return nil, err
		}
		if err := r.Migrate(ctx); err != nil {
			return nil, err
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		stop = func() { cancel(); <-done }
		select {
		case <-r.Ready():
			return stop, nil
		case <-time.After(30 * time.Second):
			stop()
			return nil, errors.New("process runner not ready after 30s")
		}
	}
	q := pgx.Identifier{schema}.Sanitize()
	count := func(sql string, args ...any) (int, error) {
		var n int
		err := env.Pool.QueryRow(ctx, fmt.Sprintf(sql, q), args...).Scan(&n)
		return n, err
	}
	waitCount := func(what string, want int, limit time.Duration, sql string, args ...any) error {
		deadline := time.Now().Add(limit)
		for {
			n, err := count(sql, args...)
			if err != nil {
				return err
			}
			if n >= want {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %d of %d after %s", what, n, want, limit)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	appendStarts := func(category, typ string, n int) error {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 8 {
					if _, err := es.Append(ctx, fmt.Sprintf("%s-%d", category, i), eventstore.NoStream, eventstore.Event{Type: typ}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}

	// Process steps: P processes of 3 steps, started at once: with
	// commands the dispatcher delivers (8 at a time), then with local
	// commands run in the trigger's transaction (ADR 0016).
	nProc := env.N(400, 40)
	variants := []struct {
		name       string
		local      bool
		partitions int
	}{{"dsteps", false, 4}, {"lsteps", true, 4}, {"lsteps8", true, 8}}
	procTimes := make([]time.Duration, len(variants))
	for i, v := range variants {
		stop, err := run([]process.Definition{stepsType(v.name, v.partitions)}, v.local)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := appendStarts("go"+v.name, "Go", nProc); err != nil {
			stop()
			return nil, err
		}
		err = waitCount("processes completed", nProc, 5*time.Minute,
			`SELECT count(*) FROM %s.process_instances WHERE type = $1 AND status = 'completed'`, v.name)
		procTimes[i] = time.Since(t0)
		stop()
		if err != nil {
			return nil, err
		}
	}
	// Baseline: the same 3 updates per process with Repository.Update, 8
	// goroutines.
	direct, err := aggregate.NewRepository(es, reg, func(string) *pcCounter { return &pcCounter{} }, aggregate.WithCategory("pd"))
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < nProc; i += 8 {
				for s := range steps {
					id := fmt.Sprintf("%d-%d", i, s+1)
					if _, err := direct.Update(ctx, id, func(a *pcCounter) error { aggregate.Raise(a, pcBumped{}); return nil }); errors.Is(err, aggregate.ErrNotFound) {
						_, err = direct.Create(ctx, id, func(a *pcCounter) error { aggregate.Raise(a, pcBumped{}); return nil })
						if err != nil {
							firstErr.CompareAndSwap(nil, err)
						}
					} else if err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	directTime := time.Since(t0)
	var rows []Row
	for i, v := range variants {
		how := fmt.Sprintf("commands delivered by the dispatcher (8 at once), %d partitions", v.partitions)
		if v.local {
			how = fmt.Sprintf("local commands in the trigger's transaction, %d partitions", v.partitions)
		}
		rows = append(rows, ratioRow(fmt.Sprintf("Process steps/s (%d processes x 3 steps, %s) vs Repository.Update x 3 from 8 goroutines", nProc, how),
			rate(nProc*steps, procTimes[i]), rate(nProc*steps, directTime), "steps/s", 0.5, true))
	}

	// Timers: T processes each with a timer due in a minute; then the
	// clock jumps past them and every timer is due at once.
	stop, err := run([]process.Definition{ticks}, true)
	if err != nil {
		return nil, err
	}
	defer stop()
	nTimers := env.N(10000, 1000)
	if err := appendStarts("tick", "Tick", nTimers); err != nil {
		return nil, err
	}
	if err := waitCount("timers scheduled", nTimers, 5*time.Minute, `SELECT count(*) FROM %s.process_timers WHERE type = 'ticks'`); err != nil {
		return nil, err
	}
	t0 = time.Now()
	now.Add(int64(2 * time.Minute))
	if err := waitCount("timers fired", nTimers, 5*time.Minute, `SELECT count(*) FROM %s.events WHERE type = 'process.TimerFired'`); err != nil {
		return nil, err
	}
	fired := time.Since(t0)
	if err := waitCount("processes completed by their timer", nTimers, 5*time.Minute,
		`SELECT count(*) FROM %s.process_instances WHERE type = 'ticks' AND status = 'completed'`); err != nil {
		return nil, err
	}
	handled := time.Since(t0)
	rows = append(rows,
		Row{Figure: fmt.Sprintf("%d timers due at once: all fired (TimerFired appended)", nTimers), Value: fmt.Sprintf("%s (%s)", fired.Round(time.Millisecond), perSec(rate(nTimers, fired), "timers")),
			Goal: "<= 2s", Pass: yesNo(fired <= 2*time.Second)},
		Row{Figure: fmt.Sprintf("%d timers due at once: all handled (processes completed)", nTimers), Value: fmt.Sprintf("%s (%s)", handled.Round(time.Millisecond), perSec(rate(nTimers, handled), "timers"))},
	)
	return rows, nil
}
