package bank

import (
	"context"
	"time"

	"github.com/chronicle-go/chronicle/projection"
)

// Projection names and the read-model tables they keep.
const (
	// BalancesProjection keeps one row per account: owner, currency,
	// balance, status (table "balances").
	BalancesProjection = "balances"
	// StatementsProjection keeps one line per money movement of each
	// account, with the balance after it (table "statements").
	StatementsProjection = "statements"
	// DailyTotalsProjection keeps, per day and currency, the money
	// deposited, withdrawn and transferred (table "daily_totals").
	DailyTotalsProjection = "daily_totals"
)

// Kinds of statement lines.
const (
	KindOpened      = "opened"
	KindDeposit     = "deposit"
	KindWithdrawal  = "withdrawal"
	KindTransferIn  = "transfer in"
	KindTransferOut = "transfer out"
	KindClosed      = "closed"
)

// Balance is a row of the balances read model.
type Balance struct {
	AccountID string
	Owner     string
	Currency  string
	// Cents is the balance in cents.
	Cents int64
	// Status is "open" or "closed".
	Status string
	// Version is the account stream's version the row reflects.
	Version int64
}

// StatementLine is a line of an account's statement.
type StatementLine struct {
	AccountID string
	// Version is the account stream's version of the event.
	Version int64
	// At is when the event was recorded.
	At time.Time
	// Kind is one of KindOpened, KindDeposit, ...
	Kind string
	// Cents is the movement, signed: negative for money going out.
	Cents int64
	// BalanceCents is the balance after the movement.
	BalanceCents int64
	// TransferID, CorrelationID and CausationID tie the line to the
	// transfer and the request that caused it.
	TransferID, CorrelationID, CausationID string
}

// DailyTotal is a row of the daily totals read model: what moved on one
// day (UTC) in one currency. Deposits and Withdrawals are money coming in
// from and going out to the outside world; TransfersIn and TransfersOut are
// transfer legs (refunds of failed transfers count as transfers in), which
// balance out once no transfer is under way.
type DailyTotal struct {
	Day                                              time.Time
	Currency                                         string
	Deposits, Withdrawals, TransfersIn, TransfersOut int64
	// Events counts the money movements of the day.
	Events int64
}

// ReadModel is the bank's read side: the projections that feed it and the
// queries on it. PostgresReadModel and MemoryReadModel implement it.
type ReadModel interface {
	// Projections returns the balances, statements and daily totals
	// projections that keep this read model.
	Projections() []projection.Projection
	// Balances returns every account's balance, by account ID.
	Balances(ctx context.Context) ([]Balance, error)
	// Statement returns the last limit lines (all with limit 0) of an
	// account's statement, oldest first.
	Statement(ctx context.Context, accountID string, limit int) ([]StatementLine, error)
	// DailyTotals returns the totals of every day and currency, oldest
	// first.
	DailyTotals(ctx context.Context) ([]DailyTotal, error)
}

// movement is what an account event does to a statement.
type movement struct {
	kind       string
	cents      int64 // signed
	transferID string
}

// movementOf classifies a decoded account event.
func movementOf(data any) (movement, bool) {
	switch e := data.(type) {
	case AccountOpened:
		return movement{kind: KindOpened}, true
	case MoneyDeposited:
		if e.TransferID != "" {
			return movement{KindTransferIn, e.Cents, e.TransferID}, true
		}
		return movement{KindDeposit, e.Cents, ""}, true
	case MoneyWithdrawn:
		if e.TransferID != "" {
			return movement{KindTransferOut, -e.Cents, e.TransferID}, true
		}
		return movement{KindWithdrawal, -e.Cents, ""}, true
	case AccountClosed:
		return movement{kind: KindClosed}, true
	}
	return movement{}, false
}

// currencyOf returns the currency of a money event.
func currencyOf(data any) string {
	switch e := data.(type) {
	case MoneyDeposited:
		return e.Currency
	case MoneyWithdrawn:
		return e.Currency
	}
	return ""
}

// accountEvents returns the event types the account read models want.
func accountEvents() []string {
	return []string{TypeAccountOpened, TypeMoneyDeposited, TypeMoneyWithdrawn, TypeAccountClosed}
}

// moneyEvents returns the event types the daily totals want.
func moneyEvents() []string { return []string{TypeMoneyDeposited, TypeMoneyWithdrawn} }

// Day returns the UTC day of t.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func accountID(streamID string) string {
	if len(streamID) > len(AccountCategory)+1 && streamID[:len(AccountCategory)+1] == AccountCategory+"-" {
		return streamID[len(AccountCategory)+1:]
	}
	return streamID
}

func (t *DailyTotal) add(m movement) {
	switch m.kind {
	case KindDeposit:
		t.Deposits += m.cents
	case KindWithdrawal:
		t.Withdrawals -= m.cents
	case KindTransferIn:
		t.TransfersIn += m.cents
	case KindTransferOut:
		t.TransfersOut -= m.cents
	}
	t.Events++
}
