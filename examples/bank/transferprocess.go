package bank

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/process"
	"github.com/chronicle-go/chronicle/projection"
)

// TransferProcessName is the name of the transfer process type: its
// processes live in the streams "process_transfer-<transfer id>".
const TransferProcessName = "transfer"

// TransferTracked is the transfer process's own event: the request it
// runs, recorded when it starts.
type TransferTracked struct {
	Transfer TransferRequested `json:"transfer"`
}

// TransferState is the state of a transfer process.
type TransferState struct {
	// Req is the transfer being run.
	Req TransferRequested
}

// Apply moves the state by one of the process's events.
func (s *TransferState) Apply(ev any) {
	if e, ok := ev.(TransferTracked); ok {
		s.Req = e.Transfer
	}
}

// MoveCommand is the payload of the transfer process's commands.
type MoveCommand struct {
	Transfer string `json:"transfer"`
	Account  string `json:"account,omitempty"`
	Cents    int64  `json:"cents,omitempty"`
	Currency string `json:"currency,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Commands of the transfer process.
const (
	CmdDebit            = "debit"
	CmdCredit           = "credit"
	CmdRefund           = "refund"
	CmdUncredit         = "uncredit"
	CmdCompleteTransfer = "complete_transfer"
	CmdFailTransfer     = "fail_transfer"
)

// TransferProcess returns the transfer process type. It starts on a
// TransferRequested recorded by [Bank.RequestTransfer] and:
//
//  1. debits the source (undone by a refund);
//  2. once debited, credits the target (undone by taking the credit back);
//  3. once credited, marks the transfer completed and completes.
//
// A refused debit fails the transfer. A refused credit (a closed account),
// or a credit not done within timeout, compensates: the steps done are
// undone in reverse order, and the transfer is marked failed (refunded).
func TransferProcess(timeout time.Duration) *process.Type[*TransferState] {
	reg := codec.NewRegistry()
	codec.MustRegister[TransferTracked](reg, "TransferTracked", 1)
	return &process.Type[*TransferState]{
		Name:       TransferProcessName,
		Starts:     []string{TypeTransferRequested},
		Types:      []string{TypeTransferRequested},
		Categories: []string{TransferCategory},
		Correlate: func(ev projection.Event) string {
			var req TransferRequested
			if json.Unmarshal(ev.Record.Data, &req) != nil || !req.Process {
				return "" // a transfer run by Bank.Transfer, not by the process
			}
			return process.ByStream(ev)
		},
		New:   func(string) *TransferState { return &TransferState{} },
		Codec: reg,
		Handle: func(ctx context.Context, p *process.Process[*TransferState], t process.Trigger) error {
			r := p.State().Req
			move := func(account string) MoveCommand {
				return MoveCommand{Transfer: p.ID(), Account: account, Cents: r.Cents, Currency: r.Currency}
			}
			switch {
			case t.Is(TypeTransferRequested):
				var req TransferRequested
				if err := json.Unmarshal(t.Event.Record.Data, &req); err != nil {
					return err
				}
				p.Record(TransferTracked{Transfer: req})
				r = req
				// Recorded first, so it runs last when compensating.
				p.AddCompensation(CmdFailTransfer, MoveCommand{Transfer: p.ID(), Reason: "compensated: refunded"})
				p.SendCompensable(CmdDebit, move(r.From), process.Command{Name: CmdRefund, Data: move(r.From)})
				p.Schedule("credit", timeout)
			case t.Kind == process.CommandSucceeded && t.Command.Name == CmdDebit:
				p.SendCompensable(CmdCredit, move(r.To), process.Command{Name: CmdUncredit, Data: move(r.To)})
			case t.Kind == process.CommandFailed && t.Command.Name == CmdDebit:
				p.Send(CmdFailTransfer, MoveCommand{Transfer: p.ID(), Reason: t.Command.Error})
				p.Fail(t.Command.Error)
			case t.Kind == process.CommandSucceeded && t.Command.Name == CmdCredit:
				p.Cancel("credit")
				p.Send(CmdCompleteTransfer, MoveCommand{Transfer: p.ID()})
			case t.Kind == process.CommandFailed && t.Command.Name == CmdCredit:
				p.Compensate(t.Command.Error)
			case t.Kind == process.TimerTrigger && t.Timer == "credit":
				p.Compensate(fmt.Sprintf("credit of %s not done within %s", r.To, timeout))
			case t.Kind == process.CommandSucceeded && t.Command.Name == CmdCompleteTransfer:
				p.Complete()
			case t.Kind == process.CommandFailed:
				p.Fail(t.Command.Error)
			}
			return nil
		},
	}
}

// TransferCommandsOption tunes [TransferCommands].
type TransferCommandsOption func(*transferCommands)

type transferCommands struct {
	creditDelay func(account string) time.Duration
}

// WithCreditDelay delays the credits of some accounts (a slow bank, in the
// demo): f returns how long to wait before crediting account.
func WithCreditDelay(f func(account string) time.Duration) TransferCommandsOption {
	return func(c *transferCommands) { c.creditDelay = f }
}

// TransferCommands returns the runner options that deliver the transfer
// process's commands to the accounts and transfers of es, as local
// commands (process.WithLocalCommand) that append through a
// [process.TxStore] inside the transaction of the trigger that decided
// them, so each command is applied once.
func TransferCommands(es *espg.Store, opts ...TransferCommandsOption) ([]process.Option, error) {
	var c transferCommands
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	b, err := New(process.TxStore{Store: es})
	if err != nil {
		return nil, err
	}
	refuse := func(err error) error {
		for _, rule := range []error{ErrAccountClosed, ErrOverdraftExceeded, ErrCurrencyMismatch, ErrInvalidAmount, ErrTransferSettled, aggregate.ErrNotFound} {
			if errors.Is(err, rule) {
				return process.Reject(err)
			}
		}
		return err
	}
	accountCmd := func(do func(ctx context.Context, m MoveCommand) (eventstore.AppendResult, error)) process.CommandHandler {
		return func(ctx context.Context, cmd process.Envelope) error {
			var m MoveCommand
			if err := cmd.Decode(&m); err != nil {
				return process.Reject(err)
			}
			_, err := do(ctx, m)
			return refuse(err)
		}
	}
	deposit := func(ctx context.Context, m MoveCommand) (eventstore.AppendResult, error) {
		return b.accounts.Update(ctx, m.Account, func(a *Account) error { return a.Deposit(m.Cents, m.Currency, m.Transfer) })
	}
	withdraw := func(ctx context.Context, m MoveCommand) (eventstore.AppendResult, error) {
		return b.accounts.Update(ctx, m.Account, func(a *Account) error { return a.Withdraw(m.Cents, m.Currency, m.Transfer) })
	}
	complete := func(ctx context.Context, m MoveCommand) (eventstore.AppendResult, error) {
		return b.transfers.Update(ctx, m.Transfer, func(t *Transfer) error { return t.Complete() })
	}
	fail := func(ctx context.Context, m MoveCommand) (eventstore.AppendResult, error) {
		return b.transfers.Update(ctx, m.Transfer, func(t *Transfer) error {
			if t.Status == TransferCancelled {
				return nil // failed already
			}
			return t.Fail(m.Reason, m.Reason == "compensated: refunded")
		})
	}
	// Every command only updates aggregates of es: each is a local
	// command, run in the transaction of the trigger that decided it
	// (ADR 0016).
	return []process.Option{
		process.WithLocalCommand(CmdDebit, accountCmd(withdraw)),
		process.WithLocalCommand(CmdCredit, func(ctx context.Context, cmd process.Envelope) error {
			var m MoveCommand
			if err := cmd.Decode(&m); err != nil {
				return process.Reject(err)
			}
			if c.creditDelay != nil {
				if d := c.creditDelay(m.Account); d > 0 {
					if cmd.Local {
						// Not in the trigger's transaction: the
						// dispatcher delivers it, in its own.
						return fmt.Errorf("bank: credit of %s: slow bank, delivered later", m.Account)
					}
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			_, err := deposit(ctx, m)
			return refuse(err)
		}),
		process.WithLocalCommand(CmdRefund, accountCmd(deposit)),
		process.WithLocalCommand(CmdUncredit, accountCmd(withdraw)),
		process.WithLocalCommand(CmdCompleteTransfer, accountCmd(complete)),
		process.WithLocalCommand(CmdFailTransfer, accountCmd(fail)),
	}, nil
}

// RequestTransfer requests a transfer run by the transfer process
// ([TransferProcess]): it records TransferRequested and returns; the
// process debits, credits and completes, or compensates. The transfer's
// status tells how it ended.
func (b *Bank) RequestTransfer(ctx context.Context, id, from, to string, cents int64) (eventstore.AppendResult, error) {
	if eventstore.MetadataFrom(ctx).CorrelationID() == "" {
		ctx = eventstore.WithCorrelationID(ctx, b.TransferStream(id))
	}
	src, err := b.accounts.Load(ctx, from)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("bank: transfer %s: source: %w", id, err)
	}
	res, err := b.transfers.Create(ctx, id, func(t *Transfer) error { return t.RequestProcess(from, to, cents, src.Currency) })
	if err != nil {
		if errors.Is(err, aggregate.ErrAlreadyExists) {
			err = fmt.Errorf("%w: %w", ErrTransferExists, err)
		}
		return res, fmt.Errorf("bank: transfer %s: %w", id, err)
	}
	return res, nil
}
