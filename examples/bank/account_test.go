package bank_test

import (
	"testing"

	"github.com/chronicle-go/chronicle/aggregate/aggregatetest"
	"github.com/chronicle-go/chronicle/examples/bank"
)

func registry(t *testing.T) aggregatetest.Option {
	t.Helper()
	reg, err := bank.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	return aggregatetest.WithRegistry(reg)
}

var opened = bank.AccountOpened{Owner: "ada", Currency: "EUR", OverdraftLimit: 50_00}

func TestAccountRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		given []any
		when  func(a *bank.Account) error
		then  []any
		err   error
	}{
		{name: "open", when: func(a *bank.Account) error { return a.Open("ada", "", 50_00) }, then: []any{opened}},
		{name: "open twice", given: []any{opened}, when: func(a *bank.Account) error { return a.Open("ada", "EUR", 0) }, err: bank.ErrAccountExists},
		{name: "open without owner", when: func(a *bank.Account) error { return a.Open("", "EUR", 0) }, err: bank.ErrInvalidAccount},
		{name: "open with negative overdraft", when: func(a *bank.Account) error { return a.Open("ada", "EUR", -1) }, err: bank.ErrInvalidAccount},
		{name: "deposit", given: []any{opened}, when: func(a *bank.Account) error { return a.Deposit(10_00, "", "") },
			then: []any{bank.MoneyDeposited{Cents: 10_00, Currency: "EUR"}}},
		{name: "deposit nothing", given: []any{opened}, when: func(a *bank.Account) error { return a.Deposit(0, "", "") }, err: bank.ErrInvalidAmount},
		{name: "deposit other currency", given: []any{opened}, when: func(a *bank.Account) error { return a.Deposit(1, "USD", "") }, err: bank.ErrCurrencyMismatch},
		{name: "withdraw into the overdraft", given: []any{opened, bank.MoneyDeposited{Cents: 20_00, Currency: "EUR"}},
			when: func(a *bank.Account) error { return a.Withdraw(70_00, "", "") },
			then: []any{bank.MoneyWithdrawn{Cents: 70_00, Currency: "EUR"}}},
		{name: "withdraw past the overdraft", given: []any{opened, bank.MoneyDeposited{Cents: 20_00, Currency: "EUR"}},
			when: func(a *bank.Account) error { return a.Withdraw(70_01, "", "") }, err: bank.ErrOverdraftExceeded},
		{name: "withdraw past the overdraft after earlier withdrawals",
			given: []any{opened, bank.MoneyDeposited{Cents: 10_00, Currency: "EUR"}, bank.MoneyWithdrawn{Cents: 55_00, Currency: "EUR"}},
			when:  func(a *bank.Account) error { return a.Withdraw(5_01, "", "") }, err: bank.ErrOverdraftExceeded},
		{name: "transfer leg", given: []any{opened, bank.MoneyDeposited{Cents: 10_00, Currency: "EUR"}},
			when: func(a *bank.Account) error { return a.Withdraw(10_00, "EUR", "t1") },
			then: []any{bank.MoneyWithdrawn{Cents: 10_00, Currency: "EUR", TransferID: "t1"}}},
		{name: "close", given: []any{opened}, when: func(a *bank.Account) error { return a.Close("moved away") },
			then: []any{bank.AccountClosed{Reason: "moved away"}}},
		{name: "close with money", given: []any{opened, bank.MoneyDeposited{Cents: 1, Currency: "EUR"}},
			when: func(a *bank.Account) error { return a.Close("") }, err: bank.ErrNonZeroBalance},
		{name: "close owing money", given: []any{opened, bank.MoneyWithdrawn{Cents: 1, Currency: "EUR"}},
			when: func(a *bank.Account) error { return a.Close("") }, err: bank.ErrNonZeroBalance},
		{name: "close twice", given: []any{opened, bank.AccountClosed{}}, when: func(a *bank.Account) error { return a.Close("") }, err: bank.ErrAccountClosed},
		{name: "deposit on a closed account", given: []any{opened, bank.AccountClosed{}},
			when: func(a *bank.Account) error { return a.Deposit(1, "", "") }, err: bank.ErrAccountClosed},
		{name: "withdraw from a closed account", given: []any{opened, bank.AccountClosed{}},
			when: func(a *bank.Account) error { return a.Withdraw(1, "", "") }, err: bank.ErrAccountClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := aggregatetest.For(t, bank.NewAccount, registry(t), aggregatetest.WithID("acc-1")).Given(tc.given...).When(tc.when)
			if tc.err != nil {
				s.ThenError(tc.err)
				return
			}
			s.Then(tc.then...)
		})
	}
}

func TestTransferRules(t *testing.T) {
	t.Parallel()
	requested := bank.TransferRequested{From: "a", To: "b", Cents: 5_00, Currency: "EUR"}
	for _, tc := range []struct {
		name  string
		given []any
		when  func(tr *bank.Transfer) error
		then  []any
		err   error
	}{
		{name: "request", when: func(tr *bank.Transfer) error { return tr.Request("a", "b", 5_00, "") }, then: []any{requested}},
		{name: "request to the same account", when: func(tr *bank.Transfer) error { return tr.Request("a", "a", 5_00, "") }, err: bank.ErrSameAccount},
		{name: "request nothing", when: func(tr *bank.Transfer) error { return tr.Request("a", "b", 0, "") }, err: bank.ErrInvalidAmount},
		{name: "request twice", given: []any{requested}, when: func(tr *bank.Transfer) error { return tr.Request("a", "b", 5_00, "") }, err: bank.ErrTransferExists},
		{name: "complete", given: []any{requested}, when: func(tr *bank.Transfer) error { return tr.Complete() }, then: []any{bank.TransferCompleted{}}},
		{name: "fail with refund", given: []any{requested}, when: func(tr *bank.Transfer) error { return tr.Fail("closed", true) },
			then: []any{bank.TransferFailed{Reason: "closed", Refunded: true}}},
		{name: "complete twice", given: []any{requested, bank.TransferCompleted{}}, when: func(tr *bank.Transfer) error { return tr.Complete() }, err: bank.ErrTransferSettled},
		{name: "fail after completion", given: []any{requested, bank.TransferCompleted{}}, when: func(tr *bank.Transfer) error { return tr.Fail("x", false) }, err: bank.ErrTransferSettled},
		{name: "complete before request", when: func(tr *bank.Transfer) error { return tr.Complete() }, err: bank.ErrTransferSettled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := aggregatetest.For(t, bank.NewTransfer, registry(t)).Given(tc.given...).When(tc.when)
			if tc.err != nil {
				s.ThenError(tc.err)
				return
			}
			s.Then(tc.then...)
		})
	}
}
