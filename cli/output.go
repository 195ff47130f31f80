package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf16"
	"unicode/utf8"

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
	l := fmt.Sprintf("%s v%d", field(s.rec.Type), s.rec.SchemaVersion)
	if s.upcast {
		if s.stored.Type != s.rec.Type {
			l += fmt.Sprintf(" (upcast from %s v%d)", field(s.stored.Type), s.stored.SchemaVersion)
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
		parts[i] = quoteIfNeeded(k) + "=" + quoteIfNeeded(md[k])
	}
	return strings.Join(parts, " ")
}

// quoteIfNeeded quotes s when it is empty, would split a key=value pair,
// or holds anything [field] quotes.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " =") {
		return strconv.Quote(s)
	}
	return field(s)
}

// Text output shows what users and services wrote: stream IDs, event
// types, metadata, data, projection names, runners' owners and errors.
// Printed raw, a newline in a stream ID forges a row of a table, and an
// escape sequence moves the cursor, recolours or retitles the operator's
// terminal. Every such value goes through field (a value in a table or a
// line) or escapeText (a message); JSON output is safe as it is.

// printable reports whether s is valid UTF-8 made only of printable runes
// (strconv.IsPrint: no control characters, no format characters such as
// bidi overrides, no space but ASCII space).
func printable(s string) bool {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return false // an invalid byte; U+FFFD itself is printable
			}
		}
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// field is s as it is when it is printable and does not start with a
// double quote, else s quoted with Go escapes (strconv.Quote), so that a
// value stays on its line and in its column, and a quoted value cannot be
// mistaken for a plain one.
func field(s string) string {
	if printable(s) && !strings.HasPrefix(s, `"`) {
		return s
	}
	return strconv.Quote(s)
}

// escapeText replaces, in a message, every rune that is not printable with
// its Go escape (\n, \x1b, \u202e) and every invalid UTF-8 byte with \xNN,
// leaving the rest, quotes and backslashes included, as it is.
func escapeText(s string) string {
	if printable(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case strconv.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// dataText is the record's data on one line: compact JSON whose
// unprintable runes are written as JSON escapes (so it is the same JSON),
// or, for data that is not JSON, the data as a [field].
func dataText(b []byte) string {
	var buf bytes.Buffer
	if !utf8.Valid(b) || json.Compact(&buf, b) != nil {
		return field(string(b))
	}
	s := buf.String()
	if printable(s) {
		return s
	}
	var out strings.Builder
	for _, r := range s {
		switch r1, r2 := utf16.EncodeRune(r); {
		case strconv.IsPrint(r):
			out.WriteRune(r)
		case r1 == utf8.RuneError:
			fmt.Fprintf(&out, `\u%04x`, r)
		default:
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		}
	}
	return out.String()
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
