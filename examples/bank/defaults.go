package bank

// Where the bank keeps its events unless told otherwise: the PostgreSQL
// schema of its event store, snapshots, read models and relay, and the
// JetStream stream and subject prefix its relay publishes to. The demo
// (make demo) writes there, and bankctl reads there by default.
const (
	// Schema is the bank's PostgreSQL schema.
	Schema = "bank_demo"
	// Stream is the JetStream stream the bank's relay publishes to.
	Stream = "BANK_DEMO"
	// SubjectPrefix is the prefix of the subjects of the bank's events.
	SubjectPrefix = "bank_demo.events"
)
