package bank

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/chronicle-go/chronicle/projection"
)

// MemoryReadModel keeps the bank's read models in memory, for a service
// running on the in-memory event store and for unit tests. Run its
// projections with the projection.MemoryStore given to NewMemoryReadModel:
// each build writes its own tables (tx.Table), and the queries read the
// tables the store says are current, so rebuilds switch atomically here too.
type MemoryReadModel struct {
	store *projection.MemoryStore

	mu         sync.Mutex
	balances   map[string]map[string]*Balance        // table -> account -> row
	statements map[string]map[string][]StatementLine // table -> account -> lines
	totals     map[string]map[string]*DailyTotal     // table -> day/currency -> row
}

// NewMemoryReadModel returns an empty read model whose projections run
// with store.
func NewMemoryReadModel(store *projection.MemoryStore) (*MemoryReadModel, error) {
	if store == nil {
		return nil, errors.New("bank: nil projection store")
	}
	return &MemoryReadModel{
		store:      store,
		balances:   map[string]map[string]*Balance{},
		statements: map[string]map[string][]StatementLine{},
		totals:     map[string]map[string]*DailyTotal{},
	}, nil
}

// Projections implements ReadModel.
func (m *MemoryReadModel) Projections() []projection.Projection {
	return []projection.Projection{
		{
			Name: BalancesProjection, Categories: []string{AccountCategory}, Types: accountEvents(), Tables: []string{"balances"},
			Handler: projection.HandlerFunc(m.handleBalance),
		},
		{
			Name: StatementsProjection, Categories: []string{AccountCategory}, Types: accountEvents(), Tables: []string{"statements"},
			Handler: projection.HandlerFunc(m.handleStatement),
		},
		{
			Name: DailyTotalsProjection, Categories: []string{AccountCategory}, Types: moneyEvents(), Tables: []string{"daily_totals"},
			Handler: projection.HandlerFunc(m.handleTotal),
		},
	}
}

func (m *MemoryReadModel) handleBalance(_ context.Context, tx projection.Tx, ev projection.Event) error {
	rec := ev.Record
	mv, ok := movementOf(ev.Data)
	if !ok {
		return fmt.Errorf("bank: balances: unexpected %s at %s@%d", rec.Type, rec.StreamID, rec.StreamVersion)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.balances[tx.Table("balances")]
	if t == nil {
		t = map[string]*Balance{}
		m.balances[tx.Table("balances")] = t
	}
	id := accountID(rec.StreamID)
	if e, ok := ev.Data.(AccountOpened); ok {
		if t[id] == nil {
			t[id] = &Balance{AccountID: id, Owner: e.Owner, Currency: e.Currency, Status: "open", Version: rec.StreamVersion}
		}
		return nil
	}
	b := t[id]
	if b == nil {
		return fmt.Errorf("bank: balances: %s at %s@%d for an account never opened", rec.Type, rec.StreamID, rec.StreamVersion)
	}
	b.Cents += mv.cents
	b.Version = rec.StreamVersion
	if mv.kind == KindClosed {
		b.Status = "closed"
	}
	return nil
}

func (m *MemoryReadModel) handleStatement(_ context.Context, tx projection.Tx, ev projection.Event) error {
	rec := ev.Record
	mv, ok := movementOf(ev.Data)
	if !ok {
		return fmt.Errorf("bank: statements: unexpected %s at %s@%d", rec.Type, rec.StreamID, rec.StreamVersion)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.statements[tx.Table("statements")]
	if t == nil {
		t = map[string][]StatementLine{}
		m.statements[tx.Table("statements")] = t
	}
	id := accountID(rec.StreamID)
	lines := t[id]
	var balance int64
	if n := len(lines); n > 0 {
		if lines[n-1].Version >= rec.StreamVersion {
			return nil // already applied
		}
		balance = lines[n-1].BalanceCents
	}
	t[id] = append(lines, StatementLine{
		AccountID: id, Version: rec.StreamVersion, At: rec.RecordedAt, Kind: mv.kind, Cents: mv.cents,
		BalanceCents: balance + mv.cents, TransferID: mv.transferID,
		CorrelationID: rec.Metadata.CorrelationID(), CausationID: rec.Metadata.CausationID(),
	})
	return nil
}

func (m *MemoryReadModel) handleTotal(_ context.Context, tx projection.Tx, ev projection.Event) error {
	rec := ev.Record
	mv, ok := movementOf(ev.Data)
	if !ok {
		return fmt.Errorf("bank: daily_totals: unexpected %s at %s@%d", rec.Type, rec.StreamID, rec.StreamVersion)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.totals[tx.Table("daily_totals")]
	if t == nil {
		t = map[string]*DailyTotal{}
		m.totals[tx.Table("daily_totals")] = t
	}
	day, cur := Day(rec.RecordedAt), currencyOf(ev.Data)
	key := day.Format("2006-01-02") + "/" + cur
	d := t[key]
	if d == nil {
		d = &DailyTotal{Day: day, Currency: cur}
		t[key] = d
	}
	d.add(mv)
	return nil
}

// Balances implements ReadModel.
func (m *MemoryReadModel) Balances(context.Context) ([]Balance, error) {
	table := m.store.CurrentTable("balances")
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Balance
	for _, b := range m.balances[table] {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b Balance) int { return strings.Compare(a.AccountID, b.AccountID) })
	return out, nil
}

// Statement implements ReadModel.
func (m *MemoryReadModel) Statement(_ context.Context, accountID string, limit int) ([]StatementLine, error) {
	table := m.store.CurrentTable("statements")
	m.mu.Lock()
	defer m.mu.Unlock()
	lines := m.statements[table][accountID]
	if limit > 0 && len(lines) > limit {
		lines = lines[len(lines)-limit:]
	}
	return slices.Clone(lines), nil
}

// DailyTotals implements ReadModel.
func (m *MemoryReadModel) DailyTotals(context.Context) ([]DailyTotal, error) {
	table := m.store.CurrentTable("daily_totals")
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []DailyTotal
	for _, d := range m.totals[table] {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b DailyTotal) int {
		if c := a.Day.Compare(b.Day); c != 0 {
			return c
		}
		return strings.Compare(a.Currency, b.Currency)
	})
	return out, nil
}

var _ ReadModel = (*MemoryReadModel)(nil)
