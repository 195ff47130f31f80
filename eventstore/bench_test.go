package eventstore_test

import (
	"fmt"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
)

// benchEvents returns n events like the store benchmark's: about 200 bytes
// of data and a correlation ID.
func benchEvents(n int) []eventstore.Event {
	out := make([]eventstore.Event, n)
	for i := range out {
		out[i] = eventstore.Event{Type: "Deposited", Data: []byte(fmt.Sprintf(`{"account":"acc-%06d","amount":%d,"currency":"EUR","note":"benchmark payload of roughly two hundred bytes, padded with some words to get there","tags":["bench","store","%d"]}`, i, i*7, i%13)),
			Metadata: eventstore.Metadata{"correlation_id": "0192f6c2-6c4e-7c3b-9a57-3f0d8e1b2a44"}}
	}
	return out
}

// BenchmarkPrepare1 measures the validation of a one-event append.
func BenchmarkPrepare1(b *testing.B) { benchPrepare(b, 1) }

// BenchmarkPrepare100 measures the validation of a 100-event append.
func BenchmarkPrepare100(b *testing.B) { benchPrepare(b, 100) }

func benchPrepare(b *testing.B, n int) {
	evs := benchEvents(n)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := eventstore.PrepareAppend("bench-1", eventstore.Any, evs, 0); err != nil {
			b.Fatal(err)
		}
	}
}
