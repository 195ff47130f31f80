package wire_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/relay/wire"
)

func sampleRecords() []eventstore.Record {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	return []eventstore.Record{
		{
			ID: uuid.MustParse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"), StreamID: "account-42", StreamVersion: 3,
			Position: eventstore.Position{TxID: 1234, Seq: 77}, Type: "AccountOpened", SchemaVersion: 2,
			Data: []byte(`{"owner":"ann"}`), RecordedAt: at,
			Metadata: eventstore.Metadata{eventstore.CorrelationIDKey: "c-1", "tenant": "acme", "note": "h\u00e9llo \U0001F600\n", "q\"uo\\te": "\x01\t\r\"\\\x7f"},
		},
		{
			ID: uuid.New(), StreamID: " weird.stream*id>\twith\nnewline ", StreamVersion: 1,
			Position: eventstore.Position{TxID: 1, Seq: 1}, Type: "\"Quoted\" Typ\u00e9.v2", SchemaVersion: 1,
			Data: []byte(`{}`), RecordedAt: at.Add(time.Hour),
		},
		{
			ID: uuid.New(), StreamID: "nocategory", StreamVersion: 9223372036854775807,
			Position: eventstore.Position{TxID: 18446744073709551615, Seq: 18446744073709551615}, Type: "T",
			SchemaVersion: 7, Data: []byte(`[1,2,3]`), RecordedAt: time.Unix(0, 1).UTC(),
		},
	}
}

func assertRecord(t *testing.T, want, got eventstore.Record) {
	t.Helper()
	if got.ID != want.ID || got.StreamID != want.StreamID || got.StreamVersion != want.StreamVersion ||
		got.Position != want.Position || got.Type != want.Type || got.SchemaVersion != want.SchemaVersion ||
		string(got.Data) != string(want.Data) || !got.RecordedAt.Equal(want.RecordedAt) || len(got.Metadata) != len(want.Metadata) {
		t.Fatalf("record mismatch:\nwant %+v\ngot  %+v", want, got)
	}
	for k, v := range want.Metadata {
		if got.Metadata[k] != v {
			t.Fatalf("metadata %q: want %q, got %q", k, v, got.Metadata[k])
		}
	}
}

func TestMessageRoundTrip(t *testing.T) {
	t.Parallel()
	for _, rec := range sampleRecords() {
		msg := wire.NewMsg("", uuid.Nil, rec)
		got, err := wire.RecordFromMsg(msg.Subject, msg.Header, msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		assertRecord(t, rec, got)
		if msg.Header.Get(wire.HeaderMsgID) != rec.ID.String() {
			t.Fatalf("Nats-Msg-Id = %q, want %s", msg.Header.Get(wire.HeaderMsgID), rec.ID)
		}
		if _, ok := msg.Header[wire.HeaderMetadata]; ok != (len(rec.Metadata) > 0) {
			t.Fatalf("metadata header present = %v with metadata %v", ok, rec.Metadata)
		}
		for k, vs := range msg.Header {
			for _, v := range vs {
				for i := 0; i < len(v); i++ {
					if v[i] < ' ' || v[i] > '~' {
						t.Fatalf("header %s value %q is not printable ASCII", k, v)
					}
				}
			}
		}
	}
}

// TestMessageRoundTripThroughNATS checks that the headers survive the NATS
// wire encoding exactly, odd characters included.
func TestMessageRoundTripThroughNATS(t *testing.T) {
	t.Parallel()
	srv := testenv.NATS(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("rt.>")
	if err != nil {
		t.Fatal(err)
	}
	recs := sampleRecords()
	for _, rec := range recs {
		if err := nc.PublishMsg(wire.NewMsg("rt", uuid.Nil, rec)); err != nil {
			t.Fatal(err)
		}
	}
	for _, rec := range recs {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wire.RecordFromMsg(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		assertRecord(t, rec, got)
	}
}

func TestRecordFromMsgMissingHeader(t *testing.T) {
	t.Parallel()
	rec := sampleRecords()[0]
	for _, h := range []string{wire.HeaderMsgID, wire.HeaderStream, wire.HeaderVersion, wire.HeaderPosition,
		wire.HeaderType, wire.HeaderSchemaVersion, wire.HeaderRecordedAt} {
		msg := wire.NewMsg("", uuid.Nil, rec)
		msg.Header.Del(h)
		_, err := wire.RecordFromMsg(msg.Subject, msg.Header, msg.Data)
		if err == nil || !strings.Contains(err.Error(), "missing header "+h) {
			t.Fatalf("without %s: error %v, want one naming the header", h, err)
		}
	}
	msg := wire.NewMsg("", uuid.Nil, rec)
	msg.Header.Set(wire.HeaderPosition, "12-3")
	if _, err := wire.RecordFromMsg(msg.Subject, msg.Header, msg.Data); err == nil || !strings.Contains(err.Error(), wire.HeaderPosition) {
		t.Fatalf("bad position: error %v, want one naming %s", err, wire.HeaderPosition)
	}
}

func TestSubjects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		stream, typ, prefix, want string
	}{
		{"account-42", "AccountOpened", "", "chronicle.events.account.AccountOpened"},
		{"order-1-2", "Order.Placed", "x.y", "x.y.order.Order_Placed"},
		{"a b*c>d-1", "T y\tp", "p", "p.a_b_c_d.T_y_p"},
		{"-1", "T", "p", "p._.T"},
		{"caf\u00e9-1", "\u00dcberwiesen", "p", "p.caf\u00e9.\u00dcberwiesen"},
	}
	for _, tt := range tests {
		got := wire.Subject(tt.prefix, eventstore.Record{StreamID: tt.stream, Type: tt.typ})
		if got != tt.want {
			t.Errorf("Subject(%q, {%q, %q}) = %q, want %q", tt.prefix, tt.stream, tt.typ, got, tt.want)
		}
	}
	if got := wire.FilterSubject("", "", ""); got != "chronicle.events.*.*" {
		t.Errorf("FilterSubject all = %q", got)
	}
	if got := wire.FilterSubject("p", "order", ""); got != "p.order.*" {
		t.Errorf("FilterSubject category = %q", got)
	}
	if got := wire.FilterSubject("p", "", "A.B"); got != "p.*.A_B" {
		t.Errorf("FilterSubject type = %q", got)
	}
}

func ExampleSubject() {
	rec := eventstore.Record{StreamID: "account-42", Type: "AccountOpened"}
	fmt.Println(wire.Subject(wire.DefaultSubjectPrefix, rec))
	fmt.Println(wire.FilterSubject(wire.DefaultSubjectPrefix, "account", ""))
	fmt.Println(wire.EscapeToken("v1.Funds Deposited"))
	// Output:
	// chronicle.events.account.AccountOpened
	// chronicle.events.account.*
	// v1_Funds_Deposited
}

func TestUUIDHeaderIsCanonical(t *testing.T) {
	t.Parallel()
	for i := 0; i < 100; i++ {
		rec := sampleRecords()[1]
		store := uuid.New()
		msg := wire.NewMsg("p", store, rec)
		if got := msg.Header.Get(wire.HeaderMsgID); got != rec.ID.String() {
			t.Fatalf("%s = %q, want %q", wire.HeaderMsgID, got, rec.ID)
		}
		if got, ok, err := wire.StoreOf(msg.Header); err != nil || !ok || got != store {
			t.Fatalf("StoreOf = %v %v %v, want %v", got, ok, err, store)
		}
	}
}

func BenchmarkNewMsg(b *testing.B) {
	rec := sampleRecords()[0]
	enc := wire.NewEncoder("chronicle.events", uuid.New())
	b.ReportAllocs()
	for b.Loop() {
		_ = enc.Msg(rec)
	}
}
