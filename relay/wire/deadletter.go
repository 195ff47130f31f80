package wire

// DefaultDeadLetterPrefix is the subject prefix of dead-letter
// announcements: a dead letter of projection "balances" is published on
// "chronicle.deadletters.balances".
const DefaultDeadLetterPrefix = "chronicle.deadletters"

// DeadLetter is the JSON form of a projection's dead letter: the body of a
// dead-letter announcement on NATS and the rows of the CLI's JSON output.
type DeadLetter struct {
	Projection    string `json:"projection"`
	Build         string `json:"build"`
	EventID       string `json:"event_id"`
	StreamID      string `json:"stream_id"`
	StreamVersion int64  `json:"stream_version"`
	Position      string `json:"position"`
	Type          string `json:"type"`
	Attempts      int    `json:"attempts"`
	FailedAt      string `json:"failed_at"`
	Error         string `json:"error"`
}

// DeadLetterSubject returns the subject of a projection's dead letters
// under prefix (empty means [DefaultDeadLetterPrefix]).
func DeadLetterSubject(prefix, projection string) string {
	if prefix == "" {
		prefix = DefaultDeadLetterPrefix
	}
	return prefix + "." + EscapeToken(projection)
}
