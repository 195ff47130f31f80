package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chronicle-go/chronicle/internal/pgmigrate"
)

// StoreID returns the store's identity: a UUID created by [Store.Migrate]
// and kept in the store's schema (table store_identity), the same for
// every process using the schema and different for every schema. The relay
// stamps it on each message it publishes, so that a stream or a message of
// another store is refused instead of silently mixed in.
func (s *Store) StoreID(ctx context.Context) (uuid.UUID, error) {
	var id uuid.UUID
	err := s.pool.QueryRow(ctx, `SELECT store_id FROM `+pgmigrate.Quote(s.cfg.schema)+`.store_identity`).Scan(&id)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000"),
		errors.Is(err, pgx.ErrNoRows):
		return uuid.Nil, fmt.Errorf("postgres: read the identity of the store in schema %s: run Migrate first: %w", s.cfg.schema, err)
	case err != nil:
		return uuid.Nil, fmt.Errorf("postgres: read the identity of the store in schema %s: %w", s.cfg.schema, err)
	}
	return id, nil
}
