package process_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/process"
	"github.com/chronicle-go/chronicle/snapshot"
	snappg "github.com/chronicle-go/chronicle/snapshot/postgres"
)

// tallyState counts the bumps a tally process recorded.
type tallyState struct {
	N    int   `json:"n"`
	Seen []int `json:"seen"`
}

type Tallied struct {
	N      int `json:"n"`
	Timers int `json:"timers"` // the built-in state: pending timers
}

func (s *tallyState) Apply(ev any) {
	if e, ok := ev.(Tallied); ok {
		s.N = e.N
		s.Seen = append(s.Seen, e.N)
	}
}

// countingSnapshots counts the snapshots a store hands out and takes.
type countingSnapshots struct {
	snapshot.Store
	hits, saves atomic.Int64
}

func (c *countingSnapshots) Load(ctx context.Context, stream string) (snapshot.Snapshot, error) {
	s, err := c.Store.Load(ctx, stream)
	if err == nil {
		c.hits.Add(1)
	}
	return s, err
}

func (c *countingSnapshots) Save(ctx context.Context, s snapshot.Snapshot) error {
	c.saves.Add(1)
	return c.Store.Save(ctx, s)
}

func tallyType(name string, snaps snapshot.Store, limit int) *process.Type[*tallyState] {
	reg := codec.NewRegistry()
	codec.MustRegister[Tallied](reg, "Tallied", 1)
	return &process.Type[*tallyState]{
		Name: name, Starts: []string{"Open"}, Types: []string{"Open", "Bump"}, Categories: []string{"tally"},
		Correlate: process.ByStream, New: func(string) *tallyState { return &tallyState{} }, Codec: reg,
		Snapshots: snaps, SnapshotPolicy: snapshot.Every(25),
		Handle: func(ctx context.Context, p *process.Process[*tallyState], t process.Trigger) error {
			switch {
			case t.Is("Open"):
				p.Schedule("never", 1<<40)
			case t.Is("Bump"):
				// Depends on the whole state: a snapshot that lost any of
				// it changes what is recorded.
				sum := 0
				for _, n := range p.State().Seen {
					sum += n
				}
				p.Record(Tallied{N: p.State().N + 1 + sum%3, Timers: len(p.Timers())})
				if len(p.State().Seen) == limit {
					p.Complete()
				}
			}
			return nil
		},
	}
}

// A process with many events loads from its snapshot and behaves as the
// same process replaying its whole stream.
func TestProcessLoadsFromItsSnapshot(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	ss, err := snappg.New(e.pool, snappg.WithSchema(e.schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	snaps := &countingSnapshots{Store: ss}
	const bumps = 120
	es, ps := e.stores(e.pool)
	r, err := process.NewRunner(e.pool, es, ps, []process.Definition{tallyType("snapped", snaps, bumps), tallyType("replayed", nil, bumps)},
		process.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	start(t, r)
	res, err := e.es.Append(ctx, "tally-1", eventstore.NoStream, eventstore.Event{Type: "Open"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range bumps {
		// One at a time, so each bump is its own unit of work and loads
		// the process again.
		if err := r.Projections().WaitFor(ctx, process.ProjectionName("snapped"), res.Position); err != nil {
			t.Fatal(err)
		}
		if res, err = e.es.Append(ctx, "tally-1", eventstore.Exact(int64(i+1)), eventstore.Event{Type: "Bump"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range []string{"snapped", "replayed"} {
		if err := r.Projections().WaitFor(ctx, process.ProjectionName(typ), res.Position); err != nil {
			t.Fatal(err)
		}
	}
	if snaps.saves.Load() < 3 || snaps.hits.Load() < bumps/2 {
		t.Errorf("%d snapshots taken, %d loaded: the process did not load from its snapshots", snaps.saves.Load(), snaps.hits.Load())
	}
	s, err := ss.Load(ctx, "process_snapped-1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Version < 100 {
		t.Errorf("latest snapshot at version %d, want 100 or more", s.Version)
	}
	a := e.runnerAdmin()
	tallies := func(typ string) []string {
		h, err := a.History(ctx, typ, "1")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rec := range h {
			if rec.Type == "Tallied" || rec.Type == "process.Completed" {
				out = append(out, fmt.Sprintf("%d %s %s", rec.StreamVersion, rec.Type, rec.Data))
			}
		}
		return out
	}
	got, want := tallies("snapped"), tallies("replayed")
	if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
		t.Errorf("with snapshots:\n%s\nreplaying:\n%s", g, w)
	}
	if len(got) == 0 || !strings.Contains(got[len(got)-2], `"timers": 1`) {
		t.Errorf("the last tally does not see the pending timer: %v", got[max(0, len(got)-2):])
	}
	if len(got) != bumps+1 {
		t.Errorf("%d tallies and completion, want %d", len(got), bumps+1)
	}
	for _, typ := range []string{"snapped", "replayed"} {
		in, err := a.Get(ctx, typ, "1")
		if err != nil {
			t.Fatal(err)
		}
		if in.Status != process.Completed {
			t.Errorf("%s/1 %s, want completed", typ, in.Status)
		}
	}
	if n := e.scalar(ctx, `SELECT count(*) FROM %s.process_timers`); n != 0 {
		t.Errorf("%d timers left after completion", n)
	}
	var st tallyState
	var d struct {
		State json.RawMessage `json:"state"`
	}
	if err := json.Unmarshal(s.Data, &d); err != nil || json.Unmarshal(d.State, &st) != nil || len(st.Seen) == 0 {
		t.Errorf("snapshot data %s: %v", s.Data, err)
	}
}
