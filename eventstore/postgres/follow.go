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
	"github.com/chronicle-go/chronicle/internal/backoff"
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
		f := s.newFollower(opts, yield)
		defer f.stopListening()
		f.run(ctx)
	}
}

// follower is one iteration of [Store.Follow]. It runs in steps: listen
// (when notifications are on), catch up (read until a batch comes back
// short), check for events held back, and wait (for a notification, the
// poll interval, or a short backoff while events are held back); then it
// catches up again. Each step that fails either recovers (a broken
// listening connection is replaced) or ends the iteration with an error.
type follower struct {
	s     *Store
	opts  eventstore.ReadAllOptions
	yield func(eventstore.Record, error) bool

	after eventstore.Position // last position yielded
	left  int                 // records still wanted; 0 for no limit
	buf   []eventstore.Record
	l     *listener // nil when not listening

	// held counts the waits in a row with committed events held back
	// behind an older open transaction; each waits longer (heldBack).
	held int
	// heldBack paces re-reads while events are held back: the
	// transaction holding them back may not be an append and may never
	// notify, so the follower reads again soon (5ms, doubling up to 100ms
	// or the poll interval when shorter) rather than at the next
	// notification or poll.
	heldBack backoff.Policy
}

func (s *Store) newFollower(opts eventstore.ReadAllOptions, yield func(eventstore.Record, error) bool) *follower {
	return &follower{
		s: s, opts: opts, yield: yield,
		after: opts.After, left: opts.Limit,
		buf:      make([]eventstore.Record, 0, opts.Batch()),
		heldBack: backoff.Policy{First: 5 * time.Millisecond, Longest: min(100*time.Millisecond, s.cfg.pollInterval)},
	}
}

// run follows the log until ctx ends, a read fails or the consumer stops.
func (f *follower) run(ctx context.Context) {
	for {
		f.listen(ctx)
		if !f.catchUp(ctx) {
			return
		}
		wait, ok, relisten := f.checkHeldBack(ctx)
		switch {
		case !ok:
			return
		case relisten:
			continue
		}
		if !f.wait(ctx, wait) {
			return
		}
	}
}

// listen starts listening when notifications are on and the follower is
// not listening; on failure it logs and the follower polls.
func (f *follower) listen(ctx context.Context) {
	if f.l == nil && f.s.cfg.notify {
		f.l = f.s.listen(ctx)
	}
}

// conn is where the follower reads: on the listening connection when there
// is one, since a follower holding one connection to listen and waiting
// for a second one to read would deadlock with as many followers as the
// pool has connections.
func (f *follower) conn() querier {
	if f.l != nil {
		return f.l.conn
	}
	return f.s.pool
}

// lostListener reports whether err came from a listening connection that
// broke (rather than from ctx ending or a failed query).
func (f *follower) lostListener(ctx context.Context, err error) bool {
	return err != nil && f.l != nil && ctx.Err() == nil && f.l.conn.Conn().IsClosed()
}

// stopListening gives the listening connection back, if any.
func (f *follower) stopListening() {
	f.l.close()
	f.l = nil
}

// catchUp reads and yields batches until one comes back short. It reports
// whether to go on.
func (f *follower) catchUp(ctx context.Context) bool {
	for {
		var (
			full bool
			err  error
		)
		f.buf, full, err = f.s.readAllBatch(ctx, f.conn(), f.buf[:0], f.after, f.opts, f.left)
		if f.lostListener(ctx, err) {
			// Listen again on another connection and read there.
			f.s.log.WarnContext(ctx, "postgres: follow: lost the notification connection; listening again",
				slog.String("schema", f.s.cfg.schema), slog.Any("err", err))
			f.stopListening()
			f.listen(ctx)
			f.buf, full, err = f.s.readAllBatch(ctx, f.conn(), f.buf[:0], f.after, f.opts, f.left)
		}
		if err != nil {
			return f.fail(ctx, err)
		}
		if !yieldBatch(f.buf, f.yield, &f.after, &f.left) {
			return false
		}
		if !full {
			return true
		}
	}
}

// checkHeldBack decides how long to wait before reading again: the poll
// interval, or a short backoff while committed events are held back. ok
// is false when the iteration ended; relisten is true when the listening
// connection broke and the follower should read again at once, on a new
// one.
func (f *follower) checkHeldBack(ctx context.Context) (wait time.Duration, ok, relisten bool) {
	held, err := f.s.heldBack(ctx, f.conn(), f.after, f.opts)
	if f.lostListener(ctx, err) {
		f.stopListening()
		return 0, true, true
	}
	if err != nil {
		return 0, f.fail(ctx, err), false
	}
	if !held {
		f.held = 0
		return f.s.cfg.pollInterval, true, false
	}
	f.held++
	return f.heldBack.Ceiling(f.held), true, false
}

// wait waits for a notification, d or the end of ctx. It reports whether
// to go on. A listening connection that fails is dropped (the follower
// polls until the next step listens again).
func (f *follower) wait(ctx context.Context, d time.Duration) bool {
	if f.l != nil {
		if _, err := f.l.wait(ctx, d); err != nil && ctx.Err() == nil {
			f.s.log.WarnContext(ctx, "postgres: follow: lost the notification connection; polling",
				slog.String("schema", f.s.cfg.schema), slog.Any("err", err))
			f.stopListening()
		}
	} else {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if ctx.Err() != nil {
		f.yield(eventstore.Record{}, ctx.Err())
		return false
	}
	return true
}

// fail ends the iteration with err, or with ctx's error when ctx ended; it
// returns false, for the step to return.
func (f *follower) fail(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	f.yield(eventstore.Record{}, err)
	return false
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
	sql := s.q.heldBack
	if len(cats) > 0 {
		sql = s.q.heldBackCat
	}
	var held bool
	if err := q.QueryRow(ctx, sql, int64(after.TxID), int64(after.Seq), cats, types).Scan(&held); err != nil {
		return false, s.wrapErr("check for events held back", err)
	}
	return held, nil
}
