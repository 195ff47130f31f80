// Package upcast migrates stored events to the current schema when they are
// read.
//
// Events are facts and are never rewritten in the store. When the shape of
// an event type changes, its schema version goes up in the
// codec.Registry, and an [Upcaster] tells how to turn a payload stored at
// the old version into the next one. A [Chain] holds every upcaster of a
// service, checked when it is built, and brings any record to the current
// version on every read path: aggregate loads, projections, rebuilds and the
// CLI.
//
// # Kinds of upcasters
//
//   - [Transform]: a 1->1 change of the raw JSON payload, from version n to
//     n+1 of the same type. [Fields] does the same on a decoded JSON object.
//   - [Bump]: version n to n+1 with the payload unchanged (an added optional
//     field, for instance).
//   - [Rename]: a type renamed, optionally landing at another version.
//   - [Split]: one stored event becomes several (1->N).
//
// An [Upcaster] value can also be written by hand for anything else.
//
// # Validation
//
// [New] refuses a chain that could leave an event stranded: two upcasters
// for one (type, version), an upcaster that reads a type's current version
// or a newer one, a cycle, an output that is neither the current version
// of a registered type nor read by another upcaster, or a version below a
// registered type's current one that no upcaster reads (a hole in the
// chain). A version that was never stored is declared with
// [NeverWritten] instead of an upcaster.
//
// # Split events
//
// The records produced by a split share the stored record's stream version
// and position. The first keeps the stored event's ID; each further one gets
// a deterministic ID derived from it (a name-based UUID), so a projection
// that deduplicates by event ID sees the same IDs on every read.
package upcast

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/chronicle-go/chronicle/eventstore"
)

// ErrNoPath means a record is at a schema version that no upcaster brings
// to its type's current version.
var ErrNoPath = errors.New("upcast: no upcaster to the current version")

// Key names an event type at a schema version.
type Key struct {
	Type    string
	Version int
}

// String formats k as "Type v1".
func (k Key) String() string { return strconv.Quote(k.Type) + " v" + strconv.Itoa(k.Version) }

// Upcaster turns a record stored as From into records of the keys To, in
// that order. Fn receives the record (its Data at From) and returns one
// payload per key of To; the chain sets the type, version and IDs of the
// records it builds from them.
type Upcaster struct {
	// From is the event type and schema version read.
	From Key
	// To lists the type and version of each record produced; usually one.
	To []Key
	// Fn computes the payloads of the records produced, one per To.
	Fn func(rec eventstore.Record) ([][]byte, error)

	neverWritten bool // a NeverWritten declaration, not an upcaster
}

// NeverWritten declares that no record of eventType at schema version
// version was ever stored, so the chain needs no upcaster from it. [New]
// requires an upcaster or this declaration for every version below a
// registered type's current one; use it for versions that only ever
// existed in code (a type introduced at version 2, a version skipped by a
// hand-written upcaster or reached only through a [Rename]). A record at a
// declared version found in the store fails to read with [ErrNoPath]. Pass
// it to New like an upcaster.
func NeverWritten(eventType string, version int) Upcaster {
	return Upcaster{From: Key{eventType, version}, neverWritten: true}
}

// Transform returns an upcaster from version from to from+1 of eventType
// that rewrites the raw JSON payload with fn.
func Transform(eventType string, from int, fn func(data []byte) ([]byte, error)) Upcaster {
	return Upcaster{
		From: Key{eventType, from},
		To:   []Key{{eventType, from + 1}},
		Fn: func(rec eventstore.Record) ([][]byte, error) {
			if fn == nil {
				return nil, errors.New("nil transform function")
			}
			out, err := fn(rec.Data)
			if err != nil {
				return nil, err
			}
			return [][]byte{out}, nil
		},
	}
}

// Fields returns an upcaster from version from to from+1 of eventType that
// edits the payload as a JSON object: fn may add, remove, rename or change
// keys of m in place. Numbers arrive as json.Number.
func Fields(eventType string, from int, fn func(m map[string]any) error) Upcaster {
	return Transform(eventType, from, func(data []byte) ([]byte, error) {
		m, err := decodeObject(data)
		if err != nil {
			return nil, err
		}
		if err := fn(m); err != nil {
			return nil, err
		}
		return json.Marshal(m)
	})
}

// Bump returns an upcaster from version from to from+1 of eventType that
// keeps the payload as it is, for a version whose change needs no rewrite
// (such as a new optional field).
func Bump(eventType string, from int) Upcaster {
	return Upcaster{
		From: Key{eventType, from},
		To:   []Key{{eventType, from + 1}},
		Fn:   func(rec eventstore.Record) ([][]byte, error) { return [][]byte{rec.Data}, nil },
	}
}

// Rename returns an upcaster that reads records of oldType at version
// oldVersion as newType at newVersion, payload unchanged. Chain further
// upcasters of newType from newVersion when its shape changed too.
func Rename(oldType string, oldVersion int, newType string, newVersion int) Upcaster {
	return Upcaster{
		From: Key{oldType, oldVersion},
		To:   []Key{{newType, newVersion}},
		Fn:   func(rec eventstore.Record) ([][]byte, error) { return [][]byte{rec.Data}, nil },
	}
}

// Split returns an upcaster that turns one record of eventType at version
// from into len(to) records; fn returns their payloads in the order of to.
func Split(eventType string, from int, to []Key, fn func(data []byte) ([][]byte, error)) Upcaster {
	return Upcaster{
		From: Key{eventType, from},
		To:   slices.Clone(to),
		Fn: func(rec eventstore.Record) ([][]byte, error) {
			if fn == nil {
				return nil, errors.New("nil split function")
			}
			return fn(rec.Data)
		},
	}
}

func decodeObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytesReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("payload is not a JSON object: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}
