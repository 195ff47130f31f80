package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Defaults of the topology of the default schema, "chronicle".
const (
	// DefaultStreamName is the JetStream stream of the schema "chronicle".
	DefaultStreamName = "CHRONICLE"
	// DefaultSubjectPrefix is the subject prefix of the schema
	// "chronicle".
	DefaultSubjectPrefix = "chronicle.events"
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
	return errors.Join(errs...)
}

// Subjects returns the subjects the stream captures: SubjectPrefix + ".>".
func (t Topology) Subjects() []string { return []string{t.SubjectPrefix + ".>"} }

// String returns "stream STREAM (subjects PREFIX.>)".
func (t Topology) String() string {
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
