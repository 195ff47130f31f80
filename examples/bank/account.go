package bank

import (
	"errors"
	"fmt"

	"github.com/chronicle-go/chronicle/aggregate"
)

// Errors of the bank's rules. Commands wrap them with the details (account,
// amounts), so match them with errors.Is.
var (
	// ErrInvalidAmount means an amount was zero or negative.
	ErrInvalidAmount = errors.New("bank: amount must be more than zero")
	// ErrOverdraftExceeded means a withdrawal would take the balance below
	// the account's overdraft limit.
	ErrOverdraftExceeded = errors.New("bank: overdraft limit exceeded")
	// ErrAccountClosed means money cannot move in or out of a closed
	// account.
	ErrAccountClosed = errors.New("bank: account is closed")
	// ErrAccountExists means an account with this ID was already opened.
	ErrAccountExists = errors.New("bank: account already opened")
	// ErrNonZeroBalance means an account with money on it (or owing
	// money) cannot be closed.
	ErrNonZeroBalance = errors.New("bank: balance is not zero")
	// ErrCurrencyMismatch means an amount is not in the account's
	// currency.
	ErrCurrencyMismatch = errors.New("bank: currency does not match the account's")
	// ErrInvalidAccount means an account's opening details were rejected.
	ErrInvalidAccount = errors.New("bank: invalid account")
)

// Account is a bank account, the aggregate of the "account" streams.
// Its exported fields are its state, which snapshots store as JSON.
type Account struct {
	aggregate.Root
	// Owner is the account holder's name.
	Owner string `json:"owner"`
	// Currency is the currency of every amount.
	Currency string `json:"currency"`
	// Balance is the balance in cents; it may be negative down to
	// -OverdraftLimit.
	Balance int64 `json:"balance"`
	// OverdraftLimit is how far below zero Balance may go, in cents.
	OverdraftLimit int64 `json:"overdraft_limit"`
	// Opened and Closed say where the account is in its life.
	Opened bool `json:"opened"`
	Closed bool `json:"closed"`
}

// NewAccount returns an empty account; repositories and aggregatetest
// scenarios call it.
func NewAccount(id string) *Account { return &Account{} }

// SnapshotRevision is the revision of Account's state shape for snapshots.
// Bump it when the fields change meaning, so older snapshots are ignored.
func (a *Account) SnapshotRevision() int { return 1 }

// Apply moves the account's state by one event. It never fails.
func (a *Account) Apply(event any) {
	switch e := event.(type) {
	case AccountOpened:
		a.Opened, a.Owner, a.Currency, a.OverdraftLimit = true, e.Owner, e.Currency, e.OverdraftLimit
	case MoneyDeposited:
		a.Balance += e.Cents
	case MoneyWithdrawn:
		a.Balance -= e.Cents
	case AccountClosed:
		a.Closed = true
	}
}

// Open opens the account for owner, in currency (DefaultCurrency when
// empty), allowing the balance to go down to -overdraftLimit cents.
func (a *Account) Open(owner, currency string, overdraftLimit int64) error {
	if a.Opened {
		return fmt.Errorf("%w: account %s", ErrAccountExists, a.ID())
	}
	if currency == "" {
		currency = DefaultCurrency
	}
	switch {
	case owner == "":
		return fmt.Errorf("%w: account %s: owner is empty", ErrInvalidAccount, a.ID())
	case len(currency) != 3:
		return fmt.Errorf("%w: account %s: currency %q is not a 3-letter code", ErrInvalidAccount, a.ID(), currency)
	case overdraftLimit < 0:
		return fmt.Errorf("%w: account %s: overdraft limit %d is negative", ErrInvalidAccount, a.ID(), overdraftLimit)
	}
	aggregate.Raise(a, AccountOpened{Owner: owner, Currency: currency, OverdraftLimit: overdraftLimit})
	return nil
}

// Deposit credits cents to the account; transferID is set when the credit
// is a leg of a transfer.
func (a *Account) Deposit(cents int64, currency, transferID string) error {
	if err := a.movable(cents, currency); err != nil {
		return err
	}
	aggregate.Raise(a, MoneyDeposited{Cents: cents, Currency: a.Currency, TransferID: transferID})
	return nil
}

// Withdraw debits cents from the account, provided the balance stays at or
// above -OverdraftLimit; transferID is set when the debit is a leg of a
// transfer.
func (a *Account) Withdraw(cents int64, currency, transferID string) error {
	if err := a.movable(cents, currency); err != nil {
		return err
	}
	if a.Balance-cents < -a.OverdraftLimit {
		return fmt.Errorf("%w: account %s: balance %s, overdraft limit %s, withdrawal %s %s",
			ErrOverdraftExceeded, a.ID(), FormatCents(a.Balance), FormatCents(a.OverdraftLimit), FormatCents(cents), a.Currency)
	}
	aggregate.Raise(a, MoneyWithdrawn{Cents: cents, Currency: a.Currency, TransferID: transferID})
	return nil
}

// Close closes the account; its balance must be zero.
func (a *Account) Close(reason string) error {
	if a.Closed {
		return fmt.Errorf("%w: account %s", ErrAccountClosed, a.ID())
	}
	if a.Balance != 0 {
		return fmt.Errorf("%w: account %s has %s %s", ErrNonZeroBalance, a.ID(), FormatCents(a.Balance), a.Currency)
	}
	aggregate.Raise(a, AccountClosed{Reason: reason})
	return nil
}

func (a *Account) movable(cents int64, currency string) error {
	if a.Closed {
		return fmt.Errorf("%w: account %s", ErrAccountClosed, a.ID())
	}
	if cents <= 0 {
		return fmt.Errorf("%w: account %s: got %d cents", ErrInvalidAmount, a.ID(), cents)
	}
	if currency != "" && currency != a.Currency {
		return fmt.Errorf("%w: account %s is in %s, amount in %s", ErrCurrencyMismatch, a.ID(), a.Currency, currency)
	}
	return nil
}
