// Package postgres is Chronicle's PostgreSQL event store, built on pgx v5.
//
// # Tables
//
// [Store.Migrate] creates, in a schema of its own (default "chronicle"), an
// events table (global position, writing transaction id, event id, stream id
// and version, type, schema version, data and metadata as jsonb, recording
// time), a streams table (current version and category of every stream) and
// the append_events function. Constructors never touch the database.
//
// # Appends
//
// [Store.Append] is one statement, so one round trip and one transaction,
// whatever the number of events: it calls append_events with the events as
// arrays. The function takes a transaction-scoped advisory lock on the
// stream, checks the expected version, inserts every event with one
// INSERT ... SELECT FROM unnest and moves the stream's version. Taking the
// lock before writing anything means appends to one stream get increasing
// transaction ids, so each stream's events stay in version order in the
// global log. Of N concurrent appends with the same expected version
// exactly one wins; the others get a [*eventstore.ConflictError] with the
// actual version and write nothing. An append whose event IDs are already
// stored in that stream at those versions (a retry after a timeout) returns
// the original result and writes nothing.
//
// # The global log
//
// Positions come from a sequence, and transactions can commit in another
// order than they took their positions, so "position > checkpoint" loses
// events. Each row stores the id of the transaction that wrote it, and
// [Store.ReadAll] and [Store.Follow] read only rows whose transaction is
// older than every transaction still running
// (pg_snapshot_xmin(pg_current_snapshot())), in (transaction id, position)
// order; [eventstore.Position] is that pair. A reader therefore never skips
// a committed event: it waits for older transactions to end instead. A long
// open transaction anywhere in the database holds readers back; [Store.Status]
// shows by how much and which transaction is to blame.
//
// # Following
//
// [Store.Follow] reads what is there, then waits for a notification on a
// LISTEN connection taken from the pool (append_events calls pg_notify) or
// for the poll interval ([WithPollInterval]), whichever comes first, and
// reads again. Notifications can be turned off with [WithNotify]; followers
// then rely on polling alone.
package postgres
