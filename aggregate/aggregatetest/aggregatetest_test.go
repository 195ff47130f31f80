package aggregatetest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/aggregate/aggregatetest"
	"github.com/chronicle-go/chronicle/codec"
)

type Opened struct{ Owner string }
type Deposited struct{ Amount int }
type Withdrawn struct{ Amount int }

var errInsufficient = errors.New("insufficient funds")

type Account struct {
	aggregate.Root
	Open    bool
	Balance int
}

func newAccount(string) *Account { return &Account{} }

func (a *Account) Apply(event any) {
	switch e := event.(type) {
	case Opened:
		a.Open = true
	case Deposited:
		a.Balance += e.Amount
	case Withdrawn:
		a.Balance -= e.Amount
	}
}

func (a *Account) Withdraw(n int) error {
	if n > a.Balance {
		return fmt.Errorf("withdraw %d from %d: %w", n, a.Balance, errInsufficient)
	}
	if n == 0 {
		return nil
	}
	aggregate.Raise(a, Withdrawn{Amount: n})
	return nil
}

// fakeTB records failures instead of failing the real test.
type fakeTB struct {
	testing.TB
	errors []string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}
func (f *fakeTB) failed() string { return strings.Join(f.errors, "\n") }

func TestPasses(t *testing.T) {
	t.Parallel()
	f := &fakeTB{}
	aggregatetest.For(f, newAccount).Given(Opened{"ada"}, Deposited{10}).
		When(func(a *Account) error { return a.Withdraw(4) }).Then(Withdrawn{4})
	aggregatetest.For(f, newAccount).Given(Opened{"ada"}).
		When(func(a *Account) error { return a.Withdraw(4) }).ThenError(errInsufficient)
	aggregatetest.For(f, newAccount).Given(Opened{"ada"}).
		When(func(a *Account) error { return a.Withdraw(0) }).ThenNothing()
	var version int64
	var id string
	aggregatetest.For(f, newAccount, nil, aggregatetest.WithID("acc-9"), nil).Given(Opened{"ada"}, Deposited{1}).
		When(func(a *Account) error { version, id = a.Version(), a.ID(); return nil }).ThenNothing()
	if len(f.errors) > 0 {
		t.Fatalf("passing scenarios failed:\n%s", f.failed())
	}
	if version != 2 || id != "acc-9" {
		t.Fatalf("given history: version %d id %q, want 2 and acc-9", version, id)
	}
}

func TestFailsWithDiff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(tb testing.TB)
		want []string
	}{
		{"wrong event", func(tb testing.TB) {
			aggregatetest.For(tb, newAccount).Given(Deposited{10}).
				When(func(a *Account) error { return a.Withdraw(3) }).Then(Withdrawn{4})
		}, []string{"- expected, + raised", "- 1: aggregatetest_test.Withdrawn{Amount:4}", "+ 1: aggregatetest_test.Withdrawn{Amount:3}"}},
		{"missing event", func(tb testing.TB) {
			aggregatetest.For(tb, newAccount).Given(Deposited{10}).
				When(func(a *Account) error { return a.Withdraw(3) }).Then(Withdrawn{3}, Withdrawn{1})
		}, []string{"  1: aggregatetest_test.Withdrawn{Amount:3}", "- 2: aggregatetest_test.Withdrawn{Amount:1}"}},
		{"extra event", func(tb testing.TB) {
			aggregatetest.For(tb, newAccount).Given(Deposited{10}).
				When(func(a *Account) error { return a.Withdraw(3) }).Then()
		}, []string{"+ 1: aggregatetest_test.Withdrawn{Amount:3}"}},
		{"error instead of events", func(tb testing.TB) {
			aggregatetest.For(tb, newAccount).When(func(a *Account) error { return a.Withdraw(3) }).Then(Withdrawn{3})
		}, []string{"When returned an error", "insufficient funds", "Withdrawn{Amount:3}"}},
		{"success instead of error", func(tb testing.TB) {
			aggregatetest.For(tb, newAccount).Given(Deposited{5}).
				When(func(a *Account) error { return a.Withdraw(3) }).ThenError(errInsufficient)
		}, []string{"When succeeded, want error insufficient funds", "Withdrawn{Amount:3}"}},
		{"other error", func(tb testing.TB) {
			aggregatetest.For(tb, newAccount).When(func(a *Account) error { return errors.New("boom") }).ThenError(errInsufficient)
		}, []string{"returned error boom, want an error matching insufficient funds"}},
		{"ThenError(nil) on success", func(tb testing.TB) {
			aggregatetest.For(tb, newAccount).Given(Deposited{5}).
				When(func(a *Account) error { return a.Withdraw(0) }).ThenError(nil)
		}, []string{"ThenError(nil)", "use ThenNothing()"}},
		{"ThenError(nil) on failure", func(tb testing.TB) {
			aggregatetest.For(tb, newAccount).When(func(a *Account) error { return a.Withdraw(3) }).ThenError(nil)
		}, []string{"ThenError(nil)", "use ThenNothing()"}},
		{"events instead of nothing", func(tb testing.TB) {
			aggregatetest.For(tb, newAccount).Given(Deposited{5}).
				When(func(a *Account) error { return a.Withdraw(3) }).ThenNothing()
		}, []string{"want no event", "Withdrawn{Amount:3}"}},
		{"error instead of nothing", func(tb testing.TB) {
			aggregatetest.For(tb, newAccount).When(func(a *Account) error { return a.Withdraw(3) }).ThenNothing()
		}, []string{"insufficient funds"}},
		{"no When", func(tb testing.TB) {
			aggregatetest.For(tb, newAccount).Given(Deposited{5}).Then()
		}, []string{"When was not called"}},
		{"unregistered event", func(tb testing.TB) {
			reg := codec.NewRegistry()
			codec.MustRegister[Deposited](reg, "Deposited", 1)
			aggregatetest.For(tb, newAccount, aggregatetest.WithRegistry(reg)).Given(Deposited{5}).
				When(func(a *Account) error { return a.Withdraw(3) }).Then(Withdrawn{3})
		}, []string{"raised event 1", "Withdrawn", "not registered"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeTB{}
			tc.run(f)
			if len(f.errors) != 1 {
				t.Fatalf("want exactly one failure, got %d:\n%s", len(f.errors), f.failed())
			}
			for _, w := range tc.want {
				if !strings.Contains(f.errors[0], w) {
					t.Errorf("failure message does not contain %q:\n%s", w, f.errors[0])
				}
			}
		})
	}
}

type lossy struct {
	Amount int `json:"-"`
}

func TestRegistryRoundTripCatchesLoss(t *testing.T) {
	t.Parallel()
	reg := codec.NewRegistry()
	codec.MustRegister[lossy](reg, "Lossy", 1)
	f := &fakeTB{}
	aggregatetest.For(f, newAccount, aggregatetest.WithRegistry(reg)).Given(lossy{Amount: 3}).
		When(func(*Account) error { return nil }).ThenNothing()
	if len(f.errors) != 1 || !strings.Contains(f.errors[0], "changes when encoded and decoded") {
		t.Fatalf("failures: %s", f.failed())
	}
}

type stamped struct {
	At   time.Time
	Tags map[string]string `json:",omitempty"`
	IDs  []int             `json:",omitempty"`
}

// Differences the encoding does not keep (a monotonic clock reading, an
// empty map or slice left out by omitempty) are not reported: the aggregate
// sees the same event after a reload.
func TestRegistryRoundTripIgnoresWhatEncodingDropsOnPurpose(t *testing.T) {
	t.Parallel()
	reg := codec.NewRegistry()
	codec.MustRegister[stamped](reg, "Stamped", 1)
	now := time.Now() // carries a monotonic clock reading
	zone := time.FixedZone("CET", 3600)
	f := &fakeTB{}
	aggregatetest.For(f, newAccount, aggregatetest.WithRegistry(reg)).
		Given(stamped{At: now, Tags: map[string]string{}, IDs: []int{}}, stamped{At: now.In(zone)}).
		When(func(a *Account) error { aggregate.Raise(a, stamped{At: now, Tags: map[string]string{}}); return nil }).
		Then(stamped{At: now, Tags: map[string]string{}})
	if len(f.errors) > 0 {
		t.Fatalf("false differences reported:\n%s", f.failed())
	}
}

type lossyNested struct {
	Name  string
	Inner struct {
		Keep int
		Drop int `json:"-"`
	}
	At    time.Time
	notes map[string]time.Time
}

// A difference that remains is shown where it is, not only as two whole
// values.
func TestRegistryRoundTripShowsWhereEventsDiffer(t *testing.T) {
	t.Parallel()
	reg := codec.NewRegistry()
	codec.MustRegister[lossyNested](reg, "LossyNested", 1)
	e := lossyNested{Name: "x", At: time.Now()}
	e.Inner.Keep, e.Inner.Drop = 1, 2
	e.notes = map[string]time.Time{"a": time.Time{}}
	f := &fakeTB{}
	aggregatetest.For(f, newAccount, aggregatetest.WithRegistry(reg)).Given(e).
		When(func(*Account) error { return nil }).ThenNothing()
	if len(f.errors) != 1 {
		t.Fatalf("want one failure, got:\n%s", f.failed())
	}
	msg := f.errors[0]
	if !strings.Contains(msg, ".Inner.Drop: 2 != 0") || !strings.Contains(msg, ".notes: map[a:") {
		t.Errorf("the failure does not show the differing field:\n%s", msg)
	}
	if strings.Contains(msg, ".At") || strings.Contains(msg, ".Name") || strings.Contains(msg, ".Inner.Keep") {
		t.Errorf("the failure shows fields that survived:\n%s", msg)
	}
}

type withMeta struct {
	Meta map[string]any
}

// A difference that prints the same on both sides is shown with the types.
func TestRegistryRoundTripShowsTypesWhenValuesPrintAlike(t *testing.T) {
	t.Parallel()
	reg := codec.NewRegistry()
	codec.MustRegister[withMeta](reg, "WithMeta", 1)
	f := &fakeTB{}
	aggregatetest.For(f, newAccount, aggregatetest.WithRegistry(reg)).Given(withMeta{Meta: map[string]any{"n": 1}}).
		When(func(*Account) error { return nil }).ThenNothing()
	if len(f.errors) != 1 || !strings.Contains(f.errors[0], ".Meta[n]: 1 (int) != 1 (float64)") {
		t.Fatalf("failures:\n%s", f.failed())
	}
}
