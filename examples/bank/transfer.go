package bank

import (
	"errors"
	"fmt"

	"github.com/chronicle-go/chronicle/aggregate"
)

// Errors of the transfer rules, matched with errors.Is.
var (
	// ErrSameAccount means a transfer's source and destination are the
	// same account.
	ErrSameAccount = errors.New("bank: cannot transfer to the same account")
	// ErrTransferExists means a transfer with this ID was already
	// requested.
	ErrTransferExists = errors.New("bank: transfer already requested")
	// ErrTransferSettled means a transfer already completed or failed.
	ErrTransferSettled = errors.New("bank: transfer already settled")
)

// Transfer statuses.
const (
	TransferPending   = "pending"
	TransferDone      = "completed"
	TransferCancelled = "failed"
)

// Transfer is a transfer of money between two accounts, the aggregate of
// the "transfer" streams. It records the request and its outcome; the
// money moves on the accounts (see [Bank.Transfer]).
type Transfer struct {
	aggregate.Root
	// From and To are the debited and credited accounts.
	From string `json:"from"`
	To   string `json:"to"`
	// Cents and Currency are the amount moved.
	Cents    int64  `json:"cents"`
	Currency string `json:"currency"`
	// Status is "" before the request, then TransferPending, then
	// TransferDone or TransferCancelled.
	Status string `json:"status"`
	// Reason is why a failed transfer failed.
	Reason string `json:"reason,omitempty"`
}

// NewTransfer returns an empty transfer.
func NewTransfer(id string) *Transfer { return &Transfer{} }

// Apply moves the transfer's state by one event.
func (t *Transfer) Apply(event any) {
	switch e := event.(type) {
	case TransferRequested:
		t.From, t.To, t.Cents, t.Currency, t.Status = e.From, e.To, e.Cents, e.Currency, TransferPending
	case TransferCompleted:
		t.Status = TransferDone
	case TransferFailed:
		t.Status, t.Reason = TransferCancelled, e.Reason
	}
}

// Request starts the transfer of cents from one account to another.
func (t *Transfer) Request(from, to string, cents int64, currency string) error {
	return t.request(from, to, cents, currency, false)
}

// RequestProcess starts the transfer of cents from one account to another,
// to be run by the transfer process ([TransferProcess]).
func (t *Transfer) RequestProcess(from, to string, cents int64, currency string) error {
	return t.request(from, to, cents, currency, true)
}

func (t *Transfer) request(from, to string, cents int64, currency string, byProcess bool) error {
	switch {
	case t.Status != "":
		return fmt.Errorf("%w: transfer %s", ErrTransferExists, t.ID())
	case from == to:
		return fmt.Errorf("%w: transfer %s: account %s", ErrSameAccount, t.ID(), from)
	case cents <= 0:
		return fmt.Errorf("%w: transfer %s: got %d cents", ErrInvalidAmount, t.ID(), cents)
	}
	if currency == "" {
		currency = DefaultCurrency
	}
	aggregate.Raise(t, TransferRequested{From: from, To: to, Cents: cents, Currency: currency, Process: byProcess})
	return nil
}

// Complete marks a pending transfer as done.
func (t *Transfer) Complete() error {
	if t.Status != TransferPending {
		return fmt.Errorf("%w: transfer %s is %s", ErrTransferSettled, t.ID(), t.Status)
	}
	aggregate.Raise(t, TransferCompleted{})
	return nil
}

// Fail marks a pending transfer as failed for reason; refunded says whether
// the source account was credited back.
func (t *Transfer) Fail(reason string, refunded bool) error {
	if t.Status != TransferPending {
		return fmt.Errorf("%w: transfer %s is %s", ErrTransferSettled, t.ID(), t.Status)
	}
	aggregate.Raise(t, TransferFailed{Reason: reason, Refunded: refunded})
	return nil
}
