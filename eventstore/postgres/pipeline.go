package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// appendPipelined runs an append in one round trip: in one implicit
// transaction, the stream's advisory lock, then the append statement; then, when
// notifications are on and this append leads (see notifier), pg_notify in
// a second implicit transaction. led reports that it carried one.
//
// The lock is a statement of its own, taken before the transaction writes
// anything or has an id (a single INSERT statement gets its transaction id
// before it runs any part of its plan): whoever holds it gets a larger
// transaction id than every earlier append to the stream, and ordering the
// global log by (transaction id, position) keeps each stream's versions in
// order. A row lock would not do: transactions queued on it already hold
// ids and are woken in any order. The append statement then runs with a snapshot taken
// once the lock is held, so it sees the previous holder's commit.
//
// Notifying from a transaction of its own matters under load: a notifying
// transaction holds a cluster-wide lock from just before its commit to its
// end, WAL flush included, which would serialise concurrent appends; one
// that writes nothing needs no flush. The notification may be spurious (the
// append conflicted), never early: it is sent after the append committed.
// Appends that do not lead leave their notification to a trailing one
// (Store.trail), sent within NotifyWindow; no appender ever waits for it.
// (Coalescing with appenders waiting for a notification already on its
// way measured slower than notifying every append; throttling without
// waiting measured faster.)
//
// With group commit on (ADR 0013), the flusher's connection runs appends
// with notice carry: a notification due rides in the append's own
// transaction (see noticeCarry).
func (s *Store) appendPipelined(ctx context.Context, name, sql string, one bool, notice notice, args []any) (r appendRow, led bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return
	}
	defer conn.Release()
	return s.appendOnConn(ctx, conn.Conn(), name, sql, one, notice, args)
}

// notice is how an append may notify followers.
type notice int

const (
	// noticeTrail leaves the notification to a trailing one (Store.trail).
	noticeTrail notice = iota
	// noticeLead sends one, when due, in a transaction of its own pipelined
	// after the append's commit (appends on pool connections).
	noticeLead
	// noticeCarry sends one, when due, in the append's own transaction,
	// delivered by its commit: no transaction, WAL flush or round trip of
	// its own. For the group commit's flusher's connection, whose
	// transactions run one at a time, so the cluster-wide lock a notifying
	// commit holds serialises nothing of the Store's (at most one
	// notification per NotifyWindow).
	noticeCarry
)

// appendOnConn is appendPipelined on c: a pool connection, or the group
// commit's flusher's for a lone append. It closes c when c is left in an
// unknown state. led reports that the append carried or sent a
// notification that went out (noticeCarry: with the commit).
func (s *Store) appendOnConn(ctx context.Context, c *pgx.Conn, name, sql string, one bool, notice notice, args []any) (r appendRow, led bool, err error) {
	appendSD, err := c.Prepare(ctx, name, sql)
	if err != nil {
		return
	}
	lockSD, err := c.Prepare(ctx, "chronicle_lock_"+s.cfg.schema, s.q.lock)
	if err != nil {
		return
	}
	var (
		notifySD *pgconn.StatementDescription
		at       int64
	)
	if notice != noticeTrail && s.cfg.notify {
		at, led = s.notifier.lead()
	}
	if led {
		if notifySD, err = c.Prepare(ctx, "chronicle_notify", s.q.notify); err != nil {
			led = false
			s.trail() // counted as sent by lead: make sure one goes out
			return
		}
	}
	carry := notifySD != nil && notice == noticeCarry
	m := c.TypeMap()
	params, formats, err := encodeParams(m, appendSD, args)
	if err != nil {
		return
	}
	lockParams, lockFormats, err := encodeParams(m, lockSD, args[:1])
	if err != nil {
		return
	}
	binary := []int16{pgtype.BinaryFormatCode}
	p := c.PgConn().StartPipeline(ctx)
	p.SendQueryStatement(lockSD, lockParams, lockFormats, binary)
	p.SendQueryStatement(appendSD, params, formats, binary)
	if carry {
		p.SendQueryStatement(notifySD, [][]byte{[]byte(s.channel)}, []int16{pgtype.TextFormatCode}, nil)
	}
	p.SendPipelineSync()
	if notifySD != nil && !carry {
		p.SendQueryStatement(notifySD, [][]byte{[]byte(s.channel)}, []int16{pgtype.TextFormatCode}, nil)
		p.SendPipelineSync()
	}
	err = p.Flush()
	if err == nil {
		err = pipelineSkip(p) // the lock's empty result
	}
	if err == nil {
		var res *pgconn.Result
		if res, err = pipelineRead(p); err == nil {
			switch {
			case one && len(res.Rows) == 0:
				// Not written: r.n is 0.
			case len(res.Rows) != 1:
				err = fmt.Errorf("append returned %d rows", len(res.Rows))
			default:
				row, fds := res.Rows[0], res.FieldDescriptions
				dst := []any{&r.n, &r.version, &r.tx, &r.pos}
				if one {
					r.n = 1
					dst = dst[1:]
				}
				if len(fds) != len(dst) {
					err = fmt.Errorf("append returned %d columns, want %d", len(fds), len(dst))
					break
				}
				for i := range dst {
					if err = m.Scan(fds[i].DataTypeOID, fds[i].Format, row[i], dst[i]); err != nil {
						err = fmt.Errorf("decode column %d of the append's result: %w", i+1, err)
						break
					}
				}
			}
		}
	}
	if err == nil && carry {
		err = pipelineSkip(p) // the notification's empty result
	}
	if err == nil {
		err = pipelineCommit(p)
	}
	if err != nil && led {
		// The notification lead counted as sent did not go out (or its
		// transaction's outcome is unknown): a trailing one covers the
		// commits that relied on it.
		led = false
		s.trail()
	}
	// Close reads what is left: the notification and its sync. A failed
	// notification fails nothing: the append committed and followers poll.
	cerr := p.Close()
	if err == nil && cerr != nil && !carry {
		s.log.WarnContext(ctx, "postgres: append committed but notifying followers failed; trying again shortly",
			slog.String("stream", args[0].(string)), slog.Any("err", cerr))
		led = false // so that a trailing notification covers it
	}
	if err == nil && cerr != nil && carry && !c.IsClosed() {
		_ = c.Close(context.Background()) // committed, but the connection is in doubt
	}
	if err == nil && led && (carry || cerr == nil) {
		s.notifier.sent(at)
	}
	if err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) && !c.IsClosed() {
			// The connection is in an unknown state: do not reuse it.
			_ = c.Close(context.Background())
		}
	}
	return
}

// pipelineCommit reads the sync that ends an implicit transaction of a
// pipeline: the transaction commits there, and a commit can fail (a
// deferred constraint, a serialization failure, a lost connection) after
// the INSERT returned its rows.
func pipelineCommit(p *pgconn.Pipeline) error {
	res, err := p.GetResults()
	if err == nil {
		if _, ok := res.(*pgconn.PipelineSync); !ok {
			err = fmt.Errorf("unexpected pipeline result %T, want the commit's sync", res)
		}
	}
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// pipelineRead reads the next query result of a pipeline.
func pipelineRead(p *pgconn.Pipeline) (*pgconn.Result, error) {
	res, err := p.GetResults()
	if err != nil {
		return nil, err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return nil, fmt.Errorf("unexpected pipeline result %T", res)
	}
	r := rr.Read()
	return r, r.Err
}

// pipelineSkip reads and discards the next query result of a pipeline.
func pipelineSkip(p *pgconn.Pipeline) error {
	_, err := pipelineRead(p)
	return err
}

// encodeParams encodes args in binary for the prepared statement sd.
func encodeParams(m *pgtype.Map, sd *pgconn.StatementDescription, args []any) ([][]byte, []int16, error) {
	if len(sd.ParamOIDs) != len(args) {
		return nil, nil, fmt.Errorf("statement %s takes %d parameters, got %d", sd.Name, len(sd.ParamOIDs), len(args))
	}
	params := make([][]byte, len(args))
	formats := make([]int16, len(args))
	for i, a := range args {
		b, err := m.Encode(sd.ParamOIDs[i], pgtype.BinaryFormatCode, a, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("encode parameter %d of statement %s as %T: %w", i+1, sd.Name, a, err)
		}
		params[i], formats[i] = b, pgtype.BinaryFormatCode
	}
	return params, formats, nil
}
