// Package memory is an in-memory [eventstore.Store] with the same semantics
// as the PostgreSQL store: the same input validation, exact optimistic
// concurrency, idempotent retries, and a global log that readers can follow.
//
// It is meant for unit tests of code built on Chronicle and for embedded use
// where nothing has to survive the process. It passes the conformance suite
// in eventstore/eventstoretest.
//
// A [Store] is safe for concurrent use. Records are copied in and out, so a
// caller cannot change what is stored by mutating the Data or Metadata of an
// event it appended or a record it read. Iterators do not hold the store's
// lock while they yield, so a consumer may append from inside a range loop.
package memory

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/google/uuid"
)

// Store is an in-memory event store. The zero value is not usable; create
// one with [New].
type Store struct {
	now          func() time.Time
	maxEventSize int

	mu      sync.RWMutex
	log     []eventstore.Record // global log; log[i].Position.Seq == i+1
	streams map[string][]int    // stream ID -> indexes into log, by version
	ids     map[uuid.UUID]int   // event ID -> index into log
	txID    uint64              // last transaction ID handed out
	wake    chan struct{}       // closed and replaced on every append

	identity identity // see StoreID
}

var _ eventstore.Store = (*Store)(nil)

// Option configures a [Store].
type Option func(*Store)

// WithClock sets the function that gives the RecordedAt time of appended
// records; the default is time.Now. A fixed clock makes outputs
// deterministic in tests and examples.
func WithClock(now func() time.Time) Option {
	return func(s *Store) {
		if now != nil {
			s.now = now
		}
	}
}

// WithMaxEventSize sets the largest event the store accepts, in bytes, as
// [eventstore.EventSize] measures it; the default is
// [eventstore.DefaultMaxEventSize]. A size of zero or less keeps the
// default. The memory store keeps the limit of the PostgreSQL store so that
// tests see the same refusals.
func WithMaxEventSize(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.maxEventSize = n
		}
	}
}

// New returns an empty store. A nil option is ignored.
func New(opts ...Option) *Store {
	s := &Store{
		now:          time.Now,
		maxEventSize: eventstore.DefaultMaxEventSize,
		streams:      make(map[string][]int),
		ids:          make(map[uuid.UUID]int),
		wake:         make(chan struct{}),
	}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	return s
}

// MaxEventSize returns the largest event the store accepts, in bytes; see
// [WithMaxEventSize].
func (s *Store) MaxEventSize() int { return s.maxEventSize }

// Append appends events to a stream if it is at the expected version; see
// [eventstore.Store.Append]. Input is validated with
// [eventstore.PrepareAppend]. Appending events whose IDs are already stored
// in the stream at the versions the append would give them succeeds and
// returns the original result without writing anything; the same IDs
// elsewhere are a conflict.
func (s *Store) Append(ctx context.Context, streamID string, expected eventstore.ExpectedVersion, events ...eventstore.Event) (eventstore.AppendResult, error) {
	prepared, err := eventstore.PrepareAppend(streamID, expected, events, s.maxEventSize)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("memory: append to stream %q: %w", streamID, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	idx := s.streams[streamID]
	actual := int64(len(idx))

	if res, done, err := s.retried(streamID, expected, actual, prepared); done {
		return res, err
	}

	if !expected.Matches(actual) {
		return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: streamID, Expected: expected, Actual: actual}
	}

	s.txID++
	at := s.now().UTC().Truncate(time.Microsecond)
	for i, e := range prepared {
		seq := uint64(len(s.log)) + 1
		r := eventstore.Record{
			ID:            e.ID,
			StreamID:      streamID,
			StreamVersion: actual + int64(i) + 1,
			Position:      eventstore.Position{TxID: s.txID, Seq: seq},
			Type:          e.Type,
			SchemaVersion: e.SchemaVersion,
			Data:          slices.Clone(e.Data),
			Metadata:      e.Metadata.Clone(),
			RecordedAt:    at,
		}
		s.ids[e.ID] = len(s.log)
		idx = append(idx, len(s.log))
		s.log = append(s.log, r)
	}
	s.streams[streamID] = idx
	close(s.wake)
	s.wake = make(chan struct{})

	last := s.log[len(s.log)-1]
	return eventstore.AppendResult{Version: last.StreamVersion, Position: last.Position}, nil
}

// retried handles an append whose event IDs are already stored. done is
// false when none of the IDs is stored, and the append goes on normally.
// Otherwise it either reports the original result, when every event is
// stored in this stream at the versions this append would have given it, or
// a conflict saying where the IDs are. s.mu must be held.
func (s *Store) retried(streamID string, expected eventstore.ExpectedVersion, actual int64, events []eventstore.Event) (res eventstore.AppendResult, done bool, err error) {
	found := false
	for _, e := range events {
		if _, ok := s.ids[e.ID]; ok {
			found = true
			break
		}
	}
	if !found {
		return eventstore.AppendResult{}, false, nil
	}
	conflict := func(reason string) (eventstore.AppendResult, bool, error) {
		return eventstore.AppendResult{}, true, &eventstore.ConflictError{
			Stream: streamID, Expected: expected, Actual: actual, Reason: reason}
	}
	var first int64
	for i, e := range events {
		at, ok := s.ids[e.ID]
		if !ok {
			return conflict(fmt.Sprintf("event %d (id %s) is new but others in the append are already stored", i, e.ID))
		}
		r := s.log[at]
		if r.StreamID != streamID {
			return conflict(fmt.Sprintf("event %d (id %s) is already stored in stream %q at version %d",
				i, e.ID, r.StreamID, r.StreamVersion))
		}
		if i == 0 {
			first = r.StreamVersion
		} else if r.StreamVersion != first+int64(i) {
			return conflict(fmt.Sprintf("event %d (id %s) is already stored at version %d, not %d",
				i, e.ID, r.StreamVersion, first+int64(i)))
		}
	}
	// The stream was at version first-1 when the events were appended.
	if !expected.Matches(first - 1) {
		return conflict(fmt.Sprintf("events are already stored at versions %d..%d, which expected version %s does not give them",
			first, first+int64(len(events))-1, expected))
	}
	last := s.log[s.ids[events[len(events)-1].ID]]
	return eventstore.AppendResult{Version: last.StreamVersion, Position: last.Position}, true, nil
}

// ReadStream reads one stream's records; see [eventstore.Store.ReadStream].
// Reading a stream that does not exist yields an error matching
// [eventstore.ErrStreamNotFound].
func (s *Store) ReadStream(ctx context.Context, streamID string, opts eventstore.ReadStreamOptions) iter.Seq2[eventstore.Record, error] {
	if err := eventstore.ValidateStreamID(streamID); err != nil {
		return eventstore.Err(err)
	}
	if err := opts.Validate(); err != nil {
		if ve, ok := err.(*eventstore.ValidationError); ok {
			ve.Stream = streamID
		}
		return eventstore.Err(err)
	}
	return func(yield func(eventstore.Record, error) bool) {
		batch := opts.Batch()
		yielded := 0
		next := opts.From // next version to read; 0 = start (forward) or end (backward)
		first := true
		for {
			if err := ctx.Err(); err != nil {
				yield(eventstore.Record{}, fmt.Errorf("memory: read stream %q: %w", streamID, err))
				return
			}
			n := batch
			if opts.Limit > 0 {
				n = min(n, opts.Limit-yielded)
			}
			recs, exists := s.streamBatch(streamID, opts.Direction, &next, n)
			if first && !exists {
				yield(eventstore.Record{}, fmt.Errorf("memory: read stream %q: %w", streamID, eventstore.ErrStreamNotFound))
				return
			}
			first = false
			for _, r := range recs {
				if !yield(r, nil) {
					return
				}
			}
			yielded += len(recs)
			if len(recs) < n || (opts.Limit > 0 && yielded >= opts.Limit) {
				return
			}
		}
	}
}

// streamBatch copies up to n records of a stream starting at version *next
// in direction dir, and advances *next past them.
func (s *Store) streamBatch(streamID string, dir eventstore.Direction, next *int64, n int) ([]eventstore.Record, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	idx, ok := s.streams[streamID]
	if !ok {
		return nil, false
	}
	version := int64(len(idx))
	var out []eventstore.Record
	if dir == eventstore.Backward {
		v := *next
		if v == 0 || v > version {
			v = version
		}
		for ; v >= 1 && len(out) < n; v-- {
			out = append(out, copyRecord(s.log[idx[v-1]]))
		}
		if v < 1 {
			v = -1 // nothing left; 0 would mean "from the end" again
		}
		*next = v
		return out, true
	}
	v := max(*next, 1)
	for ; v <= version && len(out) < n; v++ {
		out = append(out, copyRecord(s.log[idx[v-1]]))
	}
	*next = v
	return out, true
}

// ReadAll reads the global log; see [eventstore.Store.ReadAll].
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.Record, error] {
	return s.readAll(ctx, opts, false)
}

// Follow reads the global log, then waits for new records and yields them
// as they are appended, until ctx ends; see [eventstore.Store.Follow]. It
// stops without an error once it has yielded opts.Limit records, when a
// limit is set. Waiting costs nothing: each append wakes the followers.
func (s *Store) Follow(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.Record, error] {
	return s.readAll(ctx, opts, true)
}

// scanBudget caps the records examined under the lock for one batch of a
// filtered read, so a filter that matches little does not hold the lock for
// long.
const scanBudget = 4096

func (s *Store) readAll(ctx context.Context, opts eventstore.ReadAllOptions, follow bool) iter.Seq2[eventstore.Record, error] {
	if err := opts.Validate(); err != nil {
		return eventstore.Err(err)
	}
	opts.Categories = slices.Clone(opts.Categories)
	opts.Types = slices.Clone(opts.Types)
	what := "read all"
	if follow {
		what = "follow"
	}
	return func(yield func(eventstore.Record, error) bool) {
		next := -1 // index into the log of the next record to examine; -1 until found
		yielded := 0
		for {
			if err := ctx.Err(); err != nil {
				yield(eventstore.Record{}, fmt.Errorf("memory: %s: %w", what, err))
				return
			}
			n := opts.Batch()
			if opts.Limit > 0 {
				n = min(n, opts.Limit-yielded)
			}
			recs, atEnd, wake := s.logBatch(opts, &next, n)
			for _, r := range recs {
				if !yield(r, nil) {
					return
				}
			}
			yielded += len(recs)
			if opts.Limit > 0 && yielded >= opts.Limit {
				return
			}
			if !atEnd {
				continue
			}
			if !follow {
				return
			}
			select {
			case <-wake:
			case <-ctx.Done():
				yield(eventstore.Record{}, fmt.Errorf("memory: %s: %w", what, ctx.Err()))
				return
			}
		}
	}
}

// logBatch copies up to n matching records from the log starting at index
// *next (or after opts.After when *next is -1) and advances *next past the
// records it examined. atEnd reports that it reached the end of the log;
// wake is then closed by the next append.
func (s *Store) logBatch(opts eventstore.ReadAllOptions, next *int, n int) (out []eventstore.Record, atEnd bool, wake <-chan struct{}) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := *next
	if i < 0 {
		i = sort.Search(len(s.log), func(k int) bool { return opts.After.Before(s.log[k].Position) })
	}
	filtered := len(opts.Categories) > 0 || len(opts.Types) > 0
	budget := max(scanBudget, n)
	for ; i < len(s.log) && len(out) < n && budget > 0; i++ {
		r := s.log[i]
		if filtered {
			budget--
			if !opts.Match(r) {
				continue
			}
		}
		out = append(out, copyRecord(r))
	}
	*next = i
	return out, i >= len(s.log), s.wake
}

// StreamInfo returns a stream's version and whether it exists; see
// [eventstore.Store.StreamInfo].
func (s *Store) StreamInfo(ctx context.Context, streamID string) (eventstore.StreamInfo, error) {
	if err := eventstore.ValidateStreamID(streamID); err != nil {
		return eventstore.StreamInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return eventstore.StreamInfo{}, fmt.Errorf("memory: stream info %q: %w", streamID, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := int64(len(s.streams[streamID]))
	return eventstore.StreamInfo{StreamID: streamID, Exists: n > 0, Version: n}, nil
}

// Head returns the position of the last record, or the zero Position when
// the store is empty; see [eventstore.Store.Head].
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.Position{}, fmt.Errorf("memory: head: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.log) == 0 {
		return eventstore.Position{}, nil
	}
	return s.log[len(s.log)-1].Position, nil
}

// ListStreams lists streams in the byte order of their IDs, like the
// PostgreSQL store's ListStreams.
func (s *Store) ListStreams(ctx context.Context, opts eventstore.ListStreamsOptions) iter.Seq2[eventstore.StreamInfo, error] {
	return func(yield func(eventstore.StreamInfo, error) bool) {
		if err := opts.Validate(); err != nil {
			yield(eventstore.StreamInfo{}, err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(eventstore.StreamInfo{}, fmt.Errorf("memory: list streams: %w", err))
			return
		}
		s.mu.RLock()
		var out []eventstore.StreamInfo
		for id, idx := range s.streams {
			if strings.Compare(id, opts.After) <= 0 && opts.After != "" {
				continue
			}
			if opts.Category != "" && eventstore.Category(id) != opts.Category {
				continue
			}
			out = append(out, eventstore.StreamInfo{StreamID: id, Exists: true, Version: int64(len(idx))})
		}
		s.mu.RUnlock()
		slices.SortFunc(out, func(a, b eventstore.StreamInfo) int { return strings.Compare(a.StreamID, b.StreamID) })
		if opts.Limit > 0 && len(out) > opts.Limit {
			out = out[:opts.Limit]
		}
		for _, info := range out {
			if !yield(info, nil) {
				return
			}
		}
	}
}

func copyRecord(r eventstore.Record) eventstore.Record {
	r.Data = slices.Clone(r.Data)
	r.Metadata = r.Metadata.Clone()
	return r
}
