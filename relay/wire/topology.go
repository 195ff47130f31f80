package wire

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Defaults of the topology of the default schema, "chronicle".
const (
	// DefaultStreamName is the JetStream stream of the schema "chronicle".
	DefaultStreamName = "CHRONICLE"
	// DefaultSubjectPrefix is the subject prefix of the schema
	// "chronicle".
	DefaultSubjectPrefix = "chronicle.events"
)

// Bucket counts of a [Topology] (ADR 0020).
const (
	// MaxBuckets is the largest Topology.Buckets; it matches the largest
	// partition count of a projection.
	MaxBuckets = 1024
	// DefaultBuckets is the bucket count recommended for a new bucketed
	// topology: projections on it may have 1, 2, 4, ... 64 partitions.
	DefaultBuckets = 64
)

// defaultSchema is the event store's default schema (pgmigrate's).
const defaultSchema = "chronicle"

// Topology names where one event store's log lives on NATS: the JetStream
// stream and the prefix of its subjects. The relay publishes there and
// consumers read there, so build it once and hand the same value to both
// (relay.WithTopology, projection/jetstream's WithTopology, the CLI).
// Empty fields take the defaults of [DefaultTopology].
type Topology struct {
	// Stream is the JetStream stream's name.
	Stream string
	// SubjectPrefix is the prefix of every subject; the stream captures
	// SubjectPrefix + ".>".
	SubjectPrefix string
	// Buckets, when not zero, puts a bucket token in every subject:
	// "<prefix>.<bucket>.<category>.<type>", the bucket being
	// [Bucket](streamID, Buckets), so that a consumer can read the streams
	// of some buckets only (one partition of a partitioned projection:
	// the partition of a stream among n partitions, n dividing Buckets,
	// is its bucket modulo n). It must be a power of two, at most
	// [MaxBuckets]; [DefaultBuckets] is a good choice. Zero keeps the
	// layout without buckets, "<prefix>.<category>.<type>". A stream's
	// layout is fixed for its life: a bucketed topology needs its own
	// stream and prefix (see ADR 0020 for the migration).
	Buckets int
}

// DefaultTopology returns the topology of the event store in schema (""
// means "chronicle"), so that stores in different schemas never share a
// stream by default: schema "chronicle" publishes to stream CHRONICLE on
// chronicle.events.>; any other schema s to stream CHRONICLE_<S> (s in
// upper case) on chronicle_<s>.events.>. Schema names are lower-case
// identifiers, so no two schemas map to the same stream or to overlapping
// subjects.
func DefaultTopology(schema string) Topology {
	if schema == "" || schema == defaultSchema {
		return Topology{Stream: DefaultStreamName, SubjectPrefix: DefaultSubjectPrefix}
	}
	return Topology{Stream: DefaultStreamName + "_" + strings.ToUpper(schema), SubjectPrefix: "chronicle_" + schema + ".events"}
}

// WithDefaults fills the empty fields of t from [DefaultTopology] of schema.
func (t Topology) WithDefaults(schema string) Topology {
	d := DefaultTopology(schema)
	if t.Stream == "" {
		t.Stream = d.Stream
	}
	if t.SubjectPrefix == "" {
		t.SubjectPrefix = d.SubjectPrefix
	}
	return t
}

// Validate reports a stream name or subject prefix JetStream would refuse
// or misread; empty fields are valid (they take the defaults).
func (t Topology) Validate() error {
	var errs []error
	if strings.ContainsAny(t.Stream, " \t\r\n.*>/\\") {
		errs = append(errs, fmt.Errorf("wire: stream name %q must not contain spaces, '.', '*', '>', '/' or '\\'", t.Stream))
	}
	if t.SubjectPrefix != "" && t.SubjectPrefix != escapeTokens(t.SubjectPrefix) {
		errs = append(errs, fmt.Errorf("wire: subject prefix %q must be dot-separated tokens without wildcards or spaces", t.SubjectPrefix))
	}
	if t.Buckets < 0 || t.Buckets > MaxBuckets || t.Buckets&(t.Buckets-1) != 0 {
		errs = append(errs, fmt.Errorf("wire: buckets %d must be 0 or a power of two up to %d", t.Buckets, MaxBuckets))
	}
	return errors.Join(errs...)
}

// Bucket returns the bucket, in [0, buckets), of the stream streamID: the
// 32-bit FNV-1a hash of the stream ID's bytes modulo buckets, the same
// hash as projection.PartitionOf (and the SQL function
// chronicle_partition), so that with n dividing buckets the partition of a
// stream among n is its bucket modulo n. For buckets <= 1 it returns 0.
func Bucket(streamID string, buckets int) int {
	if buckets <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(streamID))
	return int(h.Sum32() % uint32(buckets))
}

// Subject returns the subject the relay publishes rec on under t: as the
// package function [Subject], with the stream's bucket token after the
// prefix when t has buckets.
func (t Topology) Subject(rec eventstore.Record) string {
	if t.Buckets == 0 {
		return Subject(t.SubjectPrefix, rec)
	}
	return t.BucketFilter(Bucket(rec.StreamID, t.Buckets), rec.Category(), rec.Type)
}

// Filter returns a subject filter matching the records of one category and
// one event type (empty: any) in every bucket: [FilterSubject] without
// buckets, "<prefix>.*.<category>.<type>" with them.
func (t Topology) Filter(category, eventType string) string {
	if t.Buckets == 0 {
		return FilterSubject(t.SubjectPrefix, category, eventType)
	}
	return t.BucketFilter(-1, category, eventType)
}

// BucketFilter returns a subject filter matching the records of one
// category and one event type (empty: any) in one bucket of a bucketed
// topology ("<prefix>.<bucket>.<category>.<type>"); a negative bucket
// matches every bucket.
func (t Topology) BucketFilter(bucket int, category, eventType string) string {
	prefix := t.SubjectPrefix
	if prefix == "" {
		prefix = DefaultSubjectPrefix
	}
	b := "*"
	if bucket >= 0 {
		b = strconv.Itoa(bucket)
	}
	return FilterSubject(prefix+"."+b, category, eventType)
}

// PartitionBuckets returns the buckets of t holding partition part of n
// partitions (those b with b mod n = part), or an error when t has no
// buckets or n does not divide them.
func (t Topology) PartitionBuckets(part, n int) ([]int, error) {
	if t.Buckets == 0 {
		return nil, fmt.Errorf("wire: %s has no buckets: a partitioned consumer needs a bucketed topology (Topology.Buckets)", t)
	}
	if n < 1 || t.Buckets%n != 0 || part < 0 || part >= n {
		return nil, fmt.Errorf("wire: partition %d of %d: the partition count must divide the %d buckets of %s", part, n, t.Buckets, t)
	}
	out := make([]int, 0, t.Buckets/n)
	for b := part; b < t.Buckets; b += n {
		out = append(out, b)
	}
	return out, nil
}

// CheckSubject reports an error when subject, under t's prefix, does not
// have t's layout (a bucket token or none), so that a relay or a consumer
// never mixes the two layouts on one stream. Subjects outside the prefix
// are not checked.
func (t Topology) CheckSubject(subject string) error {
	prefix := t.SubjectPrefix
	if prefix == "" {
		prefix = DefaultSubjectPrefix
	}
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return nil
	}
	tokens := strings.Count(rest, ".") + 1
	switch {
	case t.Buckets == 0 && tokens == 3:
		return fmt.Errorf("wire: subject %q has a bucket token, and %s has no buckets: the stream was published with Topology.Buckets set", subject, t)
	case t.Buckets > 0 && tokens == 2:
		return fmt.Errorf("wire: subject %q has no bucket token, and %s has %d buckets: a bucketed topology needs its own stream and prefix (ADR 0020)", subject, t, t.Buckets)
	case t.Buckets > 0 && tokens == 3:
		b, err := strconv.Atoi(rest[:strings.IndexByte(rest, '.')])
		if err != nil || b < 0 || b >= t.Buckets {
			return fmt.Errorf("wire: subject %q has no bucket below %d of %s", subject, t.Buckets, t)
		}
	}
	return nil
}

// Subjects returns the subjects the stream captures: SubjectPrefix + ".>".
func (t Topology) Subjects() []string { return []string{t.SubjectPrefix + ".>"} }

// String returns "stream STREAM (subjects PREFIX.>)", with ", N buckets"
// inside the parentheses when t has buckets.
func (t Topology) String() string {
	if t.Buckets > 0 {
		return "stream " + t.Stream + " (subjects " + t.SubjectPrefix + ".>, " + strconv.Itoa(t.Buckets) + " buckets)"
	}
	return "stream " + t.Stream + " (subjects " + t.SubjectPrefix + ".>)"
}

// escapeTokens applies [EscapeToken] to each dot-separated token of a
// subject, so an invalid subject prefix differs from its escaped form.
func escapeTokens(subject string) string {
	parts := strings.Split(subject, ".")
	for i, p := range parts {
		parts[i] = EscapeToken(p)
	}
	return strings.Join(parts, ".")
}

// StoreIdentifier is implemented by event stores with an identity: a UUID
// created once with the store (for PostgreSQL, by Migrate, and kept in its
// schema). The relay stamps it on every message ([HeaderStore]) and
// consumers compare it with their own store's.
type StoreIdentifier interface {
	// StoreID returns the store's identity.
	StoreID(ctx context.Context) (uuid.UUID, error)
}

// ErrForeignStore is wrapped by the errors that refuse a stream or a
// message of another event store than the one expected.
var ErrForeignStore = errors.New("wire: message of another event store")

// ForeignStoreError says that a stream or message carries another event
// store's identity. It matches [ErrForeignStore] with errors.Is.
type ForeignStoreError struct {
	// Stream is the JetStream stream's name.
	Stream string
	// Seq is the stream sequence of the message; 0 when unknown.
	Seq uint64
	// Want is the expected store's identity; Got the one on the message.
	Want, Got uuid.UUID
	// Schema is the expected store's schema, when known.
	Schema string
}

// Error names the stream, the message, both stores and the schema.
func (e *ForeignStoreError) Error() string {
	schema := ""
	if e.Schema != "" {
		schema = " (schema " + e.Schema + ")"
	}
	seq := ""
	if e.Seq != 0 {
		seq = fmt.Sprintf(" message %d", e.Seq)
	}
	return fmt.Sprintf("wire: JetStream stream %s%s was published from event store %s, not from this event store %s%s: "+
		"two event stores must not share a stream (give each its own stream and subject prefix)",
		e.Stream, seq, e.Got, e.Want, schema)
}

// Is matches [ErrForeignStore].
func (e *ForeignStoreError) Is(target error) bool { return target == ErrForeignStore }
