package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/upcast"
)

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// writeJSONIndent writes v as indented JSON, for bounded results.
func writeJSONIndent(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// jsonRecord is the JSON form of a record printed by streams show and tail.
type jsonRecord struct {
	StreamID      string              `json:"stream_id"`
	Version       int64               `json:"version"`
	Position      string              `json:"position"`
	ID            string              `json:"id"`
	Type          string              `json:"type"`
	SchemaVersion int                 `json:"schema_version"`
	GoType        string              `json:"go_type,omitempty"`
	RecordedAt    time.Time           `json:"recorded_at"`
	Metadata      eventstore.Metadata `json:"metadata"`
	Data          json.RawMessage     `json:"data"`
	UpcastFrom    *jsonStored         `json:"upcast_from,omitempty"`
}

// jsonStored is the stored type and schema version of an upcast record.
type jsonStored struct {
	Type          string `json:"type"`
	SchemaVersion int    `json:"schema_version"`
}

// shown is a record as a command shows it: upcast, or as stored.
type shown struct {
	rec    eventstore.Record
	stored eventstore.Record
	upcast bool
	goType string
}

// recordView turns stored records into what the user sees: upcast through
// the registered chain unless raw is set.
type recordView struct {
	chain *upcast.Chain
	raw   bool
}

func (v recordView) records(rec eventstore.Record) ([]shown, error) {
	if v.raw || v.chain == nil {
		return []shown{{rec: rec, stored: rec, goType: v.goType(rec.Type)}}, nil
	}
	if !v.chain.NeedsUpcast(rec) {
		return []shown{{rec: rec, stored: rec, goType: v.goType(rec.Type)}}, nil
	}
	recs, err := v.chain.Upcast(rec)
	if err != nil {
		return nil, fmt.Errorf("%w (use --raw to see the stored event)", err)
	}
	out := make([]shown, len(recs))
	for i, r := range recs {
		out[i] = shown{rec: r, stored: rec, upcast: true, goType: v.goType(r.Type)}
	}
	return out, nil
}

func (v recordView) goType(name string) string {
	if v.raw || v.chain == nil {
		return ""
	}
	if t, ok := v.chain.Registry().TypeOf(name); ok {
		return t.String()
	}
	return ""
}

func (s shown) json() jsonRecord {
	r := s.rec
	md := r.Metadata
	if md == nil {
		md = eventstore.Metadata{}
	}
	data := json.RawMessage(r.Data)
	if !json.Valid(data) {
		b, _ := json.Marshal(string(r.Data))
		data = b
	}
	j := jsonRecord{
		StreamID: r.StreamID, Version: r.StreamVersion, Position: r.Position.String(),
		ID: r.ID.String(), Type: r.Type, SchemaVersion: r.SchemaVersion, GoType: s.goType,
		RecordedAt: r.RecordedAt.UTC(), Metadata: md, Data: data,
	}
	if s.upcast {
		j.UpcastFrom = &jsonStored{Type: s.stored.Type, SchemaVersion: s.stored.SchemaVersion}
	}
	return j
}

// typeLabel is "Type v2", with where it was upcast from.
func (s shown) typeLabel() string {
	l := fmt.Sprintf("%s v%d", s.rec.Type, s.rec.SchemaVersion)
	if s.upcast {
		if s.stored.Type != s.rec.Type {
			l += fmt.Sprintf(" (upcast from %s v%d)", s.stored.Type, s.stored.SchemaVersion)
		} else {
			l += fmt.Sprintf(" (upcast from v%d)", s.stored.SchemaVersion)
		}
	}
	return l
}

// metadataText formats metadata as sorted key=value pairs.
func metadataText(md eventstore.Metadata) string {
	if len(md) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + quoteIfNeeded(md[k])
	}
	return strings.Join(parts, " ")
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\"=") {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// dataText is the record's data as compact JSON on one line.
func dataText(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err == nil {
		return buf.String()
	}
	return strings.ReplaceAll(string(b), "\n", " ")
}

// formatDuration rounds a duration for a table.
func formatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// formatTime prints a time in UTC with milliseconds.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// readAfter reads the whole log after p, at most limit records.
func readAfter(p eventstore.Position, limit int) eventstore.ReadAllOptions {
	return eventstore.ReadAllOptions{After: p, Limit: limit, BatchSize: 2000}
}

// redactURL hides the password of a URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
