package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/backoff"
	"github.com/chronicle-go/chronicle/internal/telemetry"
	"github.com/chronicle-go/chronicle/snapshot"
)

// EventStore is what a [Repository] needs from an event store: appending to
// a stream and reading one. Every eventstore.Store satisfies it.
type EventStore interface {
	Append(ctx context.Context, streamID string, expected eventstore.ExpectedVersion, events ...eventstore.Event) (eventstore.AppendResult, error)
	ReadStream(ctx context.Context, streamID string, opts eventstore.ReadStreamOptions) iter.Seq2[eventstore.Record, error]
}

// SnapshotStreamReader is an optional interface of an [EventStore]: one
// that can read a stream's latest snapshot, kept in a snapshot store it
// recognises, together with the stream's events from that snapshot's
// version on, in one round trip. A repository with snapshots whose event
// store implements it loads (Load, Update without a cached state) with one
// read instead of two. espg.Store implements it for a snappg.Store on the
// same pool.
type SnapshotStreamReader interface {
	// ReadStreamWithSnapshot returns the latest snapshot of streamID in
	// snapshots (a zero Snapshot when there is none) and up to limit
	// records of the stream from the snapshot's version (included) or
	// from version 1, in order; ok is false when it cannot read
	// snapshots (another kind of store, another database), and then it
	// reads nothing. A stream that does not exist has no records.
	ReadStreamWithSnapshot(ctx context.Context, snapshots snapshot.Store, streamID string, limit int) (snap snapshot.Snapshot, recs []eventstore.Record, ok bool, err error)
}

// Codec is what a [Repository] needs to write and read events: encoding an
// event value, and decoding a stored record at its type's current schema
// version. *codec.Registry is one; *upcast.Chain, which wraps a registry,
// is one that also upcasts (an [UpcastingCodec]).
type Codec interface {
	// Encode returns the event type name, current schema version and
	// payload of the event value v.
	Encode(v any) (name string, schemaVersion int, data []byte, err error)
	// DecodeRecord decodes rec into a value of its registered type.
	DecodeRecord(rec eventstore.Record) (any, error)
}

// UpcastingCodec is a [Codec] that also brings records stored at older
// schema versions to the current ones, as *upcast.Chain does. A repository
// given one upcasts every loaded record that needs it (Load, LoadAt,
// Update, with or without a snapshot or cached state) and decodes each
// resulting record with DecodeRecord; a split yields several events, each
// applied in order.
type UpcastingCodec interface {
	Codec
	// NeedsUpcast reports whether rec is not at its type's current schema
	// version, so that Upcast would change it.
	NeedsUpcast(rec eventstore.Record) bool
	// Upcast returns rec brought to the current schema: one record, or
	// several for a split, in order.
	Upcast(rec eventstore.Record) ([]eventstore.Record, error)
}

// Repository loads and saves aggregates of type T (a pointer type such as
// *Account) as streams of events. It is safe for concurrent use; the
// aggregates it returns are not (load one per command).
type Repository[T Aggregate] struct {
	store    EventStore
	codec    Codec
	upcaster UpcastingCodec // codec, when it upcasts
	newT     func(id string) T
	cfg      config
	log      *slog.Logger

	cache  *stateCache
	sem    chan struct{} // one token per background snapshot write
	mu     sync.Mutex
	closed bool
	stats  stats
	tel    *telemetry.Loads // spans and metrics of loads (telemetry.go)
	obs    metric.Registration
}

type stats struct {
	retries, conflicts, taken, failed, skipped, ignored, cacheHits, cacheStale, oneQuery atomic.Int64
	snapHits, snapMisses, snapLoadFailed                                                 atomic.Int64
}

// Stats counts what a repository did since it was made.
type Stats struct {
	// Retries is the number of times Update ran a command again after a
	// conflict; Conflicts the number of conflicts Update or Save met.
	Retries, Conflicts int64
	// SnapshotsTaken counts snapshots stored, SnapshotsFailed those that
	// could not be encoded or stored, SnapshotsSkipped those due while the
	// background writers were busy, SnapshotsIgnored those found at load
	// but not used (other revision, undecodable, ahead of the stream).
	SnapshotsTaken, SnapshotsFailed, SnapshotsSkipped, SnapshotsIgnored int64
	// SnapshotHits counts loads that started from a snapshot,
	// SnapshotMisses those that looked for one and found none (or none at
	// or before the version asked for), SnapshotLoadsFailed those whose
	// snapshot store failed (they replayed the stream). Loads served from
	// the state cache look for no snapshot; loads whose snapshot was
	// ignored count in SnapshotsIgnored.
	SnapshotHits, SnapshotMisses, SnapshotLoadsFailed int64
	// CacheHits counts loads and updates served from the state cache;
	// CacheStale the cached states an append found out of date.
	CacheHits, CacheStale int64
	// OneQueryLoads counts loads that read the snapshot and the events
	// after it in one query (see [SnapshotStreamReader]).
	OneQueryLoads int64
}

// NewRepository returns a repository of aggregates of type T, stored in
// store and encoded and decoded by codec: a *codec.Registry when every
// stored event is at its type's current schema version, or an
// *upcast.Chain built on the registry (an [UpcastingCodec]) so that events
// stored at older versions are brought to the current ones on every load.
// newT returns a new, empty aggregate (a non-nil pointer) for an ID; the
// repository sets the ID on it. A nil aggregate from newT fails the load or
// Create that asked for it with an error.
//
// It returns an error, joining every problem found, for a nil store, codec
// or newT, or an option given a value it cannot use; nil options are
// ignored. It has no side effects: no goroutine starts until an
// asynchronous snapshot is due.
func NewRepository[T Aggregate](store EventStore, codec Codec, newT func(id string) T, opts ...Option) (*Repository[T], error) {
	cfg, err := apply(opts)
	var errs []error
	if isNil(store) {
		errs = append(errs, errors.New("aggregate: nil event store"))
	}
	if isNil(codec) {
		errs = append(errs, errors.New("aggregate: nil codec: pass a *codec.Registry, or an *upcast.Chain built on it"))
	}
	if newT == nil {
		errs = append(errs, errors.New("aggregate: nil constructor (newT)"))
	}
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, err
	}
	log := cfg.logger
	if log == nil {
		log = slog.Default()
	}
	r := &Repository[T]{store: store, codec: codec, newT: newT, cfg: cfg, log: log,
		sem: make(chan struct{}, cfg.maxInFlight), cache: newStateCache(cfg.cacheSize), tel: telemetry.NewLoads(cfg.telemetry)}
	r.upcaster, _ = codec.(UpcastingCodec)
	r.observeStats()
	return r, nil
}

// isNil reports whether v is nil or a nil pointer, map, func, channel or
// slice in an interface.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// StreamID returns the stream ID of the aggregate id: category + "-" + id
// with [WithCategory], id otherwise.
func (r *Repository[T]) StreamID(id string) string {
	if r.cfg.category == "" {
		return id
	}
	return r.cfg.category + "-" + id
}

// Stats returns the repository's counters.
func (r *Repository[T]) Stats() Stats {
	return Stats{Retries: r.stats.retries.Load(), Conflicts: r.stats.conflicts.Load(),
		SnapshotsTaken: r.stats.taken.Load(), SnapshotsFailed: r.stats.failed.Load(),
		SnapshotsSkipped: r.stats.skipped.Load(), SnapshotsIgnored: r.stats.ignored.Load(),
		SnapshotHits: r.stats.snapHits.Load(), SnapshotMisses: r.stats.snapMisses.Load(), SnapshotLoadsFailed: r.stats.snapLoadFailed.Load(),
		CacheHits: r.stats.cacheHits.Load(), CacheStale: r.stats.cacheStale.Load(), OneQueryLoads: r.stats.oneQuery.Load()}
}

// Load returns the aggregate id at its latest version: from the latest
// usable snapshot and the events after it, or from all its events. A
// missing stream fails with an error matching [ErrNotFound] (and
// eventstore.ErrStreamNotFound).
func (r *Repository[T]) Load(ctx context.Context, id string) (a T, err error) {
	ctx, op := r.tel.StartLoad(ctx, r.StreamID(id))
	defer func() { op.End(versionOf(a, err), &err) }()
	return r.load(ctx, r.StreamID(id), id, 0)
}

// LoadAt returns the aggregate id as it was at stream version version: the
// state after its first version events. A version the stream has not
// reached fails with [ErrVersionNotFound]. Saving the result conflicts
// unless the stream is still at that version.
func (r *Repository[T]) LoadAt(ctx context.Context, id string, version int64) (T, error) {
	if version < 1 {
		var zero T
		return zero, fmt.Errorf("aggregate: load %q at version %d: want a version of 1 or more", r.StreamID(id), version)
	}
	ctx, op := r.tel.StartLoad(ctx, r.StreamID(id))
	var err error
	defer func() { op.End(version, &err) }()
	a, err := r.load(ctx, r.StreamID(id), id, version)
	return a, err
}

// fresh returns a new aggregate from newT with its ID set, or an error
// when newT returned nil.
func (r *Repository[T]) fresh(id string) (T, error) {
	a := r.newT(id)
	if isNil(a) || a.root() == nil {
		var zero T
		return zero, fmt.Errorf("aggregate: the constructor returned a nil %T for %q; it must return a new, non-nil aggregate", a, id)
	}
	SetID(a, id)
	return a, nil
}

// load loads the aggregate id, whose stream is stream, like LoadAt (at > 0)
// or Load (at == 0).
func (r *Repository[T]) load(ctx context.Context, stream, id string, at int64) (T, error) {
	var zero T
	a, ok := r.fromCache(stream, id)
	if ok && at > 0 && a.root().version > at {
		ok = false
	}
	if ok {
		r.stats.cacheHits.Add(1)
		cachedAt := a.root().version
		got, err := r.replay(ctx, stream, a, cachedAt, at)
		if err == nil && got.root().version > cachedAt {
			// Another writer moved the stream: keep the caught-up state
			// so the next use does not read the same events again.
			r.recache(stream, got)
		}
		if !errors.Is(err, errSnapshotAhead) {
			return got, err
		}
		r.cache.drop(stream)
	}
	if at == 0 {
		if a, done, err := r.loadOneQuery(ctx, stream, id); done {
			return a, err
		}
	}
	if a, ok := r.fromSnapshot(ctx, stream, id, at); ok {
		v := a.root().version
		got, err := r.replay(ctx, stream, a, v, at)
		switch {
		case err == nil:
			return got, nil
		case !errors.Is(err, errSnapshotAhead):
			return zero, err
		}
		r.stats.ignored.Add(1)
		r.log.Warn("aggregate: snapshot is ahead of its stream; replaying the stream", "stream", stream, "snapshot_version", v)
	}
	a, err := r.fresh(id)
	if err != nil {
		return zero, err
	}
	return r.replay(ctx, stream, a, 0, at)
}

var errSnapshotAhead = errors.New("snapshot ahead of stream")

// replay applies the events of stream after version from (0: all) to a, up
// to version at (0: the end). With from > 0, a is at version from (from a
// snapshot) and the read starts at from itself to check the stream has it.
func (r *Repository[T]) replay(ctx context.Context, stream string, a T, from, at int64) (T, error) {
	var zero T
	telemetry.NoteReplayFrom(ctx, from)
	root := a.root()
	opts := eventstore.ReadStreamOptions{From: max(from, 1), BatchSize: r.cfg.readBatch}
	if at > 0 {
		opts.Limit = int(at - opts.From + 1)
	}
	checkFirst := from > 0
	for rec, err := range r.store.ReadStream(ctx, stream, opts) {
		if err != nil {
			if errors.Is(err, eventstore.ErrStreamNotFound) {
				return zero, notFoundError{stream}
			}
			return zero, fmt.Errorf("aggregate: load %q after version %d: %w", stream, root.version, err)
		}
		if checkFirst {
			checkFirst = false
			if rec.StreamVersion != from {
				return zero, errSnapshotAhead
			}
			continue
		}
		if err := r.step(a, stream, rec); err != nil {
			return zero, err
		}
	}
	if checkFirst {
		return zero, errSnapshotAhead
	}
	if at > 0 && root.version < at {
		return zero, fmt.Errorf("aggregate: load %q at version %d: the stream is at version %d: %w",
			stream, at, root.version, ErrVersionNotFound)
	}
	return a, nil
}

// step applies the next record of stream to a, checking it follows a's
// version.
func (r *Repository[T]) step(a T, stream string, rec eventstore.Record) error {
	root := a.root()
	if rec.StreamVersion != root.version+1 {
		return fmt.Errorf("aggregate: load %q: read version %d after version %d", stream, rec.StreamVersion, root.version)
	}
	if err := r.apply(a, rec); err != nil {
		return fmt.Errorf("aggregate: load %q: %w", stream, err)
	}
	root.version = rec.StreamVersion
	return nil
}

// loadOneQuery loads the aggregate from its latest snapshot and the events
// after it read together, in one round trip, when the event store is a
// [SnapshotStreamReader] that can read the repository's snapshot store.
// done is false when it cannot, or when what it read calls for the
// ordinary load (an unusable snapshot, a snapshot ahead of its stream).
func (r *Repository[T]) loadOneQuery(ctx context.Context, stream, id string) (a T, done bool, err error) {
	var zero T
	sr, ok := r.store.(SnapshotStreamReader)
	if !ok || r.cfg.snapshots == nil {
		return zero, false, nil
	}
	batch := r.cfg.readBatch
	if batch <= 0 {
		batch = eventstore.DefaultBatchSize
	}
	snap, recs, ok, err := sr.ReadStreamWithSnapshot(ctx, r.cfg.snapshots, stream, batch)
	switch {
	case !ok:
		return zero, false, nil
	case err != nil:
		return zero, true, fmt.Errorf("aggregate: load %q: %w", stream, err)
	}
	r.stats.oneQuery.Add(1)
	if snap.Version > 0 {
		a, ok = r.decodeSnapshot(snap, id, 0)
		if ok && (len(recs) == 0 || recs[0].StreamVersion != snap.Version) {
			ok = false
			r.stats.ignored.Add(1)
			r.log.Warn("aggregate: snapshot is ahead of its stream; replaying the stream", "stream", stream, "snapshot_version", snap.Version)
		}
		if !ok {
			// Unusable (decodeSnapshot said why): replay the stream.
			if a, err = r.fresh(id); err != nil {
				return zero, true, err
			}
			a, err = r.replay(ctx, stream, a, 0, 0)
			return a, true, err
		}
		r.stats.snapHits.Add(1)
		recs = recs[1:]
	} else {
		r.stats.snapMisses.Add(1)
		if len(recs) == 0 {
			return zero, true, notFoundError{stream}
		}
		if a, err = r.fresh(id); err != nil {
			return zero, true, err
		}
	}
	telemetry.NoteReplayFrom(ctx, a.root().version)
	for _, rec := range recs {
		if err := r.step(a, stream, rec); err != nil {
			return zero, true, err
		}
	}
	if len(recs)+btoi(snap.Version > 0) < batch {
		return a, true, nil
	}
	// A longer tail: read the rest.
	a, err = r.replay(ctx, stream, a, a.root().version, 0)
	return a, true, err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// apply upcasts, decodes and applies one record.
func (r *Repository[T]) apply(a T, rec eventstore.Record) error {
	if r.upcaster == nil || !r.upcaster.NeedsUpcast(rec) {
		v, err := r.codec.DecodeRecord(rec)
		if err != nil {
			return err
		}
		a.Apply(v)
		return nil
	}
	recs, err := r.upcaster.Upcast(rec)
	if err != nil {
		return err
	}
	for _, u := range recs {
		v, err := r.codec.DecodeRecord(u)
		if err != nil {
			return err
		}
		a.Apply(v)
	}
	return nil
}

func (r *Repository[T]) revision(a T) int {
	if rv, ok := any(a).(Revisioner); ok {
		return rv.SnapshotRevision()
	}
	return 1
}

// fromSnapshot returns the aggregate decoded from the stream's latest
// snapshot when there is a usable one.
func (r *Repository[T]) fromSnapshot(ctx context.Context, stream, id string, at int64) (T, bool) {
	var zero T
	if r.cfg.snapshots == nil {
		return zero, false
	}
	s, err := r.cfg.snapshots.Load(ctx, stream)
	if err != nil {
		// An invalid stream ID is not worth a warning: the event store
		// refuses it next, and that error reaches the caller.
		switch {
		case errors.Is(err, snapshot.ErrNotFound):
			r.stats.snapMisses.Add(1)
		case !errors.Is(err, eventstore.ErrInvalidInput) && ctx.Err() == nil:
			r.stats.snapLoadFailed.Add(1)
			r.log.Warn("aggregate: cannot load snapshot; replaying the stream", "stream", stream, "err", err)
		}
		return zero, false
	}
	if s.Version < 1 || (at > 0 && s.Version > at) {
		r.stats.snapMisses.Add(1)
		return zero, false
	}
	a, ok := r.decodeSnapshot(s, id, at)
	if ok {
		r.stats.snapHits.Add(1)
	}
	return a, ok
}

// decodeSnapshot returns the aggregate decoded from s when it is usable
// for a load at version at (0: the latest).
func (r *Repository[T]) decodeSnapshot(s snapshot.Snapshot, id string, at int64) (T, bool) {
	var zero T
	if s.Version < 1 || (at > 0 && s.Version > at) {
		return zero, false
	}
	a, err := r.fresh(id)
	if err != nil {
		return zero, false
	}
	if rev := r.revision(a); s.Revision != rev {
		r.stats.ignored.Add(1)
		r.log.Warn("aggregate: snapshot of another revision ignored; replaying the stream",
			"stream", s.StreamID, "snapshot_version", s.Version, "snapshot_revision", s.Revision, "revision", rev)
		return zero, false
	}
	if err := json.Unmarshal(s.Data, a); err != nil {
		r.stats.ignored.Add(1)
		r.log.Warn("aggregate: cannot decode snapshot; replaying the stream",
			"stream", s.StreamID, "snapshot_version", s.Version, "err", err)
		return zero, false
	}
	root := a.root()
	root.id, root.version, root.uncommitted = id, s.Version, nil
	return a, true
}

// Save appends a's uncommitted events to its stream, stamped with the
// metadata ctx carries, expecting the stream at the version a was loaded at
// (no stream at all for an aggregate never saved). On success it clears the
// uncommitted events, advances a's version and takes a snapshot when the
// policy says so. An aggregate with nothing uncommitted is not written.
//
// When another writer got there first, the error matches
// eventstore.ErrConcurrencyConflict and a is stale: load it again (or use
// [Repository.Update], which does).
func (r *Repository[T]) Save(ctx context.Context, a T) (eventstore.AppendResult, error) {
	root := a.root()
	if len(root.uncommitted) == 0 {
		return eventstore.AppendResult{Version: root.version}, nil
	}
	if root.id == "" {
		return eventstore.AppendResult{}, errors.New("aggregate: save: the aggregate has no ID; get it from the repository (Load, Create, Update) or call aggregate.SetID")
	}
	return r.save(ctx, r.StreamID(root.id), a)
}

// save is Save for an aggregate with uncommitted events, whose stream is
// stream.
func (r *Repository[T]) save(ctx context.Context, stream string, a T) (eventstore.AppendResult, error) {
	root := a.root()
	expected := eventstore.NoStream
	if root.version > 0 {
		expected = eventstore.Exact(root.version)
	}
	md := eventstore.MetadataFrom(ctx)
	events := make([]eventstore.Event, len(root.uncommitted))
	for i, e := range root.uncommitted {
		name, v, data, err := r.codec.Encode(e)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("aggregate: save %q: event %d (%T): %w", stream, i, e, err)
		}
		events[i] = eventstore.Event{Type: name, SchemaVersion: v, Data: data, Metadata: md}
	}
	res, err := r.store.Append(ctx, stream, expected, events...)
	if err != nil {
		if errors.Is(err, eventstore.ErrConcurrencyConflict) {
			r.stats.conflicts.Add(1)
			r.cache.drop(stream)
		}
		return res, fmt.Errorf("aggregate: save %q at version %d: %w", stream, root.version, err)
	}
	before := root.version
	root.version, root.uncommitted = res.Version, nil
	due := r.cfg.snapshots != nil && r.cfg.policy != nil && r.cfg.policy.Due(before, res.Version)
	if r.cache == nil && !due {
		return res, nil
	}
	data, err := json.Marshal(a)
	if err != nil {
		r.cache.drop(stream)
		if due {
			r.stats.failed.Add(1)
			r.log.Warn("aggregate: cannot encode snapshot", "stream", stream, "version", res.Version, "err", err)
		}
		return res, nil
	}
	r.cache.put(stream, res.Version, data)
	if due {
		r.snapshot(ctx, stream, a, res.Version, data)
	}
	return res, nil
}

// snapshot stores a's state at version; failures are logged, never
// returned.
func (r *Repository[T]) snapshot(ctx context.Context, stream string, a T, version int64, data []byte) {
	s := snapshot.Snapshot{StreamID: stream, Version: version, Revision: r.revision(a), Data: data, TakenAt: time.Now().UTC()}
	// The write slot is taken under the lock that Close sets closed under,
	// so a background write either starts before Close and is waited for
	// by its Flush, or sees closed and writes here.
	r.mu.Lock()
	async := r.cfg.async && !r.closed
	busy := false
	if async {
		select {
		case r.sem <- struct{}{}:
		default:
			busy = true
		}
	}
	r.mu.Unlock()
	if !async {
		wctx, cancel := context.WithTimeout(ctx, r.cfg.snapTimeout)
		defer cancel()
		r.storeSnapshot(wctx, s)
		return
	}
	if busy {
		r.stats.skipped.Add(1)
		r.log.Debug("aggregate: snapshot skipped, background writers busy", "stream", stream, "version", version)
		return
	}
	go func() {
		defer func() { <-r.sem }()
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.snapTimeout)
		defer cancel()
		r.storeSnapshot(wctx, s)
	}()
}

func (r *Repository[T]) storeSnapshot(ctx context.Context, s snapshot.Snapshot) {
	if err := r.cfg.snapshots.Save(ctx, s); err != nil {
		r.stats.failed.Add(1)
		r.log.Warn("aggregate: cannot store snapshot", "stream", s.StreamID, "version", s.Version, "err", err)
		return
	}
	r.stats.taken.Add(1)
}

// Flush waits until the background snapshot writes started so far have
// finished, or ctx ends. Without [WithAsyncSnapshots] it returns at once.
func (r *Repository[T]) Flush(ctx context.Context) error {
	n := 0
	defer func() {
		for ; n > 0; n-- {
			<-r.sem
		}
	}()
	for range cap(r.sem) {
		select {
		case r.sem <- struct{}{}:
			n++
		case <-ctx.Done():
			return fmt.Errorf("aggregate: flush snapshots: %w", ctx.Err())
		}
	}
	return nil
}

// Close waits for background snapshot writes like [Repository.Flush];
// afterwards the repository still works but writes snapshots during Save.
// It is safe to call more than once.
func (r *Repository[T]) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.unobserveStats()
	return r.Flush(ctx)
}

// Update loads the aggregate id, runs cmd on it and saves the events cmd
// raised. When the save meets a concurrency conflict, it waits a jittered,
// growing pause (see [WithBackoff]), loads the aggregate again and runs cmd
// again, up to the number of retries set by [WithRetries]; then it returns
// the conflict. cmd
// may therefore run more than once and must have no side effects beyond
// the aggregate. An error from cmd is returned as it is, with nothing
// saved; a missing aggregate fails with [ErrNotFound] (use
// [Repository.Create] for new ones). With [WithCache], an error or a no-op
// on a cached state is only returned once a read has shown the state was
// current; otherwise cmd runs again on the caught-up state.
func (r *Repository[T]) Update(ctx context.Context, id string, cmd func(T) error) (eventstore.AppendResult, error) {
	stream := r.StreamID(id)
	freeReload := true
	for attempt := 0; ; attempt++ {
		a, hit := r.fromCache(stream, id)
		if hit {
			r.stats.cacheHits.Add(1)
		} else {
			var err error
			if a, err = r.load(ctx, stream, id, 0); err != nil {
				return eventstore.AppendResult{}, err
			}
		}
		err := cmd(a)
		if hit && (err != nil || len(a.root().uncommitted) == 0) {
			// Nothing will reach the store, so nothing would notice a
			// stale cached state: catch up with the events after it (one
			// read) and, when there were any, run the command again on
			// the fresh state, whose outcome stands.
			fresh, lerr := r.load(ctx, stream, id, 0)
			if lerr != nil {
				return eventstore.AppendResult{}, lerr
			}
			if fresh.root().version != a.root().version {
				r.stats.cacheStale.Add(1)
				a, hit = fresh, false
				err = cmd(a)
			}
		}
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		if len(a.root().uncommitted) == 0 {
			return eventstore.AppendResult{Version: a.root().version}, nil
		}
		res, err := r.save(ctx, stream, a)
		if err == nil || !eventstore.IsRetryable(err) {
			return res, err
		}
		if hit {
			r.stats.cacheStale.Add(1)
			if freeReload {
				// The cached state was out of date: reload at once, the
				// first time without counting an attempt.
				freeReload = false
				attempt--
				continue
			}
		}
		if attempt >= r.cfg.retries {
			return res, fmt.Errorf("aggregate: update %q: gave up after %d attempts: %w", stream, attempt+1, err)
		}
		r.stats.retries.Add(1)
		r.log.Debug("aggregate: update conflicted; retrying", "stream", stream, "attempt", attempt+1, "err", err)
		if err := backoff.Sleep(ctx, r.cfg.backoff.Delay(attempt+1), nil); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("aggregate: update %q: %w while waiting to retry after a conflict", stream, err)
		}
	}
}

// Create runs cmd on a new aggregate id and saves the events it raised,
// expecting no stream. When the stream already exists it fails with an
// error matching [ErrAlreadyExists] (and eventstore.ErrConcurrencyConflict);
// it never retries. A command that raises nothing is an error, since
// nothing would be created.
func (r *Repository[T]) Create(ctx context.Context, id string, cmd func(T) error) (eventstore.AppendResult, error) {
	a, err := r.fresh(id)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := cmd(a); err != nil {
		return eventstore.AppendResult{}, err
	}
	if len(a.root().uncommitted) == 0 {
		return eventstore.AppendResult{}, fmt.Errorf("aggregate: create %q: the command raised no events", r.StreamID(id))
	}
	res, err := r.Save(ctx, a)
	if errors.Is(err, eventstore.ErrConcurrencyConflict) {
		return res, fmt.Errorf("aggregate: create %q: %w: %w", r.StreamID(id), ErrAlreadyExists, err)
	}
	return res, err
}
