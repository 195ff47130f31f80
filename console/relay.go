package console

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/relay"
)

// MaxRelayLag is the most events the overview counts behind the relay's
// checkpoint at each refresh (shown as more than that beyond it).
const MaxRelayLag = 10000

// RelayOverview says whether a relay leads (and its connection's pid),
// and how far the relay is behind the log.
type RelayOverview struct {
	Name   string `json:"name"`
	Leader bool   `json:"leader"`
	PID    int    `json:"pid,omitempty"`
	// Application and Client are the leader connection's
	// application_name and client address, when PostgreSQL shows them.
	Application string `json:"application,omitempty"`
	Client      string `json:"client,omitempty"`
	// Lag is nil when the console cannot read the log (neither
	// [WithLog]'s store nor [WithStreams]' reads it), or could not read
	// the relay's checkpoint (LagError says why).
	Lag      *RelayLag `json:"lag"`
	LagError string    `json:"lag_error,omitempty"`
}

// RelayLag is how far the relay is behind the log, counted the way
// `chronicle relay status` counts it (up to [MaxRelayLag] events).
type RelayLag struct {
	// Checkpoint is the last position JetStream confirmed ("" before the
	// relay published anything) and CheckpointAt when it was stored.
	Checkpoint   string     `json:"checkpoint"`
	CheckpointAt *time.Time `json:"checkpoint_at,omitempty"`
	// Events is the number of events not published yet, counting those
	// an open transaction holds back ([WithLog]); Capped says there are
	// more than [MaxRelayLag] beyond those.
	Events int64 `json:"events"`
	Capped bool  `json:"capped"`
	// Seconds is the age of the oldest event not published yet.
	Seconds float64 `json:"seconds"`
}

// logReader reads the global log; *espg.Store is one.
type logReader interface {
	ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.Record, error]
}

// reader returns what the console reads the log with: WithLog's store
// when it reads the log, or else WithStreams' store; nil without either.
func (h *Handler) reader() logReader {
	if r, ok := h.logStatus.(logReader); ok {
		return r
	}
	if h.streams != nil {
		return h.streams
	}
	return nil
}

// relayOverview reads the relay's leadership, and its lag when the console
// reads the log; log is the overview's log section (its held-back events)
// and head the head of the log (nil when unknown).
func (h *Handler) relayOverview(ctx context.Context, log LogOverview, head *eventstore.Position) (*RelayOverview, error) {
	l, err := relay.ReadLeadership(ctx, h.relayPool, h.relayOpts...)
	if err != nil {
		return nil, err
	}
	o := &RelayOverview{Name: l.Name, Leader: l.Held, PID: l.PID, Application: l.Application, Client: l.Client}
	rd := h.reader()
	if rd == nil {
		return o, nil
	}
	// A relay whose checkpoint cannot be read (its table not migrated, a
	// checkpoint of another store) is shown so, not in place of the page.
	cp, err := relay.ReadCheckpoint(ctx, h.relayPool, h.relayOpts...)
	if err != nil {
		o.LagError = "console: relay checkpoint: " + err.Error()
		return o, nil
	}
	if head != nil && head.Before(cp.Position) {
		// Counting after it would show no lag at all.
		o.LagError = fmt.Sprintf("console: relay %q checkpoint %s is after the head %s of the log: it was written for another event store "+
			"(or the store was restored or recreated); see `chronicle relay status`", cp.Name, cp.Position, head)
		return o, nil
	}
	lag := &RelayLag{}
	if !cp.Position.IsZero() {
		lag.Checkpoint = cp.Position.String()
	}
	if !cp.At.IsZero() {
		at := cp.At
		lag.CheckpointAt = &at
	}
	var oldest time.Time
	for rec, err := range rd.ReadAll(ctx, eventstore.ReadAllOptions{After: cp.Position, Limit: MaxRelayLag + 1, BatchSize: 2000}) {
		if err != nil {
			o.LagError = "console: relay lag: " + err.Error()
			return o, nil
		}
		if lag.Events == 0 {
			oldest = rec.RecordedAt
		}
		lag.Events++
	}
	lag.Capped = lag.Events > MaxRelayLag
	lag.Events = min(lag.Events, MaxRelayLag) + log.HeldBack
	switch {
	case !oldest.IsZero():
		lag.Seconds = max(time.Since(oldest), 0).Seconds()
	case log.HeldBack > 0:
		// Every held-back event committed after the oldest open
		// transaction began.
		lag.Seconds = log.OldestOpenSeconds
	}
	o.Lag = lag
	return o, nil
}
