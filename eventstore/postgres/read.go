package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chronicle-go/chronicle/eventstore"
)

// DefaultStreamBatchSize is the number of records [Store.ReadStream] fetches
// at a time when the options do not say: most streams are read whole, in
// one round trip.
const DefaultStreamBatchSize = 2048

// ReadStream reads the records of one stream, fetching them in batches of
// opts.BatchSize ([DefaultStreamBatchSize] when zero). See
// [eventstore.Store.ReadStream]. A stream that does not
// exist yields one error matching [eventstore.ErrStreamNotFound].
//
// Stream reads see every committed event of the stream at once; they do not
// wait behind older open transactions the way [Store.ReadAll] does.
func (s *Store) ReadStream(ctx context.Context, streamID string, opts eventstore.ReadStreamOptions) iter.Seq2[eventstore.Record, error] {
	if err := eventstore.ValidateStreamID(streamID); err != nil {
		return eventstore.Err(err)
	}
	if err := opts.Validate(); err != nil {
		var ve *eventstore.ValidationError
		if errors.As(err, &ve) {
			ve.Stream = streamID
		}
		return eventstore.Err(err)
	}
	return func(yield func(eventstore.Record, error) bool) {
		backward := opts.Direction == eventstore.Backward
		next := opts.From
		if next == 0 {
			next = 1
			if backward {
				next = math.MaxInt64
			}
		}
		sql := s.q.readStreamFwd
		if backward {
			sql = s.q.readStreamBwd
		}
		left := opts.Limit
		batch := opts.BatchSize
		if batch == 0 {
			batch = DefaultStreamBatchSize
		}
		var buf streamBuf
		for first := true; ; first = false {
			n := batch
			if left > 0 && left < n {
				n = left
			}
			if err := s.fetchStream(ctx, &buf, sql, streamID, next, n); err != nil {
				yield(eventstore.Record{}, s.wrapErr(fmt.Sprintf("read stream %q from version %d", streamID, next), err))
				return
			}
			if first && buf.n == 0 {
				info, err := s.streamInfo(ctx, s.pool, streamID)
				switch {
				case err != nil:
					yield(eventstore.Record{}, err)
				case !info.Exists:
					yield(eventstore.Record{}, fmt.Errorf("postgres: read stream %q: %w", streamID, eventstore.ErrStreamNotFound))
				}
				return
			}
			for _, c := range buf.chunks {
				for _, r := range c {
					if !yield(r, nil) {
						return
					}
				}
			}
			if buf.n < n {
				return
			}
			if left > 0 {
				left -= buf.n
				if left == 0 {
					return
				}
			}
			last := buf.last().StreamVersion
			if backward {
				next = last - 1
				if next < 1 {
					return
				}
			} else {
				next = last + 1
			}
		}
	}
}

// streamBuf holds one batch of a stream read. It grows by adding chunks,
// each as large as all the previous ones together, so that it never copies
// the records it holds, and holds at most twice as many as it needs. It
// keeps its chunks from one batch to the next.
type streamBuf struct {
	chunks [][]eventstore.Record
	n      int // records held
	size   int // records the chunks can hold
	cur    int // chunk being filled
}

// minStreamChunk is the capacity of a stream read's first chunk of records.
const minStreamChunk = 64

// reset empties the buffer, keeping its chunks.
func (b *streamBuf) reset() {
	for i := range b.chunks {
		clear(b.chunks[i])
		b.chunks[i] = b.chunks[i][:0]
	}
	b.n, b.cur = 0, 0
}

// add appends r; want is the number of records the batch may hold in all,
// which bounds the size of a new chunk.
func (b *streamBuf) add(r *eventstore.Record, want int) {
	for b.cur < len(b.chunks) && len(b.chunks[b.cur]) == cap(b.chunks[b.cur]) {
		b.cur++
	}
	if b.cur == len(b.chunks) {
		c := max(b.size, minStreamChunk)
		c = max(min(c, want-b.n), 1)
		b.chunks = append(b.chunks, make([]eventstore.Record, 0, c))
		b.size += c
	}
	b.chunks[b.cur] = append(b.chunks[b.cur], *r)
	b.n++
}

// last returns the last record added; the buffer must not be empty.
func (b *streamBuf) last() *eventstore.Record {
	c := b.chunks[b.cur]
	return &c[len(c)-1]
}

// fetchStream runs a stream query and fills buf with up to n of its rows.
// Every row belongs to streamID, so the records share that string; rows of
// the same type share their type's string too.
func (s *Store) fetchStream(ctx context.Context, buf *streamBuf, sql, streamID string, from int64, n int) error {
	buf.reset()
	rows, err := s.pool.Query(ctx, sql, streamID, from, n)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		r         eventstore.Record
		pos, tx   int64
		id        pgtype.UUID
		typ       pgtype.DriverBytes
		sv        int32
		md        pgtype.DriverBytes
		at        time.Time
		lastType  string
		typeNames map[string]string
	)
	// The stream_id column is skipped (nil): it is streamID. typ and md
	// point into the connection's buffer, valid until the next row.
	dest := []any{&pos, &tx, &id, nil, &r.StreamVersion, &typ, &sv, &r.Data, &md, &at}
	for rows.Next() {
		r = eventstore.Record{}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		r.ID = id.Bytes
		r.StreamID = streamID
		r.Position = eventstore.Position{TxID: uint64(tx), Seq: uint64(pos)}
		r.SchemaVersion = int(sv)
		r.RecordedAt = at
		if string(typ) != lastType {
			if t, ok := typeNames[string(typ)]; ok {
				lastType = t
			} else {
				lastType = string(typ)
				if typeNames == nil {
					typeNames = make(map[string]string)
				}
				if len(typeNames) < maxTypeNames {
					typeNames[lastType] = lastType
				}
			}
		}
		r.Type = lastType
		if md != nil {
			if err := json.Unmarshal(md, &r.Metadata); err != nil {
				return fmt.Errorf("decode metadata of event %s in stream %q at version %d: %w", r.ID, streamID, r.StreamVersion, err)
			}
		}
		buf.add(&r, n)
	}
	return rows.Err()
}

// maxTypeNames bounds the event type names one stream read shares.
const maxTypeNames = 64

// ReadAll reads the global log after opts.After in (transaction id,
// position) order, fetching opts.BatchSize records at a time. See
// [eventstore.Store.ReadAll]. It reads only what was written by
// transactions older than every transaction still running, so it never
// skips an event that commits later; such events are read by the next read
// from the last position returned.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.Record, error] {
	if err := opts.Validate(); err != nil {
		return eventstore.Err(err)
	}
	return s.tel.ReadAll(ctx, opts.After, func(ctx context.Context) iter.Seq2[eventstore.Record, error] { return s.readAll(ctx, opts) })
}

// readAll is ReadAll without its span.
func (s *Store) readAll(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.Record, error] {
	return func(yield func(eventstore.Record, error) bool) {
		after := opts.After
		left := opts.Limit
		buf := make([]eventstore.Record, 0, opts.Batch())
		for {
			var err error
			var full bool
			buf, full, err = s.readAllBatch(ctx, s.pool, buf[:0], after, opts, left)
			if err != nil {
				yield(eventstore.Record{}, err)
				return
			}
			if !yieldBatch(buf, yield, &after, &left) || !full {
				return
			}
		}
	}
}

// yieldBatch yields a batch of the log and advances after and left (the
// records still wanted; 0 for no limit) past it. It reports whether the
// read should go on: false when the consumer stopped or the limit is
// reached.
func yieldBatch(buf []eventstore.Record, yield func(eventstore.Record, error) bool, after *eventstore.Position, left *int) bool {
	for _, r := range buf {
		if !yield(r, nil) {
			return false
		}
	}
	if len(buf) > 0 {
		*after = buf[len(buf)-1].Position
	}
	if *left > 0 {
		*left -= len(buf)
		if *left == 0 {
			return false
		}
	}
	return true
}

// readAllBatch reads one batch of the log after after through q; full
// reports whether the batch was full (more may follow).
func (s *Store) readAllBatch(ctx context.Context, q querier, buf []eventstore.Record, after eventstore.Position, opts eventstore.ReadAllOptions, left int) ([]eventstore.Record, bool, error) {
	n := opts.Batch()
	if left > 0 && left < n {
		n = left
	}
	cats := opts.Categories
	if cats == nil {
		cats = []string{}
	}
	types := opts.Types
	if types == nil {
		types = []string{}
	}
	if after.TxID > math.MaxInt64 || after.Seq > math.MaxInt64 {
		return buf, false, &eventstore.ValidationError{Index: -1, Field: "options", Problem: fmt.Sprintf("position %s is out of range", after)}
	}
	sql := s.q.readAll
	if len(cats) > 0 {
		sql = s.q.readAllCat
	}
	buf, err := s.fetch(ctx, q, buf, sql, int64(after.TxID), int64(after.Seq), cats, types, n)
	if err != nil {
		return buf, false, s.wrapErr(fmt.Sprintf("read the log after %s", after), err)
	}
	return buf, len(buf) == n, nil
}

// fetch runs a record query through q and appends its rows to buf.
func (s *Store) fetch(ctx context.Context, q querier, buf []eventstore.Record, sql string, args ...any) ([]eventstore.Record, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return buf, err
	}
	defer rows.Close()
	var (
		r       eventstore.Record
		pos, tx int64
		id      pgtype.UUID
		sv      int32
		md      []byte
		at      time.Time
	)
	dest := []any{&pos, &tx, &id, &r.StreamID, &r.StreamVersion, &r.Type, &sv, &r.Data, &md, &at}
	for rows.Next() {
		r = eventstore.Record{}
		md = nil
		if err := rows.Scan(dest...); err != nil {
			return buf, err
		}
		r.ID = id.Bytes
		r.Position = eventstore.Position{TxID: uint64(tx), Seq: uint64(pos)}
		r.SchemaVersion = int(sv)
		r.RecordedAt = at
		if md != nil {
			if err := json.Unmarshal(md, &r.Metadata); err != nil {
				return buf, fmt.Errorf("decode metadata of event %s in stream %q at version %d: %w", r.ID, r.StreamID, r.StreamVersion, err)
			}
		}
		buf = append(buf, r)
	}
	return buf, rows.Err()
}

// StreamInfo returns the stream's current version and whether it exists.
func (s *Store) StreamInfo(ctx context.Context, streamID string) (eventstore.StreamInfo, error) {
	if err := eventstore.ValidateStreamID(streamID); err != nil {
		return eventstore.StreamInfo{}, err
	}
	return s.streamInfo(ctx, s.pool, streamID)
}

func (s *Store) streamInfo(ctx context.Context, q querier, streamID string) (eventstore.StreamInfo, error) {
	info := eventstore.StreamInfo{StreamID: streamID}
	err := q.QueryRow(ctx, s.q.streamInfo, streamID).Scan(&info.Version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return info, nil
	case err != nil:
		return info, s.wrapErr(fmt.Sprintf("read stream %q info", streamID), err)
	}
	info.Exists = true
	return info, nil
}

// Head returns the position of the last record readers can see now: the
// last one written by a transaction older than every transaction still
// running. It is the zero Position when there is none.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	var tx, pos int64
	err := s.pool.QueryRow(ctx, s.q.head).Scan(&tx, &pos)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return eventstore.Position{}, nil
	case err != nil:
		return eventstore.Position{}, s.wrapErr("read the head of the log", err)
	}
	return eventstore.Position{TxID: uint64(tx), Seq: uint64(pos)}, nil
}
