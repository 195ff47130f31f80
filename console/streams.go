package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/process"
	"github.com/chronicle-go/chronicle/projection"
)

// Streams is what the stream browser reads; *espg.Store is one.
type Streams interface {
	ListStreams(ctx context.Context, opts eventstore.ListStreamsOptions) iter.Seq2[eventstore.StreamInfo, error]
	ReadStream(ctx context.Context, streamID string, opts eventstore.ReadStreamOptions) iter.Seq2[eventstore.Record, error]
	ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.Record, error]
}

// WithStreams enables the stream browser on store: listing and searching
// streams, showing a stream's events, and following a correlation ID
// across streams as a causation tree.
func WithStreams(store Streams) Option { return func(h *Handler) { h.streams = store } }

// WithDecoder shows each event upcast and decoded by d (an *upcast.Chain or
// a codec registry through projection.DecoderFunc) next to its raw data.
func WithDecoder(d projection.Decoder) Option { return func(h *Handler) { h.decoder = d } }

// Limits of the stream browser's answers.
const (
	// MaxStreamsListed caps the streams one listing returns.
	MaxStreamsListed = 200
	// MaxEventsShown caps the events shown of one stream (from its start,
	// or from the version asked for) and of one correlation ID.
	MaxEventsShown = 1000
	// maxStreamsScanned caps the streams a search reads to find matches.
	maxStreamsScanned = 100_000
)

// StreamsPage is a page of streams, as GET api/streams returns it.
type StreamsPage struct {
	Streams []StreamOverview `json:"streams"`
	// Next is the After of the next page, or "" at the end.
	Next string `json:"next"`
}

// StreamOverview is one stream and its version.
type StreamOverview struct {
	StreamID string `json:"stream_id"`
	Version  int64  `json:"version"`
}

// EventView is one event as the stream browser shows it.
type EventView struct {
	EventID       string            `json:"event_id"`
	StreamID      string            `json:"stream_id"`
	Version       int64             `json:"version"`
	Position      string            `json:"position"`
	Type          string            `json:"type"`
	SchemaVersion int               `json:"schema_version"`
	RecordedAt    time.Time         `json:"recorded_at"`
	Metadata      map[string]string `json:"metadata"`
	Data          json.RawMessage   `json:"data"`
	// Decoded holds the values the decoder made of the event (after
	// upcasting), when the console has one; DecodeError says why it could
	// not.
	Decoded     []any  `json:"decoded,omitempty"`
	DecodeError string `json:"decode_error,omitempty"`
	// Children are the events this one caused (correlation view only).
	Children []*EventView `json:"children,omitempty"`
}

// StreamEvents lists up to [MaxEventsShown] events of a stream from version
// from (1 when zero).
func (h *Handler) StreamEvents(ctx context.Context, streamID string, from int64) ([]*EventView, error) {
	if h.streams == nil {
		return nil, errNoStreams
	}
	out := []*EventView{}
	for rec, err := range h.streams.ReadStream(ctx, streamID, eventstore.ReadStreamOptions{From: from, Limit: MaxEventsShown}) {
		if err != nil {
			return nil, fmt.Errorf("console: read stream %q: %w", streamID, err)
		}
		out = append(out, h.view(rec))
	}
	return out, nil
}

// ListStreams lists up to limit streams (at most [MaxStreamsListed]) after
// after, of category when set, whose IDs contain search when set.
func (h *Handler) ListStreams(ctx context.Context, category, search, after string, limit int) (StreamsPage, error) {
	p := StreamsPage{Streams: []StreamOverview{}}
	if h.streams == nil {
		return p, errNoStreams
	}
	if limit <= 0 || limit > MaxStreamsListed {
		limit = MaxStreamsListed
	}
	scanned := 0
	for info, err := range h.streams.ListStreams(ctx, eventstore.ListStreamsOptions{Category: category, After: after}) {
		if err != nil {
			return p, fmt.Errorf("console: list streams: %w", err)
		}
		scanned++
		if search == "" || strings.Contains(info.StreamID, search) {
			if len(p.Streams) == limit {
				p.Next = p.Streams[len(p.Streams)-1].StreamID
				return p, nil
			}
			p.Streams = append(p.Streams, StreamOverview{StreamID: info.StreamID, Version: info.Version})
		}
		if scanned >= maxStreamsScanned {
			p.Next = info.StreamID
			return p, nil
		}
	}
	return p, nil
}

// Correlation reads the log for the events whose correlation ID is id (at
// most [MaxEventsShown]) and returns them as a causation tree: each event
// under the event whose ID is its causation ID, the others at the root, in
// log order. It scans the whole log.
func (h *Handler) Correlation(ctx context.Context, id string) ([]*EventView, error) {
	if h.streams == nil {
		return nil, errNoStreams
	}
	var all []*EventView
	for rec, err := range h.streams.ReadAll(ctx, eventstore.ReadAllOptions{}) {
		if err != nil {
			return nil, fmt.Errorf("console: read the log for correlation ID %q: %w", id, err)
		}
		if rec.Metadata.CorrelationID() != id {
			continue
		}
		all = append(all, h.view(rec))
		if len(all) == MaxEventsShown {
			break
		}
	}
	byID := make(map[string]*EventView, len(all))
	for _, e := range all {
		byID[e.EventID] = e
	}
	roots := []*EventView{}
	for _, e := range all {
		if p, ok := byID[e.Metadata[eventstore.CausationIDKey]]; ok && p != e {
			p.Children = append(p.Children, e)
			continue
		}
		roots = append(roots, e)
	}
	return roots, nil
}

func (h *Handler) view(rec eventstore.Record) *EventView {
	v := &EventView{EventID: rec.ID.String(), StreamID: rec.StreamID, Version: rec.StreamVersion, Position: rec.Position.String(),
		Type: rec.Type, SchemaVersion: rec.SchemaVersion, RecordedAt: rec.RecordedAt, Metadata: rec.Metadata, Data: rec.Data}
	if v.Metadata == nil {
		v.Metadata = map[string]string{}
	}
	if !json.Valid(v.Data) {
		v.Data, _ = json.Marshal(string(rec.Data))
	}
	if h.decoder != nil {
		vals, err := h.decoder.Decode(rec)
		if err != nil {
			v.DecodeError = err.Error()
		} else {
			v.Decoded = vals
		}
	}
	return v
}

func (h *Handler) listStreams(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	p, err := h.ListStreams(r.Context(), q.Get("category"), q.Get("search"), q.Get("after"), limit)
	writeJSON(w, p, err)
}

func (h *Handler) streamEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("id") == "" {
		http.Error(w, "console: bad request: no stream id", http.StatusBadRequest)
		return
	}
	from, err := strconv.ParseInt(q.Get("from"), 10, 64)
	if q.Get("from") != "" && (err != nil || from < 0) {
		http.Error(w, "console: bad request: from must be a version", http.StatusBadRequest)
		return
	}
	evs, err := h.StreamEvents(r.Context(), q.Get("id"), from)
	writeJSON(w, evs, err)
}

func (h *Handler) correlation(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" {
		http.Error(w, "console: bad request: no correlation id", http.StatusBadRequest)
		return
	}
	tree, err := h.Correlation(r.Context(), id)
	writeJSON(w, tree, err)
}

func writeJSON(w http.ResponseWriter, v any, err error) {
	if errors.Is(err, errNoStreams) || errors.Is(err, eventstore.ErrStreamNotFound) || errors.Is(err, errNoProcesses) ||
		errors.Is(err, process.ErrNotFound) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "console: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
