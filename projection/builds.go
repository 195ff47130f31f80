package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// ErrBuildsNotKept is returned by [Admin.Builds] and [Admin.DropBuild]
// when the projection store keeps no builds beside the current one (it is
// not a [BuildKeeper]).
var ErrBuildsNotKept = errors.New("projection: the projection store keeps no old builds")

// ErrBuildInUse is wrapped by the error of [Admin.DropBuild] for the
// current build or the build under way.
var ErrBuildInUse = errors.New("projection: build in use")

// BuildInfo is one build of a projection that a store keeps: its
// checkpoint, the events it applied, and whether readers see it (Current)
// or it is being built (Target).
type BuildInfo struct {
	Build      Build
	Checkpoint eventstore.Position
	// Applied counts the handler calls of the build (of all its
	// partitions for a partitioned build).
	Applied   int64
	UpdatedAt time.Time
	Current   bool
	Target    bool
}

// Old reports whether the build is neither current nor under way: one a
// rebuild left behind, which [Admin.DropBuild] may drop.
func (b BuildInfo) Old() bool { return !b.Current && !b.Target }

// BuildKeeper is implemented by a [Store] that keeps each build's tables
// and checkpoint after a rebuild switched builds, until they are dropped
// (projection/postgres).
type BuildKeeper interface {
	// Builds lists the builds of a projection it keeps, oldest first
	// (Current and Target need not be set).
	Builds(ctx context.Context, name string) ([]BuildInfo, error)
	// DropBuild drops the tables (base names) of b and forgets its
	// checkpoint; it refuses the current build and the one under way.
	DropBuild(ctx context.Context, b Build, tables []string) error
}

// Builds lists the builds of a projection the store keeps, oldest first,
// each marked Current or Target as the store's registration says.
func (a *Admin) Builds(ctx context.Context, name string) ([]BuildInfo, error) {
	if _, err := a.e.proj(name); err != nil {
		return nil, err
	}
	k, ok := a.e.store.(BuildKeeper)
	if !ok {
		return nil, fmt.Errorf("projection %q: builds: %w", name, ErrBuildsNotKept)
	}
	reg, err := a.e.store.Registration(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("projection %q: builds: read registration: %w", name, err)
	}
	bs, err := k.Builds(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("projection %q: builds: %w", name, err)
	}
	for i := range bs {
		bs[i].Current, bs[i].Target = bs[i].Build == reg.Current, bs[i].Build == reg.Target
	}
	return bs, nil
}

// DropBuild drops an old build of a projection: its tables (the
// projection's [Projection.Tables] with b's suffix) and its checkpoint,
// and releases what the source keeps for it (see [Retirer]). It refuses,
// with an error matching [ErrBuildInUse], the current build and the build
// under way, and a build the store does not keep.
func (a *Admin) DropBuild(ctx context.Context, b Build) error {
	pr, err := a.e.proj(b.Name)
	if err != nil {
		return err
	}
	k, ok := a.e.store.(BuildKeeper)
	if !ok {
		return fmt.Errorf("projection %q: drop build %s: %w", b.Name, b, ErrBuildsNotKept)
	}
	bs, err := a.Builds(ctx, b.Name)
	if err != nil {
		return err
	}
	found := false
	for _, bi := range bs {
		if bi.Build != b {
			continue
		}
		found = true
		switch {
		case bi.Current:
			return fmt.Errorf("projection %q: refusing to drop build %s: it is current: %w", b.Name, b, ErrBuildInUse)
		case bi.Target:
			return fmt.Errorf("projection %q: refusing to drop build %s: it is being built: %w", b.Name, b, ErrBuildInUse)
		}
	}
	if !found {
		return fmt.Errorf("projection %q: drop build %s: no such build", b.Name, b)
	}
	if err := k.DropBuild(ctx, b, pr.p.Tables); err != nil {
		return fmt.Errorf("projection %q: drop build %s: %w", b.Name, b, err)
	}
	if rt, ok := a.e.opts.source.(Retirer); ok {
		if err := rt.Retire(ctx, b); err != nil {
			a.e.log.Warn("could not release the source of a dropped build", "projection", b.Name, "build", b.String(), "err", err)
		}
	}
	a.e.log.Info("dropped an old projection build", "projection", b.Name, "build", b.String())
	return nil
}
