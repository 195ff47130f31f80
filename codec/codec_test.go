package codec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
)

type opened struct {
	Owner string `json:"owner"`
}

type deposited struct {
	Amount int `json:"amount"`
}

func newReg(t *testing.T) *codec.Registry {
	t.Helper()
	r := codec.NewRegistry()
	if err := codec.Register[opened](r, "Opened", 1); err != nil {
		t.Fatal(err)
	}
	if err := codec.Register[deposited](r, "Deposited", 2); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoundTripReturnsValueType(t *testing.T) {
	t.Parallel()
	r := newReg(t)
	name, v, data, err := r.Encode(deposited{Amount: 5})
	if err != nil {
		t.Fatal(err)
	}
	if name != "Deposited" || v != 2 || string(data) != `{"amount":5}` {
		t.Fatalf("Encode = %q v%d %s", name, v, data)
	}
	got, err := r.Decode(name, v, data)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := got.(deposited); !ok || d.Amount != 5 {
		t.Fatalf("Decode = %#v, want deposited{5}", got)
	}
}

func TestRegisterRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		reg  func(r *codec.Registry) error
		want string
	}{
		{"name twice", func(r *codec.Registry) error { return codec.Register[struct{ X int }](r, "Opened", 1) }, "already registered for"},
		{"type twice", func(r *codec.Registry) error { return codec.Register[opened](r, "Opened2", 1) }, `already registered as "Opened"`},
		{"empty name", func(r *codec.Registry) error { return codec.Register[struct{ Y int }](r, "", 1) }, "empty event type name"},
		{"version 0", func(r *codec.Registry) error { return codec.Register[struct{ Z int }](r, "Z", 0) }, "schema version 0"},
		{"interface", func(r *codec.Registry) error { return codec.Register[error](r, "Err", 1) }, "interface type"},
		{"long name", func(r *codec.Registry) error {
			return codec.Register[struct{ W int }](r, strings.Repeat("x", 300), 1)
		}, "longer than"},
		{"NUL in name", func(r *codec.Registry) error { return codec.Register[struct{ N int }](r, "A\x00B", 1) }, "NUL"},
		{"invalid UTF-8 name", func(r *codec.Registry) error { return codec.Register[struct{ U int }](r, "A\xffB", 1) }, "UTF-8"},
		{"pointer type", func(r *codec.Registry) error { return codec.Register[*struct{ P int }](r, "P", 1) }, "pointer"},
		{"pointer to registered type", func(r *codec.Registry) error { return codec.Register[*opened](r, "OpenedPtr", 1) }, "pointer"},
		{"schema version too large", func(r *codec.Registry) error {
			return codec.Register[struct{ V int }](r, "V", eventstore.MaxSchemaVersion+1)
		}, "2147483647"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newReg(t)
			before := r.Names()
			err := tc.reg(r)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "codec: ") {
				t.Fatalf("err = %v, want it to start with codec: and contain %q", err, tc.want)
			}
			if after := r.Names(); len(after) != len(before) {
				t.Fatalf("a refused registration changed the names from %v to %v", before, after)
			}
		})
	}
}

func TestEncodeUnregistered(t *testing.T) {
	t.Parallel()
	r := newReg(t)
	_, _, _, err := r.Encode(&deposited{Amount: 1})
	if !errors.Is(err, codec.ErrUnknownType) || !strings.Contains(err.Error(), "pass the value") {
		t.Fatalf("pointer: err = %v", err)
	}
	_, _, _, err = r.Encode(struct{ Q int }{})
	if !errors.Is(err, codec.ErrUnknownType) {
		t.Fatalf("unregistered: err = %v", err)
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	t.Parallel()
	r := newReg(t)
	rec := eventstore.Record{StreamID: "account-7", StreamVersion: 3, Type: "Closed", SchemaVersion: 1, Data: []byte(`{}`)}
	_, err := r.DecodeRecord(rec)
	if !errors.Is(err, codec.ErrUnknownType) {
		t.Fatalf("unknown: err = %v", err)
	}
	for _, want := range []string{`"Closed"`, `"account-7"`, "version 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("unknown type error %q does not name %s", err, want)
		}
	}
	var re *codec.RecordError
	if !errors.As(err, &re) || re.Stream != "account-7" || re.StreamVersion != 3 {
		t.Fatalf("errors.As RecordError: %#v", re)
	}

	rec.Type, rec.SchemaVersion = "Deposited", 1
	_, err = r.DecodeRecord(rec)
	if !errors.Is(err, codec.ErrVersionMismatch) || !strings.Contains(err.Error(), "upcaster") {
		t.Fatalf("old version: err = %v", err)
	}

	// Newer than current (written by newer code): no upcaster can help, and
	// the message must not ask for one.
	rec.SchemaVersion = 3
	_, err = r.DecodeRecord(rec)
	if !errors.Is(err, codec.ErrVersionMismatch) || strings.Contains(err.Error(), "upcaster") ||
		!strings.Contains(err.Error(), "schema version 3, current is 2: the event was written by newer code") {
		t.Fatalf("newer version: err = %v", err)
	}

	rec.SchemaVersion, rec.Data = 2, []byte(`{"amount":"x"}`)
	_, err = r.DecodeRecord(rec)
	if err == nil || !strings.Contains(err.Error(), `"Deposited"`) {
		t.Fatalf("bad payload: err = %v", err)
	}
}

func TestLookups(t *testing.T) {
	t.Parallel()
	r := newReg(t)
	if v, ok := r.CurrentVersion("Deposited"); !ok || v != 2 {
		t.Fatalf("CurrentVersion = %d, %v", v, ok)
	}
	if _, ok := r.CurrentVersion("Nope"); ok {
		t.Fatal("CurrentVersion of unknown name reported ok")
	}
	if got := strings.Join(r.Names(), ","); got != "Deposited,Opened" {
		t.Fatalf("Names = %s", got)
	}
	if n, ok := r.NameOf(opened{}); !ok || n != "Opened" {
		t.Fatalf("NameOf = %q, %v", n, ok)
	}
	if typ, ok := r.TypeOf("Opened"); !ok || typ.Name() != "opened" {
		t.Fatalf("TypeOf = %v, %v", typ, ok)
	}
}

type upperJSON struct{ codec.JSON }

func (u upperJSON) Marshal(v any) ([]byte, error) {
	b, err := u.JSON.Marshal(v)
	return []byte(strings.ToUpper(string(b))), err
}

func TestWithEncoding(t *testing.T) {
	t.Parallel()
	r := codec.NewRegistry(codec.WithEncoding(upperJSON{}))
	codec.MustRegister[struct {
		A string `json:"A"`
	}](r, "A", 1)
	_, _, data, err := r.Encode(struct {
		A string `json:"A"`
	}{A: "x"})
	if err != nil || string(data) != `{"A":"X"}` {
		t.Fatalf("Encode = %s, %v", data, err)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	r := newReg(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			_ = codec.Register[[1]int](r, "arr", i+1)
		}
	}()
	for range 100 {
		if _, _, _, err := r.Encode(opened{Owner: "a"}); err != nil {
			t.Error(err)
		}
	}
	<-done
}
