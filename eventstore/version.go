package eventstore

import "strconv"

// ExpectedVersion is the version a stream must be at for an append to
// succeed: [Any], [NoStream], [StreamExists], or [Exact] for an exact
// version. Compare values with ==.
//
// The three conditions are not numbers, so no exact version can stand for
// one of them: Exact(-1) is not Any but invalid input, refused by every
// append with an error matching [ErrInvalidInput]. The zero value is
// Exact(0), a stream that must be empty.
type ExpectedVersion struct {
	kind expectKind
	v    int64 // the exact version, when kind is expectExact
}

type expectKind uint8

const (
	expectExact expectKind = iota // the zero value: Exact(0)
	expectAny
	expectNoStream
	expectStreamExists
)

// The conditions an append can expect instead of an exact version. They are
// variables only because Go has no constant structs; never assign to them.
var (
	// Any appends whatever the stream's version, creating the stream when
	// needed.
	Any = ExpectedVersion{kind: expectAny}
	// NoStream appends only when the stream does not exist yet.
	NoStream = ExpectedVersion{kind: expectNoStream}
	// StreamExists appends only when the stream already exists.
	StreamExists = ExpectedVersion{kind: expectStreamExists}
)

// Exact returns the expected version that requires the stream to be at
// version v. Exact(0) requires an empty stream, like [NoStream]. A negative
// v gives an expected version that every append refuses as invalid input.
func Exact(v int64) ExpectedVersion { return ExpectedVersion{kind: expectExact, v: v} }

// IsExact reports whether e names a valid exact version (zero or more).
func (e ExpectedVersion) IsExact() bool { return e.kind == expectExact && e.v >= 0 }

// ExactVersion returns the exact version e names and true, or 0 and false
// when e is Any, NoStream or StreamExists. The version of an invalid
// Exact(v) with v < 0 is returned as is, with true; see [ExpectedVersion.Validate].
func (e ExpectedVersion) ExactVersion() (int64, bool) {
	if e.kind != expectExact {
		return 0, false
	}
	return e.v, true
}

// Validate returns nil for Any, NoStream, StreamExists and exact versions
// of zero or more, and an error matching [ErrInvalidInput] otherwise.
// [PrepareAppend] calls it.
func (e ExpectedVersion) Validate() error {
	if e.kind == expectExact && e.v < 0 {
		return &ValidationError{Index: -1, Field: "expected version",
			Problem: "exact version " + strconv.FormatInt(e.v, 10) + " is negative; use eventstore.Any, NoStream or StreamExists for those conditions"}
	}
	return nil
}

// Matches reports whether a stream at version actual (0 when it does not
// exist) passes the check. An invalid expected version matches nothing.
func (e ExpectedVersion) Matches(actual int64) bool {
	switch e.kind {
	case expectAny:
		return true
	case expectNoStream:
		return actual == 0
	case expectStreamExists:
		return actual > 0
	}
	return e.v >= 0 && e.v == actual
}

// String returns "any", "no stream", "stream exists", the exact version as a
// decimal, or "invalid(N)" for a negative exact version.
func (e ExpectedVersion) String() string {
	switch e.kind {
	case expectAny:
		return "any"
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	}
	if e.v >= 0 {
		return strconv.FormatInt(e.v, 10)
	}
	return "invalid(" + strconv.FormatInt(e.v, 10) + ")"
}
