package eventstore

import (
	"strings"
	"time"

	"github.com/google/uuid"
)

// Event is an event to append to a stream.
//
// A zero ID is filled with a new time-ordered UUID (version 7) when the event
// is appended; a zero SchemaVersion means 1; empty Data is stored as the JSON
// object {}. Data must otherwise be valid JSON.
type Event struct {
	// ID identifies the event. It makes appends idempotent: appending the
	// same IDs at the same stream versions again writes nothing.
	ID uuid.UUID
	// Type names the kind of event, such as "AccountOpened".
	Type string
	// SchemaVersion is the version of the shape of Data, used by upcasters.
	SchemaVersion int
	// Data is the event's payload as JSON.
	Data []byte
	// Metadata carries correlation and causation IDs and free string keys.
	Metadata Metadata
}

// Record is an event as committed to the store.
type Record struct {
	// ID is the event's ID.
	ID uuid.UUID
	// StreamID is the stream the event belongs to.
	StreamID string
	// StreamVersion is the event's 1-based version within its stream.
	StreamVersion int64
	// Position is the event's place in the global log.
	Position Position
	// Type names the kind of event.
	Type string
	// SchemaVersion is the version of the shape of Data.
	SchemaVersion int
	// Data is the event's payload as JSON.
	Data []byte
	// Metadata is the event's metadata.
	Metadata Metadata
	// RecordedAt is when the store recorded the event.
	RecordedAt time.Time
}

// Category returns the category of the record's stream; see [Category].
func (r Record) Category() string { return Category(r.StreamID) }

// Category returns the category of a stream ID: the part before the first
// '-', or the whole ID when it has none. The category of "account-42" is
// "account".
func Category(streamID string) string {
	if i := strings.IndexByte(streamID, '-'); i >= 0 {
		return streamID[:i]
	}
	return streamID
}

// Metadata holds an event's metadata as string keys and values. The keys
// [CorrelationIDKey] and [CausationIDKey] are reserved for correlation and
// causation IDs; any other key (tenant, user, trace ID) is free to use.
type Metadata map[string]string

// Reserved metadata keys.
const (
	// CorrelationIDKey holds the ID shared by every event caused, directly
	// or not, by one request.
	CorrelationIDKey = "correlation_id"
	// CausationIDKey holds the ID of the message or event that caused this
	// event.
	CausationIDKey = "causation_id"
)

// CorrelationID returns the correlation ID, or "" when there is none.
func (m Metadata) CorrelationID() string { return m[CorrelationIDKey] }

// CausationID returns the causation ID, or "" when there is none.
func (m Metadata) CausationID() string { return m[CausationIDKey] }

// Clone returns a copy of m; the copy of a nil Metadata is nil.
func (m Metadata) Clone() Metadata {
	if m == nil {
		return nil
	}
	c := make(Metadata, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
