package eventstore

import (
	"context"
	"fmt"
	"iter"
	"math"
	"slices"
)

// Store is an event store. Implementations are safe for concurrent use.
//
// Reads return iterators that fetch records in batches, so that reading a
// long stream or the whole log uses bounded memory. An iterator yields
// (record, nil) pairs and, when a read fails, one final (Record{}, err) pair;
// a caller that stops early stops the read.
type Store interface {
	// Append appends events to a stream in one transaction, provided the
	// stream is at the expected version. It returns the stream's new version
	// and the position of the last appended event. Either every event is
	// written or none is.
	Append(ctx context.Context, streamID string, expected ExpectedVersion, events ...Event) (AppendResult, error)

	// ReadStream reads the records of one stream in the direction and from
	// the version given by opts. Reading a stream that does not exist yields
	// an error matching [ErrStreamNotFound].
	ReadStream(ctx context.Context, streamID string, opts ReadStreamOptions) iter.Seq2[Record, error]

	// ReadAll reads the global log after opts.After, in global order,
	// keeping the records that pass opts' filters. It stops at the end of
	// the log as it stands when the read reaches it.
	ReadAll(ctx context.Context, opts ReadAllOptions) iter.Seq2[Record, error]

	// Follow reads the global log like ReadAll, then keeps waiting for new
	// records and yields them as they are committed, until ctx ends; it then
	// yields ctx's error.
	Follow(ctx context.Context, opts ReadAllOptions) iter.Seq2[Record, error]

	// StreamInfo returns a stream's current version and whether it exists.
	// A stream that does not exist is not an error.
	StreamInfo(ctx context.Context, streamID string) (StreamInfo, error)

	// Head returns the position of the last record readers can see, or the
	// zero Position when the log is empty.
	Head(ctx context.Context) (Position, error)
}

// AppendResult describes a successful append.
type AppendResult struct {
	// Version is the stream's version after the append: the version of its
	// last appended event. Pass Exact(Version) to the next append.
	Version int64
	// Position is the global position of the last appended event. Pass it
	// to a projection's WaitFor for read-your-writes.
	Position Position
}

// StreamInfo describes a stream.
type StreamInfo struct {
	// StreamID is the stream's ID.
	StreamID string
	// Exists reports whether the stream has any events.
	Exists bool
	// Version is the version of the stream's last event; 0 when it does not
	// exist.
	Version int64
}

// Direction is the direction of a stream read.
type Direction int

const (
	// Forward reads from older to newer events.
	Forward Direction = iota
	// Backward reads from newer to older events.
	Backward
)

// DefaultBatchSize is the number of records a read fetches at a time when
// the options do not say.
const DefaultBatchSize = 512

// ReadStreamOptions tune [Store.ReadStream]. The zero value reads the whole
// stream forwards.
type ReadStreamOptions struct {
	// Direction is Forward (the default) or Backward.
	Direction Direction
	// From is the first version to read, inclusive. Zero means the start of
	// the stream when reading forwards and its end when reading backwards.
	From int64
	// Limit caps the number of records read; zero means no limit.
	Limit int
	// BatchSize is the number of records fetched at a time; zero means
	// [DefaultBatchSize].
	BatchSize int
}

// Validate reports invalid options.
func (o ReadStreamOptions) Validate() error {
	var p string
	switch {
	case o.Direction != Forward && o.Direction != Backward:
		p = "direction must be Forward or Backward"
	case o.From < 0:
		p = "From must not be negative"
	case o.Limit < 0:
		p = "Limit must not be negative"
	case o.BatchSize < 0:
		p = "BatchSize must not be negative"
	default:
		return nil
	}
	return &ValidationError{Index: -1, Field: "options", Problem: p}
}

// ReadAllOptions tune [Store.ReadAll] and [Store.Follow]. The zero value
// reads every record from the start of the log.
type ReadAllOptions struct {
	// After is the position to read after, exclusive. The zero Position
	// reads from the start.
	After Position
	// Categories, when not empty, keeps only records whose stream category
	// is one of these.
	Categories []string
	// Types, when not empty, keeps only records whose event type is one of
	// these.
	Types []string
	// Limit caps the number of records yielded; zero means no limit.
	Limit int
	// BatchSize is the number of records fetched at a time; zero means
	// [DefaultBatchSize].
	BatchSize int
}

// Validate reports invalid options.
func (o ReadAllOptions) Validate() error {
	var p string
	switch {
	case o.Limit < 0:
		p = "Limit must not be negative"
	case o.BatchSize < 0:
		p = "BatchSize must not be negative"
	case o.After.TxID > math.MaxInt64 || o.After.Seq > math.MaxInt64:
		p = fmt.Sprintf("After %s is no position: both parts are at most %d", o.After, int64(math.MaxInt64))
	default:
		return nil
	}
	return &ValidationError{Index: -1, Field: "options", Problem: p}
}

// ListStreamsOptions tune the ListStreams method of the stores that list
// streams (the memory and PostgreSQL stores). The zero value lists every
// stream, in the byte order of their IDs.
type ListStreamsOptions struct {
	// Category, when set, keeps only the streams of that category (see
	// [Category]).
	Category string
	// After lists only the streams whose IDs sort after it, for paging.
	After string
	// Limit caps the number of streams listed; zero means no limit.
	Limit int
}

// Validate reports invalid options.
func (o ListStreamsOptions) Validate() error {
	if o.Limit < 0 {
		return &ValidationError{Index: -1, Field: "options", Problem: "Limit must not be negative"}
	}
	return nil
}

// Match reports whether r passes the options' category and type filters.
func (o ReadAllOptions) Match(r Record) bool {
	if len(o.Categories) > 0 && !slices.Contains(o.Categories, r.Category()) {
		return false
	}
	return len(o.Types) == 0 || slices.Contains(o.Types, r.Type)
}

// Batch returns the effective batch size: BatchSize, or DefaultBatchSize
// when it is zero.
func (o ReadAllOptions) Batch() int {
	if o.BatchSize > 0 {
		return o.BatchSize
	}
	return DefaultBatchSize
}

// Batch returns the effective batch size: BatchSize, or DefaultBatchSize
// when it is zero.
func (o ReadStreamOptions) Batch() int {
	if o.BatchSize > 0 {
		return o.BatchSize
	}
	return DefaultBatchSize
}

// Err returns an iterator that yields err once. Store implementations use
// it to report an error before any read starts.
func Err(err error) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) { yield(Record{}, err) }
}

// Collect reads every record of seq into a slice, stopping at the first
// error. It is meant for tests and small reads; large reads should range
// over the iterator.
func Collect(seq iter.Seq2[Record, error]) ([]Record, error) {
	var out []Record
	for r, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}
