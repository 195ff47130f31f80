package bank

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/upcast"
)

// Event type names, as stored in the event store.
const (
	TypeAccountOpened     = "AccountOpened"
	TypeMoneyDeposited    = "MoneyDeposited"
	TypeMoneyWithdrawn    = "MoneyWithdrawn"
	TypeAccountClosed     = "AccountClosed"
	TypeTransferRequested = "TransferRequested"
	TypeTransferCompleted = "TransferCompleted"
	TypeTransferFailed    = "TransferFailed"
)

// Stream categories of the bank's aggregates: account "42" is stored in the
// stream "account-42", transfer "t1" in "transfer-t1".
const (
	AccountCategory  = "account"
	TransferCategory = "transfer"
)

// DefaultCurrency is the currency of accounts opened without one, and of
// deposits stored at schema version 1, which had no currency.
const DefaultCurrency = "EUR"

// AccountOpened starts an account's stream.
type AccountOpened struct {
	// Owner is the account holder's name.
	Owner string `json:"owner"`
	// Currency is the ISO 4217 code every amount of the account is in.
	Currency string `json:"currency"`
	// OverdraftLimit is how far below zero the balance may go, in cents.
	OverdraftLimit int64 `json:"overdraft_limit_cents"`
}

// MoneyDeposited credits an account. It is at schema version 2: version 1
// carried the amount as a decimal string ({"amount":"12.34"}) and no
// currency; [Upcasters] migrates those records when they are read.
type MoneyDeposited struct {
	// Cents is the amount credited, in cents (more than zero).
	Cents int64 `json:"cents"`
	// Currency is the amount's currency.
	Currency string `json:"currency"`
	// TransferID is set when the credit is a leg of a transfer (or the
	// refund of a failed one).
	TransferID string `json:"transfer_id,omitempty"`
}

// MoneyWithdrawn debits an account.
type MoneyWithdrawn struct {
	// Cents is the amount debited, in cents (more than zero).
	Cents int64 `json:"cents"`
	// Currency is the amount's currency.
	Currency string `json:"currency"`
	// TransferID is set when the debit is a leg of a transfer.
	TransferID string `json:"transfer_id,omitempty"`
}

// AccountClosed ends an account: no money moves in or out afterwards.
type AccountClosed struct {
	// Reason says why the account was closed.
	Reason string `json:"reason,omitempty"`
}

// TransferRequested starts a transfer's stream.
type TransferRequested struct {
	// From and To are the IDs of the debited and credited accounts.
	From string `json:"from"`
	To   string `json:"to"`
	// Cents is the amount moved, in cents.
	Cents int64 `json:"cents"`
	// Currency is the amount's currency.
	Currency string `json:"currency"`
	// Process is true when the transfer process runs the transfer
	// ([Bank.RequestTransfer], [TransferProcess]).
	Process bool `json:"process,omitempty"`
}

// TransferCompleted says both legs of a transfer are done.
type TransferCompleted struct{}

// TransferFailed says a transfer did not happen; when its debit had already
// been made, the money went back to the source account (Refunded).
type TransferFailed struct {
	// Reason is the error that stopped the transfer.
	Reason string `json:"reason"`
	// Refunded is true when the source account was debited and then
	// credited back.
	Refunded bool `json:"refunded,omitempty"`
}

// NewRegistry returns a codec registry holding every bank event at its
// current schema version.
func NewRegistry() (*codec.Registry, error) {
	reg := codec.NewRegistry()
	for _, err := range []error{
		codec.Register[AccountOpened](reg, TypeAccountOpened, 1),
		codec.Register[MoneyDeposited](reg, TypeMoneyDeposited, 2),
		codec.Register[MoneyWithdrawn](reg, TypeMoneyWithdrawn, 1),
		codec.Register[AccountClosed](reg, TypeAccountClosed, 1),
		codec.Register[TransferRequested](reg, TypeTransferRequested, 1),
		codec.Register[TransferCompleted](reg, TypeTransferCompleted, 1),
		codec.Register[TransferFailed](reg, TypeTransferFailed, 1),
	} {
		if err != nil {
			return nil, fmt.Errorf("bank: registry: %w", err)
		}
	}
	return reg, nil
}

// Upcasters returns the bank's upcasters: MoneyDeposited version 1
// ({"amount":"12.34"}, always in [DefaultCurrency]) to version 2
// ({"cents":1234,"currency":"EUR"}).
func Upcasters() []upcast.Upcaster {
	return []upcast.Upcaster{
		upcast.Fields(TypeMoneyDeposited, 1, func(m map[string]any) error {
			amount, ok := m["amount"].(string)
			if !ok {
				return fmt.Errorf("bank: MoneyDeposited v1: amount is %T, want a decimal string", m["amount"])
			}
			cents, err := ParseAmount(amount)
			if err != nil {
				return fmt.Errorf("bank: MoneyDeposited v1: %w", err)
			}
			delete(m, "amount")
			m["cents"] = cents
			m["currency"] = DefaultCurrency
			return nil
		}),
	}
}

// NewChain returns the bank's registry and upcaster chain, ready for
// repositories (their codec in aggregate.NewRepository), projection runners
// (projection.WithDecoder) and the CLI.
func NewChain() (*upcast.Chain, error) {
	reg, err := NewRegistry()
	if err != nil {
		return nil, err
	}
	chain, err := upcast.New(reg, Upcasters()...)
	if err != nil {
		return nil, fmt.Errorf("bank: upcasters: %w", err)
	}
	return chain, nil
}

// LegacyDeposit returns the payload of a MoneyDeposited event at schema
// version 1, as the first version of the bank stored it. Only the demo and
// tests write such events, to show the upcaster at work.
func LegacyDeposit(amount string) []byte {
	b, _ := json.Marshal(map[string]string{"amount": amount})
	return b
}

// ParseAmount parses a decimal amount such as "12.34", "12.3" or "12" into
// cents, without going through floating point.
func ParseAmount(s string) (int64, error) {
	whole, frac, hasFrac := strings.Cut(strings.TrimSpace(s), ".")
	if whole == "" || len(frac) > 2 || (hasFrac && frac == "") || strings.HasPrefix(whole, "-") || strings.HasPrefix(whole, "+") {
		return 0, fmt.Errorf("bank: bad amount %q: want a positive decimal with at most two decimals", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bank: bad amount %q: %w", s, err)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bank: bad amount %q: bad decimals", s)
	}
	return w*100 + f, nil
}

// FormatCents formats an amount in cents as a decimal with two decimals and
// thousands separators: 123456 is "1,234.56", -5 is "-0.05".
func FormatCents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	whole := strconv.FormatInt(c/100, 10)
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return fmt.Sprintf("%s%s.%02d", sign, b.String(), c%100)
}
