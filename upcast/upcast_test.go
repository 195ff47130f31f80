package upcast_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/upcast"
	"github.com/google/uuid"
)

// Current shapes.
type opened struct {
	Owner    string `json:"owner"`
	Currency string `json:"currency"`
}
type deposited struct {
	Cents int `json:"cents"`
}
type named struct {
	Name string `json:"name"`
}
type emailSet struct {
	Email string `json:"email"`
}

func registry(t *testing.T) *codec.Registry {
	t.Helper()
	r := codec.NewRegistry()
	codec.MustRegister[opened](r, "Opened", 3)
	codec.MustRegister[deposited](r, "FundsDeposited", 2)
	codec.MustRegister[named](r, "NameSet", 1)
	codec.MustRegister[emailSet](r, "EmailSet", 1)
	return r
}

// upcasters: Opened v1 -> v2 (owner from "name"), v2 -> v3 (bump, currency
// added later), MoneyDeposited v1 renamed to FundsDeposited v1, FundsDeposited
// v1 -> v2 (amount in units -> cents), ProfileUpdated v1 split in NameSet +
// EmailSet.
func upcasters() []upcast.Upcaster {
	return []upcast.Upcaster{
		upcast.Fields("Opened", 1, func(m map[string]any) error {
			m["owner"] = m["name"]
			delete(m, "name")
			return nil
		}),
		upcast.Bump("Opened", 2),
		upcast.Rename("MoneyDeposited", 1, "FundsDeposited", 1),
		upcast.Transform("FundsDeposited", 1, func(data []byte) ([]byte, error) {
			return bytes.Replace(bytes.Replace(data, []byte(`"amount"`), []byte(`"cents"`), 1), []byte(`}`), []byte(`00}`), 1), nil
		}),
		upcast.Split("ProfileUpdated", 1, []upcast.Key{{Type: "NameSet", Version: 1}, {Type: "EmailSet", Version: 1}},
			func(data []byte) ([][]byte, error) {
				var p struct{ Name, Email string }
				if err := jsonUnmarshal(data, &p); err != nil {
					return nil, err
				}
				return [][]byte{jsonMarshal(named{p.Name}), jsonMarshal(emailSet{p.Email})}, nil
			}),
	}
}

func rec(typ string, v int, data string) eventstore.Record {
	return eventstore.Record{ID: uuid.New(), StreamID: "account-1", StreamVersion: 4, Type: typ, SchemaVersion: v, Data: []byte(data)}
}

func TestChainUpcastsEveryKind(t *testing.T) {
	t.Parallel()
	reg := registry(t)
	c, err := upcast.New(reg, upcasters()...)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   eventstore.Record
		want []any
	}{
		{"current passes", rec("Opened", 3, `{"owner":"a","currency":"EUR"}`), []any{opened{"a", "EUR"}}},
		{"transform and bump", rec("Opened", 1, `{"name":"ada"}`), []any{opened{Owner: "ada"}}},
		{"rename then transform", rec("MoneyDeposited", 1, `{"amount":7}`), []any{deposited{700}}},
		{"split", rec("ProfileUpdated", 1, `{"Name":"n","Email":"e"}`), []any{named{"n"}, emailSet{"e"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Decode(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("value %d = %#v, want %#v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestSplitKeepsVersionAndDerivesIDs(t *testing.T) {
	t.Parallel()
	c, err := upcast.New(registry(t), upcasters()...)
	if err != nil {
		t.Fatal(err)
	}
	in := rec("ProfileUpdated", 1, `{"Name":"n","Email":"e"}`)
	a, err := c.DecodeRecords(in)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.DecodeRecords(in)
	if len(a) != 2 || a[0].Record.ID != in.ID || a[1].Record.ID == in.ID || a[1].Record.ID != b[1].Record.ID {
		t.Fatalf("split IDs: in %s, out %s %s, again %s", in.ID, a[0].Record.ID, a[1].Record.ID, b[1].Record.ID)
	}
	for _, d := range a {
		if d.Record.StreamVersion != in.StreamVersion || d.Record.StreamID != in.StreamID {
			t.Fatalf("split record moved: %+v", d.Record)
		}
	}
	if a[1].Record.Type != "EmailSet" || a[1].Record.SchemaVersion != 1 {
		t.Fatalf("second record = %s v%d", a[1].Record.Type, a[1].Record.SchemaVersion)
	}
}

func TestCurrentRecordPassesUnchanged(t *testing.T) { // not parallel: AllocsPerRun
	c, err := upcast.New(registry(t), upcasters()...)
	if err != nil {
		t.Fatal(err)
	}
	in := rec("NameSet", 1, `{"name":"x"}`)
	if c.NeedsUpcast(in) {
		t.Fatal("NeedsUpcast of a current record")
	}
	out, err := c.Upcast(in)
	if err != nil || len(out) != 1 || &out[0].Data[0] != &in.Data[0] {
		t.Fatalf("Upcast of current record = %v, %v", out, err)
	}
	allocs := testing.AllocsPerRun(100, func() { _, _ = c.Upcast(in) })
	if allocs > 1 {
		t.Fatalf("Upcast of a current record allocates %.0f times, want at most 1 (the slice)", allocs)
	}
	var nilChain *upcast.Chain
	if out, err := nilChain.Upcast(in); err != nil || len(out) != 1 {
		t.Fatalf("nil chain: %v, %v", out, err)
	}
}

func TestNoPathNamesEverything(t *testing.T) {
	t.Parallel()
	reg := registry(t)
	// No upcasters at all: every old version declared never written.
	c, err := upcast.New(reg, upcast.NeverWritten("Opened", 1), upcast.NeverWritten("Opened", 2),
		upcast.NeverWritten("FundsDeposited", 1))
	if err != nil {
		t.Fatal(err)
	}
	in := rec("Opened", 1, `{}`)
	_, err = c.Upcast(in)
	if !errors.Is(err, upcast.ErrNoPath) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{`"Opened" v1`, `"account-1"`, "version 4", "current version is 3", "v1 is declared NeverWritten but this record has it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %s", err, want)
		}
	}
	_, err = c.Upcast(rec("Opened", 9, `{}`))
	if !errors.Is(err, upcast.ErrNoPath) || !strings.Contains(err.Error(), "newer code") {
		t.Fatalf("newer version: err = %v", err)
	}
	// A type the chain knows nothing about passes; the decoder reports it.
	if _, err := c.Upcast(rec("Unknown", 1, `{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decode(rec("Unknown", 1, `{}`)); !errors.Is(err, codec.ErrUnknownType) {
		t.Fatalf("Decode unknown: %v", err)
	}
}

func TestFailingUpcasterNamesRecord(t *testing.T) {
	t.Parallel()
	reg := registry(t)
	if _, err := upcast.New(reg, upcast.Bump("NameSet", 0)); err == nil || !strings.Contains(err.Error(), "version 0") {
		t.Fatalf("version 0: err = %v", err)
	}
	c, err := upcast.New(reg, upcast.Transform("Opened", 1, func([]byte) ([]byte, error) { return nil, errors.New("boom") }), upcast.Bump("Opened", 2),
		upcast.NeverWritten("FundsDeposited", 1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Upcast(rec("Opened", 1, `{}`))
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), `"account-1"`) {
		t.Fatalf("err = %v", err)
	}
	bad := upcast.Upcaster{From: upcast.Key{Type: "Opened", Version: 1}, To: []upcast.Key{{Type: "Opened", Version: 3}},
		Fn: func(eventstore.Record) ([][]byte, error) { return nil, nil }}
	c, err = upcast.New(reg, bad, upcast.NeverWritten("Opened", 2), upcast.NeverWritten("FundsDeposited", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err = c.Upcast(rec("Opened", 1, `{}`)); err == nil || !strings.Contains(err.Error(), "0 payloads for 1 outputs") {
		t.Fatalf("payload count: err = %v", err)
	}
}

func TestNewRejectsBadChains(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ups  []upcast.Upcaster
		want string
	}{
		{"hole", []upcast.Upcaster{upcast.Bump("Opened", 1)}, "no upcaster reads version 2 (a hole"},
		{"duplicate", []upcast.Upcaster{upcast.Bump("Opened", 2), upcast.Bump("Opened", 2)}, "a second upcaster reads"},
		{"reads current", []upcast.Upcaster{upcast.Bump("Opened", 3)}, "upcasters read older versions only"},
		{"cycle", []upcast.Upcaster{upcast.Rename("A", 1, "B", 1), upcast.Rename("B", 1, "A", 1)}, "cycle"},
		{"unregistered end", []upcast.Upcaster{upcast.Rename("A", 1, "Nowhere", 1)}, `"Nowhere" is not registered`},
		{"beyond current", []upcast.Upcaster{upcast.Rename("A", 1, "NameSet", 2)}, "newer than the current version"},
		{"nil fn", []upcast.Upcaster{{From: upcast.Key{Type: "A", Version: 1}, To: []upcast.Key{{Type: "NameSet", Version: 1}}}}, "nil Fn"},
		{"empty to", []upcast.Upcaster{{From: upcast.Key{Type: "A", Version: 1}, Fn: func(eventstore.Record) ([][]byte, error) { return nil, nil }}}, "produces nothing"},
		// Only v2 -> v3 of Opened: stored v1 records could not be read.
		{"hole below the first upcaster", []upcast.Upcaster{upcast.Bump("Opened", 2)},
			`"Opened" is at version 3 but no upcaster reads v1 (a hole in the chain`},
		{"no upcasters for a type above version 1", nil, `"FundsDeposited" is at version 2 but no upcaster reads v1`},
		{"never written twice", []upcast.Upcaster{upcast.NeverWritten("Opened", 1), upcast.NeverWritten("Opened", 1)}, "declared twice"},
		{"never written and upcast", []upcast.Upcaster{upcast.NeverWritten("Opened", 2), upcast.Bump("Opened", 2)}, "declared NeverWritten and also has an upcaster"},
		{"never written at current", []upcast.Upcaster{upcast.NeverWritten("Opened", 3)}, "only older versions can be declared"},
		{"never written unregistered", []upcast.Upcaster{upcast.NeverWritten("Nope", 1)}, `"Nope" is not registered`},
		{"never written read by an output", []upcast.Upcaster{upcast.Rename("Old", 1, "Opened", 2), upcast.NeverWritten("Opened", 2)},
			`"Opened" v2, produced by the upcaster from "Old" v1, goes nowhere: it is declared NeverWritten`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := upcast.New(registry(t), tc.ups...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := upcast.New(nil); err == nil {
		t.Fatal("nil registry accepted")
	}
	// Each hole is reported once, not also as a missing version.
	_, err := upcast.New(registry(t), append(upcasters()[2:], upcast.Bump("Opened", 1))...)
	if err == nil || strings.Count(err.Error(), `"Opened" v2`) != 1 || strings.Contains(err.Error(), "no upcaster reads v2") {
		t.Fatalf("hole reported twice or not at all: %v", err)
	}
}

func TestNeverWrittenCompletesTheChain(t *testing.T) {
	t.Parallel()
	reg := registry(t)
	// Opened was introduced at version 2; v1 only ever existed in code.
	c, err := upcast.New(reg, upcast.Bump("Opened", 2), upcast.NeverWritten("Opened", 1),
		upcast.Rename("MoneyDeposited", 1, "FundsDeposited", 2), upcast.NeverWritten("FundsDeposited", 1))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(rec("Opened", 2, `{"owner":"ada"}`))
	if err != nil || len(got) != 1 || got[0] != (opened{Owner: "ada"}) {
		t.Fatalf("Decode Opened v2 = %v, %v", got, err)
	}
	got, err = c.Decode(rec("MoneyDeposited", 1, `{"cents":5}`))
	if err != nil || len(got) != 1 || got[0] != (deposited{5}) {
		t.Fatalf("Decode MoneyDeposited v1 = %v, %v", got, err)
	}
}

// A chain encodes and decodes single records like its registry, upcasting
// first, so it can be an aggregate repository's only codec.
func TestChainEncodesAndDecodesOneRecord(t *testing.T) {
	t.Parallel()
	c, err := upcast.New(registry(t), upcasters()...)
	if err != nil {
		t.Fatal(err)
	}
	name, v, data, err := c.Encode(deposited{Cents: 5})
	if err != nil || name != "FundsDeposited" || v != 2 || string(data) != `{"cents":5}` {
		t.Fatalf("Encode = %q v%d %s, %v", name, v, data, err)
	}
	got, err := c.DecodeRecord(rec("MoneyDeposited", 1, `{"amount":3}`))
	if err != nil || got != (deposited{Cents: 300}) {
		t.Fatalf("DecodeRecord of an old record = %#v, %v", got, err)
	}
	got, err = c.DecodeRecord(rec("FundsDeposited", 2, `{"cents":7}`))
	if err != nil || got != (deposited{Cents: 7}) {
		t.Fatalf("DecodeRecord of a current record = %#v, %v", got, err)
	}
	_, err = c.DecodeRecord(rec("ProfileUpdated", 1, `{"Name":"n","Email":"e"}`))
	if err == nil || !strings.Contains(err.Error(), "split into 2 events") || !strings.Contains(err.Error(), `"account-1"`) {
		t.Fatalf("DecodeRecord of a split = %v, want an error naming the record", err)
	}
	var nilChain *upcast.Chain
	if _, _, _, err := nilChain.Encode(deposited{}); err == nil {
		t.Fatal("Encode on a nil chain succeeded")
	}
	if _, err := nilChain.DecodeRecord(rec("FundsDeposited", 2, `{}`)); err == nil {
		t.Fatal("DecodeRecord on a nil chain succeeded")
	}
}
