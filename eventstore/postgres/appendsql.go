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
 WHERE NOT (($2::bigint = -2 AND cur.v > 0) OR ($2::bigint = -3 AND cur.v = 0)
            OR ($2::bigint >= 0 AND $2::bigint <> cur.v))
   AND pg_current_xact_id()::text::bigint >= cur.last{{order}}
RETURNING e.stream_version, e.transaction_id, e.position`

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
