package console

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/chronicle-go/chronicle/projection"
)

// BuildOverview is one build of a projection that the projection store
// keeps: the current one, the one under way, or an old one a rebuild left
// behind (which an operator may drop).
type BuildOverview struct {
	Projection string `json:"projection"`
	Build      string `json:"build"`
	Version    int    `json:"version"`
	Generation int    `json:"generation"`
	// Status is "current", "building" (the target of a rebuild) or "old".
	Status     string    `json:"status"`
	Checkpoint string    `json:"checkpoint"`
	Applied    int64     `json:"applied"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// rateSample is the applied count of a projection's build at a time, and
// the rate measured from the sample before it.
type rateSample struct {
	build   projection.Build
	applied int64
	at      time.Time
	rate    float64
	hasRate bool
}

// minRateInterval is the shortest interval the rate is measured over:
// pages polling more often get the last rate measured.
const minRateInterval = time.Second

// builds lists a projection's builds for the overview and returns the
// applied count of b (the build under way), or ok false when the store
// keeps no builds.
func (h *Handler) builds(ctx context.Context, name string, b projection.Build) (out []BuildOverview, applied int64, ok bool, err error) {
	bs, err := h.admin.Builds(ctx, name)
	if errors.Is(err, projection.ErrBuildsNotKept) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	for _, bi := range bs {
		st := "old"
		switch {
		case bi.Current:
			st = "current"
		case bi.Target:
			st = "building"
		}
		if bi.Build == b {
			applied, ok = bi.Applied, true
		}
		out = append(out, BuildOverview{Projection: name, Build: bi.Build.String(), Version: bi.Build.Version, Generation: bi.Build.Generation,
			Status: st, Checkpoint: bi.Checkpoint.String(), Applied: bi.Applied, UpdatedAt: bi.UpdatedAt.UTC()})
	}
	return out, applied, ok, nil
}

// rate returns the events per second b of projection name applied
// between the previous sample (at least minRateInterval old) and now;
// ok is false until two samples of the same build exist.
func (h *Handler) rate(name string, b projection.Build, applied int64, now time.Time) (rate float64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, seen := h.samples[name]
	switch {
	case !seen || s.build != b || applied < s.applied:
		h.samples[name] = rateSample{build: b, applied: applied, at: now}
		return 0, false
	case now.Sub(s.at) < minRateInterval:
		return s.rate, s.hasRate
	}
	r := float64(applied-s.applied) / now.Sub(s.at).Seconds()
	h.samples[name] = rateSample{build: b, applied: applied, at: now, rate: r, hasRate: true}
	return r, true
}

// dropBuild drops an old build of a projection (only with actions
// enabled; the page asks for a confirmation). It refuses the current
// build and the one under way (409).
func (h *Handler) dropBuild(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Projection string `json:"projection"`
		Version    int    `json:"version"`
		Generation int    `json:"generation"`
	}
	if !h.actionRequest(w, r, &req) {
		return
	}
	b := projection.Build{Name: req.Projection, Version: req.Version, Generation: req.Generation}
	// The Admin refuses the current build and the one under way (the
	// target a rebuild registers before it starts).
	err := h.admin.DropBuild(r.Context(), b)
	h.log.InfoContext(r.Context(), "console: drop projection build", "projection", b.Name, "build", b.String(), "remote", r.RemoteAddr, "err", err)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, projection.ErrUnknownProjection):
		http.Error(w, "console: "+err.Error(), http.StatusNotFound)
	default:
		http.Error(w, "console: "+err.Error(), http.StatusConflict)
	}
}
