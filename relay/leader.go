package relay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/internal/backoff"
)

// leader hands out the leadership: one relay per schema and name
// publishes at a time.
type leader interface {
	// Acquire waits until this relay leads; the lease ends with Release.
	Acquire(ctx context.Context) (lease, error)
}

// lease is a held leadership. Its methods are safe for concurrent use.
type lease interface {
	// Alive reports an error once the leadership may have been lost.
	Alive(ctx context.Context) error
	// Querier runs the relay's checkpoint statements on the leadership's
	// connection, so that a relay that lost it cannot store a checkpoint.
	Querier() querier
	// Release gives the leadership up.
	Release()
}

// pgLeader takes a PostgreSQL session advisory lock on a dedicated
// connection and holds it while the relay leads.
type pgLeader struct {
	pool   *pgxpool.Pool
	key    int64
	poll   time.Duration
	waitFn func(ctx context.Context) // called once per Acquire that has to wait
}

func (l *pgLeader) Acquire(ctx context.Context) (lease, error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("relay: acquire a PostgreSQL connection for the leadership lock: %w", err)
	}
	ls := &pgLease{conn: conn}
	waited := false
	for {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&ok); err != nil {
			ls.Release()
			return nil, fmt.Errorf("relay: try the leadership lock: %w", err)
		}
		if ok {
			return ls, nil
		}
		if !waited && l.waitFn != nil {
			l.waitFn(ctx)
		}
		waited = true
		if backoff.Sleep(ctx, l.poll, nil) != nil {
			ls.Release()
			return nil, ctx.Err()
		}
	}
}

// pgLease is a connection holding the leadership lock. A mutex serialises
// its use: pgx connections are not safe for concurrent use.
type pgLease struct {
	mu   sync.Mutex
	conn *pgxpool.Conn
	once sync.Once
}

func (l *pgLease) Alive(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.conn.Ping(ctx); err != nil {
		return fmt.Errorf("relay: the leadership connection failed: %w", err)
	}
	return nil
}

func (l *pgLease) Querier() querier { return lockedQuerier{l} }

// Release closes the connection, which ends its session and so frees the
// advisory lock; it never goes back to the pool holding it.
func (l *pgLease) Release() {
	l.once.Do(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c := l.conn.Hijack()
		_ = c.Close(ctx)
	})
}

type lockedQuerier struct{ l *pgLease }

// lockedRow holds the lease's lock until the row is scanned.
type lockedRow struct {
	row pgx.Row
	mu  *sync.Mutex
}

func (r lockedRow) Scan(dest ...any) error {
	defer r.mu.Unlock()
	return r.row.Scan(dest...)
}

func (q lockedQuerier) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	q.l.mu.Lock()
	return lockedRow{row: q.l.conn.QueryRow(ctx, sql, args...), mu: &q.l.mu}
}

func (q lockedQuerier) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	q.l.mu.Lock()
	defer q.l.mu.Unlock()
	return q.l.conn.Exec(ctx, sql, args...)
}
