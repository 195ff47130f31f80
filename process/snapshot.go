package process

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/snapshot"
)

// snapData is a process's snapshot: its built-in state and the user's.
type snapData struct {
	Meta    meta            `json:"meta"`
	State   json.RawMessage `json:"state"`
	Started time.Time       `json:"started"`
}

// fromSnapshot sets c to the type's latest snapshot of its stream when
// there is a usable one, and returns that snapshot's version (0: none).
func (rt *router) fromSnapshot(ctx context.Context, c *core) int64 {
	k := rt.k
	s, err := k.snapshots.Load(ctx, c.stream)
	if err != nil {
		if !errors.Is(err, snapshot.ErrNotFound) && ctx.Err() == nil {
			rt.r.log.Warn("process: cannot load snapshot; replaying the stream", "type", k.name, "process", c.id, "err", err)
		}
		return 0
	}
	if s.Version < 1 || s.Revision != k.snapRevision {
		return 0
	}
	var d snapData
	state := k.newState(c.id)
	if err := json.Unmarshal(s.Data, &d); err == nil {
		err = json.Unmarshal(d.State, state)
	}
	if err != nil {
		rt.r.log.Warn("process: cannot decode snapshot; replaying the stream", "type", k.name, "process", c.id,
			"snapshot_version", s.Version, "err", err)
		return 0
	}
	if d.Meta.Timers == nil {
		d.Meta.Timers = map[string]timerState{}
	}
	if d.Meta.Outstanding == nil {
		d.Meta.Outstanding = map[uuid.UUID]*compensation{}
	}
	c.meta, c.state, c.version, c.started = d.Meta, state, s.Version, d.Started
	return s.Version
}

// takeSnapshot saves c, as loaded from committed events, when the policy
// says the events since the snapshot at version from are due. A snapshot
// that cannot be taken is logged, never an error: it is a cache.
func (rt *router) takeSnapshot(ctx context.Context, c *core, from int64) {
	k := rt.k
	policy := k.snapPolicy
	if policy == nil {
		policy = snapshot.Every(100)
	}
	if c.version <= from || !policy.Due(from, c.version) {
		return
	}
	state, err := json.Marshal(c.state)
	var data []byte
	if err == nil {
		data, err = json.Marshal(snapData{Meta: c.meta, State: state, Started: c.started})
	}
	if err == nil {
		err = k.snapshots.Save(ctx, snapshot.Snapshot{StreamID: c.stream, Version: c.version, Revision: k.snapRevision,
			Data: data, TakenAt: time.Now().UTC()})
	}
	if err != nil && ctx.Err() == nil {
		rt.r.log.Warn("process: cannot take a snapshot", "type", k.name, "process", c.id, "version", c.version, "err", err)
	}
}
