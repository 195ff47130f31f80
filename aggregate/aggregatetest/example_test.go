package aggregatetest_test

import (
	"fmt"
	"testing"

	"github.com/chronicle-go/chronicle/aggregate/aggregatetest"
)

// printTB prints failures; in a real test, pass the test's *testing.T.
type printTB struct{ testing.TB }

func (printTB) Helper() {}
func (printTB) Errorf(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}

// A given-when-then test of a command, then one that fails and shows its
// diff.
func Example() {
	var t testing.TB = printTB{} // func TestWithdraw(t *testing.T) { ... }

	aggregatetest.For(t, newAccount).
		Given(Opened{"ada"}, Deposited{10}).
		When(func(a *Account) error { return a.Withdraw(4) }).
		Then(Withdrawn{4})

	aggregatetest.For(t, newAccount).
		Given(Opened{"ada"}).
		When(func(a *Account) error { return a.Withdraw(4) }).
		ThenError(errInsufficient)

	aggregatetest.For(t, newAccount).
		Given(Opened{"ada"}, Deposited{10}).
		When(func(a *Account) error { return a.Withdraw(3) }).
		Then(Withdrawn{4})
	// Output:
	// aggregatetest: raised events differ (- expected, + raised):
	// - 1: aggregatetest_test.Withdrawn{Amount:4}
	// + 1: aggregatetest_test.Withdrawn{Amount:3}
	//     .Amount: 4 != 3
}
