// Package relay is Chronicle's outbox to NATS JetStream: a [Relay] tails the
// event store's gap-safe global log and publishes every record, in global
// order, to a JetStream stream that projections and other services consume.
//
// # Messages and topology
//
// Each record becomes one message in the format of package relay/wire
// (subject "<prefix>.<category>.<type>", the record's fields in headers, its
// Data as body), stamped with the event store's identity
// (wire.HeaderStore). Consumers read it with wire.RecordFromMsg, without
// linking this package's PostgreSQL driver.
//
// Where the relay publishes is a wire.Topology: a stream name and a subject
// prefix, by default derived from the schema (wire.DefaultTopology), so
// that stores in different schemas never share a stream by default. Give
// the same topology to the relay ([WithTopology] or [WithStream]) and to
// its consumers. A topology with buckets (wire.Topology.Buckets, ADR 0020)
// puts the stream's bucket in each subject,
// "<prefix>.<bucket>.<category>.<type>", for partitioned projections; a
// stream's layout is fixed, and the relay refuses to resume on a stream
// whose last message has the other one.
//
// One JetStream stream holds one event store's log. A relay whose stream
// ends with a message of another store stops with an error naming both
// stores (wire.ErrForeignStore), and a stored checkpoint, or a last message
// in the stream, after the head of the store's log stops it with
// [ErrCheckpointAhead]: resuming there would skip events without a word.
//
// A record whose message exceeds the NATS server's max_payload is published
// without its Data (wire.HeaderElided); consumers read it from the event
// store by its stream and version. The relay warns at the start of each
// leadership when the store accepts events larger than the server does
// ([WithMaxEventSize]).
//
// # Ordering
//
// The JetStream stream holds records in strictly increasing global position
// with no gap filled later, so a consumer may treat any record at or below
// its checkpoint as already applied. The relay pipelines publishes with a
// window of in-flight acks (see [WithWindow]), and makes the server check
// the order. On a stream with one replica the first message of a run
// carries the stream's last sequence as Nats-Expected-Last-Sequence, and
// every later one carries the previous message's event ID as
// Nats-Expected-Last-Msg-Id. On a replicated stream every message carries
// Nats-Expected-Last-Sequence, the sequence its predecessor must have:
// nats-server checks the message ID on each replica as it applies a
// message, and a replica that finds a mismatch stops, while it checks the
// sequence once, on the stream leader, before it proposes the message
// (docs/adr/0021-relay-on-replicated-streams.md). A message is therefore
// stored only right after its predecessor in the log; once one publish
// fails (timeout, NATS down), the server refuses every later one, and even
// a stale message delivered late by a reconnecting client cannot land out of
// order. After a failure the relay waits for the acks in flight, reads the
// stream's last message, and resumes after the position in its
// [HeaderPosition] header (or after its PostgreSQL checkpoint, whichever is
// later). Nats-Msg-Id de-duplication remains a safety net.
//
// One JetStream stream must hold one event store's log, published by one
// relay name: nothing else may publish to its subjects.
//
// # Leadership and checkpoints
//
// Only one relay per schema and name publishes at a time: [Relay.Run] first
// takes a PostgreSQL session advisory lock on a dedicated connection and
// holds it while it publishes; a second relay waits and takes over when the
// first one's connection goes away. The last position JetStream confirmed is
// stored in the relay's checkpoint table (see [Migrate]) in batches.
//
// Appends never wait on NATS: when NATS is down the relay logs, backs off,
// retries, and catches up when NATS returns.
//
// # Operations
//
// [Relay.Ready] is closed once the relay first leads and publishes.
// [Relay.Status] reports whether this process leads or waits, the stored
// checkpoint, how many records were confirmed, and the last error retried.
// [ReadCheckpoint] reads the stored checkpoint with PostgreSQL alone, for
// tools that run no relay and have no NATS connection.
// The relay logs at Info when it takes or gives up the leadership and where
// it resumes publishing, and at Warn each time it stops and resynchronises
// (with the error and the pause before the next attempt). A relay that keeps
// logging the same error is stuck on it and needs an operator. Errors
// resuming cannot fix (another store's stream, a checkpoint ahead of the
// log, a missing table) end Run instead.
package relay
