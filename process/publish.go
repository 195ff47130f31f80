package process

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Header names of the commands [Publish] sends, beside Nats-Msg-Id.
const (
	HeaderCommand     = "Chronicle-Command"
	HeaderProcess     = "Chronicle-Process"
	HeaderCorrelation = "Chronicle-Correlation-Id"
	HeaderCausation   = "Chronicle-Causation-Id"
)

// Publish returns a [CommandHandler] that publishes each command's data to
// the JetStream subject chosen by subject, with Nats-Msg-Id set to the
// command's deterministic ID, so the stream's duplicate window drops a
// redelivery. The command succeeds once JetStream acknowledged it; the
// other service's answer comes back as an event the process correlates.
func Publish(js jetstream.JetStream, subject func(cmd Envelope) string) CommandHandler {
	return func(ctx context.Context, cmd Envelope) error {
		msg := nats.NewMsg(subject(cmd))
		msg.Data = cmd.Data
		msg.Header.Set(HeaderCommand, cmd.Name)
		msg.Header.Set(HeaderProcess, cmd.Type+"/"+cmd.ProcessID)
		if c := cmd.Metadata.CorrelationID(); c != "" {
			msg.Header.Set(HeaderCorrelation, c)
		}
		msg.Header.Set(HeaderCausation, cmd.ID.String())
		if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(cmd.ID.String())); err != nil {
			return fmt.Errorf("process: publish command %s (%s) of %s/%s to %s: %w", cmd.Name, cmd.ID, cmd.Type, cmd.ProcessID, msg.Subject, err)
		}
		return nil
	}
}
