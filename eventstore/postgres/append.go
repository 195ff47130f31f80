package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
//
// Input is checked first with [eventstore.PrepareAppend] (with the store's
// [Store.MaxEventSize]); should PostgreSQL still refuse an event's data
// (SQLSTATE classes 22 and 54, for example a server whose max_stack_depth
// cannot parse deeply nested JSON), the error matches
// [eventstore.ErrInvalidInput] and names the event, since retrying cannot
// help.
func (s *Store) Append(ctx context.Context, streamID string, expected eventstore.ExpectedVersion, events ...eventstore.Event) (res eventstore.AppendResult, err error) {
	ctx, events, op := s.tel.StartAppend(ctx, streamID, expected, events)
	defer op.End(&res, &err)
	evs, err := eventstore.PrepareAppend(streamID, expected, events, s.cfg.maxEventSize)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.appendOn(ctx, nil, streamID, expected, evs)
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
// -1 (unknown). Input PostgreSQL refuses aborts tx too.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, streamID string, expected eventstore.ExpectedVersion, events ...eventstore.Event) (res eventstore.AppendResult, err error) {
	ctx, events, op := s.tel.StartAppend(ctx, streamID, expected, events)
	defer op.End(&res, &err)
	evs, err := eventstore.PrepareAppend(streamID, expected, events, s.cfg.maxEventSize)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if tx == nil {
		return eventstore.AppendResult{}, fmt.Errorf("postgres: append to stream %q: nil transaction", streamID)
	}
	return s.appendOn(ctx, tx, streamID, expected, evs)
}

// appendRow is what the append statement returns.
type appendRow struct {
	n                int64 // events written: all or none
	version, tx, pos *int64
}

// appendArgs returns the statement for evs and its arguments, and each
// event's metadata as JSON (nil for none).
func (s *Store) appendArgs(streamID string, expected eventstore.ExpectedVersion, evs []eventstore.Event) (appendStmt, []any, []*string, error) {
	meta := make([]*string, len(evs))
	for i, e := range evs {
		if e.Metadata != nil {
			b, err := json.Marshal(e.Metadata)
			if err != nil {
				return appendStmt{}, nil, nil, fmt.Errorf("postgres: append to stream %q: encode metadata of event %d: %w", streamID, i, err)
			}
			m := string(b)
			meta[i] = &m
		}
	}
	if len(evs) == 1 {
		e := evs[0]
		return s.q.appendOne, []any{streamID, expectedParam(expected), pgtype.UUID{Bytes: e.ID, Valid: true},
			e.Type, int32(e.SchemaVersion), string(e.Data), meta[0]}, meta, nil
	}
	ids := make([]pgtype.UUID, len(evs))
	types := make([]string, len(evs))
	svs := make([]int32, len(evs))
	data := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = pgtype.UUID{Bytes: e.ID, Valid: true}
		types[i] = e.Type
		svs[i] = int32(e.SchemaVersion) // PrepareAppend kept it within int32
		data[i] = string(e.Data)
	}
	return s.q.appendMany, []any{streamID, expectedParam(expected), ids, types, svs, data, meta}, meta, nil
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

// appendOn appends in tx, or through the pool in one round trip when tx is
// nil; when nothing was written it finds out why (see classify).
func (s *Store) appendOn(ctx context.Context, tx pgx.Tx, streamID string, expected eventstore.ExpectedVersion, evs []eventstore.Event) (eventstore.AppendResult, error) {
	st, args, meta, err := s.appendArgs(streamID, expected, evs)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	var (
		r       appendRow
		found   *failedAppend // what a group commit found under the lock
		grouped bool
	)
	if tx == nil && s.group != nil {
		var alone bool
		r, found, alone, err = s.appendGrouped(ctx, st, streamID, expected, evs, meta, args)
		grouped = !alone
	}
	switch {
	case grouped:
	case tx != nil:
		r, err = s.appendInTx(ctx, tx, st, args)
	default:
		var led bool
		notice := noticeLead
		if s.group != nil {
			notice = noticeTrail // alone after the group commit refused it: no append waits for a notification
		}
		r, led, err = s.appendPipelined(ctx, st.name, st.sql, st.one, notice, args)
		if err == nil && r.n > 0 && s.cfg.notify && !led {
			s.trail()
		}
	}
	n := int64(len(evs))
	switch {
	case err == nil && r.n == n && r.version != nil && r.tx != nil && r.pos != nil:
		return eventstore.AppendResult{Version: *r.version, Position: eventstore.Position{TxID: uint64(*r.tx), Seq: uint64(*r.pos)}}, nil
	case err == nil && r.n != 0:
		return eventstore.AppendResult{}, fmt.Errorf("postgres: append %d events to stream %q: %d rows written, want %d", n, streamID, r.n, n)
	case err == nil && found != nil:
		return s.explain(ctx, s.pool, *found, streamID, expected, evs, meta, nil, nil)
	}
	return s.notWritten(ctx, tx, streamID, expected, evs, meta, err)
}

// appendInTx runs the append in the caller's transaction, in one batch: the
// lock first, so that the append's snapshot is taken once it is held; the
// notification goes out if and when tx commits.
func (s *Store) appendInTx(ctx context.Context, tx pgx.Tx, st appendStmt, args []any) (r appendRow, err error) {
	b := &pgx.Batch{}
	b.Queue(s.q.lock, args[0])
	b.Queue(st.sql, args...)
	if s.cfg.notify {
		b.Queue(s.q.notify, s.channel)
	}
	br := tx.SendBatch(ctx, b)
	if _, err = br.Exec(); err == nil {
		if st.one {
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
	return r, err
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
