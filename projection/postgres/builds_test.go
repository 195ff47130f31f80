package postgres_test

import (
	"errors"
	"testing"

	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/projection"
)

// TestAdminListsAndDropsOldBuilds rebuilds a projection twice, lists its
// builds through the Admin (applied counts, the current one marked), drops
// the oldest (its table goes), and is refused the current build.
func TestAdminListsAndDropsOldBuilds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	r := e.runner([]projection.Projection{counting("counts", 1)})
	stop := run(t, r)
	defer stop()
	want, last := e.write("acct", 3, 10)
	waitFor(t, r, "counts", last)
	for range 2 {
		if err := r.Rebuild(ctx, "counts"); err != nil {
			t.Fatal(err)
		}
	}
	a := r.Admin()
	bs, err := a.Builds(ctx, "counts")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 {
		t.Fatalf("builds = %+v, want 3", bs)
	}
	for i, b := range bs {
		if b.Build.Generation != i || b.Applied != 30 || b.Checkpoint.IsZero() || b.Current != (i == 2) || b.Target != (i == 2) || b.Old() != (i < 2) {
			t.Errorf("build %d = %+v", i, b)
		}
	}
	old, cur := bs[0].Build, bs[2].Build
	if err := a.DropBuild(ctx, cur); !errors.Is(err, projection.ErrBuildInUse) {
		t.Fatalf("DropBuild(current) = %v, want ErrBuildInUse", err)
	}
	if err := a.DropBuild(ctx, projection.Build{Name: "counts", Version: 7}); err == nil {
		t.Fatal("DropBuild of a build that does not exist succeeded")
	}
	if err := a.DropBuild(ctx, projection.Build{Name: "nope", Version: 1}); !errors.Is(err, projection.ErrUnknownProjection) {
		t.Fatalf("DropBuild of an unknown projection = %v", err)
	}
	if err := a.DropBuild(ctx, old); err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := e.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgmigrate.Quote(e.schema)+`.counts_v1`).Scan(&exists); err != nil || exists {
		t.Fatalf("table counts_v1 exists = %v (%v) after the drop", exists, err)
	}
	if bs, err = a.Builds(ctx, "counts"); err != nil || len(bs) != 2 || bs[0].Build.Generation != 1 {
		t.Fatalf("builds after the drop = %+v, %v", bs, err)
	}
	e.checkCounts("counts", want) // readers unaffected
}

// TestAdminBuildsWithAStoreThatKeepsNone checks the memory store's
// answer: no old builds kept.
func TestAdminBuildsWithAStoreThatKeepsNone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, err := projection.NewAdmin(e.events, projection.NewMemoryStore(), []projection.Projection{counting("counts", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Builds(testCtx(t), "counts"); !errors.Is(err, projection.ErrBuildsNotKept) {
		t.Fatalf("Builds = %v, want ErrBuildsNotKept", err)
	}
	if err := a.DropBuild(testCtx(t), projection.Build{Name: "counts", Version: 1}); !errors.Is(err, projection.ErrBuildsNotKept) {
		t.Fatalf("DropBuild = %v, want ErrBuildsNotKept", err)
	}
}
