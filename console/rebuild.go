package console

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// RebuildOverview is the last rebuild the console started of a projection.
type RebuildOverview struct {
	// State is "running", "done" or "failed".
	State     string     `json:"state"`
	Error     string     `json:"error,omitempty"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
}

// Close stops the rebuilds the console started and waits for them to
// return (an interrupted rebuild resumes from its own checkpoint at the
// next Run or Rebuild).
func (h *Handler) Close() {
	h.stop()
	h.rebuilds.Wait()
}

func (h *Handler) rebuildState(name string) *RebuildOverview {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.rebuilt[name]; ok {
		c := *r
		return &c
	}
	return nil
}

// rebuild starts a rebuild of a projection (only with actions enabled):
// it runs in the background, beside the current build, and the overview
// shows its progress (build, checkpoint, lag of the new build) and outcome.
func (h *Handler) rebuild(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Projection string `json:"projection"`
	}
	if !h.actionRequest(w, r, &req) {
		return
	}
	name := req.Projection
	if !slices.Contains(h.admin.Projections(), name) {
		http.Error(w, "console: no projection "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	h.mu.Lock()
	if cur, ok := h.rebuilt[name]; ok && cur.State == "running" {
		h.mu.Unlock()
		http.Error(w, "console: projection "+strconv.Quote(name)+" is already being rebuilt", http.StatusConflict)
		return
	}
	st := &RebuildOverview{State: "running", StartedAt: time.Now().UTC()}
	h.rebuilt[name] = st
	h.rebuilds.Add(1)
	h.mu.Unlock()
	h.log.InfoContext(r.Context(), "console: rebuild projection", "projection", name, "remote", r.RemoteAddr)
	go func() {
		defer h.rebuilds.Done()
		err := h.admin.Rebuild(h.bg, name)
		h.log.Info("console: rebuild of projection ended", "projection", name, "err", err)
		h.mu.Lock()
		defer h.mu.Unlock()
		now := time.Now().UTC()
		st.EndedAt, st.State = &now, "done"
		if err != nil {
			st.State, st.Error = "failed", err.Error()
		}
	}()
	w.WriteHeader(http.StatusAccepted)
}
