// Package aggregatetest tests aggregates in the given-when-then style, with
// no store at all:
//
//	aggregatetest.For(t, NewAccount).
//		Given(AccountOpened{Owner: "ada"}, Deposited{Amount: 10}).
//		When(func(a *Account) error { return a.Withdraw(4) }).
//		Then(Withdrawn{Amount: 4})
//
// Given events are applied as history (the aggregate's version counts
// them); When runs a command; Then compares the events the command raised
// with the expected ones, in order, and fails the test with a readable diff
// when they differ, naming each differing field (expected != raised).
// Events are compared like reflect.DeepEqual, except that a value whose
// type has an Equal(T) bool method, such as time.Time, is compared with it,
// and a nil map or slice equals an empty one. ThenError expects the command
// to fail with an error matching errors.Is; ThenNothing expects success and
// no event.
//
// With [WithRegistry], every given and raised event also goes through the
// registry's Encode and Decode, so a test fails when an event is not
// registered or does not survive encoding. Surviving is judged by the same
// comparison, so what an encoding drops on purpose (a time's monotonic
// clock reading, an empty map left out by omitempty) is not a difference,
// while a lost field is, and the failure names it.
package aggregatetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/codec"
)

// Option configures a [Scenario].
type Option func(*config)

type config struct {
	id  string
	reg *codec.Registry
}

// WithID sets the ID of the aggregate under test (default "test-1").
func WithID(id string) Option { return func(c *config) { c.id = id } }

// WithRegistry round-trips every given and raised event through reg, so a
// scenario fails when an event is not registered or changes on the way
// (compared as [Scenario.Then] compares events). Given events reach the
// aggregate as decoded, as they would from a store.
func WithRegistry(reg *codec.Registry) Option { return func(c *config) { c.reg = reg } }

// Scenario is one given-when-then test of an aggregate of type T.
type Scenario[T aggregate.Aggregate] struct {
	t     testing.TB
	newT  func(id string) T
	cfg   config
	given []any
	cmd   func(T) error
}

// For starts a scenario for the aggregate built by newT (the same
// constructor a repository uses). Failures are reported to t. Nil options
// are ignored.
func For[T aggregate.Aggregate](t testing.TB, newT func(id string) T, opts ...Option) *Scenario[T] {
	cfg := config{id: "test-1"}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return &Scenario[T]{t: t, newT: newT, cfg: cfg}
}

// Given adds events to the aggregate's history.
func (s *Scenario[T]) Given(events ...any) *Scenario[T] {
	s.given = append(s.given, events...)
	return s
}

// When sets the command under test.
func (s *Scenario[T]) When(cmd func(T) error) *Scenario[T] {
	s.cmd = cmd
	return s
}

// Then runs the scenario and expects the command to succeed and raise
// exactly the events expected, in order.
func (s *Scenario[T]) Then(expected ...any) {
	s.t.Helper()
	raised, err, ok := s.run()
	if !ok {
		return
	}
	if err != nil {
		s.t.Errorf("aggregatetest: When returned an error: %v\nwant events:\n%s", err, list(expected))
		return
	}
	if d := diff(expected, raised); d != "" {
		s.t.Errorf("aggregatetest: raised events differ (- expected, + raised):\n%s", d)
	}
}

// ThenError runs the scenario and expects the command to fail with an
// error matching want (errors.Is). want must not be nil: use
// [Scenario.ThenNothing] or [Scenario.Then] to expect success.
func (s *Scenario[T]) ThenError(want error) {
	s.t.Helper()
	if want == nil {
		s.t.Errorf("aggregatetest: ThenError(nil) expects no error; use ThenNothing() to expect success with no event, or Then(events...) for success with events")
		return
	}
	raised, err, ok := s.run()
	if !ok {
		return
	}
	switch {
	case err == nil:
		s.t.Errorf("aggregatetest: When succeeded, want error %v; raised events:\n%s", want, list(raised))
	case !errors.Is(err, want):
		s.t.Errorf("aggregatetest: When returned error %v, want an error matching %v", err, want)
	}
}

// ThenNothing runs the scenario and expects the command to succeed and
// raise no event.
func (s *Scenario[T]) ThenNothing() {
	s.t.Helper()
	raised, err, ok := s.run()
	if !ok {
		return
	}
	switch {
	case err != nil:
		s.t.Errorf("aggregatetest: When returned an error: %v, want success and no event", err)
	case len(raised) > 0:
		s.t.Errorf("aggregatetest: want no event, raised:\n%s", list(raised))
	}
}

// run builds the aggregate from the given events, runs the command and
// returns the events it raised and its error; ok is false when the scenario
// itself is broken (already reported).
func (s *Scenario[T]) run() (raised []any, err error, ok bool) {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Errorf("aggregatetest: When was not called before Then")
		return nil, nil, false
	}
	a := s.newT(s.cfg.id)
	aggregate.SetID(a, s.cfg.id)
	for i, e := range s.given {
		e, ok := s.roundTrip("given", i, e)
		if !ok {
			return nil, nil, false
		}
		aggregate.Replay(a, e)
	}
	err = s.cmd(a)
	raised = a.Uncommitted()
	for i, e := range raised {
		if _, ok := s.roundTrip("raised", i, e); !ok {
			return nil, nil, false
		}
	}
	return raised, err, true
}

func (s *Scenario[T]) roundTrip(what string, i int, e any) (any, bool) {
	s.t.Helper()
	if s.cfg.reg == nil {
		return e, true
	}
	name, v, data, err := s.cfg.reg.Encode(e)
	if err != nil {
		s.t.Errorf("aggregatetest: %s event %d (%s): %v", what, i+1, format(e), err)
		return nil, false
	}
	back, err := s.cfg.reg.Decode(name, v, data)
	if err != nil {
		s.t.Errorf("aggregatetest: %s event %d (%s): %v", what, i+1, format(e), err)
		return nil, false
	}
	if d := differences(e, back); len(d) > 0 {
		s.t.Errorf("aggregatetest: %s event %d changes when encoded and decoded (before != after):\n  %s\n  before: %s\n  after:  %s\n  stored: %s",
			what, i+1, strings.Join(d, "\n  "), format(e), format(back), data)
		return nil, false
	}
	return back, true
}

func format(e any) string { return fmt.Sprintf("%T%+v", e, e) }

func list(events []any) string {
	if len(events) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for i, e := range events {
		fmt.Fprintf(&b, "  %d: %s\n", i+1, format(e))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// diff returns "" when the lists are equal, otherwise one line per event
// position: unchanged events with two spaces, expected ones with "-" and
// raised ones with "+".
func diff(expected, raised []any) string {
	equal := len(expected) == len(raised)
	var b strings.Builder
	for i := range max(len(expected), len(raised)) {
		switch {
		case i < len(expected) && i < len(raised) && len(differences(expected[i], raised[i])) == 0:
			fmt.Fprintf(&b, "  %d: %s\n", i+1, format(expected[i]))
		default:
			equal = false
			if i < len(expected) {
				fmt.Fprintf(&b, "- %d: %s\n", i+1, format(expected[i]))
			}
			if i < len(raised) {
				fmt.Fprintf(&b, "+ %d: %s\n", i+1, format(raised[i]))
			}
			if i < len(expected) && i < len(raised) {
				for _, line := range differences(expected[i], raised[i]) {
					fmt.Fprintf(&b, "    %s\n", line)
				}
			}
		}
	}
	if equal {
		return ""
	}
	return strings.TrimSuffix(b.String(), "\n")
}
