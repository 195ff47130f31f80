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
	res, err := s.appendOn(ctx, s.pool, streamID, expected, evs)
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
// conflict and, if PostgreSQL refused the insert, tx is aborted; it cannot
// tell an idempotent retry from a conflict the way [Store.Append] does.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, streamID string, expected eventstore.ExpectedVersion, events ...eventstore.Event) (eventstore.AppendResult, error) {
	evs, err := eventstore.PrepareAppend(streamID, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if tx == nil {
		return eventstore.AppendResult{}, fmt.Errorf("postgres: append to stream %q: nil transaction", streamID)
	}
	res, err := s.appendOn(ctx, tx, streamID, expected, evs)
	var ke *knownIDError
	if errors.As(err, &ke) {
		return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: streamID, Expected: expected, Actual: ke.actual,
			Reason: "some event IDs are already stored"}
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

func (s *Store) appendOn(ctx context.Context, q querier, streamID string, expected eventstore.ExpectedVersion, evs []eventstore.Event) (eventstore.AppendResult, error) {
	n := len(evs)
	ids := make([]pgtype.UUID, n)
	types := make([]string, n)
	svs := make([]int32, n)
	data := make([]string, n)
	meta := make([]*string, n)
	for i, e := range evs {
		ids[i] = pgtype.UUID{Bytes: e.ID, Valid: true}
		types[i] = e.Type
		svs[i] = int32(e.SchemaVersion)
		data[i] = string(e.Data)
		if e.Metadata != nil {
			b, err := json.Marshal(e.Metadata)
			if err != nil {
				return eventstore.AppendResult{}, fmt.Errorf("postgres: append to stream %q: encode metadata of event %d: %w", streamID, i, err)
			}
			m := string(b)
			meta[i] = &m
		}
	}
	channel := ""
	if s.cfg.notify {
		channel = s.channel
	}
	var (
		status  string
		version int64
		tx, pos *int64
		known   bool
	)
	err := q.QueryRow(ctx, s.q.append, streamID, int64(expected), ids, types, svs, data, meta, channel).
		Scan(&status, &version, &tx, &pos, &known)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "events_event_id_key" {
			return eventstore.AppendResult{}, &knownIDError{sentinel: errIDTaken, actual: -1}
		}
		return eventstore.AppendResult{}, s.wrapErr(fmt.Sprintf("append %d events to stream %q", n, streamID), err)
	}
	switch {
	case status == "ok" && tx != nil && pos != nil:
		return eventstore.AppendResult{Version: version, Position: eventstore.Position{TxID: uint64(*tx), Seq: uint64(*pos)}}, nil
	case status == "conflict" && known:
		return eventstore.AppendResult{}, &knownIDError{sentinel: errKnownID, actual: version}
	case status == "conflict":
		return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: streamID, Expected: expected, Actual: version}
	case status == "stale":
		return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: streamID, Expected: expected, Actual: version,
			Reason: "the transaction started writing before the stream's last append committed; appending from it would break the stream's order in the global log, retry in a new transaction"}
	}
	return eventstore.AppendResult{}, fmt.Errorf("postgres: append to stream %q: unexpected reply %q from append_events", streamID, status)
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
	switch {
	case expected.IsExact() && base != int64(expected):
		return conflict(fmt.Sprintf("these events are already stored at versions %d..%d, not after version %d", base+1, base+int64(len(evs)), int64(expected)))
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
