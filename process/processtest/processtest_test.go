package processtest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/process"
	"github.com/chronicle-go/chronicle/process/processtest"
)

type Requested struct {
	Amount int `json:"amount"`
}

type Noted struct{ Text string }

type state struct{ Notes []string }

func (s *state) Apply(ev any) {
	if n, ok := ev.(Noted); ok {
		s.Notes = append(s.Notes, n.Text)
	}
}

type move struct {
	Account string `json:"account"`
	Amount  int    `json:"amount"`
}

// transfer debits a, then credits b; a refused credit or no answer within
// a minute refunds a.
func transfer() *process.Type[*state] {
	reg := codec.NewRegistry()
	codec.MustRegister[Noted](reg, "Noted", 1)
	return &process.Type[*state]{
		Name:      "transfer",
		Starts:    []string{"Requested"},
		Correlate: process.ByStream,
		New:       func(string) *state { return &state{} },
		Codec:     reg,
		Handle: func(ctx context.Context, p *process.Process[*state], t process.Trigger) error {
			switch {
			case t.Is("Requested"):
				r := t.Event.Data.(Requested)
				p.Record(Noted{Text: fmt.Sprint("requested ", r.Amount)})
				p.SendCompensable("debit", move{"a", r.Amount}, process.Command{Name: "refund", Data: move{"a", r.Amount}})
				p.Schedule("answer", time.Minute)
			case t.Kind == process.CommandSucceeded && t.Command.Name == "debit":
				p.Send("credit", move{"b", 10})
			case t.Kind == process.CommandSucceeded && t.Command.Name == "credit":
				p.Cancel("answer")
				p.Complete()
			case t.Kind == process.CommandFailed, t.Kind == process.TimerTrigger:
				p.Compensate("no credit")
			}
			return nil
		},
	}
}

func TestStart(t *testing.T) {
	processtest.For(t, transfer()).
		When(processtest.Event("Requested", Requested{Amount: 10})).
		Then(processtest.Expect{
			Commands: []processtest.Command{{Name: "debit", Data: move{"a", 10}}},
			Timers:   []processtest.Timer{{Name: "answer", After: time.Minute}},
			Events:   []any{Noted{Text: "requested 10"}},
			Status:   process.Running,
		})
}

func TestCompletes(t *testing.T) {
	processtest.For(t, transfer()).
		Given(processtest.Event("Requested", Requested{Amount: 10}), processtest.Succeeded("debit")).
		When(processtest.Succeeded("credit")).
		Then(processtest.Expect{Cancelled: []string{"answer"}, Status: process.Completed})
}

func TestRefusedCreditRefunds(t *testing.T) {
	processtest.For(t, transfer()).
		Given(processtest.Event("Requested", Requested{Amount: 10}), processtest.Succeeded("debit")).
		When(processtest.Rejected("credit", "account b is closed")).
		Then(processtest.Expect{
			Commands: []processtest.Command{{Name: "refund", Data: move{"a", 10}, Compensation: true}},
			Status:   process.Compensating,
		})
}

// A timeout while the credit is out compensates once the credit's
// outcome is known.
func TestTimeoutWaitsForTheCreditThenRefunds(t *testing.T) {
	processtest.For(t, transfer()).
		Given(processtest.Event("Requested", Requested{Amount: 10}), processtest.Succeeded("debit"),
			processtest.Advance(2*time.Minute)).
		When(processtest.GaveUp("credit", "no answer")).
		Then(processtest.Expect{
			Commands: []processtest.Command{{Name: "refund", Data: move{"a", 10}, Compensation: true}},
			Status:   process.Compensating,
		})
}

func TestRefundEndsCompensated(t *testing.T) {
	h := processtest.For(t, transfer()).
		Given(processtest.Event("Requested", Requested{Amount: 10}), processtest.Succeeded("debit"),
			processtest.Rejected("credit", "closed")).
		When(processtest.Succeeded("refund")).
		Then(processtest.Expect{Status: process.Compensated})
	if got := h.State().Notes; len(got) != 1 {
		t.Errorf("notes %v", got)
	}
}

// A timeout while the debit is out waits for it, then refunds it.
func TestTimeoutWhileDebitIsOutWaitsForIt(t *testing.T) {
	processtest.For(t, transfer()).
		Given(processtest.Event("Requested", Requested{Amount: 10}), processtest.Advance(time.Hour)).
		When(processtest.Succeeded("debit")).
		Then(processtest.Expect{
			Commands: []processtest.Command{{Name: "refund", Data: move{"a", 10}, Compensation: true}},
			Status:   process.Compensating,
		})
}

func TestFailedRefundThenRetry(t *testing.T) {
	processtest.For(t, transfer()).
		Given(processtest.Event("Requested", Requested{Amount: 10}), processtest.Succeeded("debit"),
			processtest.Rejected("credit", "closed"), processtest.GaveUp("refund", "database down")).
		When(processtest.Retry()).
		Then(processtest.Expect{
			Commands: []processtest.Command{{Name: "refund", Data: move{"a", 10}, Compensation: true}},
			Status:   process.Compensating,
		})
}

func TestLateEventAfterCompletionDoesNothing(t *testing.T) {
	processtest.For(t, transfer()).
		Given(processtest.Event("Requested", Requested{Amount: 10}), processtest.Succeeded("debit"), processtest.Succeeded("credit")).
		When(processtest.Event("Requested", Requested{Amount: 99})).
		Then(processtest.Expect{Status: process.Completed})
}

// fakeTB records failures instead of failing the test.
type fakeTB struct {
	testing.TB
	errors []string
	fatal  bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = true
	f.Errorf(format, args...)
}

func TestMismatchFailsWithReadableDiff(t *testing.T) {
	f := &fakeTB{}
	processtest.For(f, transfer()).
		When(processtest.Event("Requested", Requested{Amount: 10})).
		Then(processtest.Expect{
			Commands: []processtest.Command{{Name: "debit", Data: move{"a", 11}}},
			Timers:   []processtest.Timer{{Name: "answer", After: 2 * time.Minute}},
			Events:   []any{Noted{Text: "requested 10"}, Noted{Text: "more"}},
			Status:   process.Completed,
		})
	if len(f.errors) != 1 {
		t.Fatalf("want one failure, got %d: %q", len(f.errors), f.errors)
	}
	msg := f.errors[0]
	t.Logf("the failure reads:\n%s", msg)
	for _, want := range []string{
		"effects differ (- expected, + got)",
		`- debit {"account":"a","amount":11}`, `+ debit {"account":"a","amount":10}`,
		"- answer after 2m0s", "+ answer after 1m0s",
		"events[1]:", "- processtest_test.Noted {Text:more}", "+ (none)",
		"- completed", "+ running",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure lacks %q", want)
		}
	}
	if strings.Contains(msg, "events[0]") {
		t.Errorf("failure lists the matching event:\n%s", msg)
	}
}

func TestMatchDoesNotFail(t *testing.T) {
	f := &fakeTB{}
	processtest.For(f, transfer()).
		When(processtest.Event("Requested", Requested{Amount: 10})).
		Then(processtest.Expect{
			Commands: []processtest.Command{{Name: "debit", Data: move{"a", 10}}},
			Timers:   []processtest.Timer{{Name: "answer", After: time.Minute}},
			Events:   []any{Noted{Text: "requested 10"}},
		})
	if len(f.errors) != 0 {
		t.Errorf("unexpected failures: %q", f.errors)
	}
}

func TestGivenErrorIsFatal(t *testing.T) {
	f := &fakeTB{}
	processtest.For(f, transfer()).
		Given(processtest.Succeeded("debit")).
		When(processtest.Succeeded("credit")).
		Then(processtest.Expect{})
	if !f.fatal || len(f.errors) != 1 || !strings.Contains(f.errors[0], `no command "debit" outstanding`) {
		t.Errorf("got %q (fatal %v)", f.errors, f.fatal)
	}
}
