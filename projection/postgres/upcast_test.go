package postgres_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/upcast"
)

type fundsDeposited struct {
	Amount int `json:"amount"`
}

type fundsWithdrawn struct {
	Amount int `json:"amount"`
}

type noted struct{}

// bankChain registers FundsDeposited, FundsWithdrawn and Noted at v1, with
// "MoneyIn" v1 renamed to FundsDeposited and "Transferred" v1 split into a
// withdrawal and a deposit.
func bankChain(t *testing.T) *upcast.Chain {
	t.Helper()
	reg := codec.NewRegistry()
	codec.MustRegister[fundsDeposited](reg, "FundsDeposited", 1)
	codec.MustRegister[fundsWithdrawn](reg, "FundsWithdrawn", 1)
	codec.MustRegister[noted](reg, "Noted", 1)
	chain, err := upcast.New(reg,
		upcast.Rename("MoneyIn", 1, "FundsDeposited", 1),
		upcast.Split("Transferred", 1, []upcast.Key{{Type: "FundsWithdrawn", Version: 1}, {Type: "FundsDeposited", Version: 1}},
			func(data []byte) ([][]byte, error) { return [][]byte{data, data}, nil }),
	)
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

// seen collects what a handler received.
type seen struct {
	mu   sync.Mutex
	evs  []projection.Event
	sums map[string]int
}

func (s *seen) handler() projection.Handler {
	return projection.HandlerFunc(func(_ context.Context, _ projection.Tx, ev projection.Event) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.evs = append(s.evs, ev)
		if s.sums == nil {
			s.sums = map[string]int{}
		}
		switch d := ev.Data.(type) {
		case fundsDeposited:
			s.sums[ev.Record.StreamID] += d.Amount
		case fundsWithdrawn:
			s.sums[ev.Record.StreamID] -= d.Amount
		}
		return nil
	})
}

func (s *seen) snapshot() ([]projection.Event, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sums := map[string]int{}
	for k, v := range s.sums {
		sums[k] = v
	}
	return append([]projection.Event(nil), s.evs...), sums
}

func appendTyped(t *testing.T, es eventstore.Store, stream, typ string, amount int) eventstore.AppendResult {
	t.Helper()
	data, _ := json.Marshal(map[string]int{"amount": amount})
	res, err := es.Append(testCtx(t), stream, eventstore.Any, eventstore.Event{Type: typ, Data: data})
	if err != nil {
		t.Fatalf("append %s to %s: %v", typ, stream, err)
	}
	return res
}

// A projection listing only a type's new name gets the events stored under
// its old name (an upcast.Rename), while catching up and live, and WaitFor
// waits for them.
func TestTypesMatchRenamedEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	appendTyped(t, e.events, "acct-1", "MoneyIn", 10)        // old name, before the runner: catch-up
	appendTyped(t, e.events, "acct-1", "Noted", 0)           // not wanted
	appendTyped(t, e.events, "acct-1", "FundsDeposited", 20) // new name
	var s seen
	p := projection.Projection{Name: "deposits", Types: []string{"FundsDeposited"}, Handler: s.handler()}
	r := e.runner([]projection.Projection{p}, projection.WithDecoder(bankChain(t)))
	run(t, r)
	last := appendTyped(t, e.events, "acct-2", "FundsDeposited", 1)
	waitFor(t, r, "deposits", last.Position)
	// Live, through the store source; the old name comes last, so WaitFor
	// must wait for it.
	appendTyped(t, e.events, "acct-2", "Noted", 0)
	last = appendTyped(t, e.events, "acct-2", "MoneyIn", 100)
	waitFor(t, r, "deposits", last.Position)
	evs, sums := s.snapshot()
	if sums["acct-1"] != 30 || sums["acct-2"] != 101 || len(evs) != 4 {
		t.Fatalf("sums %v over %d events, want acct-1 30 and acct-2 101 over 4 events", sums, len(evs))
	}
	for _, ev := range evs {
		if ev.Record.Type != "FundsDeposited" {
			t.Errorf("handler got a record of type %q, want the upcast FundsDeposited", ev.Record.Type)
		}
	}
	st := status(t, r, "deposits")
	if st.Checkpoint != last.Position || st.Lag != 0 {
		t.Fatalf("status checkpoint %s lag %d, want %s and 0", st.Checkpoint, st.Lag, last.Position)
	}
}

// Each event of a 1->N split reaches the handler with its own upcast record:
// its type, and the deterministic ID the chain gives it, at the stored
// record's position; the checkpoint moves past the stored record once.
func TestSplitEventsCarryTheirOwnRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	chain := bankChain(t)
	res := appendTyped(t, e.events, "acct-1", "Transferred", 5)
	var stored eventstore.Record
	// ReadStream, not ReadAll: the global log may hold the record back
	// while another test's transaction is open anywhere on the cluster.
	for rec, err := range e.events.ReadStream(testCtx(t), "acct-1", eventstore.ReadStreamOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		stored = rec
	}
	ups, err := chain.Upcast(stored)
	if err != nil || len(ups) != 2 {
		t.Fatalf("upcast: %v, %d records", err, len(ups))
	}
	var all, deposits seen
	r := e.runner([]projection.Projection{
		{Name: "all", Handler: all.handler()},
		{Name: "deposits", Types: []string{"FundsDeposited"}, Handler: deposits.handler()},
	}, projection.WithDecoder(chain))
	run(t, r)
	waitFor(t, r, "all", res.Position)
	waitFor(t, r, "deposits", res.Position)

	evs, sums := all.snapshot()
	if len(evs) != 2 || sums["acct-1"] != 0 {
		t.Fatalf("all: %d events, sum %d; want 2 events summing to 0", len(evs), sums["acct-1"])
	}
	for i, ev := range evs {
		want := ups[i]
		if ev.Record.ID != want.ID || ev.Record.Type != want.Type || ev.Record.Position != stored.Position || ev.Record.StreamVersion != 1 {
			t.Errorf("event %d: record %s %s at %s version %d, want %s %s at %s version 1",
				i, ev.Record.ID, ev.Record.Type, ev.Record.Position, ev.Record.StreamVersion, want.ID, want.Type, stored.Position)
		}
	}
	if evs[0].Record.ID != stored.ID || evs[1].Record.ID == stored.ID || evs[1].Record.ID == uuid.Nil {
		t.Errorf("split IDs %s, %s: want the stored %s, then a derived one", evs[0].Record.ID, evs[1].Record.ID, stored.ID)
	}
	devs, dsums := deposits.snapshot()
	if len(devs) != 1 || dsums["acct-1"] != 5 || devs[0].Record.ID != ups[1].ID {
		t.Fatalf("deposits: %d events, sum %d; want the split's deposit alone (id %s)", len(devs), dsums["acct-1"], ups[1].ID)
	}
	for _, name := range []string{"all", "deposits"} {
		if st := status(t, r, name); st.Checkpoint != stored.Position {
			t.Errorf("%s: checkpoint %s, want %s", name, st.Checkpoint, stored.Position)
		}
	}
}

func status(t *testing.T, r *projection.Runner, name string) projection.Status {
	t.Helper()
	sts, err := r.Status(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no status for %q", name)
	return projection.Status{}
}
