package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chronicle-go/chronicle/eventstore"
)

// failedAppend is what is known about an append that wrote nothing: the
// error the insert failed with, or the state of the stream read after the
// insert returned no rows.
type failedAppend struct {
	// failed reports that the insert returned an error; code and
	// constraint are its SQLSTATE and constraint when PostgreSQL sent one
	// (empty for a lost connection, a canceled context...).
	failed           bool
	code, constraint string
	// inTx reports an append in the caller's transaction.
	inTx     bool
	expected eventstore.ExpectedVersion
	// When the insert returned no rows: the stream's version and the
	// transaction id of its last event, whether the first event's ID is
	// stored, and the id of the transaction appending when it has one.
	actual, last int64
	known        bool
	myTx         *int64
}

// outcome says why an append wrote nothing, and so what to tell the caller.
type outcome int

const (
	// outcomeUnknown: the append failed and may or may not have been
	// committed (a lost connection, a failed commit); pass the error on.
	outcomeUnknown outcome = iota
	// outcomeConflict: the stream is not at the expected version.
	outcomeConflict
	// outcomeStored: the event IDs are stored already: either a retry of
	// an append that succeeded (same stream, versions and order) or a
	// conflict; resolveRetry looks them up to decide.
	outcomeStored
	// outcomeStoredTxAborted: the IDs are stored and PostgreSQL refused
	// the insert inside the caller's transaction, which is now aborted: a
	// conflict whose actual version is unknown.
	outcomeStoredTxAborted
	// outcomeOutOfOrder: the caller's transaction took its id before the
	// stream's last append committed; appending from it would break the
	// stream's order in the global log.
	outcomeOutOfOrder
	// outcomeStaleSnapshot: another append took the version after the
	// snapshot of the caller's REPEATABLE READ or SERIALIZABLE
	// transaction was taken.
	outcomeStaleSnapshot
	// outcomeInvalidInput: PostgreSQL refused the data (SQLSTATE class 22,
	// data exception, or 54, program limit exceeded); retrying cannot
	// help.
	outcomeInvalidInput
)

// classify decides why an append wrote nothing. It is the one place that
// reads the insert's error and the stream's state; the caller turns the
// outcome into an error.
func classify(f failedAppend) outcome {
	if f.failed {
		switch {
		case f.code == "23505" && f.constraint == "events_event_id_key":
			if f.inTx {
				return outcomeStoredTxAborted
			}
			return outcomeStored
		case f.code == "23505" && f.constraint == "events_stream_id_stream_version_key":
			// Only in a caller's REPEATABLE READ or SERIALIZABLE
			// transaction, whose snapshot predates the stream's last
			// append: READ COMMITTED statements see it once they hold
			// the lock.
			return outcomeStaleSnapshot
		case strings.HasPrefix(f.code, "22") || strings.HasPrefix(f.code, "54"):
			return outcomeInvalidInput
		}
		return outcomeUnknown
	}
	switch {
	case !f.expected.Matches(f.actual) && f.known:
		return outcomeStored
	case f.myTx != nil && *f.myTx < f.last:
		return outcomeOutOfOrder
	}
	// A version conflict; or the stream moved on since the append read it,
	// which was a conflict then.
	return outcomeConflict
}

// notWritten turns an append that wrote nothing (err is the insert's
// error, or nil when it returned no rows) into the caller's result.
func (s *Store) notWritten(ctx context.Context, tx pgx.Tx, streamID string, expected eventstore.ExpectedVersion, evs []eventstore.Event, meta []*string, err error) (eventstore.AppendResult, error) {
	what := func() string { return fmt.Sprintf("append %d events to stream %q", len(evs), streamID) }
	f := failedAppend{inTx: tx != nil, expected: expected, actual: -1}
	var q querier = s.pool
	if tx != nil {
		q = tx
	}
	var pe *pgconn.PgError
	if err != nil {
		f.failed = true
		if errors.As(err, &pe) {
			f.code, f.constraint = pe.Code, pe.ConstraintName
		}
	} else if err := q.QueryRow(ctx, s.q.appendState, streamID, pgtype.UUID{Bytes: evs[0].ID, Valid: true}).
		Scan(&f.actual, &f.last, &f.known, &f.myTx); err != nil {
		return eventstore.AppendResult{}, s.wrapErr(what(), err)
	}
	return s.explain(ctx, q, f, streamID, expected, evs, meta, err, pe)
}

// explain turns what is known about an append that wrote nothing into the
// caller's result: f as classify reads it, err and pe the insert's error
// and its PostgreSQL error, if any; q reads what more is needed.
func (s *Store) explain(ctx context.Context, q querier, f failedAppend, streamID string, expected eventstore.ExpectedVersion, evs []eventstore.Event, meta []*string, err error, pe *pgconn.PgError) (eventstore.AppendResult, error) {
	what := func() string { return fmt.Sprintf("append %d events to stream %q", len(evs), streamID) }
	conflict := func(actual int64, reason string) (eventstore.AppendResult, error) {
		return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: streamID, Expected: expected, Actual: actual, Reason: reason}
	}
	switch classify(f) {
	case outcomeConflict:
		return conflict(f.actual, "")
	case outcomeStored:
		return s.resolveRetry(ctx, q, streamID, expected, evs, f.actual)
	case outcomeStoredTxAborted:
		return conflict(-1, "some event IDs are already stored; PostgreSQL refused the insert and the transaction is aborted")
	case outcomeOutOfOrder:
		return conflict(f.actual, "the transaction started writing before the stream's last append committed; appending from it would break the stream's order in the global log, retry in a new transaction")
	case outcomeStaleSnapshot:
		return conflict(-1, "the stream changed after the transaction's snapshot was taken; retry in a new transaction")
	case outcomeInvalidInput:
		return eventstore.AppendResult{}, s.refusedInput(ctx, streamID, evs, meta, pe)
	}
	return eventstore.AppendResult{}, s.wrapErr(what(), err)
}

// refusedInput reports data PostgreSQL refused although PrepareAppend let
// it through, naming the event: it casts each event's data and metadata to
// jsonb in one batch, where the first failing cast is the culprit (the
// server skips the rest of a batch after an error).
func (s *Store) refusedInput(ctx context.Context, streamID string, evs []eventstore.Event, meta []*string, pe *pgconn.PgError) error {
	refused := func(index int, typ, field string, e *pgconn.PgError) error {
		return &eventstore.ValidationError{Stream: streamID, Index: index, Type: typ, Field: field,
			Problem: fmt.Sprintf("PostgreSQL refused it: %s (SQLSTATE %s)", e.Message, e.Code), Err: e}
	}
	b := &pgx.Batch{}
	for i, e := range evs {
		b.Queue(`SELECT $1::text::jsonb IS NULL`, string(e.Data))
		b.Queue(`SELECT $1::text::jsonb IS NULL`, meta[i])
	}
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	for i, e := range evs {
		for _, field := range []string{"data", "metadata"} {
			var null bool
			err := br.QueryRow().Scan(&null)
			var cause *pgconn.PgError
			if errors.As(err, &cause) && classify(failedAppend{failed: true, code: cause.Code}) == outcomeInvalidInput {
				return refused(i, e.Type, field, cause)
			}
			if err != nil {
				return refused(-1, "", "events", pe) // the culprit is unknown
			}
		}
	}
	return refused(-1, "", "events", pe)
}

// resolveRetry decides, once some event IDs turned out to be stored
// already, whether the append is a retry of one that succeeded (same
// stream, same versions, same order) or a conflict.
// actual is the stream's version, or -1 when it is not known yet.
func (s *Store) resolveRetry(ctx context.Context, q querier, streamID string, expected eventstore.ExpectedVersion, evs []eventstore.Event, actual int64) (eventstore.AppendResult, error) {
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
	s.tel.IdempotentRetry(ctx)
	return eventstore.AppendResult{Version: last.version, Position: last.pos}, nil
}
