package jetstream

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// DefaultDeadLetterPrefix is the subject prefix of dead-letter
// announcements: a dead letter of projection "balances" is published on
// "chronicle.deadletters.balances".
const DefaultDeadLetterPrefix = wire.DefaultDeadLetterPrefix

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

// DeadLetterMessage is the JSON body of a dead-letter announcement; the
// shape is [wire.DeadLetter], the same as the CLI's JSON output.
type DeadLetterMessage = wire.DeadLetter

// Subject returns the subject of a projection's dead letters.
func (p *DeadLetterPublisher) Subject(projectionName string) string {
	return wire.DeadLetterSubject(p.prefix, projectionName)
}

// PublishDeadLetter publishes dl.
func (p *DeadLetterPublisher) PublishDeadLetter(dl projection.DeadLetter) error {
	b, err := json.Marshal(wire.DeadLetter{
		Projection: dl.Projection, Build: dl.Build.String(), EventID: dl.EventID.String(), StreamID: dl.StreamID,
		StreamVersion: dl.StreamVersion, Position: dl.Position.String(), Type: dl.Type, Error: dl.Error,
		Attempts: dl.Attempts, FailedAt: dl.FailedAt.Format(time.RFC3339Nano),
	})
	if err != nil {
		return fmt.Errorf("jetstream: encode dead letter of %q: %w", dl.Projection, err)
	}
	msg := nats.NewMsg(p.Subject(dl.Projection))
	msg.Data = b
	msg.Header.Set(wire.HeaderMsgID, dl.Projection+":"+dl.EventID.String())
	if err := p.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("jetstream: publish dead letter of %q on %s: %w", dl.Projection, msg.Subject, err)
	}
	return nil
}
