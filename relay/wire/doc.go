// Package wire is Chronicle's format on NATS: where an event store's log
// is published ([Topology]: the JetStream stream and its subjects), how a
// record becomes a message and back ([NewMsg], [RecordFromMsg] and the
// Header constants), and the JSON body of a dead-letter announcement
// ([DeadLetter]).
//
// The relay (package relay) publishes with it and consumers (package
// projection/jetstream, or any service reading the stream) read with it.
// It imports only eventstore, nats.go and uuid, so a consumer does not
// link the relay's PostgreSQL driver.
//
// # Messages
//
// Each record becomes one message:
//
//   - subject: "<prefix>.<category>.<type>", the prefix from the
//     [Topology], category and type escaped by [EscapeToken] so that each
//     is a single subject token; [FilterSubject] builds filters. A
//     topology with buckets ([Topology.Buckets]) adds the stream's
//     [Bucket] after the prefix, "<prefix>.<bucket>.<category>.<type>", so
//     that a consumer can read one partition of a partitioned projection
//     ([Topology.PartitionBuckets], [Topology.BucketFilter]);
//   - headers: [HeaderMsgID] (the event ID, for JetStream
//     de-duplication), [HeaderStream], [HeaderVersion], [HeaderPosition],
//     [HeaderType], [HeaderSchemaVersion], [HeaderRecordedAt], when not
//     empty [HeaderMetadata], and [HeaderStore], the identity of the event
//     store the record comes from;
//   - body: the record's Data, or nothing when the Data is larger than the
//     server accepts: [HeaderElided] then says so, and a consumer reads the
//     record from the event store by its stream and version.
package wire
