package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Follow reads the global log like [Store.ReadAll], then keeps waiting for
// new records and yields them as they become readable, until ctx ends; it
// then yields ctx's error. See [eventstore.Store.Follow].
//
// While it waits, Follow holds one connection of the pool listening on the
// store's notification channel, and reads again when an append notifies it
// or when the poll interval passes, whichever comes first. If listening
// fails it logs a warning and polls. A failed read ends the iteration with
// that error; callers restart from the last position they handled.
func (s *Store) Follow(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.Record, error] {
	if err := opts.Validate(); err != nil {
		return eventstore.Err(err)
	}
	return func(yield func(eventstore.Record, error) bool) {
		var l *listener
		defer func() { l.close() }()
		after := opts.After
		left := opts.Limit
		buf := make([]eventstore.Record, 0, opts.Batch())
		// When committed events wait behind an older open transaction,
		// read again soon (backing off from 5ms to 100ms, or the poll
		// interval when shorter) rather than at the next notification or
		// poll: the transaction holding them back may not be an append
		// and may never notify.
		const minRetry, maxRetry = 5 * time.Millisecond, 100 * time.Millisecond
		retry := time.Duration(0)
		for {
			if l == nil && s.cfg.notify {
				l = s.listen(ctx)
			}
			// Read on the listening connection when there is one: a
			// follower holding one connection to listen and waiting for a
			// second one to read would deadlock with as many followers as
			// the pool has connections.
			var q querier = s.pool
			if l != nil {
				q = l.conn
			}
			// Catch up: read until a batch comes back short.
			for {
				var (
					full bool
					err  error
				)
				buf, full, err = s.readAllBatch(ctx, q, buf[:0], after, opts, left)
				if err != nil && l != nil && ctx.Err() == nil && l.conn.Conn().IsClosed() {
					// The listening connection broke: listen again on
					// another one and read there.
					s.log.WarnContext(ctx, "postgres: follow: lost the notification connection; listening again",
						slog.String("schema", s.cfg.schema), slog.Any("err", err))
					l.close()
					if l = s.listen(ctx); l != nil {
						q = l.conn
					} else {
						q = s.pool
					}
					buf, full, err = s.readAllBatch(ctx, q, buf[:0], after, opts, left)
				}
				if err != nil {
					if ctx.Err() != nil {
						err = ctx.Err()
					}
					yield(eventstore.Record{}, err)
					return
				}
				if !yieldBatch(buf, yield, &after, &left) {
					return
				}
				if !full {
					break
				}
			}
			wait := s.cfg.pollInterval
			held, err := s.heldBack(ctx, q, after, opts)
			if err != nil && l != nil && ctx.Err() == nil && l.conn.Conn().IsClosed() {
				// The listening connection broke: read again at once, on
				// a new one.
				l.close()
				l = nil
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				yield(eventstore.Record{}, err)
				return
			}
			if held {
				retry = min(max(2*retry, minRetry), maxRetry, s.cfg.pollInterval)
				wait = retry
			} else {
				retry = 0
			}
			// Wait for a notification or the poll interval.
			if l != nil {
				if _, err := l.wait(ctx, wait); err != nil && ctx.Err() == nil {
					s.log.WarnContext(ctx, "postgres: follow: lost the notification connection; polling",
						slog.String("schema", s.cfg.schema), slog.Any("err", err))
					l.close()
					l = nil
				}
			} else {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
			if ctx.Err() != nil {
				yield(eventstore.Record{}, ctx.Err())
				return
			}
		}
	}
}

// listener is a pool connection listening on the store's channel.
type listener struct {
	conn *pgxpool.Conn
	log  *slog.Logger
}

// listen acquires a connection and listens on the store's channel. It
// returns nil, after logging why, when it cannot; Follow then polls.
func (s *Store) listen(ctx context.Context) *listener {
	conn, err := s.pool.Acquire(ctx)
	if err == nil {
		_, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize())
		if err != nil {
			conn.Release()
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "postgres: follow: cannot listen for notifications; polling",
				slog.String("channel", s.channel), slog.Any("err", err))
		}
		return nil
	}
	return &listener{conn: conn, log: s.log}
}

// wait returns when a notification arrives (notified), d passes or ctx
// ends; only a broken connection is an error.
func (l *listener) wait(ctx context.Context, d time.Duration) (notified bool, err error) {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, err = l.conn.Conn().WaitForNotification(wctx)
	switch {
	case err == nil:
		return true, nil
	case ctx.Err() != nil:
		return false, nil
	case errors.Is(err, context.DeadlineExceeded) && !l.conn.Conn().IsClosed():
		return false, nil
	}
	return false, fmt.Errorf("postgres: wait for notification: %w", err)
}

// close stops listening and gives the connection back to the pool, or
// closes it when it cannot be cleaned.
func (l *listener) close() {
	if l == nil || l.conn == nil {
		return
	}
	c := l.conn
	l.conn = nil
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !c.Conn().IsClosed() {
		if _, err := c.Exec(ctx, "UNLISTEN *"); err != nil {
			_ = c.Conn().Close(ctx)
		}
	}
	c.Release()
}

// heldBack reports whether committed events the follower wants lie after
// after, the last position it read, once it read all it could: they wait
// behind an open transaction older than them, or that transaction ended
// since the read.
func (s *Store) heldBack(ctx context.Context, q querier, after eventstore.Position, opts eventstore.ReadAllOptions) (bool, error) {
	cats, types := opts.Categories, opts.Types
	if cats == nil {
		cats = []string{}
	}
	if types == nil {
		types = []string{}
	}
	var held bool
	if err := q.QueryRow(ctx, s.q.heldBack, int64(after.TxID), int64(after.Seq), cats, types).Scan(&held); err != nil {
		return false, s.wrapErr("check for events held back", err)
	}
	return held, nil
}
