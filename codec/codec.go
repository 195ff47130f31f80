// Package codec maps event types to Go types and back.
//
// A [Registry] is a value, never a global: it knows, for each event type
// name, the Go type that holds it and the type's current schema version,
// and it encodes and decodes event payloads (JSON by default). Two
// registries can live in one process, so tests run in parallel and two
// bounded contexts keep their own names.
//
//	reg := codec.NewRegistry()
//	if err := codec.Register[AccountOpened](reg, "AccountOpened", 1); err != nil { ... }
//	name, version, data, err := reg.Encode(AccountOpened{Owner: "ada"})
//	v, err := reg.DecodeRecord(rec) // v.(AccountOpened)
//
// # Values, not pointers
//
// Events are registered and decoded as values: Register[AccountOpened]
// decodes to an AccountOpened, never to an *AccountOpened, and Encode
// refuses a pointer to a registered type. Events are immutable facts, a
// value says so, and an aggregate's Apply can switch on one case per event
// type with no nil pointer to guard against.
//
// # Schema versions
//
// Each type has one current schema version. Decoding a payload stored at
// another version is an error: records written at older versions go through
// an upcaster chain (package upcast) first, which brings them to the
// current version.
//
// # Other encodings
//
// The default [Encoding] is encoding/json. [WithEncoding] plugs in another
// one, for example a faster JSON library or protojson. The event store keeps
// payloads as JSON, so an encoding used for events must produce JSON.
package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrUnknownType means no Go type is registered under an event type
	// name, or a Go value's type is not registered.
	ErrUnknownType = errors.New("codec: unknown event type")
	// ErrVersionMismatch means a payload's schema version is not the
	// current version of its type: an upcaster is missing.
	ErrVersionMismatch = errors.New("codec: schema version is not current")
)

// Encoding turns values into bytes and back. Marshal receives the event
// value; Unmarshal receives a pointer to a value of the registered type.
type Encoding interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default [Encoding]: encoding/json.
type JSON struct{}

// Marshal implements [Encoding] with json.Marshal.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal implements [Encoding] with json.Unmarshal.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Option configures a [Registry].
type Option func(*Registry)

// WithEncoding sets the encoding of payloads; nil keeps the default, [JSON].
func WithEncoding(enc Encoding) Option {
	return func(r *Registry) {
		if enc != nil {
			r.enc = enc
		}
	}
}

// Registry maps event type names and schema versions to Go types. It is
// safe for concurrent use; registering usually happens once at start-up.
// The zero value is not usable: call [NewRegistry].
type Registry struct {
	enc Encoding

	mu     sync.RWMutex
	byName map[string]*entry
	byType map[reflect.Type]*entry
}

type entry struct {
	name    string
	version int
	typ     reflect.Type
	decode  func(enc Encoding, data []byte) (any, error)
}

// NewRegistry returns an empty registry. A nil option is ignored.
func NewRegistry(opts ...Option) *Registry {
	r := &Registry{enc: JSON{}, byName: map[string]*entry{}, byType: map[reflect.Type]*entry{}}
	for _, o := range opts {
		if o != nil {
			o(r)
		}
	}
	return r
}

// Encoding returns the registry's encoding.
func (r *Registry) Encoding() Encoding { return r.enc }

// Register maps the event type name to the Go type T at the current schema
// version schemaVersion (1 to [eventstore.MaxSchemaVersion]). Registering a
// name twice, or one Go type under two names, is an error. T is the value
// type that decoding returns; register AccountOpened, not *AccountOpened: a
// pointer or interface type is refused. A name the event store would refuse
// (empty, longer than [eventstore.MaxTypeLength] bytes, not valid UTF-8, or
// holding a NUL byte) is refused here, with an error matching
// [eventstore.ErrInvalidInput] for the last two, rather than at every save.
func Register[T any](r *Registry, name string, schemaVersion int) error {
	typ := reflect.TypeFor[T]()
	switch {
	case name == "":
		return fmt.Errorf("codec: register %s: empty event type name", typ)
	case len(name) > eventstore.MaxTypeLength:
		return fmt.Errorf("codec: register %s: event type name %.40q... is longer than %d bytes", typ, name, eventstore.MaxTypeLength)
	case schemaVersion < 1 || int64(schemaVersion) > eventstore.MaxSchemaVersion:
		return fmt.Errorf("codec: register %s as %q: schema version %d, want 1 to %d", typ, name, schemaVersion, eventstore.MaxSchemaVersion)
	case typ.Kind() == reflect.Interface:
		return fmt.Errorf("codec: register %s as %q: an interface type cannot be decoded into", typ, name)
	case typ.Kind() == reflect.Pointer:
		return fmt.Errorf("codec: register %s as %q: a pointer type; events are values, register %s", typ, name, typ.Elem())
	}
	if err := eventstore.ValidateEventType(name); err != nil {
		// What the event store would refuse at every save.
		var ve *eventstore.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("codec: register %s as %q: event type name %s: %w", typ, name, ve.Problem, eventstore.ErrInvalidInput)
		}
		return fmt.Errorf("codec: register %s as %q: %w", typ, name, err)
	}
	e := &entry{name: name, version: schemaVersion, typ: typ,
		decode: func(enc Encoding, data []byte) (any, error) {
			var v T
			if err := enc.Unmarshal(data, &v); err != nil {
				return nil, err
			}
			return v, nil
		}}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byName[name]; ok {
		return fmt.Errorf("codec: register %s as %q: the name is already registered for %s", typ, name, old.typ)
	}
	if old, ok := r.byType[typ]; ok {
		return fmt.Errorf("codec: register %s as %q: the type is already registered as %q", typ, name, old.name)
	}
	r.byName[name] = e
	r.byType[typ] = e
	return nil
}

// MustRegister is like [Register] but panics on error. It is meant for
// package-level set-up code of examples and tests where a bad registration
// is a programming error.
func MustRegister[T any](r *Registry, name string, schemaVersion int) {
	if err := Register[T](r, name, schemaVersion); err != nil {
		panic(err)
	}
}

// Encode returns the event type name, current schema version and encoded
// payload of the event value v. A value whose type is not registered is an
// error matching [ErrUnknownType].
func (r *Registry) Encode(v any) (name string, schemaVersion int, data []byte, err error) {
	typ := reflect.TypeOf(v)
	r.mu.RLock()
	e, ok := r.byType[typ]
	r.mu.RUnlock()
	if !ok {
		if typ != nil && typ.Kind() == reflect.Pointer {
			r.mu.RLock()
			elem, isElem := r.byType[typ.Elem()]
			r.mu.RUnlock()
			if isElem {
				return "", 0, nil, fmt.Errorf("%w: %s is a pointer; %s is registered as %q, pass the value", ErrUnknownType, typ, typ.Elem(), elem.name)
			}
		}
		return "", 0, nil, fmt.Errorf("%w: Go type %v is not registered", ErrUnknownType, typ)
	}
	data, err = r.enc.Marshal(v)
	if err != nil {
		return "", 0, nil, fmt.Errorf("codec: encode %q (%s): %w", e.name, e.typ, err)
	}
	return e.name, e.version, data, nil
}

// Decode decodes a payload of the event type name at schema version
// schemaVersion and returns a value of the registered type (T, not *T). An
// unknown name matches [ErrUnknownType]; a version other than the current
// one matches [ErrVersionMismatch].
func (r *Registry) Decode(name string, schemaVersion int, data []byte) (any, error) {
	r.mu.RLock()
	e, ok := r.byName[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, name)
	}
	if schemaVersion != e.version {
		why := fmt.Sprintf("an upcaster from version %d is missing", schemaVersion)
		if schemaVersion > e.version {
			why = "the event was written by newer code (rolled back, or a newer service writing to the same store?); upgrade this code to read it"
		}
		return nil, fmt.Errorf("%w: %q at schema version %d, current is %d: %s",
			ErrVersionMismatch, name, schemaVersion, e.version, why)
	}
	v, err := e.decode(r.enc, data)
	if err != nil {
		return nil, fmt.Errorf("codec: decode %q v%d into %s: %w", name, schemaVersion, e.typ, err)
	}
	return v, nil
}

// DecodeRecord decodes a committed record's payload like [Registry.Decode];
// errors also name the record's stream and stream version. The record must
// be at its type's current schema version: run older records through an
// upcaster chain first.
func (r *Registry) DecodeRecord(rec eventstore.Record) (any, error) {
	v, err := r.Decode(rec.Type, rec.SchemaVersion, rec.Data)
	if err != nil {
		return nil, &RecordError{Stream: rec.StreamID, StreamVersion: rec.StreamVersion, Type: rec.Type,
			SchemaVersion: rec.SchemaVersion, Err: err}
	}
	return v, nil
}

// RecordError reports a record that could not be decoded. It wraps the
// cause, so errors.Is matches [ErrUnknownType] or [ErrVersionMismatch].
type RecordError struct {
	// Stream and StreamVersion locate the record.
	Stream        string
	StreamVersion int64
	// Type and SchemaVersion are the record's event type and version.
	Type          string
	SchemaVersion int
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *RecordError) Error() string {
	return fmt.Sprintf("codec: event %q v%d at version %d of stream %q: %v",
		e.Type, e.SchemaVersion, e.StreamVersion, e.Stream, e.Err)
}

// Unwrap returns the cause.
func (e *RecordError) Unwrap() error { return e.Err }

// CurrentVersion returns the current schema version of the event type name
// and whether the name is registered.
func (r *Registry) CurrentVersion(name string) (int, bool) {
	r.mu.RLock()
	e, ok := r.byName[name]
	r.mu.RUnlock()
	if !ok {
		return 0, false
	}
	return e.version, true
}

// TypeOf returns the Go type registered under the event type name.
func (r *Registry) TypeOf(name string) (reflect.Type, bool) {
	r.mu.RLock()
	e, ok := r.byName[name]
	r.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return e.typ, true
}

// NameOf returns the event type name that the value v's type is registered
// under.
func (r *Registry) NameOf(v any) (string, bool) {
	r.mu.RLock()
	e, ok := r.byType[reflect.TypeOf(v)]
	r.mu.RUnlock()
	if !ok {
		return "", false
	}
	return e.name, true
}

// Names returns the registered event type names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	r.mu.RUnlock()
	slices.Sort(out)
	return out
}
