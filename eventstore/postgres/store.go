package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/internal/telemetry"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Component is the name under which the store's migrations are recorded in
// the schema's chronicle_migrations table.
const Component = "eventstore"

// Store is the PostgreSQL event store. It implements [eventstore.Store] and
// is safe for concurrent use. Create it with [New] and create its tables
// with [Store.Migrate].
type Store struct {
	pool    *pgxpool.Pool
	cfg     config
	log     *slog.Logger
	channel string
	q       queries
	// notifier throttles the notifications of appends.
	notifier *notifier
	// group is the group commit's flusher, nil when it is off.
	group *groupCommitter
	// loads coalesces concurrent loads (groupload.go), nil when group
	// loads are off.
	loads *loadGroups
	// tel traces and measures appends and reads (telemetry.go).
	tel *telemetry.Store
}

var _ eventstore.Store = (*Store)(nil)

// New returns a store that keeps its tables in the schema chosen by
// [WithSchema] (default "chronicle") of the database behind pool. It checks
// the options, joining every problem into one error, and does nothing else:
// no query, no goroutine. Call [Store.Migrate] to create the tables.
func New(pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	cfg := config{schema: pgmigrate.DefaultSchema, pollInterval: DefaultPollInterval, notify: true,
		maxEventSize: eventstore.DefaultMaxEventSize, groupCommit: true, groupLoads: true}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	err := cfg.validate()
	if pool == nil {
		err = errors.Join(errors.New("postgres: nil pool"), err)
	}
	if err != nil {
		return nil, err
	}
	log := cfg.logger
	if log == nil {
		log = slog.Default()
	}
	channel := cfg.schema + "_events"
	if len(channel) > 63 {
		channel = cfg.schema
	}
	s := &Store{pool: pool, cfg: cfg, log: log, channel: channel, q: newQueries(pgmigrate.Quote(cfg.schema), cfg.schema), notifier: newNotifier(),
		tel: telemetry.NewStore(cfg.telemetry, "postgresql", !cfg.noTelemetry)}
	if cfg.groupCommit {
		s.group = newGroupCommitter(s, pgmigrate.Quote(cfg.schema))
	}
	if cfg.groupLoads {
		s.loads = &loadGroups{s: s}
	}
	return s, nil
}

// Close stops the group commit's flusher (see [WithGroupCommit]) once its
// batch in flight, if any, has committed, and closes the connection it
// holds; appends queued or made afterwards run alone, each on a pool
// connection, so Close fails no append. It stops the group loads'
// flushers (see [WithGroupLoads]) the same way: loads queued or made
// afterwards run their own queries. It does not close the pool, which is
// the caller's. Close is safe to call twice, and unnecessary without group
// commit and group loads; a Store that is never closed lets its flushers
// exit on their own after a few idle seconds.
func (s *Store) Close() {
	if s.group != nil {
		s.group.close()
	}
	if s.loads != nil {
		s.loads.close()
	}
}

// MaxEventSize returns the largest event the store accepts, in bytes; see
// [WithMaxEventSize]. A relay compares it with the NATS server's
// max_payload.
func (s *Store) MaxEventSize() int { return s.cfg.maxEventSize }

// Schema returns the name of the schema holding the store's tables.
func (s *Store) Schema() string { return s.cfg.schema }

// Channel returns the name of the LISTEN/NOTIFY channel appends notify.
func (s *Store) Channel() string { return s.channel }

// Migrate creates or upgrades the store's tables. It is idempotent and
// holds an advisory lock, so processes starting together do not race.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := pgmigrate.Load(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := pgmigrate.Apply(ctx, s.pool, s.cfg.schema, Component, ms); err != nil {
		return fmt.Errorf("postgres: migrate schema %s: %w", s.cfg.schema, err)
	}
	return nil
}

type queries struct {
	appendOne, appendMany                                                      appendStmt
	lock, appendState, readStreamFwd, readStreamBwd, readAll, head, streamInfo string
	checkIDs, status, listStreams, listStreamsCat, notify, heldBack            string
	readAllCat, heldBackCat                                                    string
	// events is the events table's qualified name.
	events string
}

const recordColumns = `position, transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at`

// horizon is an uncorrelated subquery (evaluated once per statement) giving
// the oldest transaction id still running: rows written by older
// transactions can no longer appear behind a reader.
const horizon = `(SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint)`

func newQueries(q, schema string) queries {
	one, many := appendStatements(q, schema)
	return queries{
		events:     q + ".events",
		appendOne:  one,
		appendMany: many,
		lock:       `SELECT pg_advisory_xact_lock(hashtextextended(` + quoteLiteral(q+".") + ` || $1, 7157402093))`,
		appendState: `SELECT coalesce(l.stream_version, 0), coalesce(l.transaction_id, 0),
				EXISTS (SELECT 1 FROM ` + q + `.events x WHERE x.event_id = $2),
				pg_current_xact_id_if_assigned()::text::bigint
			FROM (VALUES (1)) AS one (x)
			LEFT JOIN LATERAL (SELECT e.stream_version, e.transaction_id FROM ` + q + `.events e
				WHERE e.stream_id = $1 ORDER BY e.stream_version DESC LIMIT 1) AS l ON true`,
		readStreamFwd: `SELECT ` + recordColumns + ` FROM ` + q + `.events
			WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3`,
		readStreamBwd: `SELECT ` + recordColumns + ` FROM ` + q + `.events
			WHERE stream_id = $1 AND stream_version <= $2 ORDER BY stream_version DESC LIMIT $3`,
		readAll: `SELECT ` + recordColumns + ` FROM ` + q + `.events
			WHERE (transaction_id, position) > ($1, $2) AND transaction_id < ` + horizon + `
			  AND (cardinality($3::text[]) = 0 OR split_part(stream_id, '-', 1) = ANY($3))
			  AND (cardinality($4::text[]) = 0 OR type = ANY($4))
			ORDER BY transaction_id, position LIMIT $5`,
		// With categories: for each distinct category, its next events
		// from the category index (migration 0003), merged in log order.
		// The horizon is evaluated once for the whole statement.
		readAllCat: `SELECT x.* FROM (SELECT DISTINCT u.cat FROM unnest($3::text[]) AS u (cat)) AS c
			CROSS JOIN LATERAL (
				SELECT ` + recordColumns + ` FROM ` + q + `.events
				 WHERE split_part(stream_id, '-', 1) = c.cat
				   AND (transaction_id, position) > ($1, $2) AND transaction_id < ` + horizon + `
				   AND (cardinality($4::text[]) = 0 OR type = ANY($4))
				 ORDER BY transaction_id, position LIMIT $5) AS x
			ORDER BY x.transaction_id, x.position LIMIT $5`,
		head: `SELECT transaction_id, position FROM ` + q + `.events
			WHERE transaction_id < ` + horizon + ` ORDER BY transaction_id DESC, position DESC LIMIT 1`,
		streamInfo: `SELECT stream_version FROM ` + q + `.events WHERE stream_id = $1 ORDER BY stream_version DESC LIMIT 1`,
		checkIDs: `SELECT event_id, stream_id, stream_version, transaction_id, position FROM ` + q + `.events
			WHERE event_id = ANY($1)`,
		status: `WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin)
			SELECT h.xmin,
			  (SELECT count(*) FROM ` + q + `.events e WHERE e.transaction_id >= h.xmin),
			  (SELECT e.transaction_id FROM ` + q + `.events e WHERE e.transaction_id < h.xmin ORDER BY e.transaction_id DESC, e.position DESC LIMIT 1),
			  (SELECT e.position FROM ` + q + `.events e WHERE e.transaction_id < h.xmin ORDER BY e.transaction_id DESC, e.position DESC LIMIT 1)
			FROM h`,
		// Streams are listed by skipping through the (stream_id,
		// stream_version) index, one probe per stream. A category's
		// streams are the ID equal to it and the IDs in
		// [category + "-", category + "."): '.' follows '-' in byte order.
		listStreams: `WITH RECURSIVE s (id) AS (
				(SELECT e.stream_id FROM ` + q + `.events e WHERE e.stream_id > $1 ORDER BY e.stream_id LIMIT 1)
				UNION ALL
				SELECT (SELECT e.stream_id FROM ` + q + `.events e WHERE e.stream_id > s.id ORDER BY e.stream_id LIMIT 1)
				  FROM s WHERE s.id IS NOT NULL)
			SELECT s.id, (SELECT e.stream_version FROM ` + q + `.events e WHERE e.stream_id = s.id
				ORDER BY e.stream_version DESC LIMIT 1)
			  FROM s WHERE s.id IS NOT NULL LIMIT $2`,
		listStreamsCat: `WITH RECURSIVE s (id) AS (
				(SELECT e.stream_id FROM ` + q + `.events e
				  WHERE e.stream_id > $1 AND e.stream_id >= $3 AND e.stream_id < $3 || '.'
				    AND (e.stream_id = $3 OR e.stream_id >= $3 || '-')
				  ORDER BY e.stream_id LIMIT 1)
				UNION ALL
				SELECT (SELECT e.stream_id FROM ` + q + `.events e
				  WHERE e.stream_id > s.id AND e.stream_id < $3 || '.' AND (e.stream_id = $3 OR e.stream_id >= $3 || '-')
				  ORDER BY e.stream_id LIMIT 1)
				  FROM s WHERE s.id IS NOT NULL)
			SELECT s.id, (SELECT e.stream_version FROM ` + q + `.events e WHERE e.stream_id = s.id
				ORDER BY e.stream_version DESC LIMIT 1)
			  FROM s WHERE s.id IS NOT NULL LIMIT $2`,
		notify: `SELECT pg_notify($1, '')`,
		// Any committed record after the last one read, held back or
		// readable since the read: checking transaction_id >= horizon
		// instead would miss a record whose holder ended between the
		// read and this check.
		heldBackCat: `SELECT EXISTS (SELECT 1 FROM unnest($3::text[]) AS c (cat)
			CROSS JOIN LATERAL (SELECT 1 FROM ` + q + `.events
				WHERE split_part(stream_id, '-', 1) = c.cat AND (transaction_id, position) > ($1, $2)
				  AND (cardinality($4::text[]) = 0 OR type = ANY($4)) LIMIT 1) AS x)`,
		heldBack: `SELECT EXISTS (SELECT 1 FROM ` + q + `.events
			WHERE (transaction_id, position) > ($1, $2)
			  AND (cardinality($3::text[]) = 0 OR split_part(stream_id, '-', 1) = ANY($3))
			  AND (cardinality($4::text[]) = 0 OR type = ANY($4)))`,
	}
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
