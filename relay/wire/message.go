package wire

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Header names carried by every published message. Together with the
// message body (the record's Data) they hold the whole [eventstore.Record];
// [RecordFromMsg] reads them back. [HeaderStore] and [HeaderElided] say
// where the record comes from and whether its Data was left out.
//
// Values are plain text when they are printable ASCII without leading or
// trailing spaces and do not start with a double quote; any other value
// (newlines, non-ASCII letters, ...) is sent as a JSON string literal with
// non-ASCII characters escaped, so that it survives NATS header encoding
// exactly.
const (
	// HeaderMsgID holds the event ID; JetStream drops a message whose ID
	// it has already stored within the stream's duplicate window.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderStream holds the record's stream ID.
	HeaderStream = "Chronicle-Stream"
	// HeaderVersion holds the record's stream version, in decimal.
	HeaderVersion = "Chronicle-Version"
	// HeaderPosition holds the record's global position as "TxID/Seq"
	// (see [eventstore.Position.String]).
	HeaderPosition = "Chronicle-Position"
	// HeaderType holds the record's event type.
	HeaderType = "Chronicle-Type"
	// HeaderSchemaVersion holds the record's schema version, in decimal.
	HeaderSchemaVersion = "Chronicle-Schema-Version"
	// HeaderRecordedAt holds when the store recorded the event, in
	// RFC 3339 with nanoseconds, in UTC.
	HeaderRecordedAt = "Chronicle-Recorded-At"
	// HeaderMetadata holds the record's metadata as a JSON object with
	// non-ASCII characters escaped. It is omitted when the metadata is
	// empty.
	HeaderMetadata = "Chronicle-Metadata"
	// HeaderTraceParent and HeaderTraceState repeat the W3C trace context
	// of the append that wrote the record (metadata keys
	// eventstore.TraceParentKey and eventstore.TraceStateKey) under the
	// standard header names, when the record carries one. Decoding reads
	// it from the metadata.
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
	// HeaderStore holds the identity of the event store the record was
	// read from (a UUID created when the store's schema was migrated; see
	// [StoreIdentifier]). A relay refuses to resume on a stream whose last
	// message names another store, and a consumer refuses such a message.
	// Messages published before stores had identities lack it.
	HeaderStore = "Chronicle-Store"
	// HeaderElided, when present, means the message carries no body: the
	// record's Data (of the size in bytes the header holds, in decimal) did
	// not fit in the NATS server's max_payload. Consumers read the record
	// from the event store by its stream and version (see [Elided]); the
	// other headers are those of any message.
	HeaderElided = "Chronicle-Elided"
)

// EscapeToken makes s a valid single NATS subject token: every byte that
// may not appear in a token ('.', '*', '>', spaces and other ASCII control
// or whitespace bytes) is replaced by '_', and an empty s becomes "_".
// The mapping is lossy; the headers carry the exact values.
func EscapeToken(s string) string {
	if s == "" {
		return "_"
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' {
			if b == nil {
				b = []byte(s)
			}
			b[i] = '_'
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

// Subject returns the subject rec is published on: prefix, then the
// escaped category of its stream, then its escaped type, joined by dots.
// An empty prefix means [DefaultSubjectPrefix]. A record of type
// "AccountOpened" in stream "account-42" is published on
// "chronicle.events.account.AccountOpened" under the default prefix.
func Subject(prefix string, rec eventstore.Record) string {
	if prefix == "" {
		prefix = DefaultSubjectPrefix
	}
	return prefix + "." + EscapeToken(rec.Category()) + "." + EscapeToken(rec.Type)
}

// FilterSubject returns a subject filter matching the records of one
// category and one event type under prefix; an empty category or type
// matches any ('*'). FilterSubject(prefix, "", "") matches every record.
// An empty prefix means [DefaultSubjectPrefix].
func FilterSubject(prefix, category, eventType string) string {
	if prefix == "" {
		prefix = DefaultSubjectPrefix
	}
	c, t := "*", "*"
	if category != "" {
		c = EscapeToken(category)
	}
	if eventType != "" {
		t = EscapeToken(eventType)
	}
	return prefix + "." + c + "." + t
}

// NewMsg returns the message that publishes rec, read from the event store
// whose identity is store: its subject (see [Subject]), its headers (see
// [HeaderMsgID] and the other header names; [HeaderStore] is omitted when
// store is uuid.Nil) and its Data as body. The body shares rec.Data's
// memory. [Encoder] does the same for many records.
func NewMsg(prefix string, store uuid.UUID, rec eventstore.Record) *nats.Msg {
	return NewEncoder(prefix, store).Msg(rec)
}

// NewElidedMsg returns the message that announces rec without its Data,
// for a record too large for the NATS server's max_payload: the headers
// of [NewMsg] plus [HeaderElided] with the size of the Data left out, and
// an empty body. Consumers read the Data from the event store.
func NewElidedMsg(prefix string, store uuid.UUID, rec eventstore.Record) *nats.Msg {
	return NewEncoder(prefix, store).Elided(rec)
}

// Encoder builds the messages of one event store's records under one
// subject prefix, as [NewMsg] and [NewElidedMsg] do, sharing what every
// message has in common. It is safe for concurrent use.
type Encoder struct {
	topo  Topology
	store []string // the HeaderStore value, shared by every message; nil for uuid.Nil
}

// NewEncoder returns an encoder for the records of the event store whose
// identity is store (uuid.Nil: no [HeaderStore]) under prefix (empty means
// [DefaultSubjectPrefix]).
func NewEncoder(prefix string, store uuid.UUID) *Encoder {
	return Topology{SubjectPrefix: prefix}.Encoder(store)
}

// Encoder returns an encoder for the records of the event store whose
// identity is store (uuid.Nil: no [HeaderStore]) on t's subjects (see
// [Topology.Subject]): with t's bucket token when t has buckets.
func (t Topology) Encoder(store uuid.UUID) *Encoder {
	e := &Encoder{topo: t}
	if store != uuid.Nil {
		e.store = []string{store.String()}
	}
	return e
}

// Msg returns the message that publishes rec (see [NewMsg]).
func (e *Encoder) Msg(rec eventstore.Record) *nats.Msg { return e.msg(rec, -1) }

// Elided returns the message that announces rec without its Data (see
// [NewElidedMsg]).
func (e *Encoder) Elided(rec eventstore.Record) *nats.Msg { return e.msg(rec, len(rec.Data)) }

func (e *Encoder) msg(rec eventstore.Record, elided int) *nats.Msg {
	// Build every value in one buffer and one string, and every value
	// slice in one array: a handful of allocations per message.
	const n = 9
	var ends [n]int
	buf := make([]byte, 0, 128+len(rec.StreamID)+len(rec.Type)+16*len(rec.Metadata))
	buf = appendUUID(buf, rec.ID)
	ends[0] = len(buf)
	buf = appendValue(buf, rec.StreamID)
	ends[1] = len(buf)
	buf = strconv.AppendInt(buf, rec.StreamVersion, 10)
	ends[2] = len(buf)
	buf = strconv.AppendUint(buf, rec.Position.TxID, 10)
	buf = append(buf, '/')
	buf = strconv.AppendUint(buf, rec.Position.Seq, 10)
	ends[3] = len(buf)
	buf = appendValue(buf, rec.Type)
	ends[4] = len(buf)
	buf = strconv.AppendInt(buf, int64(rec.SchemaVersion), 10)
	ends[5] = len(buf)
	buf = rec.RecordedAt.UTC().AppendFormat(buf, time.RFC3339Nano)
	ends[6] = len(buf)
	if len(rec.Metadata) > 0 {
		buf = appendMetadataJSON(buf, rec.Metadata)
	}
	ends[7] = len(buf)
	if elided >= 0 {
		buf = strconv.AppendInt(buf, int64(elided), 10)
	}
	ends[8] = len(buf)
	all := string(buf)
	vals := make([]string, n)
	for i, start := 0, 0; i < n; i++ {
		vals[i] = all[start:ends[i]]
		start = ends[i]
	}
	h := make(nats.Header, 12) // room for the relay's expectation header
	h[HeaderMsgID] = vals[0:1:1]
	h[HeaderStream] = vals[1:2:2]
	h[HeaderVersion] = vals[2:3:3]
	h[HeaderPosition] = vals[3:4:4]
	h[HeaderType] = vals[4:5:5]
	h[HeaderSchemaVersion] = vals[5:6:6]
	h[HeaderRecordedAt] = vals[6:7:7]
	if len(rec.Metadata) > 0 {
		h[HeaderMetadata] = vals[7:8:8]
	}
	if e.store != nil {
		h[HeaderStore] = e.store
	}
	// The W3C trace context of the append, under its standard header
	// names too, for tracing tools that read NATS headers.
	if tp := rec.Metadata[eventstore.TraceParentKey]; tp != "" {
		h[HeaderTraceParent] = []string{tp}
		if ts := rec.Metadata[eventstore.TraceStateKey]; ts != "" {
			h[HeaderTraceState] = []string{ts}
		}
	}
	msg := &nats.Msg{Subject: e.topo.Subject(rec), Header: h}
	if elided >= 0 {
		h[HeaderElided] = vals[8:9:9]
	} else {
		msg.Data = rec.Data
	}
	return msg
}

// appendUUID appends id in its canonical form (8-4-4-4-12 hexadecimal
// digits), as id.String() gives it, without allocating.
func appendUUID(b []byte, id uuid.UUID) []byte {
	b = hex.AppendEncode(b, id[0:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[8:10])
	b = append(b, '-')
	return hex.AppendEncode(b, id[10:16])
}

// StoreOf returns the event store identity a message names in
// [HeaderStore]; ok is false when the message has none (it was published
// before stores had identities).
func StoreOf(hdr nats.Header) (id uuid.UUID, ok bool, err error) {
	v := hdr.Get(HeaderStore)
	if v == "" {
		return uuid.Nil, false, nil
	}
	id, err = uuid.Parse(v)
	if err != nil {
		return uuid.Nil, true, fmt.Errorf("wire: header %s: invalid store identity %q: %w", HeaderStore, v, err)
	}
	return id, true, nil
}

// Elided reports whether a message was published without the record's
// Data (see [HeaderElided]), and the size of the Data left out.
func Elided(hdr nats.Header) (size int, ok bool) {
	v := hdr.Get(HeaderElided)
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return -1, true
	}
	return n, true
}

// RecordFromMsg rebuilds the record a message published by the relay
// carries, from its subject, headers and body. It returns an error naming
// the header that is missing or malformed. Data is the body itself, not a
// copy; it is empty for an elided message (see [Elided]), whose Data must
// be read from the event store. The subject is only used in error
// messages.
func RecordFromMsg(subject string, hdr nats.Header, data []byte) (eventstore.Record, error) {
	var errs []error
	get := func(name string) string {
		v := hdr.Get(name)
		if v == "" {
			errs = append(errs, fmt.Errorf("missing header %s", name))
		}
		return v
	}
	var rec eventstore.Record
	if v := get(HeaderMsgID); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: invalid event ID %q: %w", HeaderMsgID, v, err))
		}
		rec.ID = id
	}
	if v := get(HeaderStream); v != "" {
		s, err := decodeValue(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", HeaderStream, err))
		}
		rec.StreamID = s
	}
	if v := get(HeaderVersion); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("header %s: invalid stream version %q", HeaderVersion, v))
		}
		rec.StreamVersion = n
	}
	if v := get(HeaderPosition); v != "" {
		p, err := eventstore.ParsePosition(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", HeaderPosition, err))
		}
		rec.Position = p
	}
	if v := get(HeaderType); v != "" {
		s, err := decodeValue(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", HeaderType, err))
		}
		rec.Type = s
	}
	if v := get(HeaderSchemaVersion); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: invalid schema version %q", HeaderSchemaVersion, v))
		}
		rec.SchemaVersion = n
	}
	if v := get(HeaderRecordedAt); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: invalid time %q: %w", HeaderRecordedAt, v, err))
		}
		rec.RecordedAt = t
	}
	if v := hdr.Get(HeaderMetadata); v != "" {
		var m map[string]string
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			errs = append(errs, fmt.Errorf("header %s: invalid JSON object: %w", HeaderMetadata, err))
		}
		if len(m) > 0 {
			rec.Metadata = eventstore.Metadata(m)
		}
	}
	if len(errs) > 0 {
		return eventstore.Record{}, fmt.Errorf("wire: message on subject %q is not a Chronicle record: %w", subject, errors.Join(errs...))
	}
	rec.Data = data
	return rec, nil
}

// appendMetadataJSON appends m as a JSON object with sorted keys,
// escaping control and non-ASCII characters as \uXXXX so the text is
// printable ASCII.
func appendMetadataJSON(b []byte, m eventstore.Metadata) []byte {
	var small [8]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal in printable ASCII.
// Invalid UTF-8 becomes U+FFFD, as with encoding/json.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= ' ' && c < 0x7f && c != '"' && c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
			i++
			continue
		case '\n':
			b = append(b, '\\', 'n')
			i++
			continue
		case '\r':
			b = append(b, '\\', 'r')
			i++
			continue
		case '\t':
			b = append(b, '\\', 't')
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			b = appendU(appendU(b, r1), r2)
		} else {
			b = appendU(b, r)
		}
	}
	return append(b, '"')
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// appendValue appends s as is when NATS headers carry it unchanged, and as
// an ASCII JSON string literal otherwise.
func appendValue(b []byte, s string) []byte {
	if plainValue(s) {
		return append(b, s...)
	}
	return appendJSONString(b, s)
}

func plainValue(s string) bool {
	if s == "" || s[0] == '"' || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func decodeValue(v string) (string, error) {
	if !strings.HasPrefix(v, `"`) {
		return v, nil
	}
	var s string
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return "", fmt.Errorf("invalid JSON string %s: %w", v, err)
	}
	return s, nil
}
