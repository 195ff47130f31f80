package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-go/chronicle/eventstore"
)

// LogStatus tells how far readers of the global log are held back by open
// transactions. Readers only see events written by transactions older than
// every transaction still running (the horizon); an old open transaction,
// in this or any other schema of the database cluster, keeps later commits
// from readers until it ends.
type LogStatus struct {
	// Head is the position of the last event readers can see.
	Head eventstore.Position
	// Horizon is the oldest transaction id still running: events written
	// by it or by newer transactions are not readable yet.
	Horizon uint64
	// HeldBack is the number of committed events readers cannot see yet
	// because an older transaction is still open.
	HeldBack int64
	// Oldest is the oldest open transaction that has written something
	// (and so holds readers back), or nil when there is none.
	Oldest *OpenTransaction
}

// OpenTransaction describes a transaction seen in pg_stat_activity.
type OpenTransaction struct {
	// PID is the backend's process id (for pg_terminate_backend).
	PID int
	// XID is the transaction id (32-bit, as pg_stat_activity shows it).
	XID uint64
	// Age is how long the transaction has been open.
	Age time.Duration
	// State is the backend's state, such as "idle in transaction".
	State string
	// Database, User and Application say where it comes from.
	Database, User, Application string
	// Query is the start of the backend's current or last query.
	Query string
}

// Status reports the head of the log and how far readers are held back by
// an old open transaction.
func (s *Store) Status(ctx context.Context) (LogStatus, error) {
	var (
		st       LogStatus
		horizon  int64
		tx, pos  *int64
		heldBack int64
	)
	if err := s.pool.QueryRow(ctx, s.q.status).Scan(&horizon, &heldBack, &tx, &pos); err != nil {
		return st, s.wrapErr("read the log status", err)
	}
	st.Horizon = uint64(horizon)
	st.HeldBack = heldBack
	if tx != nil && pos != nil {
		st.Head = eventstore.Position{TxID: uint64(*tx), Seq: uint64(*pos)}
	}
	var (
		o   OpenTransaction
		xid int64
		age float64
	)
	err := s.pool.QueryRow(ctx, `SELECT pid, backend_xid::text::bigint,
			coalesce(extract(epoch FROM now() - xact_start), 0)::float8,
			coalesce(state, ''), coalesce(datname, ''), coalesce(usename, ''), coalesce(application_name, ''),
			left(coalesce(query, ''), 200)
		FROM pg_stat_activity
		WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
		ORDER BY age(backend_xid) DESC LIMIT 1`).
		Scan(&o.PID, &xid, &age, &o.State, &o.Database, &o.User, &o.Application, &o.Query)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return st, s.wrapErr("read open transactions", err)
	default:
		o.XID = uint64(xid)
		o.Age = time.Duration(age * float64(time.Second))
		st.Oldest = &o
	}
	return st, nil
}

// ListStreamsOptions is [eventstore.ListStreamsOptions], the options the
// memory store's ListStreams takes too.
type ListStreamsOptions = eventstore.ListStreamsOptions

// ListStreams lists streams in stream ID order (byte order, like Go's
// string comparison), with their versions, fetching them in batches.
func (s *Store) ListStreams(ctx context.Context, opts eventstore.ListStreamsOptions) iter.Seq2[eventstore.StreamInfo, error] {
	return func(yield func(eventstore.StreamInfo, error) bool) {
		if err := opts.Validate(); err != nil {
			yield(eventstore.StreamInfo{}, err)
			return
		}
		if strings.Contains(opts.Category, "-") {
			return // a category never holds a '-'
		}
		after, left := opts.After, opts.Limit
		const batch = 500
		buf := make([]eventstore.StreamInfo, 0, batch)
		for {
			n := batch
			if left > 0 && left < n {
				n = left
			}
			buf = buf[:0]
			var (
				rows pgx.Rows
				err  error
			)
			if opts.Category != "" {
				rows, err = s.pool.Query(ctx, s.q.listStreamsCat, after, n, opts.Category)
			} else {
				rows, err = s.pool.Query(ctx, s.q.listStreams, after, n)
			}
			if err == nil {
				for rows.Next() {
					info := eventstore.StreamInfo{Exists: true}
					if err = rows.Scan(&info.StreamID, &info.Version); err != nil {
						break
					}
					buf = append(buf, info)
				}
				rows.Close()
				if err == nil {
					err = rows.Err()
				}
			}
			if err != nil {
				yield(eventstore.StreamInfo{}, s.wrapErr(fmt.Sprintf("list streams after %q", after), err))
				return
			}
			for _, info := range buf {
				if !yield(info, nil) {
					return
				}
			}
			if len(buf) < n {
				return
			}
			after = buf[len(buf)-1].StreamID
			if left > 0 {
				left -= len(buf)
				if left == 0 {
					return
				}
			}
		}
	}
}
