package eventstore

import "strconv"

// ExpectedVersion is the version a stream must be at for an append to
// succeed. Use [Any], [NoStream], [StreamExists], or [Exact] for an exact
// version. Values below [StreamExists] are invalid.
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version, creating the stream when
	// needed.
	Any ExpectedVersion = -1
	// NoStream appends only when the stream does not exist yet.
	NoStream ExpectedVersion = -2
	// StreamExists appends only when the stream already exists.
	StreamExists ExpectedVersion = -3
)

// Exact returns the expected version that requires the stream to be at
// version v. Exact(0) requires an empty stream, like [NoStream].
func Exact(v int64) ExpectedVersion { return ExpectedVersion(v) }

// IsExact reports whether e names an exact version (zero or more).
func (e ExpectedVersion) IsExact() bool { return e >= 0 }

// String returns "any", "no stream", "stream exists", the exact version as a
// decimal, or "invalid(N)".
func (e ExpectedVersion) String() string {
	switch {
	case e == Any:
		return "any"
	case e == NoStream:
		return "no stream"
	case e == StreamExists:
		return "stream exists"
	case e >= 0:
		return strconv.FormatInt(int64(e), 10)
	}
	return "invalid(" + strconv.FormatInt(int64(e), 10) + ")"
}
