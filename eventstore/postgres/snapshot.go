package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

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
	rows, err := s.pool.Query(ctx, s.q.readWithSnapshot(table), streamID, limit)
	if err != nil {
		return snapshot.Snapshot{}, nil, true, s.wrapErr(fmt.Sprintf("read stream %q with its snapshot", streamID), err)
	}
	defer rows.Close()
	var (
		sv, pos, tx, version *int64
		rev, schemaVersion   *int32
		sdata, data, md      []byte
		taken, at            *time.Time
		id                   pgtype.UUID
		typ                  *string
	)
	snap.StreamID = streamID
	for rows.Next() {
		data, md, sdata = nil, nil, nil
		if err := rows.Scan(&sv, &rev, &sdata, &taken, &pos, &tx, &id, &version, &typ, &schemaVersion, &data, &md, &at); err != nil {
			return snapshot.Snapshot{}, nil, true, s.wrapErr(fmt.Sprintf("read stream %q with its snapshot", streamID), err)
		}
		if sv != nil {
			snap.Version, snap.Revision, snap.Data, snap.TakenAt = *sv, int(*rev), sdata, *taken
			continue
		}
		r := eventstore.Record{ID: id.Bytes, StreamID: streamID, StreamVersion: *version, Type: *typ,
			SchemaVersion: int(*schemaVersion), Data: data, RecordedAt: *at,
			Position: eventstore.Position{TxID: uint64(*tx), Seq: uint64(*pos)}}
		if md != nil {
			if err := json.Unmarshal(md, &r.Metadata); err != nil {
				return snapshot.Snapshot{}, nil, true, fmt.Errorf("postgres: decode metadata of event %s in stream %q at version %d: %w", r.ID, streamID, r.StreamVersion, err)
			}
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return snapshot.Snapshot{}, nil, true, s.wrapErr(fmt.Sprintf("read stream %q with its snapshot", streamID), err)
	}
	// UNION ALL keeps each branch's order in practice; make sure.
	if !slices.IsSortedFunc(recs, func(a, b eventstore.Record) int { return compareInt(a.StreamVersion, b.StreamVersion) }) {
		slices.SortFunc(recs, func(a, b eventstore.Record) int { return compareInt(a.StreamVersion, b.StreamVersion) })
	}
	if snap.Version == 0 {
		snap = snapshot.Snapshot{}
	}
	return snap, recs, true, nil
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
