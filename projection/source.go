package projection

import (
	"context"
	"sync"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Source delivers a projection's records live, in global order. The runner
// always catches up from the event store first; a Source is what it reads
// afterwards. [StoreSource] follows the event store itself; the JetStream
// source in projection/jetstream reads a durable consumer.
type Source interface {
	// Open starts delivering the records of req's projection after
	// req.After, until ctx ends or Close is called.
	Open(ctx context.Context, req SourceRequest) (Feed, error)
}

// SourceRequest says what a [Source] must deliver.
type SourceRequest struct {
	// Build is the build being fed; Build.Name is the projection's name.
	Build Build
	// Types and Categories are the projection's filters (a source may
	// deliver more; the runner filters again).
	Types      []string
	Categories []string
	// After is the build's checkpoint: records at or before it may be
	// delivered, and are acknowledged and skipped.
	After eventstore.Position
	// Partitions, when not zero, asks for one partition of a partitioned
	// build: the records of the streams whose [PartitionOf] among
	// Partitions is Partition, in order (a source may deliver others; the
	// runner skips them). After is then the partition's checkpoint. The
	// runner asks a [PartitionSource] only, and only when its
	// SupportsPartitions(Partitions) is nil.
	Partitions int
	// Partition is the partition asked for, in [0, Partitions).
	Partition int
}

// PartitionSource is a [Source] that can deliver each partition of a
// partitioned build on its own (the JetStream source on a bucketed
// topology: one filtered consumer per partition), so that a runner
// receives only the records of the partitions it holds leases on. The
// runner still catches each partition up from the event store, and
// rebuilds run from the event store. For a partitioned build on any other
// source, the runner follows the event store with one reader per build.
type PartitionSource interface {
	Source
	// SupportsPartitions returns nil when Open can deliver the partitions
	// of a build in n partitions, else why not.
	SupportsPartitions(n int) error
}

// Retirer is implemented by a [Source] that keeps something per build
// (the JetStream source: a durable consumer, which with interest retention
// keeps the stream's messages until it acknowledges them). After a rebuild
// switched builds, a runner calls Retire with the old build once the
// switch has committed and the new build's feed is open; it does the same
// with [Registration.Previous] whenever it goes live on the current build,
// so a switch made by another process (the CLI) is cleaned up too.
// Failures are logged and never fail the switch.
type Retirer interface {
	// Retire releases what the source keeps for b; releasing what does
	// not exist is not an error.
	Retire(ctx context.Context, b Build) error
}

// Feed is an open delivery of records.
type Feed interface {
	// Deliveries yields deliveries in order. It is closed when the feed
	// ends; Err then says why.
	Deliveries() <-chan Delivery
	// Err is the reason the feed ended; nil before it has.
	Err() error
	// Close stops the feed and waits for its goroutines; safe to call
	// twice.
	Close() error
}

// Delivery is one record delivered by a feed and a way to settle it.
type Delivery struct {
	// Record is the delivered record.
	Record eventstore.Record
	// Acker settles the delivery with the source; nil when there is nothing
	// to settle (the store source).
	Acker Acker
}

// Acker settles a delivery. The runner acks after its unit of work
// committed, reports progress while it retries in place, terminates an
// event it dead-lettered, and naks one it could not handle because it is
// halting or stopping.
type Acker interface {
	Ack() error
	Nak(delay time.Duration) error
	Term(reason string) error
	InProgress() error
}

// StoreSource is a [Source] that follows an event store with
// [eventstore.Store.Follow]: no NATS, for single-process services and
// tests.
type StoreSource struct {
	store  eventstore.Store
	buffer int
}

// NewStoreSource returns a source following store.
func NewStoreSource(store eventstore.Store) *StoreSource {
	return &StoreSource{store: store, buffer: 1024}
}

// Open follows the store after req.After with req's filters.
func (s *StoreSource) Open(ctx context.Context, req SourceRequest) (Feed, error) {
	ctx, cancel := context.WithCancel(ctx)
	f := &storeFeed{ch: make(chan Delivery, s.buffer), cancel: cancel, done: make(chan struct{})}
	opts := eventstore.ReadAllOptions{After: req.After, Types: req.Types, Categories: req.Categories}
	go func() {
		defer close(f.done)
		defer close(f.ch)
		for rec, err := range s.store.Follow(ctx, opts) {
			if err != nil {
				f.setErr(err)
				return
			}
			select {
			case f.ch <- Delivery{Record: rec}:
			case <-ctx.Done():
				f.setErr(ctx.Err())
				return
			}
		}
		f.setErr(ctx.Err())
	}()
	return f, nil
}

type storeFeed struct {
	ch     chan Delivery
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

func (f *storeFeed) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *storeFeed) Deliveries() <-chan Delivery { return f.ch }

func (f *storeFeed) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *storeFeed) Close() error {
	f.cancel()
	<-f.done
	return nil
}
