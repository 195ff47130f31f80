// Package relay is Chronicle's outbox to NATS JetStream: a [Relay] tails the
// event store's gap-safe global log and publishes every record, in global
// order, to a JetStream stream that projections and other services consume.
//
// # Messages
//
// Each record becomes one message (see [NewMsg] and [RecordFromMsg]):
//
//   - subject: "<prefix>.<category>.<type>", prefix [DefaultSubjectPrefix]
//     unless configured, category and type escaped by [EscapeToken] so that
//     each is a single subject token; [FilterSubject] builds filters;
//   - headers: [HeaderMsgID] (the event ID, for JetStream de-duplication),
//     [HeaderStream], [HeaderVersion], [HeaderPosition], [HeaderType],
//     [HeaderSchemaVersion], [HeaderRecordedAt] and, when not empty,
//     [HeaderMetadata];
//   - body: the record's Data.
//
// # Ordering
//
// The JetStream stream holds records in strictly increasing global position
// with no gap filled later, so a consumer may treat any record at or below
// its checkpoint as already applied. The relay pipelines publishes with a
// window of in-flight acks; each message carries the stream sequence the
// previous one must have landed at (Nats-Expected-Last-Sequence), so when one
// publish fails the server refuses every later one. The relay then waits for
// the in-flight acks, reads the stream's last message, and resumes after the
// position in its [HeaderPosition] header.
//
// # Leadership and checkpoints
//
// Only one relay per schema and name publishes at a time: [Relay.Run] first
// takes a PostgreSQL session advisory lock on a dedicated connection and
// holds it while it publishes; a second relay waits and takes over when the
// first one's connection goes away. The last position JetStream confirmed is
// stored in the relay's checkpoint table (see [Relay.Migrate]) in batches.
//
// Appends never wait on NATS: when NATS is down the relay logs, backs off,
// retries, and catches up when NATS returns.
package relay
