// Package jetstream feeds projections from the JetStream stream the relay
// (package relay) publishes the event log to, and announces dead letters on
// NATS. It reads messages with package relay/wire and does not link the
// relay or its PostgreSQL driver.
//
// Each projection build reads its own durable pull consumer with explicit
// acks, filtered on the subjects of the categories and types it wants. The
// runner processes a consumer's messages one after the other, in stream
// order, and acks a message only after the unit of work holding it (and the
// checkpoint) has committed; a redelivered message is at or below the
// checkpoint and is acked and skipped. A new consumer starts at the first
// message after the build's checkpoint, found by a binary search on the
// stream (the relay publishes positions in strictly increasing order), so a
// projection that caught up from the event store does not wade through the
// stream's history.
//
// # Partitions
//
// On a bucketed topology (wire.Topology.Buckets, ADR 0020) the source is a
// [projection.PartitionSource]: each partition of a partitioned build that
// a runner holds a lease on gets its own durable consumer, named after the
// build and the partition ([Source.PartitionConsumerName]) and filtered on
// the partition's buckets, so a runner receives only its partitions'
// records. The consumer is created again after the partition's committed
// checkpoint each time a runner opens it (a handover, a restart), so the
// new owner neither waits for the deliveries the old one never
// acknowledged nor starts anywhere else; the lease, checked in the
// checkpoint's transaction, stays the fence. Unpartitioned projections
// read every bucket ("<prefix>.*.<category>.<type>").
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// Defaults of the source's options.
const (
	DefaultAckWait        = 30 * time.Second
	DefaultMaxAckPending  = 4096
	DefaultConsumerPrefix = "chronicle_projection"
	// DefaultHeartbeat is how often the server confirms that a pull is
	// alive unless [WithHeartbeat] says otherwise.
	DefaultHeartbeat = time.Second
)

// EventStore is what the source needs of the event store the relay
// publishes: reading the records the relay published without their Data
// (too large for the server's max_payload). *postgres.Store and
// *memory.Store satisfy it. When it also implements wire.StoreIdentifier
// (both do), the source refuses messages of another store; when it has a
// Schema() string method, the default topology is that schema's.
type EventStore interface {
	ReadStream(ctx context.Context, streamID string, opts eventstore.ReadStreamOptions) iter.Seq2[eventstore.Record, error]
}

// Source is a [projection.Source] reading a relay's JetStream stream.
type Source struct {
	js             jetstream.JetStream
	store          EventStore
	topo           wire.Topology
	consumerPrefix string
	ackWait        time.Duration
	maxAckPending  int
	heartbeat      time.Duration
	log            *slog.Logger
}

var (
	_ projection.Source          = (*Source)(nil)
	_ projection.Retirer         = (*Source)(nil)
	_ projection.PartitionSource = (*Source)(nil)
)

// Option configures a [Source].
type Option func(*Source)

// WithTopology sets the JetStream stream, subject prefix and bucket count
// the relay publishes with; give the same value to the relay
// (relay.WithTopology). Empty fields keep the defaults: wire.DefaultTopology
// of the store's schema, without buckets.
func WithTopology(t wire.Topology) Option {
	return func(s *Source) {
		if t.Stream != "" {
			s.topo.Stream = t.Stream
		}
		if t.SubjectPrefix != "" {
			s.topo.SubjectPrefix = t.SubjectPrefix
		}
		if t.Buckets != 0 {
			s.topo.Buckets = t.Buckets
		}
	}
}

// WithConsumerPrefix sets the prefix of durable consumer names (default
// DefaultConsumerPrefix); the build's name and suffix follow it.
func WithConsumerPrefix(p string) Option { return func(s *Source) { s.consumerPrefix = p } }

// WithAckWait sets how long the server waits for an ack before
// redelivering (default 30s). The runner reports progress while it retries
// a failing message, so this need not cover the whole retry.
func WithAckWait(d time.Duration) Option { return func(s *Source) { s.ackWait = d } }

// WithMaxAckPending caps the messages delivered and not yet acked (default
// 4096).
func WithMaxAckPending(n int) Option { return func(s *Source) { s.maxAckPending = n } }

// WithHeartbeat sets how often the server confirms that a pending pull is
// alive (default [DefaultHeartbeat]); each pull request lasts five
// heartbeats. When two heartbeats in a row are missing (the consumer or the
// stream was deleted, NATS lost its data or cannot be reached) the feed
// ends with an error the runner reports as the projection's LastError; the
// runner then catches up from the event store and opens the feed again,
// recreating the consumer from its checkpoint once the stream is back.
func WithHeartbeat(d time.Duration) Option { return func(s *Source) { s.heartbeat = d } }

// WithLogger sets the logger; nil (the default) means slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Source) { s.log = l } }

// NewSource returns a source on js for the log of store. It only checks
// its options.
func NewSource(js jetstream.JetStream, store EventStore, opts ...Option) (*Source, error) {
	s := &Source{js: js, store: store,
		consumerPrefix: DefaultConsumerPrefix, ackWait: DefaultAckWait, maxAckPending: DefaultMaxAckPending,
		heartbeat: DefaultHeartbeat}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	schema := ""
	if sc, ok := store.(interface{ Schema() string }); ok {
		schema = sc.Schema()
	}
	s.topo = s.topo.WithDefaults(schema)
	var errs []error
	if js == nil {
		errs = append(errs, errors.New("jetstream: nil JetStream context"))
	}
	if store == nil {
		errs = append(errs, errors.New("jetstream: nil event store"))
	}
	if err := s.topo.Validate(); err != nil {
		errs = append(errs, err)
	}
	if s.ackWait <= 0 {
		errs = append(errs, fmt.Errorf("jetstream: invalid ack wait %s", s.ackWait))
	}
	if s.maxAckPending <= 0 {
		errs = append(errs, fmt.Errorf("jetstream: invalid max ack pending %d", s.maxAckPending))
	}
	if s.heartbeat < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("jetstream: heartbeat %s must be at least 100ms", s.heartbeat))
	}
	if s.consumerPrefix == "" || strings.ContainsAny(s.consumerPrefix, " \t\r\n.*>/\\") {
		errs = append(errs, fmt.Errorf("jetstream: invalid consumer prefix %q", s.consumerPrefix))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// Topology returns the stream and subject prefix the source reads.
func (s *Source) Topology() wire.Topology { return s.topo }

// ConsumerName returns the durable consumer name of a build.
func (s *Source) ConsumerName(b projection.Build) string {
	return s.consumerPrefix + "_" + b.Name + "_" + b.Suffix()
}

// PartitionConsumerName returns the durable consumer name of one partition
// of a partitioned build: the build's consumer name, "_p" and the
// partition.
func (s *Source) PartitionConsumerName(b projection.Build, partition int) string {
	return s.ConsumerName(b) + "_p" + strconv.Itoa(partition)
}

// SupportsPartitions returns nil when the source's topology has buckets and
// n divides them (see wire.Topology.Buckets); the runner then reads each
// partition of a build in n partitions from its own consumer.
func (s *Source) SupportsPartitions(n int) error {
	_, err := s.topo.PartitionBuckets(0, n)
	return err
}

// Retire deletes the durable consumers of a build that is no longer run
// (the runner calls it once a rebuild has switched and the new build's
// consumer is open): the build's, and those of its partitions. With
// interest retention the stream would otherwise keep messages for them
// forever. A consumer that does not exist is not an error.
func (s *Source) Retire(ctx context.Context, b projection.Build) error {
	names := []string{s.ConsumerName(b)}
	if st, err := s.js.Stream(ctx, s.topo.Stream); err == nil {
		lister := st.ConsumerNames(ctx)
		for name := range lister.Name() {
			if rest, ok := strings.CutPrefix(name, s.ConsumerName(b)+"_p"); ok && isDigits(rest) {
				names = append(names, name)
			}
		}
		if err := lister.Err(); err != nil {
			return fmt.Errorf("jetstream: list the consumers of old build %s on stream %s: %w", b, s.topo.Stream, err)
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("jetstream: stream %s: %w", s.topo.Stream, err)
	}
	for _, name := range names {
		err := s.js.DeleteConsumer(ctx, s.topo.Stream, name)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("jetstream: delete consumer %s of old build %s on stream %s: %w", name, b, s.topo.Stream, err)
		}
		if err == nil {
			s.log.Info("deleted the consumer of an old projection build", "consumer", name, "build", b.String(), "stream", s.topo.Stream)
		}
	}
	return nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// maxPartitionFilters bounds the filter subjects of a partition's
// consumer: beyond it, the consumer filters on the partition's buckets
// only and the runner skips the records the projection does not want.
const maxPartitionFilters = 64

// FilterSubjects returns the subjects a projection with these filters
// reads.
func (s *Source) FilterSubjects(categories, types []string) []string {
	var out []string
	for _, c := range orAny(categories) {
		for _, t := range orAny(types) {
			out = append(out, s.topo.Filter(c, t))
		}
	}
	return distinct(out)
}

// orAny returns xs, or the one filter that matches anything ("") when xs
// is empty.
func orAny(xs []string) []string {
	if len(xs) == 0 {
		return []string{""}
	}
	return xs
}

// distinct returns xs without its repeated elements, in order.
func distinct(xs []string) []string {
	seen := make(map[string]bool, len(xs))
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// PartitionFilterSubjects returns the subjects partition part of a
// projection in n partitions with these filters reads: its buckets times
// the filters, or its buckets alone ("<prefix>.<bucket>.>") when that
// would be more than 64 subjects. It fails when the topology has no
// buckets or n does not divide them.
func (s *Source) PartitionFilterSubjects(part, n int, categories, types []string) ([]string, error) {
	buckets, err := s.topo.PartitionBuckets(part, n)
	if err != nil {
		return nil, err
	}
	cs, ts := orAny(categories), orAny(types)
	var out []string
	if len(buckets)*len(cs)*len(ts) > maxPartitionFilters {
		for _, b := range buckets {
			out = append(out, s.topo.SubjectPrefix+"."+strconv.Itoa(b)+".>")
		}
		return out, nil
	}
	for _, b := range buckets {
		for _, c := range cs {
			for _, t := range ts {
				out = append(out, s.topo.BucketFilter(b, c, t))
			}
		}
	}
	return distinct(out), nil
}

// Open ensures the build's durable consumer and starts reading it.
func (s *Source) Open(ctx context.Context, req projection.SourceRequest) (projection.Feed, error) {
	want := uuid.Nil
	if si, ok := s.store.(wire.StoreIdentifier); ok {
		id, err := si.StoreID(ctx)
		if err != nil {
			return nil, fmt.Errorf("jetstream: read the event store's identity: %w", err)
		}
		want = id
		if err := s.checkStore(ctx, want); err != nil {
			return nil, err
		}
	}
	var cons jetstream.Consumer
	var err error
	name := s.ConsumerName(req.Build)
	if req.Partitions > 0 {
		name = s.PartitionConsumerName(req.Build, req.Partition)
		cons, err = s.partitionConsumer(ctx, req)
	} else {
		cons, err = s.consumer(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(min(s.maxAckPending, 1024)),
		jetstream.PullExpiry(max(5*s.heartbeat, time.Second)), jetstream.PullHeartbeat(s.heartbeat),
		jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		return nil, fmt.Errorf("jetstream: read consumer %s on stream %s: %w", name, s.topo.Stream, err)
	}
	f := &feed{ch: make(chan projection.Delivery, 256), it: it, done: make(chan struct{}), name: name,
		stream: s.topo.Stream, projection: req.Build.Name, store: s.store, want: want, heartbeat: s.heartbeat}
	go f.run(ctx, s.log)
	return f, nil
}

// checkStore refuses a stream whose last message comes from another
// event store than want, before any consumer reads it.
func (s *Source) checkStore(ctx context.Context, want uuid.UUID) error {
	st, err := s.js.Stream(ctx, s.topo.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("jetstream: stream %s not found (is the relay running? did NATS lose its data?): %w", s.topo.Stream, err)
	}
	if err != nil {
		return fmt.Errorf("jetstream: stream %s: %w", s.topo.Stream, err)
	}
	last := st.CachedInfo().State.LastSeq
	if last == 0 {
		return nil
	}
	m, err := st.GetMsg(ctx, last)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jetstream: read message %d of stream %s: %w", last, s.topo.Stream, err)
	}
	if err := s.topo.CheckSubject(m.Subject); err != nil {
		return fmt.Errorf("jetstream: refusing to read message %d of stream %s: %w", last, s.topo.Stream, err)
	}
	got, ok, err := wire.StoreOf(m.Header)
	if err != nil {
		return fmt.Errorf("jetstream: message %d of stream %s: %w", last, s.topo.Stream, err)
	}
	if ok && got != want {
		return fmt.Errorf("jetstream: refusing to read: %w", &wire.ForeignStoreError{Stream: s.topo.Stream, Seq: last, Want: want, Got: got})
	}
	return nil
}

func (s *Source) consumer(ctx context.Context, req projection.SourceRequest) (jetstream.Consumer, error) {
	name := s.ConsumerName(req.Build)
	filters := s.FilterSubjects(req.Categories, req.Types)
	cons, err := s.js.Consumer(ctx, s.topo.Stream, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("jetstream: stream %s not found (is the relay running? did NATS lose its data?): %w", s.topo.Stream, err)
	}
	if err == nil {
		info := cons.CachedInfo()
		if sameStrings(info.Config.FilterSubjects, filters) || (len(filters) == 1 && info.Config.FilterSubject == filters[0]) ||
			(len(filters) > 1 && info.Config.FilterSubject == s.topo.SubjectPrefix+".>") {
			return cons, nil
		}
		if err := s.js.DeleteConsumer(ctx, s.topo.Stream, name); err != nil {
			return nil, fmt.Errorf("jetstream: replace consumer %s with new filters: %w", name, err)
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("jetstream: look up consumer %s on stream %s: %w", name, s.topo.Stream, err)
	}
	cons, start, err := s.createConsumer(ctx, req, name, "Chronicle projection "+req.Build.String(), filters)
	if err != nil {
		return nil, err
	}
	s.log.Info("created projection consumer", "projection", req.Build.Name, "consumer", name, "stream", s.topo.Stream,
		"start_seq", start, "after", req.After.String())
	return cons, nil
}

// partitionConsumer creates the durable consumer of one partition of a
// build, filtered on its buckets, to start at the first message after the
// partition's checkpoint req.After. An existing one is deleted first: it
// may hold deliveries a former owner never acknowledged (redelivered only
// after the ack wait), or start elsewhere; the runner opens a partition's
// consumer only while it holds the partition's lease.
func (s *Source) partitionConsumer(ctx context.Context, req projection.SourceRequest) (jetstream.Consumer, error) {
	name := s.PartitionConsumerName(req.Build, req.Partition)
	filters, err := s.PartitionFilterSubjects(req.Partition, req.Partitions, req.Categories, req.Types)
	if err != nil {
		return nil, fmt.Errorf("jetstream: consumer %s: %w", name, err)
	}
	err = s.js.DeleteConsumer(ctx, s.topo.Stream, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("jetstream: stream %s not found (is the relay running? did NATS lose its data?): %w", s.topo.Stream, err)
	case err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("jetstream: replace consumer %s on stream %s: %w", name, s.topo.Stream, err)
	}
	desc := fmt.Sprintf("Chronicle projection %s partition %d of %d", req.Build, req.Partition, req.Partitions)
	cons, start, err := s.createConsumer(ctx, req, name, desc, filters)
	if err != nil {
		return nil, err
	}
	s.log.Debug("created partition consumer", "projection", req.Build.Name, "consumer", name, "stream", s.topo.Stream,
		"partition", req.Partition, "start_seq", start, "after", req.After.String())
	return cons, nil
}

// createConsumer creates the durable consumer name, filtered on filters,
// to start at the first message after req.After. On a server older than
// 2.10, which cannot filter on several subjects, the consumer reads every
// subject (the runner keeps only what it wants), and says so. It returns
// the consumer and the stream sequence it starts at.
func (s *Source) createConsumer(ctx context.Context, req projection.SourceRequest, name, desc string, filters []string) (jetstream.Consumer, uint64, error) {
	start, err := s.startSeq(ctx, req.After)
	if err != nil {
		return nil, 0, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        name,
		Description:    desc,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        s.ackWait,
		MaxDeliver:     -1,
		MaxAckPending:  s.maxAckPending,
		FilterSubjects: filters,
	}
	if len(filters) == 1 {
		// One filter works with servers older than 2.10 too.
		cfg.FilterSubject, cfg.FilterSubjects = filters[0], nil
	}
	cons, err := s.js.CreateOrUpdateConsumer(ctx, s.topo.Stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) {
		cfg.FilterSubject, cfg.FilterSubjects = s.topo.SubjectPrefix+".>", nil
		s.log.Warn("NATS server cannot filter on several subjects; the consumer reads every record",
			"projection", req.Build.Name, "consumer", name, "filters", filters)
		cons, err = s.js.CreateOrUpdateConsumer(ctx, s.topo.Stream, cfg)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("jetstream: create consumer %s on stream %s: %w", name, s.topo.Stream, err)
	}
	return cons, start, nil
}

// startSeq finds the first stream sequence whose record comes after pos.
func (s *Source) startSeq(ctx context.Context, pos eventstore.Position) (uint64, error) {
	st, err := s.js.Stream(ctx, s.topo.Stream)
	if err != nil {
		return 0, fmt.Errorf("jetstream: stream %s (is the relay running?): %w", s.topo.Stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("jetstream: stream %s info: %w", s.topo.Stream, err)
	}
	lo, hi := info.State.FirstSeq, info.State.LastSeq+1 // answer in [lo, hi]
	if info.State.Msgs == 0 || pos.IsZero() {
		if pos.IsZero() {
			return max(lo, 1), nil
		}
		return hi, nil
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		p, seq, err := s.positionAt(ctx, st, mid, hi)
		if err != nil {
			return 0, err
		}
		if seq >= hi || pos.Before(p) {
			hi = mid
		} else {
			lo = seq + 1
		}
	}
	return lo, nil
}

// positionAt returns the position of the first message at or after seq
// (below limit), skipping deleted ones; seq >= limit when there is none.
func (s *Source) positionAt(ctx context.Context, st jetstream.Stream, seq, limit uint64) (eventstore.Position, uint64, error) {
	for ; seq < limit; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return eventstore.Position{}, 0, fmt.Errorf("jetstream: read message %d of stream %s: %w", seq, s.topo.Stream, err)
		}
		p, err := eventstore.ParsePosition(m.Header.Get(wire.HeaderPosition))
		if err != nil {
			return eventstore.Position{}, 0, fmt.Errorf("jetstream: message %d of stream %s: %w", seq, s.topo.Stream, err)
		}
		return p, seq, nil
	}
	return eventstore.Position{}, limit, nil
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type feed struct {
	ch         chan projection.Delivery
	it         jetstream.MessagesContext
	done       chan struct{}
	name       string
	stream     string
	projection string
	store      EventStore
	want       uuid.UUID
	heartbeat  time.Duration
	once       sync.Once
	mu         sync.Mutex
	err        error
}

func (f *feed) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// fail ends the feed with err, logged with the projection's name.
func (f *feed) fail(log *slog.Logger, err error) {
	f.setErr(err)
	log.Warn("projection feed ended; the runner catches up from the event store and reopens it",
		"projection", f.projection, "consumer", f.name, "stream", f.stream, "err", err)
}

func (f *feed) run(ctx context.Context, log *slog.Logger) {
	defer close(f.done)
	defer close(f.ch)
	stop := context.AfterFunc(ctx, f.it.Stop)
	defer stop()
	var lastConsumerSeq uint64
	for {
		msg, err := f.it.Next()
		if err != nil {
			switch {
			case errors.Is(err, jetstream.ErrMsgIteratorClosed) && ctx.Err() != nil:
				f.setErr(ctx.Err())
			case errors.Is(err, jetstream.ErrMsgIteratorClosed):
				f.setErr(fmt.Errorf("jetstream: consumer %s on stream %s: %w", f.name, f.stream, err))
			case errors.Is(err, jetstream.ErrNoHeartbeat):
				f.fail(log, fmt.Errorf("jetstream: consumer %s on stream %s: no heartbeat from the server for %s: the consumer or the stream was deleted, NATS lost its data, or it cannot be reached: %w",
					f.name, f.stream, 2*f.heartbeat, err))
			case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
				f.fail(log, fmt.Errorf("jetstream: consumer %s on stream %s is gone (deleted, or NATS lost its data): %w", f.name, f.stream, err))
			default:
				f.fail(log, fmt.Errorf("jetstream: consumer %s on stream %s: %w", f.name, f.stream, err))
			}
			return
		}
		md, err := msg.Metadata()
		if err != nil {
			_ = msg.Term()
			log.Error("message without JetStream metadata", "projection", f.projection, "consumer", f.name, "err", err)
			continue
		}
		if lastConsumerSeq != 0 && md.Sequence.Consumer != lastConsumerSeq+1 {
			// A delivery was lost in transit: stop, so the runner catches up
			// from the event store and reopens; order is never broken.
			_ = msg.Nak()
			f.fail(log, fmt.Errorf("jetstream: consumer %s: delivery gap (%d after %d)", f.name, md.Sequence.Consumer, lastConsumerSeq))
			return
		}
		lastConsumerSeq = md.Sequence.Consumer
		if other, ok, err := wire.StoreOf(msg.Headers()); err != nil || (ok && f.want != uuid.Nil && other != f.want) {
			// Another store's message: never apply it, never skip it.
			_ = msg.Nak()
			if err == nil {
				err = &wire.ForeignStoreError{Stream: f.stream, Seq: md.Sequence.Stream, Want: f.want, Got: other}
			}
			f.fail(log, fmt.Errorf("jetstream: consumer %s: %w", f.name, err))
			return
		}
		rec, err := wire.RecordFromMsg(msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			_ = msg.TermWithReason(err.Error())
			log.Error("skipping a message that is not a Chronicle record", "projection", f.projection, "consumer", f.name, "err", err)
			continue
		}
		if size, ok := wire.Elided(msg.Headers()); ok {
			rec, err = f.resolve(ctx, rec, size)
			if err != nil {
				_ = msg.Nak()
				f.fail(log, err)
				return
			}
		}
		select {
		case f.ch <- projection.Delivery{Record: rec, Acker: acker{msg}}:
		case <-ctx.Done():
			f.setErr(ctx.Err())
			return
		}
	}
}

// resolve reads from the event store a record the relay published without
// its Data.
func (f *feed) resolve(ctx context.Context, rec eventstore.Record, size int) (eventstore.Record, error) {
	for got, err := range f.store.ReadStream(ctx, rec.StreamID, eventstore.ReadStreamOptions{From: rec.StreamVersion, Limit: 1, BatchSize: 1}) {
		if err != nil {
			return rec, fmt.Errorf("jetstream: read %s, published without its data (%d bytes), from the event store: %w", describe(rec), size, err)
		}
		if got.ID != rec.ID || got.StreamVersion != rec.StreamVersion {
			return rec, fmt.Errorf("jetstream: %s was published without its data, and the event store holds event %s at that version: the stream and the store do not match",
				describe(rec), got.ID)
		}
		return got, nil
	}
	return rec, fmt.Errorf("jetstream: %s was published without its data and is not in the event store: the stream and the store do not match", describe(rec))
}

func describe(rec eventstore.Record) string {
	return fmt.Sprintf("event %s (stream %q version %d, type %q, position %s)", rec.ID, rec.StreamID, rec.StreamVersion, rec.Type, rec.Position)
}

func (f *feed) Deliveries() <-chan projection.Delivery { return f.ch }

func (f *feed) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *feed) Close() error {
	f.once.Do(f.it.Stop)
	<-f.done
	return nil
}

type acker struct{ m jetstream.Msg }

func (a acker) Ack() error                    { return a.m.Ack() }
func (a acker) Nak(delay time.Duration) error { return a.m.NakWithDelay(delay) }
func (a acker) Term(reason string) error      { return a.m.TermWithReason(reason) }
func (a acker) InProgress() error             { return a.m.InProgress() }
