package eventstore

import (
	"bytes"
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

// PrepareAppend validates the arguments of an append and returns a copy of
// the events with defaults filled in: a new UUIDv7 for a zero ID, schema
// version 1 for a zero one, and {} for empty Data. Store implementations call
// it first so that they all accept and reject exactly the same input. It
// returns a [*ValidationError] describing the first problem found.
func PrepareAppend(streamID string, expected ExpectedVersion, events []Event) ([]Event, error) {
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
	out := make([]Event, len(events))
	seen := make(map[uuid.UUID]struct{}, len(events))
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
		} else if hasEscapedNUL(e.Data) {
			return nil, bad("data", `contains the escape \u0000, which PostgreSQL's jsonb cannot store`)
		}
		for k, v := range e.Metadata {
			if p := checkText(k, MaxMetadataKeyLength); p != "" {
				return nil, bad("metadata", fmt.Sprintf("key %q: %s", truncate(k, 40), p))
			}
			if p := checkValue(v); p != "" {
				return nil, bad("metadata", fmt.Sprintf("value of %q: %s", truncate(k, 40), p))
			}
		}
		if e.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("eventstore: new event id: %w", err)
			}
			e.ID = id
		}
		if _, dup := seen[e.ID]; dup {
			return nil, bad("id", fmt.Sprintf("%s appears twice in one append", e.ID))
		}
		seen[e.ID] = struct{}{}
		out[i] = e
	}
	return out, nil
}

// hasEscapedNUL reports whether valid JSON data holds the string escape
// \u0000 (an escaped backslash followed by "u0000" does not count).
func hasEscapedNUL(data []byte) bool {
	for i := bytes.Index(data, []byte(`\u0000`)); i >= 0; {
		n := 0
		for j := i - 1; j >= 0 && data[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return true
		}
		next := bytes.Index(data[i+1:], []byte(`\u0000`))
		if next < 0 {
			return false
		}
		i += 1 + next
	}
	return false
}
