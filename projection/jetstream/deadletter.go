package jetstream

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/relay"
)

// DefaultDeadLetterPrefix is the subject prefix of dead-letter
// announcements: a dead letter of projection "balances" is published on
// "chronicle.deadletters.balances".
const DefaultDeadLetterPrefix = "chronicle.deadletters"

// DeadLetterPublisher publishes each dead letter as JSON on a NATS subject
// (core NATS: capture the subjects in a stream if they must be kept). Pass
// it to projection.WithDeadLetterPublisher.
type DeadLetterPublisher struct {
	nc     *nats.Conn
	prefix string
}

var _ projection.DeadLetterPublisher = (*DeadLetterPublisher)(nil)

// NewDeadLetterPublisher returns a publisher on nc under prefix (empty
// means DefaultDeadLetterPrefix).
func NewDeadLetterPublisher(nc *nats.Conn, prefix string) *DeadLetterPublisher {
	if prefix == "" {
		prefix = DefaultDeadLetterPrefix
	}
	return &DeadLetterPublisher{nc: nc, prefix: prefix}
}

// DeadLetterMessage is the JSON body of a dead-letter announcement.
type DeadLetterMessage struct {
	Projection    string `json:"projection"`
	Build         string `json:"build"`
	EventID       string `json:"event_id"`
	StreamID      string `json:"stream_id"`
	StreamVersion int64  `json:"stream_version"`
	Position      string `json:"position"`
	Type          string `json:"type"`
	Error         string `json:"error"`
	Attempts      int    `json:"attempts"`
	FailedAt      string `json:"failed_at"`
}

// Subject returns the subject of a projection's dead letters.
func (p *DeadLetterPublisher) Subject(projectionName string) string {
	return p.prefix + "." + relay.EscapeToken(projectionName)
}

// PublishDeadLetter publishes dl.
func (p *DeadLetterPublisher) PublishDeadLetter(dl projection.DeadLetter) error {
	b, err := json.Marshal(DeadLetterMessage{
		Projection: dl.Projection, Build: dl.Build.String(), EventID: dl.EventID.String(), StreamID: dl.StreamID,
		StreamVersion: dl.StreamVersion, Position: dl.Position.String(), Type: dl.Type, Error: dl.Error,
		Attempts: dl.Attempts, FailedAt: dl.FailedAt.Format("2006-01-02T15:04:05.999999999Z07:00"),
	})
	if err != nil {
		return fmt.Errorf("jetstream: encode dead letter of %q: %w", dl.Projection, err)
	}
	msg := nats.NewMsg(p.Subject(dl.Projection))
	msg.Data = b
	msg.Header.Set(relay.HeaderMsgID, dl.Projection+":"+dl.EventID.String())
	if err := p.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("jetstream: publish dead letter of %q on %s: %w", dl.Projection, msg.Subject, err)
	}
	return nil
}
