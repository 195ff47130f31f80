// Package processtest tests process types in the given-when-then style, in
// memory, with a clock of its own and no store:
//
//	processtest.For(t, transferType).
//		Given(processtest.Event("TransferRequested", req), processtest.Succeeded("debit")).
//		When(processtest.Advance(2 * time.Minute)).
//		Then(processtest.Expect{
//			Commands: []processtest.Command{{Name: "refund", Data: refund, Compensation: true}},
//			Status:   process.Compensating,
//		})
//
// Given steps build the process's history (their effects are not
// checked); When is the step under test; Then compares what it decided
// with what is expected: the commands sent, timers scheduled and
// cancelled, events recorded and the status afterwards. A mismatch fails
// the test with a readable diff, one line per difference (- expected,
// + got). It runs exactly the logic the runner runs ([process.Harness]).
package processtest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/process"
)

// DefaultNow is the scenarios' clock at the start.
var defaultNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// DefaultNow returns the time a scenario's clock starts at, unless
// [WithClock] says otherwise.
func DefaultNow() time.Time { return defaultNow }

// Option configures a [Scenario]. A nil Option is ignored.
type Option func(*config)

type config struct {
	id  string
	now time.Time
}

// WithID sets the ID of the process under test (default "test-1").
func WithID(id string) Option { return func(c *config) { c.id = id } }

// WithClock sets the clock's start (default [DefaultNow]).
func WithClock(now time.Time) Option { return func(c *config) { c.now = now } }

// driver is what steps drive: a *process.Harness of any state type.
type driver interface {
	Event(ctx context.Context, typ string, data any) (process.Effects, error)
	Succeeded(ctx context.Context, name string) (process.Effects, error)
	Failed(ctx context.Context, name, reason string, rejected bool) (process.Effects, error)
	Advance(ctx context.Context, d time.Duration) (process.Effects, error)
	Retry(ctx context.Context) (process.Effects, error)
	Now() time.Time
}

// Step is a trigger delivered to the process.
type Step struct {
	desc string
	run  func(ctx context.Context, d driver) (process.Effects, error)
}

// String describes the step.
func (s Step) String() string { return s.desc }

// Event delivers an event of the log of type typ whose decoded value is
// data.
func Event(typ string, data any) Step {
	return Step{fmt.Sprintf("event %s", typ), func(ctx context.Context, d driver) (process.Effects, error) { return d.Event(ctx, typ, data) }}
}

// Succeeded reports the oldest outstanding command named name delivered.
func Succeeded(name string) Step {
	return Step{fmt.Sprintf("command %s succeeded", name), func(ctx context.Context, d driver) (process.Effects, error) { return d.Succeeded(ctx, name) }}
}

// Rejected reports the oldest outstanding command named name refused by
// its handler with reason.
func Rejected(name, reason string) Step {
	return Step{fmt.Sprintf("command %s rejected", name), func(ctx context.Context, d driver) (process.Effects, error) {
		return d.Failed(ctx, name, reason, true)
	}}
}

// GaveUp reports the oldest outstanding command named name failed after
// its attempts, with reason.
func GaveUp(name, reason string) Step {
	return Step{fmt.Sprintf("command %s gave up", name), func(ctx context.Context, d driver) (process.Effects, error) {
		return d.Failed(ctx, name, reason, false)
	}}
}

// Advance moves the clock by d, firing the timers then due.
func Advance(d time.Duration) Step {
	return Step{fmt.Sprintf("advance %s", d), func(ctx context.Context, dr driver) (process.Effects, error) { return dr.Advance(ctx, d) }}
}

// Retry is an operator's retry of a failed compensation.
func Retry() Step {
	return Step{"retry", func(ctx context.Context, d driver) (process.Effects, error) { return d.Retry(ctx) }}
}

// Command is an expected command. Data is compared as JSON.
type Command struct {
	Name         string
	Data         any
	Compensation bool
}

// Timer is an expected timer, due After the clock's time when the step
// under test began.
type Timer struct {
	Name  string
	After time.Duration
}

// Expect is what the step under test must have decided. Commands, Timers,
// Cancelled and Events must match exactly (nil: none); Status is checked
// unless empty.
type Expect struct {
	Commands  []Command
	Timers    []Timer
	Cancelled []string
	Events    []any
	Status    process.Status
}

// Scenario is one given-when-then test of a process type.
type Scenario[S process.Applier] struct {
	t     testing.TB
	typ   *process.Type[S]
	cfg   config
	given []Step
	when  *Step
}

// For starts a scenario of the process type typ; failures go to t.
func For[S process.Applier](t testing.TB, typ *process.Type[S], opts ...Option) *Scenario[S] {
	cfg := config{id: "test-1", now: defaultNow}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return &Scenario[S]{t: t, typ: typ, cfg: cfg}
}

// Given adds steps to the process's history.
func (s *Scenario[S]) Given(steps ...Step) *Scenario[S] {
	s.given = append(s.given, steps...)
	return s
}

// When sets the step under test.
func (s *Scenario[S]) When(step Step) *Scenario[S] {
	s.when = &step
	return s
}

// Then runs the scenario and compares what the step under test decided
// with want. It returns the harness, to look at the state afterwards.
func (s *Scenario[S]) Then(want Expect) *process.Harness[S] {
	s.t.Helper()
	h, err := process.NewHarness(s.typ, s.cfg.id, s.cfg.now)
	if err != nil {
		s.t.Fatalf("processtest: %v", err)
		return nil
	}
	ctx := context.Background()
	for i, g := range s.given {
		if _, err := g.run(ctx, h); err != nil {
			s.t.Fatalf("processtest: given step %d (%s): %v", i+1, g, err)
			return h
		}
	}
	if s.when == nil {
		s.t.Fatalf("processtest: no When step")
		return h
	}
	began := h.Now()
	got, err := s.when.run(ctx, h)
	if err != nil {
		s.t.Errorf("processtest: when %s: %v", s.when, err)
		return h
	}
	if d := diff(want, got, began); d != "" {
		s.t.Errorf("processtest: when %s: effects differ (- expected, + got):\n%s", s.when, d)
	}
	return h
}

func diff(want Expect, got process.Effects, began time.Time) string {
	var b strings.Builder
	section := func(name string, exp, act []string) {
		n := max(len(exp), len(act))
		for i := range n {
			var e, a string
			if i < len(exp) {
				e = exp[i]
			}
			if i < len(act) {
				a = act[i]
			}
			if e == a {
				continue
			}
			if e != "" {
				fmt.Fprintf(&b, "  %s[%d]:\n    - %s\n", name, i, e)
			} else {
				fmt.Fprintf(&b, "  %s[%d]:\n    - (none)\n", name, i)
			}
			if a != "" {
				fmt.Fprintf(&b, "    + %s\n", a)
			} else {
				b.WriteString("    + (none)\n")
			}
		}
	}
	var ec, ac []string
	for _, c := range want.Commands {
		ec = append(ec, command(c.Name, canonical(c.Data), c.Compensation))
	}
	for _, c := range got.Commands {
		ac = append(ac, command(c.Name, canonicalRaw(c.Data), c.Compensation))
	}
	section("commands", ec, ac)
	var et, at []string
	for _, t := range want.Timers {
		et = append(et, fmt.Sprintf("%s after %s", t.Name, t.After))
	}
	for _, t := range got.Scheduled {
		at = append(at, fmt.Sprintf("%s after %s", t.Name, t.Due.Sub(began)))
	}
	section("timers", et, at)
	section("cancelled", want.Cancelled, got.Cancelled)
	var ee, ae []string
	for i := range max(len(want.Events), len(got.Events)) {
		var e, a any
		if i < len(want.Events) {
			e = want.Events[i]
		}
		if i < len(got.Events) {
			a = got.Events[i]
		}
		es, as := event(e), event(a)
		if reflect.DeepEqual(e, a) {
			as = es
		}
		ee, ae = append(ee, es), append(ae, as)
	}
	section("events", ee, ae)
	if want.Status != "" && want.Status != got.Status {
		fmt.Fprintf(&b, "  status:\n    - %s\n    + %s\n", want.Status, got.Status)
	}
	return b.String()
}

func command(name, data string, comp bool) string {
	s := name + " " + data
	if comp {
		s += " (compensation)"
	}
	return s
}

func event(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprintf("%T %+v", v, v)
}

// canonical returns v as JSON with sorted keys.
func canonical(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("(cannot encode %T: %v)", v, err)
	}
	return canonicalRaw(raw)
}

func canonicalRaw(raw []byte) string {
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return string(raw)
	}
	out, _ := json.Marshal(x)
	return string(out)
}
