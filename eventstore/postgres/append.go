package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chronicle-go/chronicle/eventstore"
)

// querier is what an append or a read needs: the pool, a connection or a
// transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Append appends events to streamID in one transaction and one round trip,
// provided the stream is at the expected version. See
// [eventstore.Store.Append].
//
// A version mismatch returns a [*eventstore.ConflictError] and writes
// nothing. Appending events whose IDs are already stored in that stream at
// those versions returns the original result without writing anything; the
// same IDs elsewhere are a conflict whose Reason says where they are.
func (s *Store) Append(ctx context.Context, streamID string, expected eventstore.ExpectedVersion, events ...eventstore.Event) (eventstore.AppendResult, error) {
	evs, err := eventstore.PrepareAppend(streamID, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	res, err := s.appendOn(ctx, nil, streamID, expected, evs)
	if errors.Is(err, errIDTaken) || errors.Is(err, errKnownID) {
		return s.resolveRetry(ctx, s.pool, streamID, expected, evs, err)
	}
	return res, err
}

// AppendTx appends events like [Store.Append], but inside tx, a transaction
// the caller owns: the events become visible when tx commits, and vanish if
// it rolls back. It lets a service store events together with its own
// writes. The expected version is checked and the stream stays locked
// until tx ends, so concurrent appends to that stream wait for it; keep tx
// short, since it also holds readers of the global log back while open.
//
// Call AppendTx before tx writes anything else when you can: if tx already
// holds a transaction id and another append to the stream committed since,
// appending would put the stream's events out of order in the global log,
// so AppendTx refuses with a [*eventstore.ConflictError] (retry in a new
// transaction). When the event IDs are already stored, AppendTx returns a
// conflict, or the original result when they are stored exactly there (an
// idempotent retry); but when PostgreSQL refused the insert (the IDs are
// stored, the versions matched), tx is aborted and the conflict's Actual is
// -1 (unknown).
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, streamID string, expected eventstore.ExpectedVersion, events ...eventstore.Event) (eventstore.AppendResult, error) {
	evs, err := eventstore.PrepareAppend(streamID, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if tx == nil {
		return eventstore.AppendResult{}, fmt.Errorf("postgres: append to stream %q: nil transaction", streamID)
	}
	res, err := s.appendOn(ctx, tx, streamID, expected, evs)
	switch {
	case errors.Is(err, errKnownID):
		// Nothing failed in tx: look the IDs up in it.
		return s.resolveRetry(ctx, tx, streamID, expected, evs, err)
	case errors.Is(err, errIDTaken):
		return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: streamID, Expected: expected, Actual: -1,
			Reason: "some event IDs are already stored; PostgreSQL refused the insert and the transaction is aborted"}
	}
	return res, err
}

var (
	errIDTaken = errors.New("event id already stored")
	errKnownID = errors.New("event id already stored, version mismatch")
)

// knownIDError carries what appendOn learnt before resolveRetry takes over.
type knownIDError struct {
	sentinel error
	actual   int64 // -1 when unknown
}

func (e *knownIDError) Error() string { return e.sentinel.Error() }
func (e *knownIDError) Unwrap() error { return e.sentinel }

// appendOn appends in tx, or through the pool in one round trip when tx is
// nil.
func (s *Store) appendOn(ctx context.Context, tx0 pgx.Tx, streamID string, expected eventstore.ExpectedVersion, evs []eventstore.Event) (eventstore.AppendResult, error) {
	n := len(evs)
	meta := make([]*string, n)
	for i, e := range evs {
		if e.Metadata != nil {
			b, err := json.Marshal(e.Metadata)
			if err != nil {
				return eventstore.AppendResult{}, fmt.Errorf("postgres: append to stream %q: encode metadata of event %d: %w", streamID, i, err)
			}
			m := string(b)
			meta[i] = &m
		}
	}
	// One event takes a statement of its own with plain parameters: arrays
	// and unnest cost more to encode, plan and run than the whole insert.
	one := n == 1
	var sql, name string
	var args []any
	if one {
		e := evs[0]
		sql, name = s.q.append1, "chronicle_append1_"+s.cfg.schema
		args = []any{streamID, expectedParam(expected), pgtype.UUID{Bytes: e.ID, Valid: true}, e.Type, int32(e.SchemaVersion), string(e.Data), meta[0]}
	} else {
		ids := make([]pgtype.UUID, n)
		types := make([]string, n)
		svs := make([]int32, n)
		data := make([]string, n)
		for i, e := range evs {
			ids[i] = pgtype.UUID{Bytes: e.ID, Valid: true}
			types[i] = e.Type
			svs[i] = int32(e.SchemaVersion)
			data[i] = string(e.Data)
		}
		sql, name = s.q.append, "chronicle_append_"+s.cfg.schema
		args = []any{streamID, expectedParam(expected), ids, types, svs, data, meta}
	}
	what := func() string { return fmt.Sprintf("append %d events to stream %q", n, streamID) }

	var (
		r   appendRow
		err error
	)
	if tx0 != nil {
		// In the caller's transaction, in one batch: the lock first, so
		// that the append's snapshot is taken once it is held; the
		// notification goes out if and when tx commits.
		b := &pgx.Batch{}
		b.Queue(s.q.lock, streamID)
		b.Queue(sql, args...)
		if s.cfg.notify {
			b.Queue(s.q.notify, s.channel)
		}
		br := tx0.SendBatch(ctx, b)
		if _, err = br.Exec(); err == nil {
			if one {
				r.n = 1
				err = br.QueryRow().Scan(&r.version, &r.tx, &r.pos)
				if errors.Is(err, pgx.ErrNoRows) {
					r, err = appendRow{}, nil
				}
			} else {
				err = br.QueryRow().Scan(&r.n, &r.version, &r.tx, &r.pos)
			}
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	} else {
		var led bool
		r, led, err = s.appendPipelined(ctx, name, sql, one, args)
		if err == nil && r.n > 0 && s.cfg.notify && !led {
			s.trail()
		}
	}
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "events_event_id_key" {
			return eventstore.AppendResult{}, &knownIDError{sentinel: errIDTaken, actual: -1}
		}
		if isVersionTaken(err) {
			// Only in a caller's REPEATABLE READ or SERIALIZABLE
			// transaction, whose snapshot predates the stream's last
			// append.
			return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: streamID, Expected: expected, Actual: -1,
				Reason: "the stream changed after the transaction's snapshot was taken; retry in a new transaction"}
		}
		return eventstore.AppendResult{}, s.wrapErr(what(), err)
	}
	if r.n == int64(n) && r.version != nil && r.tx != nil && r.pos != nil {
		return eventstore.AppendResult{Version: *r.version, Position: eventstore.Position{TxID: uint64(*r.tx), Seq: uint64(*r.pos)}}, nil
	}
	if r.n != 0 {
		return eventstore.AppendResult{}, fmt.Errorf("postgres: %s: %d rows written, want %d", what(), r.n, n)
	}

	// Nothing was written: find out why, in tx when there is one.
	var q querier = s.pool
	if tx0 != nil {
		q = tx0
	}
	var (
		actual, last int64
		known        bool
		myTx         *int64
	)
	if err := q.QueryRow(ctx, s.q.appendState, streamID, pgtype.UUID{Bytes: evs[0].ID, Valid: true}).Scan(&actual, &last, &known, &myTx); err != nil {
		return eventstore.AppendResult{}, s.wrapErr(what(), err)
	}
	switch {
	case !expected.Matches(actual) && known:
		return eventstore.AppendResult{}, &knownIDError{sentinel: errKnownID, actual: actual}
	case myTx != nil && *myTx < last:
		return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: streamID, Expected: expected, Actual: actual,
			Reason: "the transaction started writing before the stream's last append committed; appending from it would break the stream's order in the global log, retry in a new transaction"}
	}
	// A version conflict; or the stream moved on since the append read it,
	// which was a conflict then.
	return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: streamID, Expected: expected, Actual: actual}
}

// appendRow is what appendSQL returns.
type appendRow struct {
	n                int64 // events written: all or none
	version, tx, pos *int64
}

// expectedParam encodes an expected version for the append statement: -1
// any, -2 no stream, -3 stream exists, the version itself when exact
// (PrepareAppend refused negative exact versions).
func expectedParam(e eventstore.ExpectedVersion) int64 {
	switch e {
	case eventstore.Any:
		return -1
	case eventstore.NoStream:
		return -2
	case eventstore.StreamExists:
		return -3
	}
	v, _ := e.ExactVersion()
	return v
}

func isVersionTaken(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "events_stream_id_stream_version_key"
}

// resolveRetry decides, once some event IDs turned out to be stored
// already, whether the append is a retry of one that succeeded (same
// stream, same versions, same order) or a conflict.
func (s *Store) resolveRetry(ctx context.Context, q querier, streamID string, expected eventstore.ExpectedVersion, evs []eventstore.Event, cause error) (eventstore.AppendResult, error) {
	var ke *knownIDError
	actual := int64(-1)
	if errors.As(cause, &ke) {
		actual = ke.actual
	}
	ids := make([]pgtype.UUID, len(evs))
	for i, e := range evs {
		ids[i] = pgtype.UUID{Bytes: e.ID, Valid: true}
	}
	type stored struct {
		stream  string
		version int64
		pos     eventstore.Position
	}
	found := make(map[uuid.UUID]stored, len(evs))
	rows, err := q.Query(ctx, s.q.checkIDs, ids)
	if err != nil {
		return eventstore.AppendResult{}, s.wrapErr(fmt.Sprintf("append to stream %q: look up event IDs", streamID), err)
	}
	for rows.Next() {
		var (
			id      pgtype.UUID
			st      stored
			tx, pos int64
		)
		if err := rows.Scan(&id, &st.stream, &st.version, &tx, &pos); err != nil {
			rows.Close()
			return eventstore.AppendResult{}, s.wrapErr(fmt.Sprintf("append to stream %q: look up event IDs", streamID), err)
		}
		st.pos = eventstore.Position{TxID: uint64(tx), Seq: uint64(pos)}
		found[id.Bytes] = st
	}
	if err := rows.Err(); err != nil {
		return eventstore.AppendResult{}, s.wrapErr(fmt.Sprintf("append to stream %q: look up event IDs", streamID), err)
	}
	if actual < 0 {
		info, err := s.streamInfo(ctx, q, streamID)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		actual = info.Version
	}
	conflict := func(reason string) (eventstore.AppendResult, error) {
		return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: streamID, Expected: expected, Actual: actual, Reason: reason}
	}
	if len(found) == 0 {
		// The IDs vanished meanwhile (cannot happen: events are never
		// deleted) or the first one was never there: a plain conflict.
		return conflict("")
	}
	first, ok := found[evs[0].ID]
	if !ok {
		return conflict(fmt.Sprintf("some event IDs are already stored, but not %s (event 0)", evs[0].ID))
	}
	base := first.version - 1
	for i, e := range evs {
		st, ok := found[e.ID]
		switch {
		case !ok:
			return conflict(fmt.Sprintf("event %s (event %d) is not stored but others of this append are", e.ID, i))
		case st.stream != streamID:
			return conflict(fmt.Sprintf("event %s (event %d) is already stored in stream %q at version %d", e.ID, i, st.stream, st.version))
		case st.version != base+int64(i)+1:
			return conflict(fmt.Sprintf("event %s (event %d) is already stored at version %d, not %d", e.ID, i, st.version, base+int64(i)+1))
		}
	}
	exact, isExact := expected.ExactVersion()
	switch {
	case isExact && base != exact:
		return conflict(fmt.Sprintf("these events are already stored at versions %d..%d, not after version %d", base+1, base+int64(len(evs)), exact))
	case expected == eventstore.NoStream && base != 0:
		return conflict(fmt.Sprintf("these events are already stored at versions %d..%d, not at the start of the stream", base+1, base+int64(len(evs))))
	case expected == eventstore.StreamExists && base == 0:
		return conflict("these events are already stored at the start of the stream, which did not exist then")
	}
	last := found[evs[len(evs)-1].ID]
	s.log.DebugContext(ctx, "postgres: append was already stored; treated as a retry",
		slog.String("stream", streamID), slog.Int64("version", last.version))
	return eventstore.AppendResult{Version: last.version, Position: last.pos}, nil
}

// wrapErr prefixes err with the package and what was being done, and adds a
// hint when the tables are missing.
func (s *Store) wrapErr(what string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "42P01", "42883", "3F000": // undefined table, function, schema
			return fmt.Errorf("postgres: %s: %w (has Migrate run on schema %s?)", what, err, s.cfg.schema)
		}
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// appendSQL appends to one stream, once the stream's transaction-scoped
// advisory lock is held (see appendPipelined). It reads the stream's
// version and last writer from its last event (a backward probe of the
// (stream_id, stream_version) index), checks the expected version ($2: -1
// any, -2 no stream, -3 stream exists, >= 0 exact), and inserts every event
// with one INSERT ... SELECT FROM unnest, or none. It returns how many
// events it wrote and the new version, transaction id and position of the
// last one.
//
// The transaction id check refuses an append from a transaction that took
// its id before the stream's last append committed (only possible inside a
// caller's transaction that wrote earlier, see AppendTx).
const appendSQL = `WITH cur AS MATERIALIZED (
    SELECT coalesce(l.stream_version, 0) AS v, coalesce(l.transaction_id, 0) AS last
      FROM (VALUES (1)) AS one (x)
      LEFT JOIN LATERAL (
            SELECT e.stream_version, e.transaction_id FROM {{schema}}.events e
             WHERE e.stream_id = $1 ORDER BY e.stream_version DESC LIMIT 1) AS l ON true
), ins AS (
    INSERT INTO {{schema}}.events AS e
        (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
    SELECT pg_current_xact_id()::text::bigint, u.id, $1, cur.v + u.ord, u.typ, u.sv, u.dat::jsonb, u.md::jsonb
      FROM cur CROSS JOIN unnest($3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[])
               WITH ORDINALITY AS u(id, typ, sv, dat, md, ord)
     WHERE NOT (($2::bigint = -2 AND cur.v > 0) OR ($2::bigint = -3 AND cur.v = 0)
                OR ($2::bigint >= 0 AND $2::bigint <> cur.v))
       AND pg_current_xact_id()::text::bigint >= cur.last
     ORDER BY u.ord
    RETURNING e.position, e.transaction_id, e.stream_version
)
SELECT count(*), max(ins.stream_version), max(ins.transaction_id), max(ins.position) FROM ins`

// append1SQL is appendSQL for one event, with plain parameters rather than
// arrays: $3 event id, $4 type, $5 schema version, $6 data, $7 metadata. It
// returns the new version, transaction id and position of the event, or no
// row when it wrote nothing.
const append1SQL = `WITH cur AS MATERIALIZED (
    SELECT coalesce(l.stream_version, 0) AS v, coalesce(l.transaction_id, 0) AS last
      FROM (VALUES (1)) AS one (x)
      LEFT JOIN LATERAL (
            SELECT e.stream_version, e.transaction_id FROM {{schema}}.events e
             WHERE e.stream_id = $1 ORDER BY e.stream_version DESC LIMIT 1) AS l ON true
)
INSERT INTO {{schema}}.events AS e
    (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
SELECT pg_current_xact_id()::text::bigint, $3::uuid, $1, cur.v + 1, $4::text, $5::int, $6::text::jsonb, $7::text::jsonb
  FROM cur
 WHERE NOT (($2::bigint = -2 AND cur.v > 0) OR ($2::bigint = -3 AND cur.v = 0)
            OR ($2::bigint >= 0 AND $2::bigint <> cur.v))
   AND pg_current_xact_id()::text::bigint >= cur.last
RETURNING e.stream_version, e.transaction_id, e.position`

// appendPipelined runs an append in one round trip: in one implicit
// transaction, the stream's advisory lock, then appendSQL; then, when
// notifications are on and this append leads (see notifier), pg_notify in
// a second implicit transaction. led reports that it carried one.
//
// The lock is a statement of its own, taken before the transaction writes
// anything or has an id (a single INSERT statement gets its transaction id
// before it runs any part of its plan): whoever holds it gets a larger
// transaction id than every earlier append to the stream, and ordering the
// global log by (transaction id, position) keeps each stream's versions in
// order. A row lock would not do: transactions queued on it already hold
// ids and are woken in any order. appendSQL then runs with a snapshot taken
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
func (s *Store) appendPipelined(ctx context.Context, name, sql string, one bool, args []any) (r appendRow, led bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return
	}
	defer conn.Release()
	c := conn.Conn()
	appendSD, err := c.Prepare(ctx, name, sql)
	if err != nil {
		return
	}
	lockSD, err := c.Prepare(ctx, "chronicle_lock_"+s.cfg.schema, s.q.lock)
	if err != nil {
		return
	}
	var notifySD *pgconn.StatementDescription
	if s.cfg.notify && s.notifier.lead() {
		led = true
		if notifySD, err = c.Prepare(ctx, "chronicle_notify", s.q.notify); err != nil {
			return
		}
	}
	m := c.TypeMap()
	encode := func(sd *pgconn.StatementDescription, args []any) ([][]byte, []int16, error) {
		if len(sd.ParamOIDs) != len(args) {
			return nil, nil, fmt.Errorf("statement %s takes %d parameters, got %d", sd.Name, len(sd.ParamOIDs), len(args))
		}
		params := make([][]byte, len(args))
		formats := make([]int16, len(args))
		for i, a := range args {
			b, err := m.Encode(sd.ParamOIDs[i], pgtype.BinaryFormatCode, a, nil)
			if err != nil {
				return nil, nil, fmt.Errorf("encode parameter %d of the append as %T", i+1, a)
			}
			params[i], formats[i] = b, pgtype.BinaryFormatCode
		}
		return params, formats, nil
	}
	params, formats, err := encode(appendSD, args)
	if err != nil {
		return
	}
	lockParams, lockFormats, err := encode(lockSD, args[:1])
	if err != nil {
		return
	}
	binary := []int16{pgtype.BinaryFormatCode}
	p := c.PgConn().StartPipeline(ctx)
	p.SendQueryStatement(lockSD, lockParams, lockFormats, binary)
	p.SendQueryStatement(appendSD, params, formats, binary)
	p.SendPipelineSync()
	if notifySD != nil {
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
	if err == nil {
		// The append's sync: its implicit transaction commits here, and a
		// commit can fail (a deferred constraint, a serialization failure,
		// a lost connection) after the INSERT returned its rows.
		var res any
		if res, err = p.GetResults(); err == nil {
			if _, ok := res.(*pgconn.PipelineSync); !ok {
				err = fmt.Errorf("unexpected pipeline result %T, want the commit's sync", res)
			}
		}
		if err != nil {
			err = fmt.Errorf("commit: %w", err)
		}
	}
	// Close reads what is left: the notification and its sync. A failed
	// notification fails nothing: the append committed and followers poll.
	cerr := p.Close()
	if err == nil && cerr != nil {
		s.log.WarnContext(ctx, "postgres: append committed but notifying followers failed; trying again shortly",
			slog.String("stream", args[0].(string)), slog.Any("error", cerr))
		led = false // so that a trailing notification covers it
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
