package postgres

import (
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tx := func(id int64) *int64 { return &id }
	cases := []struct {
		name string
		f    failedAppend
		want outcome
	}{
		{"lost connection", failedAppend{failed: true}, outcomeUnknown},
		{"serialization failure at commit", failedAppend{failed: true, code: "40001"}, outcomeUnknown},
		{"missing table", failedAppend{failed: true, code: "42P01"}, outcomeUnknown},
		{"event ID stored", failedAppend{failed: true, code: "23505", constraint: "events_event_id_key"}, outcomeStored},
		{"event ID stored, in a transaction", failedAppend{failed: true, code: "23505", constraint: "events_event_id_key", inTx: true}, outcomeStoredTxAborted},
		{"version taken after the snapshot", failedAppend{failed: true, code: "23505", constraint: "events_stream_id_stream_version_key", inTx: true}, outcomeStaleSnapshot},
		{"other unique violation", failedAppend{failed: true, code: "23505", constraint: "something_else"}, outcomeUnknown},
		{"invalid text", failedAppend{failed: true, code: "22P02"}, outcomeInvalidInput},
		{"NUL escape", failedAppend{failed: true, code: "22P05"}, outcomeInvalidInput},
		{"invalid UTF-8", failedAppend{failed: true, code: "22021"}, outcomeInvalidInput},
		{"numeric out of range", failedAppend{failed: true, code: "22003"}, outcomeInvalidInput},
		{"stack depth", failedAppend{failed: true, code: "54001"}, outcomeInvalidInput},
		{"version mismatch", failedAppend{expected: eventstore.Exact(3), actual: 5, last: 10}, outcomeConflict},
		{"no stream expected, stream exists", failedAppend{expected: eventstore.NoStream, actual: 1, last: 10}, outcomeConflict},
		{"stream expected, none", failedAppend{expected: eventstore.StreamExists}, outcomeConflict},
		{"version mismatch, first ID stored", failedAppend{expected: eventstore.Exact(3), actual: 5, known: true}, outcomeStored},
		{"versions match, first ID stored: moved on meanwhile", failedAppend{expected: eventstore.Exact(5), actual: 5, known: true}, outcomeConflict},
		{"versions match, out of order", failedAppend{expected: eventstore.Exact(5), actual: 5, last: 100, myTx: tx(90), inTx: true}, outcomeOutOfOrder},
		{"versions match, newer transaction: moved on meanwhile", failedAppend{expected: eventstore.Exact(5), actual: 5, last: 100, myTx: tx(110), inTx: true}, outcomeConflict},
		{"any, out of order", failedAppend{expected: eventstore.Any, actual: 5, last: 100, myTx: tx(90), inTx: true}, outcomeOutOfOrder},
		{"mismatch and known wins over out of order", failedAppend{expected: eventstore.Exact(1), actual: 5, last: 100, myTx: tx(90), known: true}, outcomeStored},
	}
	for _, c := range cases {
		if got := classify(c.f); got != c.want {
			t.Errorf("%s: classify(%+v) = %d, want %d", c.name, c.f, got, c.want)
		}
	}
}
