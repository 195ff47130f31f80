package bank

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/snapshot"
	"github.com/chronicle-go/chronicle/upcast"
)

// Bank runs the bank's commands: each one loads an aggregate through a
// repository, runs a command method on it and saves the events it raised,
// retrying on a concurrency conflict. It is safe for concurrent use.
type Bank struct {
	store     eventstore.Store
	chain     *upcast.Chain
	accounts  *aggregate.Repository[*Account]
	transfers *aggregate.Repository[*Transfer]
}

// Option configures a Bank.
type Option func(*config)

type config struct {
	snapshots snapshot.Store
	policy    snapshot.Policy
	logger    *slog.Logger
	retries   int
	tracer    trace.TracerProvider
	meter     metric.MeterProvider
}

// WithSnapshots stores account and transfer snapshots in s when policy says
// so (snapshot.Every(20), say).
func WithSnapshots(s snapshot.Store, policy snapshot.Policy) Option {
	return func(c *config) { c.snapshots, c.policy = s, policy }
}

// WithLogger sets the logger of the repositories (default, and with nil:
// slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithRetries sets how many times a command runs again after a concurrency
// conflict (default 20: the demo's clients hit the same accounts hard).
func WithRetries(n int) Option { return func(c *config) { c.retries = n } }

// WithTracerProvider traces the repositories' loads with tp
// (aggregate.WithTracerProvider); nil keeps OpenTelemetry's global provider.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tracer = tp } }

// WithMeterProvider measures the repositories' loads and exports their
// Stats through mp (aggregate.WithMeterProvider); nil keeps
// OpenTelemetry's global provider.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.meter = mp } }

// New returns a bank keeping its aggregates in store. It has no side
// effects.
func New(store eventstore.Store, opts ...Option) (*Bank, error) {
	if store == nil {
		return nil, errors.New("bank: nil event store")
	}
	c := config{retries: 20}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	chain, err := NewChain()
	if err != nil {
		return nil, err
	}
	common := []aggregate.Option{
		aggregate.WithLogger(c.logger),
		aggregate.WithRetries(c.retries),
	}
	if c.tracer != nil {
		common = append(common, aggregate.WithTracerProvider(c.tracer))
	}
	if c.meter != nil {
		common = append(common, aggregate.WithMeterProvider(c.meter))
	}
	if c.snapshots != nil && c.policy != nil {
		common = append(common, aggregate.WithSnapshots(c.snapshots, c.policy))
	}
	accounts, err := aggregate.NewRepository(store, chain, NewAccount, append(common, aggregate.WithCategory(AccountCategory))...)
	if err != nil {
		return nil, fmt.Errorf("bank: %w", err)
	}
	transfers, err := aggregate.NewRepository(store, chain, NewTransfer, append(common, aggregate.WithCategory(TransferCategory))...)
	if err != nil {
		return nil, fmt.Errorf("bank: %w", err)
	}
	return &Bank{store: store, chain: chain, accounts: accounts, transfers: transfers}, nil
}

// Chain returns the bank's upcaster chain (and, through it, its registry).
func (b *Bank) Chain() *upcast.Chain { return b.chain }

// Stats returns the counters of the account and transfer repositories
// added together: conflicts met, commands retried, snapshots taken.
func (b *Bank) Stats() aggregate.Stats {
	a, t := b.accounts.Stats(), b.transfers.Stats()
	return aggregate.Stats{
		Retries:          a.Retries + t.Retries,
		Conflicts:        a.Conflicts + t.Conflicts,
		SnapshotsTaken:   a.SnapshotsTaken + t.SnapshotsTaken,
		SnapshotsFailed:  a.SnapshotsFailed + t.SnapshotsFailed,
		SnapshotsSkipped: a.SnapshotsSkipped + t.SnapshotsSkipped,
		SnapshotsIgnored: a.SnapshotsIgnored + t.SnapshotsIgnored,
		CacheHits:        a.CacheHits + t.CacheHits,
		CacheStale:       a.CacheStale + t.CacheStale,
	}
}

// AccountStream returns the stream ID of the account id ("account-" + id).
func (b *Bank) AccountStream(id string) string { return b.accounts.StreamID(id) }

// TransferStream returns the stream ID of the transfer id.
func (b *Bank) TransferStream(id string) string { return b.transfers.StreamID(id) }

// Account loads the account id.
func (b *Bank) Account(ctx context.Context, id string) (*Account, error) {
	return b.accounts.Load(ctx, id)
}

// LoadTransfer loads the transfer id.
func (b *Bank) LoadTransfer(ctx context.Context, id string) (*Transfer, error) {
	return b.transfers.Load(ctx, id)
}

// OpenAccount opens the account id for owner in currency (DefaultCurrency
// when empty) with an overdraft limit in cents. Opening an ID twice fails
// with ErrAccountExists.
func (b *Bank) OpenAccount(ctx context.Context, id, owner, currency string, overdraftLimit int64) (eventstore.AppendResult, error) {
	res, err := b.accounts.Create(ctx, id, func(a *Account) error { return a.Open(owner, currency, overdraftLimit) })
	if errors.Is(err, aggregate.ErrAlreadyExists) {
		return res, fmt.Errorf("%w: account %s: %w", ErrAccountExists, id, err)
	}
	return res, err
}

// Deposit credits cents to the account id.
func (b *Bank) Deposit(ctx context.Context, id string, cents int64) (eventstore.AppendResult, error) {
	return b.accounts.Update(ctx, id, func(a *Account) error { return a.Deposit(cents, "", "") })
}

// Withdraw debits cents from the account id, within its overdraft limit.
func (b *Bank) Withdraw(ctx context.Context, id string, cents int64) (eventstore.AppendResult, error) {
	return b.accounts.Update(ctx, id, func(a *Account) error { return a.Withdraw(cents, "", "") })
}

// CloseAccount closes the account id, whose balance must be zero.
func (b *Bank) CloseAccount(ctx context.Context, id, reason string) (eventstore.AppendResult, error) {
	return b.accounts.Update(ctx, id, func(a *Account) error { return a.Close(reason) })
}

// Transfer moves cents from the account from to the account to, as the
// transfer id. It runs as a small process, each step caused by the event of
// the step before:
//
//  1. TransferRequested on the transfer's stream;
//  2. MoneyWithdrawn on the source account (the overdraft rule applies);
//  3. MoneyDeposited on the destination account;
//  4. TransferCompleted on the transfer's stream.
//
// When step 2 is refused, the transfer fails (TransferFailed); when step 3
// is refused (a closed account), the source is credited back and the
// transfer fails with Refunded set. Every event carries the correlation ID
// of ctx (the transfer's stream ID when ctx has none) and, as causation ID,
// the ID of the event that led to it.
//
// The result is that of the last append, so its Position suits WaitFor
// even when the transfer was refused; the error then wraps the rule that
// refused it (ErrOverdraftExceeded, ErrAccountClosed, ...).
//
// The steps are separate transactions: a process that dies between them
// leaves the transfer pending (a real service would resume pending
// transfers from a projection of them).
func (b *Bank) Transfer(ctx context.Context, id, from, to string, cents int64) (eventstore.AppendResult, error) {
	if eventstore.MetadataFrom(ctx).CorrelationID() == "" {
		ctx = eventstore.WithCorrelationID(ctx, b.TransferStream(id))
	}
	src, err := b.accounts.Load(ctx, from)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("bank: transfer %s: source: %w", id, err)
	}
	res, err := b.transfers.Create(ctx, id, func(t *Transfer) error { return t.Request(from, to, cents, src.Currency) })
	if err != nil {
		if errors.Is(err, aggregate.ErrAlreadyExists) {
			err = fmt.Errorf("%w: %w", ErrTransferExists, err)
		}
		return res, fmt.Errorf("bank: transfer %s: %w", id, err)
	}
	requested, err := b.record(ctx, b.TransferStream(id), res.Version)
	if err != nil {
		return res, err
	}

	// Debit the source, caused by the request.
	debitCtx := eventstore.CausedBy(ctx, requested)
	debit, err := b.accounts.Update(debitCtx, from, func(a *Account) error { return a.Withdraw(cents, src.Currency, id) })
	if err != nil {
		return b.fail(debitCtx, id, err, false)
	}
	debited, err := b.record(ctx, b.AccountStream(from), debit.Version)
	if err != nil {
		return debit, err
	}

	// Credit the destination, caused by the debit.
	creditCtx := eventstore.CausedBy(ctx, debited)
	credit, err := b.accounts.Update(creditCtx, to, func(a *Account) error { return a.Deposit(cents, src.Currency, id) })
	if err != nil {
		// Give the money back, caused by the debit too.
		if _, rerr := b.accounts.Update(creditCtx, from, func(a *Account) error { return a.Deposit(cents, src.Currency, id) }); rerr != nil {
			return debit, fmt.Errorf("bank: transfer %s: credit %s failed (%w) and the refund of %s failed too; the transfer stays pending: %w", id, to, err, from, rerr)
		}
		return b.fail(creditCtx, id, err, true)
	}
	credited, err := b.record(ctx, b.AccountStream(to), credit.Version)
	if err != nil {
		return credit, err
	}
	done, err := b.transfers.Update(eventstore.CausedBy(ctx, credited), id, func(t *Transfer) error { return t.Complete() })
	if err != nil {
		return credit, fmt.Errorf("bank: transfer %s: complete: %w", id, err)
	}
	return done, nil
}

// fail records the transfer's failure and returns cause, wrapped.
func (b *Bank) fail(ctx context.Context, id string, cause error, refunded bool) (eventstore.AppendResult, error) {
	res, err := b.transfers.Update(ctx, id, func(t *Transfer) error { return t.Fail(cause.Error(), refunded) })
	if err != nil {
		return res, fmt.Errorf("bank: transfer %s failed (%w) and recording the failure failed too: %w", id, cause, err)
	}
	return res, fmt.Errorf("bank: transfer %s: %w", id, cause)
}

// record reads back the event a save appended at version, so the next step
// can name it as its cause. (Save does not return the IDs it appended.)
func (b *Bank) record(ctx context.Context, stream string, version int64) (eventstore.Record, error) {
	for rec, err := range b.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{From: version, Limit: 1}) {
		if err != nil {
			return eventstore.Record{}, fmt.Errorf("bank: read back %s@%d: %w", stream, version, err)
		}
		return rec, nil
	}
	return eventstore.Record{}, fmt.Errorf("bank: read back %s@%d: %w", stream, version, eventstore.ErrStreamNotFound)
}
