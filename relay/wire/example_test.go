package wire_test

import (
	"fmt"
	"log"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// ExampleRecordFromMsg shows the message the relay publishes for a record,
// and how a consumer reads the record back.
func ExampleRecordFromMsg() {
	rec := eventstore.Record{
		ID:            uuid.MustParse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
		StreamID:      "account-42",
		StreamVersion: 3,
		Position:      eventstore.Position{TxID: 1234, Seq: 77},
		Type:          "FundsDeposited",
		SchemaVersion: 1,
		Data:          []byte(`{"amount":100}`),
		Metadata:      eventstore.Metadata{eventstore.CorrelationIDKey: "req-7"},
		RecordedAt:    time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
	}
	msg := wire.NewMsg(wire.DefaultSubjectPrefix, uuid.MustParse("5b9a7c1e-0d2f-4e3a-9b8c-7d6e5f4a3b2c"), rec)
	fmt.Println(msg.Subject)
	for _, h := range []string{wire.HeaderMsgID, wire.HeaderStream, wire.HeaderVersion, wire.HeaderPosition,
		wire.HeaderType, wire.HeaderSchemaVersion, wire.HeaderRecordedAt, wire.HeaderMetadata, wire.HeaderStore} {
		fmt.Printf("%s: %s\n", h, msg.Header.Get(h))
	}

	got, err := wire.RecordFromMsg(msg.Subject, msg.Header, msg.Data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.StreamID, got.StreamVersion, got.Position, got.Metadata.CorrelationID(), string(got.Data))
	// Output:
	// chronicle.events.account.FundsDeposited
	// Nats-Msg-Id: 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b
	// Chronicle-Stream: account-42
	// Chronicle-Version: 3
	// Chronicle-Position: 1234/77
	// Chronicle-Type: FundsDeposited
	// Chronicle-Schema-Version: 1
	// Chronicle-Recorded-At: 2024-05-06T07:08:09Z
	// Chronicle-Metadata: {"correlation_id":"req-7"}
	// Chronicle-Store: 5b9a7c1e-0d2f-4e3a-9b8c-7d6e5f4a3b2c
	// account-42 3 1234/77 req-7 {"amount":100}
}

// ExampleDefaultTopology shows the stream and subjects each schema's relay
// publishes to by default.
func ExampleDefaultTopology() {
	fmt.Println(wire.DefaultTopology("chronicle"))
	fmt.Println(wire.DefaultTopology("billing"))
	// Output:
	// stream CHRONICLE (subjects chronicle.events.>)
	// stream CHRONICLE_BILLING (subjects chronicle_billing.events.>)
}
