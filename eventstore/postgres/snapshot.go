package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/snapshot"
)

// snapshotTable is what a PostgreSQL snapshot store (snappg.Store) offers
// so that its snapshots and this store's events can be read in one query:
// its table's quoted name, when it uses pool.
type snapshotTable interface {
	SnapshotTable(pool *pgxpool.Pool) (table string, ok bool)
}

// ReadStreamWithSnapshot reads, in one query and one round trip, the
// latest snapshot of streamID kept by snapshots and up to limit events of
// the stream from the snapshot's version (included, so that a reader can
// check the stream has it), or from version 1 without a snapshot. It is
// the one-query load of aggregate.Repository (an optional interface there,
// aggregate.SnapshotStreamReader).
//
// ok is false, and nothing is read, when snapshots is not a PostgreSQL
// snapshot store using this store's pool (snappg.Store on the same
// *pgxpool.Pool): the caller then reads the two separately. A stream
// without a snapshot returns a zero Snapshot (Version 0); a stream that
// does not exist returns no records and, if it has no snapshot either, no
// error: the caller decides what a missing stream means.
func (s *Store) ReadStreamWithSnapshot(ctx context.Context, snapshots snapshot.Store, streamID string, limit int) (snap snapshot.Snapshot, recs []eventstore.Record, ok bool, err error) {
	t, isTable := snapshots.(snapshotTable)
	if !isTable {
		return snapshot.Snapshot{}, nil, false, nil
	}
	table, same := t.SnapshotTable(s.pool)
	if !same {
		return snapshot.Snapshot{}, nil, false, nil
	}
	if err := eventstore.ValidateStreamID(streamID); err != nil {
		return snapshot.Snapshot{}, nil, true, err
	}
	if limit <= 0 {
		limit = DefaultStreamBatchSize
	}
	if s.loads != nil {
		if g := s.loads.group(table); g != nil {
			snap, recs, err = g.read(ctx, streamID, limit)
			return snap, recs, true, err
		}
	}
	snap, recs, err = s.readWithSnapshot(ctx, s.q.readWithSnapshot(table), streamID, limit)
	return snap, recs, true, err
}

// readWithSnapshot runs ReadStreamWithSnapshot's own query for one stream,
// sql (queries.readWithSnapshot of the snapshots table).
func (s *Store) readWithSnapshot(ctx context.Context, sql, streamID string, limit int) (snap snapshot.Snapshot, recs []eventstore.Record, err error) {
	rows, err := s.pool.Query(ctx, sql, streamID, limit)
	if err != nil {
		return snapshot.Snapshot{}, nil, readSnapErr(s, streamID, err)
	}
	defer rows.Close()
	var sc snapRows
	dest := sc.dest()[1:] // no ordinal
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return snapshot.Snapshot{}, nil, readSnapErr(s, streamID, err)
		}
		if sc.isSnapshot() {
			snap = sc.snapshot(streamID)
			continue
		}
		r, err := sc.record(streamID)
		if err != nil {
			return snapshot.Snapshot{}, nil, err
		}
		if recs == nil {
			recs = make([]eventstore.Record, 0, min(limit, firstTail))
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return snapshot.Snapshot{}, nil, readSnapErr(s, streamID, err)
	}
	sortRecords(recs)
	return snap, recs, nil
}

// firstTail is the capacity of a one-query load's first slice of records:
// a snapshot's tail is short (shorter than the snapshot policy's interval),
// and a longer one grows it by doubling.
const firstTail = 8

// snapRows scans the rows of the queries reading snapshots and records
// together: a snapshot row (record columns null) or a record row
// (snapshot columns null), after the stream's ordinal in a batch. It
// scans into values, not pointers (no allocation but the data), and
// records of the same type share their type's string.
type snapRows struct {
	ord                  int64
	sv, pos, tx, version pgtype.Int8
	rev, schemaVersion   pgtype.Int4
	sdata, data          []byte
	taken, at            pgtype.Timestamptz
	id                   pgtype.UUID
	typ, md              pgtype.DriverBytes // valid until the next row
	lastType             string
	typeNames            map[string]string
}

// dest returns the scan destinations, the ordinal first.
func (c *snapRows) dest() []any {
	return []any{&c.ord, &c.sv, &c.rev, &c.sdata, &c.taken, &c.pos, &c.tx, &c.id, &c.version, &c.typ, &c.schemaVersion, &c.data, &c.md, &c.at}
}

// isSnapshot reports whether the row scanned is a snapshot's.
func (c *snapRows) isSnapshot() bool { return c.sv.Valid }

// snapshot returns the snapshot of stream scanned, and lets the next row
// scan into a new data slice.
func (c *snapRows) snapshot(stream string) snapshot.Snapshot {
	sn := snapshot.Snapshot{StreamID: stream, Version: c.sv.Int64, Revision: int(c.rev.Int32), Data: c.sdata, TakenAt: c.taken.Time}
	c.sdata = nil
	return sn
}

// record returns the record of stream scanned, and lets the next row scan
// into a new data slice.
func (c *snapRows) record(stream string) (eventstore.Record, error) {
	if !c.version.Valid {
		return eventstore.Record{}, fmt.Errorf("postgres: read stream %q with its snapshot: a row with neither snapshot nor record", stream)
	}
	if string(c.typ) != c.lastType {
		if t, ok := c.typeNames[string(c.typ)]; ok {
			c.lastType = t
		} else {
			c.lastType = string(c.typ)
			if c.typeNames == nil {
				c.typeNames = make(map[string]string)
			}
			if len(c.typeNames) < maxTypeNames {
				c.typeNames[c.lastType] = c.lastType
			}
		}
	}
	r := eventstore.Record{ID: c.id.Bytes, StreamID: stream, StreamVersion: c.version.Int64, Type: c.lastType,
		SchemaVersion: int(c.schemaVersion.Int32), Data: c.data, RecordedAt: c.at.Time,
		Position: eventstore.Position{TxID: uint64(c.tx.Int64), Seq: uint64(c.pos.Int64)}}
	c.data = nil
	if c.md != nil {
		if err := json.Unmarshal(c.md, &r.Metadata); err != nil {
			return eventstore.Record{}, fmt.Errorf("postgres: decode metadata of event %s in stream %q at version %d: %w", r.ID, stream, r.StreamVersion, err)
		}
	}
	return r, nil
}

// sortRecords puts the records of one stream in version order: UNION ALL
// and LATERAL keep each branch's order in practice; make sure.
func sortRecords(recs []eventstore.Record) {
	if !slices.IsSortedFunc(recs, func(a, b eventstore.Record) int { return compareInt(a.StreamVersion, b.StreamVersion) }) {
		slices.SortFunc(recs, func(a, b eventstore.Record) int { return compareInt(a.StreamVersion, b.StreamVersion) })
	}
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readWithSnapshot is the query of ReadStreamWithSnapshot for the
// snapshots table: the snapshot row (record columns null), then the events
// from its version (snapshot columns null).
func (q queries) readWithSnapshot(table string) string {
	return `WITH s AS MATERIALIZED (SELECT version, revision, data, taken_at FROM ` + table + ` WHERE stream_id = $1)
SELECT s.version, s.revision, s.data, s.taken_at, NULL::bigint, NULL::bigint, NULL::uuid, NULL::bigint,
       NULL::text, NULL::int, NULL::jsonb, NULL::jsonb, NULL::timestamptz FROM s
UNION ALL
(SELECT NULL::bigint, NULL::int, NULL::bytea, NULL::timestamptz, e.position, e.transaction_id, e.event_id, e.stream_version,
        e.type, e.schema_version, e.data, e.metadata, e.recorded_at
   FROM ` + q.events + ` e
  WHERE e.stream_id = $1 AND e.stream_version >= coalesce((SELECT version FROM s), 1)
  ORDER BY e.stream_version LIMIT $2)`
}
