package eventstore

import (
	"encoding/json"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits on input, checked by [PrepareAppend] and [ValidateStreamID].
const (
	// MaxStreamIDLength is the longest stream ID, in bytes.
	MaxStreamIDLength = 255
	// MaxTypeLength is the longest event type, in bytes.
	MaxTypeLength = 255
	// MaxMetadataKeyLength is the longest metadata key, in bytes.
	MaxMetadataKeyLength = 255
	// MaxSchemaVersion is the largest schema version: PostgreSQL keeps it
	// in an int column (32 bits), and every store keeps the same range.
	MaxSchemaVersion = math.MaxInt32
)

// ValidateStreamID checks a stream ID: not empty, at most
// [MaxStreamIDLength] bytes, valid UTF-8 and free of NUL bytes.
func ValidateStreamID(streamID string) error {
	if p := checkText(streamID, MaxStreamIDLength); p != "" {
		return &ValidationError{Stream: streamID, Index: -1, Field: "stream id", Problem: p}
	}
	return nil
}

// ValidateEventType checks an event type name the way [PrepareAppend]
// does: not empty, at most [MaxTypeLength] bytes, valid UTF-8 and free of
// NUL bytes. The error matches [ErrInvalidInput].
func ValidateEventType(name string) error {
	if p := checkText(name, MaxTypeLength); p != "" {
		return &ValidationError{Index: -1, Field: "type", Problem: p}
	}
	return nil
}

func checkText(s string, max int) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > max:
		return fmt.Sprintf("%d bytes long, longer than %d", len(s), max)
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return "contains a NUL byte"
		}
	}
	return ""
}

func checkValue(s string) string {
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return "contains a NUL byte"
		}
	}
	return ""
}

var emptyObject = []byte("{}")

// DefaultMaxEventSize is the largest event, in bytes, that a store accepts
// unless configured otherwise: 900 KiB. It stays below NATS's default
// max_payload (1 MiB) with room for what the relay adds to a message
// (subject, headers with the event's ID, stream, type, position and
// metadata), so that every event a store accepts can be published.
const DefaultMaxEventSize = 900 << 10

// EventSize is how [PrepareAppend] measures an event for the limit on its
// size: the lengths of its stream ID and type, plus its Data and Metadata
// as a store returns them, whichever is larger of the bytes as given and
// the text PostgreSQL's jsonb prints (jsonb prints numbers in plain
// notation, so the 14 bytes {"n":1e100000} read back as 100,008). The
// event must be one PrepareAppend accepts; for other events the result is
// meaningless.
func EventSize(streamID string, e Event) int {
	n, _ := eventSize(streamID, e)
	return n
}

func eventSize(streamID string, e Event) (int, string) {
	data := 2 // {}
	if len(e.Data) > 0 {
		printed, p := jsonbCheck(e.Data)
		if p != "" {
			return 0, p
		}
		data = max(printed, len(e.Data))
	}
	return len(streamID) + len(e.Type) + data + metadataSize(e.Metadata), ""
}

// PrepareAppend validates the arguments of an append and returns a copy of
// the events with defaults filled in: a new UUIDv7 for a zero ID, schema
// version 1 for a zero one, and {} for empty Data. Store implementations call
// it first so that they all accept and reject exactly the same input. It
// returns a [*ValidationError] describing the first problem found.
//
// It refuses what PostgreSQL's jsonb cannot keep exactly, so that every
// store refuses the same input: Data that is not valid JSON, invalid UTF-8
// in its strings, the escape \u0000, a \u escape of a surrogate that
// forms no pair, numbers beyond the range of PostgreSQL's numeric (more
// than 131072 digits before the decimal point or 16383 after); and
// schema versions above [MaxSchemaVersion]. An event whose [EventSize]
// exceeds maxEventSize (0 means [DefaultMaxEventSize]) is refused with an
// error matching both [ErrEventTooLarge] and [ErrInvalidInput].
func PrepareAppend(streamID string, expected ExpectedVersion, events []Event, maxEventSize int) ([]Event, error) {
	if err := ValidateStreamID(streamID); err != nil {
		return nil, err
	}
	if err := expected.Validate(); err != nil {
		err.(*ValidationError).Stream = streamID
		return nil, err
	}
	if len(events) == 0 {
		return nil, &ValidationError{Stream: streamID, Index: -1, Field: "events", Problem: "no events to append"}
	}
	if maxEventSize <= 0 {
		maxEventSize = DefaultMaxEventSize
	}
	out := make([]Event, len(events))
	var seen map[uuid.UUID]struct{}
	if len(events) > 1 {
		seen = make(map[uuid.UUID]struct{}, len(events))
	}
	for i, e := range events {
		if p := checkText(e.Type, MaxTypeLength); p != "" {
			return nil, &ValidationError{Stream: streamID, Index: i, Field: "type", Problem: p}
		}
		bad := func(field, problem string) error {
			return &ValidationError{Stream: streamID, Index: i, Type: e.Type, Field: field, Problem: problem}
		}
		if e.SchemaVersion < 0 {
			return nil, bad("schema version", fmt.Sprintf("%d is negative", e.SchemaVersion))
		}
		if int64(e.SchemaVersion) > MaxSchemaVersion {
			return nil, bad("schema version", fmt.Sprintf("%d is above %d, the largest a store keeps", e.SchemaVersion, MaxSchemaVersion))
		}
		if e.SchemaVersion == 0 {
			e.SchemaVersion = 1
		}
		if len(e.Data) == 0 {
			e.Data = emptyObject
		} else if !json.Valid(e.Data) {
			return nil, bad("data", "not valid JSON")
		}
		for k, v := range e.Metadata {
			if p := checkText(k, MaxMetadataKeyLength); p != "" {
				return nil, bad("metadata", fmt.Sprintf("key %q: %s", truncate(k, 40), p))
			}
			if p := checkValue(v); p != "" {
				return nil, bad("metadata", fmt.Sprintf("value of %q: %s", truncate(k, 40), p))
			}
		}
		size, p := eventSize(streamID, e)
		if p != "" {
			return nil, bad("data", p+"; PostgreSQL's jsonb cannot store it")
		}
		if size > maxEventSize {
			return nil, bad("size", fmt.Sprintf("the event is %d bytes as the store returns it (stream ID, type, data and metadata), more than the limit of %d", size, maxEventSize))
		}
		if e.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("eventstore: new event id: %w", err)
			}
			e.ID = id
		}
		if seen != nil {
			if _, dup := seen[e.ID]; dup {
				return nil, bad("id", fmt.Sprintf("%s appears twice in one append", e.ID))
			}
			seen[e.ID] = struct{}{}
		}
		out[i] = e
	}
	return out, nil
}
