package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/internal/pgmigrate"
)

// Leadership says whether some relay, in any process, holds the
// leadership of a schema and relay name, as PostgreSQL sees it.
type Leadership struct {
	// Name is the relay's name.
	Name string
	// Held reports whether a session holds the leadership lock. No relay
	// publishes while it is false.
	Held bool
	// PID is the PostgreSQL backend process id of the leader's connection
	// (for pg_stat_activity); zero when Held is false.
	PID int
	// Application and Client are the leader connection's application_name
	// and client address, when PostgreSQL shows them to this role.
	Application, Client string
}

// ReadLeadership reports whether a relay built with opts (its schema,
// [WithSchema], and name, [WithName]) leads anywhere: it looks for the
// leadership's advisory lock in pg_locks of the pool's database. Like
// [ReadCheckpoint] it needs only PostgreSQL; health checks and `relay
// status` use it to report a log that nobody publishes.
func ReadLeadership(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (Leadership, error) {
	if pool == nil {
		return Leadership{}, errors.New("relay: read leadership: nil PostgreSQL pool")
	}
	cfg := newConfig(opts)
	if err := cfg.validate(); err != nil {
		return Leadership{}, err
	}
	l := Leadership{Name: cfg.name}
	// A bigint advisory key shows its high half in classid, its low half
	// in objid, and objsubid 1.
	err := pool.QueryRow(ctx, `SELECT l.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), '')
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.classid::bigint = ($1::bigint >> 32) & 4294967295
			AND l.objid::bigint = $1::bigint & 4294967295
		LIMIT 1`, leaderKey(cfg)).Scan(&l.PID, &l.Application, &l.Client)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return l, nil
	case err != nil:
		return l, fmt.Errorf("relay: read the leadership of relay %q in schema %s: %w", cfg.name, cfg.schema, err)
	}
	l.Held = true
	return l, nil
}

// leaderKey is the advisory lock key of the leadership of cfg's schema and
// name.
func leaderKey(cfg config) int64 { return pgmigrate.LockKey("relay:" + cfg.schema + ":" + cfg.name) }
