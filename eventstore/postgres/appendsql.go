package postgres

import "strings"

// appendStmt is one of the two append statements and the name it is
// prepared under on each connection.
type appendStmt struct {
	name, sql string
	// one is true for the one-event statement, which returns the new
	// version, transaction id and position of the event, or no row when it
	// wrote nothing. The other returns one row: how many events it wrote
	// (all or none) and the new version, transaction id and position of
	// the last one.
	one bool
}

// appendTemplate is the append, once the stream's transaction-scoped
// advisory lock is held (see appendPipelined). It reads the stream's
// version and last writer from its last event (a backward probe of the
// (stream_id, stream_version) index), checks the expected version ($2: -1
// any, -2 no stream, -3 stream exists, >= 0 exact; see expectedParam), and
// inserts every event or none.
//
// The transaction id check refuses an append from a transaction that took
// its id before the stream's last append committed (only possible inside a
// caller's transaction that wrote earlier, see AppendTx).
//
// The concurrency rule is written here once. The two statements built from
// it differ only in where the events come from ({{rows}}: plain parameters
// for one event, since arrays and unnest cost more to encode, plan and run
// than the whole insert; arrays unnested WITH ORDINALITY for several) and in
// what they return ({{insert}} is wrapped to count the rows for several).
const appendTemplate = `WITH cur AS MATERIALIZED (
    SELECT coalesce(l.stream_version, 0) AS v, coalesce(l.transaction_id, 0) AS last
      FROM (VALUES (1)) AS one (x)
      LEFT JOIN LATERAL (
            SELECT e.stream_version, e.transaction_id FROM {{schema}}.events e
             WHERE e.stream_id = $1 ORDER BY e.stream_version DESC LIMIT 1) AS l ON true
){{insert}}`

// appendInsert is the INSERT of appendTemplate; {{rows}} names the events'
// columns (id, ord, typ, sv, dat, md) and {{from}} their source.
const appendInsert = `
INSERT INTO {{schema}}.events AS e
    (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
SELECT pg_current_xact_id()::text::bigint, {{id}}, $1, cur.v + {{ord}}, {{typ}}, {{sv}}, {{dat}}::jsonb, {{md}}::jsonb
  FROM cur{{from}}
 WHERE {{accept}}{{order}}
RETURNING e.stream_version, e.transaction_id, e.position`

// acceptRule is the concurrency rule every append statement applies, the
// single-stream ones and the group commit's (groupsql): the expected
// version {{exp}} (-1 any, -2 no stream, -3 stream exists, >= 0 exact; see
// expectedParam) against the stream's version {{v}}, and the appending
// transaction's id against that of the stream's last writer {{last}}.
const acceptRule = `NOT (({{exp}} = -2 AND {{v}} > 0) OR ({{exp}} = -3 AND {{v}} = 0)
            OR ({{exp}} >= 0 AND {{exp}} <> {{v}}))
   AND pg_current_xact_id()::text::bigint >= {{last}}`

// accept returns acceptRule for the expected version exp, the version v
// and the last writer last.
func accept(exp, v, last string) string {
	return strings.NewReplacer("{{exp}}", exp, "{{v}}", v, "{{last}}", last).Replace(acceptRule)
}

// appendStatements builds the one-event and the several-event statements
// for the schema quoted as q.
func appendStatements(q, schema string) (one, many appendStmt) {
	insert := func(cols map[string]string) string {
		sql := appendInsert
		for k, v := range cols {
			sql = strings.ReplaceAll(sql, "{{"+k+"}}", v)
		}
		return sql
	}
	build := func(insert string) string {
		sql := strings.ReplaceAll(appendTemplate, "{{insert}}", insert)
		sql = strings.ReplaceAll(sql, "{{accept}}", accept("$2::bigint", "cur.v", "cur.last"))
		return strings.ReplaceAll(sql, "{{schema}}", q)
	}
	// One event: $3 event id, $4 type, $5 schema version, $6 data, $7
	// metadata.
	one = appendStmt{name: "chronicle_append1_" + schema, one: true, sql: build(insert(map[string]string{
		"id": "$3::uuid", "ord": "1", "typ": "$4::text", "sv": "$5::int", "dat": "$6::text", "md": "$7::text",
		"from": "", "order": "",
	}))}
	// Several: the same as arrays, in order, counted.
	ins := insert(map[string]string{
		"id": "u.id", "ord": "u.ord", "typ": "u.typ", "sv": "u.sv", "dat": "u.dat", "md": "u.md",
		"from": ` CROSS JOIN unnest($3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[])
       WITH ORDINALITY AS u(id, typ, sv, dat, md, ord)`,
		"order": "\n ORDER BY u.ord",
	})
	many = appendStmt{name: "chronicle_append_" + schema, sql: build(", ins AS (" + strings.ReplaceAll(ins, "\n", "\n    ") + `
)
SELECT count(*), max(ins.stream_version), max(ins.transaction_id), max(ins.position) FROM ins`)}
	return one, many
}

// groupStatements builds, for the schema quoted as q, the two statements
// of a group commit (see groupcommit.go), sent in one implicit transaction.
//
// lock takes the advisory locks of the batch's streams ($1, distinct) in
// the order of their keys, the same keys as a single append's lock: every
// flusher takes them in one order, so two flushers cannot deadlock each
// other. Like a single append's lock it is a statement of its own, run
// before the transaction has written anything, so the transaction takes
// its id once every lock is held.
//
// batch reads each append's stream version and last writer (the same
// backward index probe as appendTemplate), applies acceptRule per append,
// inserts the events of the accepted appends in the order given (stream
// version = version read + ordinal in the append), and returns one row per
// append, in order: its ordinal, the version and last writer it found, how
// many events it wrote (all or none), the version, transaction id and
// position of its last event, and, when it wrote nothing, whether its first
// event's ID is stored already (an idempotent retry, or a conflict).
//
// Per append: $1 stream, $2 expected version, $3 first event ID. Per
// event: $4 ordinal of its append (1-based), $5 ordinal within it, $6 ID,
// $7 type, $8 schema version, $9 data, $10 metadata.
//
// batch1 is batch for batches whose appends hold one event each (the
// common case: one event per command), with the same rows in return. One
// array per column instead of per-append and per-event ones, and no join
// between them: at 8 appends it ran about 8% more batches a second.
// Per append: $1 stream, $2 expected version, $3 event ID, $4 type, $5
// schema version, $6 data, $7 metadata.
func groupStatements(q string) (lock, batch, batch1 string) {
	lock = `SELECT count(pg_advisory_xact_lock(k.key)) FROM (
    SELECT DISTINCT hashtextextended(` + quoteLiteral(q+".") + ` || s.stream, 7157402093) AS key
      FROM unnest($1::text[]) AS s (stream) ORDER BY 1) AS k`
	batch = strings.ReplaceAll(`WITH a AS MATERIALIZED (
    SELECT a.i, a.stream, a.exp, a.first, coalesce(l.stream_version, 0) AS v, coalesce(l.transaction_id, 0) AS last
      FROM unnest($1::text[], $2::bigint[], $3::uuid[]) WITH ORDINALITY AS a (stream, exp, first, i)
      LEFT JOIN LATERAL (
            SELECT e.stream_version, e.transaction_id FROM {{schema}}.events e
             WHERE e.stream_id = a.stream ORDER BY e.stream_version DESC LIMIT 1) AS l ON true
), ok AS MATERIALIZED (
    SELECT a.i, a.stream, a.v FROM a
     WHERE `+accept("a.exp", "a.v", "a.last")+`
), ins AS (
    INSERT INTO {{schema}}.events AS e
        (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
    SELECT pg_current_xact_id()::text::bigint, u.id, ok.stream, ok.v + u.ord, u.typ, u.sv, u.dat::jsonb, u.md::jsonb
      FROM unnest($4::int[], $5::int[], $6::uuid[], $7::text[], $8::int[], $9::text[], $10::text[])
           WITH ORDINALITY AS u (ai, ord, id, typ, sv, dat, md, n)
      JOIN ok ON ok.i = u.ai
     ORDER BY u.n
    RETURNING e.stream_id, e.stream_version, e.transaction_id, e.position
), r AS (
    SELECT ins.stream_id, count(*) AS n, max(ins.stream_version) AS version,
           max(ins.transaction_id) AS tx, max(ins.position) AS pos
      FROM ins GROUP BY ins.stream_id
)
SELECT a.i, a.v, a.last, coalesce(r.n, 0), r.version, r.tx, r.pos,
       r.n IS NULL AND EXISTS (SELECT 1 FROM {{schema}}.events x WHERE x.event_id = a.first)
  FROM a LEFT JOIN r ON r.stream_id = a.stream
 ORDER BY a.i`, "{{schema}}", q)
	batch1 = strings.ReplaceAll(`WITH a AS MATERIALIZED (
    SELECT a.i, a.stream, a.exp, a.id, a.typ, a.sv, a.dat, a.md,
           coalesce(l.stream_version, 0) AS v, coalesce(l.transaction_id, 0) AS last
      FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[])
           WITH ORDINALITY AS a (stream, exp, id, typ, sv, dat, md, i)
      LEFT JOIN LATERAL (
            SELECT e.stream_version, e.transaction_id FROM {{schema}}.events e
             WHERE e.stream_id = a.stream ORDER BY e.stream_version DESC LIMIT 1) AS l ON true
), ins AS (
    INSERT INTO {{schema}}.events AS e
        (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
    SELECT pg_current_xact_id()::text::bigint, a.id, a.stream, a.v + 1, a.typ, a.sv, a.dat::jsonb, a.md::jsonb
      FROM a
     WHERE `+accept("a.exp", "a.v", "a.last")+`
     ORDER BY a.i
    RETURNING e.stream_id, e.stream_version, e.transaction_id, e.position
)
SELECT a.i, a.v, a.last, CASE WHEN ins.stream_id IS NULL THEN 0 ELSE 1 END::bigint,
       ins.stream_version, ins.transaction_id, ins.position,
       ins.stream_id IS NULL AND EXISTS (SELECT 1 FROM {{schema}}.events x WHERE x.event_id = a.id)
  FROM a LEFT JOIN ins ON ins.stream_id = a.stream
 ORDER BY a.i`, "{{schema}}", q)
	return lock, batch, batch1
}
