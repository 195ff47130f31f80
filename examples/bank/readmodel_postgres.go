package bank

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// PostgresReadModel keeps the bank's read models in PostgreSQL tables,
// written by projections run with a projection/postgres store in the same
// schema. Readers query the stable views (balances, statements,
// daily_totals), which a rebuild re-points at the new tables atomically.
type PostgresReadModel struct {
	pool   *pgxpool.Pool
	schema string
}

// NewPostgresReadModel returns the read model in schema (the schema given
// to the projection store with projpg.WithSchema). It has no side effects.
func NewPostgresReadModel(pool *pgxpool.Pool, schema string) (*PostgresReadModel, error) {
	if pool == nil {
		return nil, errors.New("bank: nil pool")
	}
	if schema == "" {
		return nil, errors.New("bank: empty schema")
	}
	return &PostgresReadModel{pool: pool, schema: schema}, nil
}

func (m *PostgresReadModel) table(name string) string {
	return pgx.Identifier{m.schema, name}.Sanitize()
}

// Projections returns the three projections; they require a
// projection/postgres store.
func (m *PostgresReadModel) Projections() []projection.Projection {
	return PostgresProjections()
}

// PostgresProjections returns the balances, statements and daily totals
// projections for a projection/postgres store. They need no connection of
// their own: they write through the runner's transaction, so a binary such
// as bankctl can register them without a read model.
func PostgresProjections() []projection.Projection {
	return []projection.Projection{
		{
			Name:       BalancesProjection,
			Categories: []string{AccountCategory},
			Types:      accountEvents(),
			Tables:     []string{"balances"},
			Setup: pgSetup(`CREATE TABLE IF NOT EXISTS %s (
				account_id text PRIMARY KEY,
				owner text NOT NULL,
				currency text NOT NULL,
				balance_cents bigint NOT NULL DEFAULT 0,
				status text NOT NULL DEFAULT 'open',
				version bigint NOT NULL,
				updated_at timestamptz NOT NULL)`, "balances"),
			Handler: projpg.Handler(func(ctx context.Context, tx *projpg.Tx, ev projection.Event) error {
				t, rec := tx.Table("balances"), ev.Record
				id := accountID(rec.StreamID)
				switch e := ev.Data.(type) {
				case AccountOpened:
					tx.Queue(`INSERT INTO `+t+` (account_id, owner, currency, version, updated_at)
						VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id) DO NOTHING`,
						id, e.Owner, e.Currency, rec.StreamVersion, rec.RecordedAt)
				case AccountClosed:
					tx.Queue(`UPDATE `+t+` SET status = 'closed', version = $2, updated_at = $3 WHERE account_id = $1`,
						id, rec.StreamVersion, rec.RecordedAt)
				default:
					mv, ok := movementOf(ev.Data)
					if !ok {
						return fmt.Errorf("bank: balances: unexpected %s at %s@%d", rec.Type, rec.StreamID, rec.StreamVersion)
					}
					tx.Queue(`UPDATE `+t+` SET balance_cents = balance_cents + $2, version = $3, updated_at = $4 WHERE account_id = $1`,
						id, mv.cents, rec.StreamVersion, rec.RecordedAt)
				}
				return nil
			}),
		},
		{
			Name:       StatementsProjection,
			Categories: []string{AccountCategory},
			Types:      accountEvents(),
			Tables:     []string{"statements"},
			Setup: pgSetup(`CREATE TABLE IF NOT EXISTS %s (
				account_id text NOT NULL,
				version bigint NOT NULL,
				recorded_at timestamptz NOT NULL,
				kind text NOT NULL,
				cents bigint NOT NULL,
				balance_cents bigint NOT NULL,
				transfer_id text NOT NULL DEFAULT '',
				correlation_id text NOT NULL DEFAULT '',
				causation_id text NOT NULL DEFAULT '',
				PRIMARY KEY (account_id, version))`, "statements"),
			Handler: projpg.Handler(func(ctx context.Context, tx *projpg.Tx, ev projection.Event) error {
				t, rec := tx.Table("statements"), ev.Record
				mv, ok := movementOf(ev.Data)
				if !ok {
					return fmt.Errorf("bank: statements: unexpected %s at %s@%d", rec.Type, rec.StreamID, rec.StreamVersion)
				}
				tx.Queue(`INSERT INTO `+t+` (account_id, version, recorded_at, kind, cents, balance_cents, transfer_id, correlation_id, causation_id)
					SELECT $1::text, $2::bigint, $3::timestamptz, $4::text, $5::bigint,
						COALESCE((SELECT s.balance_cents FROM `+t+` s WHERE s.account_id = $1::text ORDER BY s.version DESC LIMIT 1), 0) + $5::bigint,
						$6::text, $7::text, $8::text
					ON CONFLICT (account_id, version) DO NOTHING`,
					accountID(rec.StreamID), rec.StreamVersion, rec.RecordedAt, mv.kind, mv.cents, mv.transferID,
					rec.Metadata.CorrelationID(), rec.Metadata.CausationID())
				return nil
			}),
		},
		{
			Name:       DailyTotalsProjection,
			Categories: []string{AccountCategory},
			Types:      moneyEvents(),
			Tables:     []string{"daily_totals"},
			Setup: pgSetup(`CREATE TABLE IF NOT EXISTS %s (
				day date NOT NULL,
				currency text NOT NULL,
				deposits_cents bigint NOT NULL DEFAULT 0,
				withdrawals_cents bigint NOT NULL DEFAULT 0,
				transfers_in_cents bigint NOT NULL DEFAULT 0,
				transfers_out_cents bigint NOT NULL DEFAULT 0,
				events bigint NOT NULL DEFAULT 0,
				PRIMARY KEY (day, currency))`, "daily_totals"),
			Handler: projpg.Handler(func(ctx context.Context, tx *projpg.Tx, ev projection.Event) error {
				rec := ev.Record
				mv, ok := movementOf(ev.Data)
				if !ok {
					return fmt.Errorf("bank: daily_totals: unexpected %s at %s@%d", rec.Type, rec.StreamID, rec.StreamVersion)
				}
				var d DailyTotal
				d.add(mv)
				tx.Queue(`INSERT INTO `+tx.Table("daily_totals")+` AS d
					(day, currency, deposits_cents, withdrawals_cents, transfers_in_cents, transfers_out_cents, events)
					VALUES ($1::date, $2, $3, $4, $5, $6, 1)
					ON CONFLICT (day, currency) DO UPDATE SET
						deposits_cents = d.deposits_cents + EXCLUDED.deposits_cents,
						withdrawals_cents = d.withdrawals_cents + EXCLUDED.withdrawals_cents,
						transfers_in_cents = d.transfers_in_cents + EXCLUDED.transfers_in_cents,
						transfers_out_cents = d.transfers_out_cents + EXCLUDED.transfers_out_cents,
						events = d.events + 1`,
					Day(rec.RecordedAt).Format("2006-01-02"), currencyOf(ev.Data), d.Deposits, d.Withdrawals, d.TransfersIn, d.TransfersOut)
				return nil
			}),
		},
	}
}

// pgSetup returns a Setup creating the build's table with the statement
// ddl, whose %s is the table's name.
func pgSetup(ddl, base string) func(ctx context.Context, tx projection.Tx) error {
	return func(ctx context.Context, tx projection.Tx) error {
		ptx := projpg.From(tx)
		if ptx == nil {
			return fmt.Errorf("bank: table %s needs a projection/postgres store", base)
		}
		if _, err := ptx.Exec(ctx, fmt.Sprintf(ddl, tx.Table(base))); err != nil {
			return fmt.Errorf("bank: create %s: %w", tx.Table(base), err)
		}
		return nil
	}
}

// Balances implements ReadModel.
func (m *PostgresReadModel) Balances(ctx context.Context) ([]Balance, error) {
	rows, err := m.pool.Query(ctx, `SELECT account_id, owner, currency, balance_cents, status, version FROM `+m.table("balances")+` ORDER BY account_id`)
	if err != nil {
		return nil, fmt.Errorf("bank: read balances: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Balance, error) {
		var b Balance
		err := r.Scan(&b.AccountID, &b.Owner, &b.Currency, &b.Cents, &b.Status, &b.Version)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("bank: read balances: %w", err)
	}
	return out, nil
}

// Statement implements ReadModel.
func (m *PostgresReadModel) Statement(ctx context.Context, accountID string, limit int) ([]StatementLine, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := m.pool.Query(ctx, `SELECT * FROM (
		SELECT account_id, version, recorded_at, kind, cents, balance_cents, transfer_id, correlation_id, causation_id
		FROM `+m.table("statements")+` WHERE account_id = $1 ORDER BY version DESC LIMIT NULLIF($2::int, -1)) s ORDER BY version`, accountID, limit)
	if err != nil {
		return nil, fmt.Errorf("bank: read statement of %s: %w", accountID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StatementLine, error) {
		var l StatementLine
		err := r.Scan(&l.AccountID, &l.Version, &l.At, &l.Kind, &l.Cents, &l.BalanceCents, &l.TransferID, &l.CorrelationID, &l.CausationID)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("bank: read statement of %s: %w", accountID, err)
	}
	return out, nil
}

// DailyTotals implements ReadModel.
func (m *PostgresReadModel) DailyTotals(ctx context.Context) ([]DailyTotal, error) {
	rows, err := m.pool.Query(ctx, `SELECT day, currency, deposits_cents, withdrawals_cents, transfers_in_cents, transfers_out_cents, events
		FROM `+m.table("daily_totals")+` ORDER BY day, currency`)
	if err != nil {
		return nil, fmt.Errorf("bank: read daily totals: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DailyTotal, error) {
		var d DailyTotal
		err := r.Scan(&d.Day, &d.Currency, &d.Deposits, &d.Withdrawals, &d.TransfersIn, &d.TransfersOut, &d.Events)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("bank: read daily totals: %w", err)
	}
	return out, nil
}

var _ ReadModel = (*PostgresReadModel)(nil)
