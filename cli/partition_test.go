package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/cli"
	"github.com/chronicle-go/chronicle/projection"
)

// TestProjectionsStatusShowsPartitions: the status of a partitioned
// projection shows each partition's owner, epoch, lease, checkpoint and
// lag, in the table and in JSON.
func TestProjectionsStatusShowsPartitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ps := []projection.Projection{{
		Name: "parted", Partitions: 3,
		Handler: projection.HandlerFunc(func(context.Context, projection.Tx, projection.Event) error { return nil }),
	}}
	app := e.app(cli.WithProjections(ps...))
	last := e.append("account-1", ev("Opened", `{"owner":"ada"}`))
	e.append("account-2", ev("Opened", `{"owner":"bob"}`))
	last = e.append("account-3", ev("Opened", `{"owner":"cy"}`))
	e.visible(last.Position)
	e.startService("part-1", ps, projection.WithLeaseTTL(time.Second))

	type partition struct {
		Partition  int    `json:"partition"`
		Owner      string `json:"owner"`
		Alive      bool   `json:"alive"`
		Epoch      int64  `json:"epoch"`
		Checkpoint string `json:"checkpoint"`
		LagEvents  int    `json:"lag_events"`
	}
	type status struct {
		Name       string      `json:"name"`
		Checkpoint string      `json:"checkpoint"`
		LagEvents  int         `json:"lag_events"`
		Partitions []partition `json:"partitions"`
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		sts := jsonValue[[]status](t, mustOK(t, e.run(app, "projections", "status", "--json")).stdout)
		ok := len(sts) == 1 && len(sts[0].Partitions) == 3 && sts[0].LagEvents == 0 && sts[0].Checkpoint == last.Position.String()
		for i, p := range sts[0].Partitions {
			ok = ok && p.Partition == i && strings.HasPrefix(p.Owner, "part-1/") && p.Alive && p.Epoch == 1 &&
				p.Checkpoint == last.Position.String() && p.LagEvents == 0
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions never all owned and caught up: %+v", sts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := mustOK(t, e.run(app, "projections", "status"))
	contains(t, r.stdout, "PARTITION", "EPOCH", "LEASE", "part-1/", "ends in")
}
