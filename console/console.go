// Package console serves Chronicle's operations console: a web page, with
// its assets embedded, that shows the head of the event log, the events an
// open transaction holds back (and its pid), the relay's leader (a warning
// when none leads) and lag, every
// projection's state, build, checkpoint, lag and dead letters, and the
// dead letters themselves, refreshed every two seconds. It is read-only
// unless [WithActions] enables retrying and discarding dead letters from
// the page (a discard asks for a confirmation), rebuilding a projection and
// dropping an old build (both after a confirmation); every action is
// logged. Each projection shows its rate (events per second applied,
// from successive samples) and the builds the projection store keeps.
// [WithStreams] adds a stream browser: streams listed and searched, a
// stream's events (decoded by [WithDecoder]'s decoder, or raw), the event
// of a dead letter in its stream, and the events of a correlation ID as a
// causation tree. [WithProcesses] adds the
// process types with their counts by state, and each process's history
// and timers (pending, overdue, fired, cancelled).
//
// Mount the [Handler] in a service (with its projections registered in the
// Admin) or run `chronicle console` from a service's own binary:
//
//	h, err := console.New(runner.Admin(), console.WithLog(store), console.WithStreams(store), console.WithRelay(pool, relay.WithSchema("bank")))
//	mux.Handle("/console/", http.StripPrefix("/console", h))
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/process"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/relay"
)

//go:embed assets
var assets embed.FS

var errNoStreams = errors.New("console: the stream browser is not enabled (WithStreams)")

// Option configures a [Handler]. A nil Option is ignored.
type Option func(*Handler)

// WithActions enables (true) the page's actions: retrying a dead letter,
// discarding one after a confirmation, starting a projection's rebuild
// after a confirmation, and dropping an old build (neither current nor
// under way) after a confirmation.
// The default is read-only: the page shows no button and the server
// refuses actions with 403.
func WithActions(on bool) Option { return func(h *Handler) { h.actions = on } }

// WithLogger sets the logger of actions (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithLog shows the log's head and held-back horizon from store's Status
// (with the pid and age of the transaction holding it back).
func WithLog(store LogStatuser) Option { return func(h *Handler) { h.logStatus = store } }

// WithRelay shows which relay built with opts (schema and name) leads, read
// from PostgreSQL ([relay.ReadLeadership]), or that none leads (readiness
// fails then: nothing publishes the log). When the console reads the log
// ([WithLog] with a store that reads it, such as *espg.Store, or
// [WithStreams]), it shows the relay's lag too: the events after its
// stored checkpoint ([relay.ReadCheckpoint]), up to [MaxRelayLag], plus
// those held back, and the age of the oldest.
func WithRelay(pool *pgxpool.Pool, opts ...relay.Option) Option {
	return func(h *Handler) { h.relayPool, h.relayOpts = pool, opts }
}

// LogStatuser reports the event log's status; *espg.Store is one.
type LogStatuser interface {
	Status(ctx context.Context) (espg.LogStatus, error)
}

// Handler is the console's http.Handler.
type Handler struct {
	admin     *projection.Admin
	actions   bool
	log       *slog.Logger
	logStatus LogStatuser
	relayPool *pgxpool.Pool
	relayOpts []relay.Option
	streams   Streams
	decoder   projection.Decoder
	processes *process.Admin
	bg        context.Context // of the rebuilds started; Close cancels it
	stop      context.CancelFunc
	rebuilds  sync.WaitGroup
	mu        sync.Mutex
	rebuilt   map[string]*RebuildOverview // by projection
	samples   map[string]rateSample       // by projection: the rate column
	mux       *http.ServeMux
}

// New returns the console of admin's projections.
func New(admin *projection.Admin, opts ...Option) (*Handler, error) {
	if admin == nil {
		return nil, errors.New("console: nil projection admin")
	}
	h := &Handler{admin: admin, rebuilt: map[string]*RebuildOverview{}, samples: map[string]rateSample{}}
	h.bg, h.stop = context.WithCancel(context.Background())
	for _, o := range opts {
		if o != nil {
			o(h)
		}
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, fmt.Errorf("console: assets: %w", err)
	}
	h.mux = http.NewServeMux()
	h.mux.Handle("GET /", http.FileServerFS(static))
	h.mux.HandleFunc("GET /api/overview", h.overview)
	h.mux.HandleFunc("GET /api/streams", h.listStreams)
	h.mux.HandleFunc("GET /api/stream", h.streamEvents)
	h.mux.HandleFunc("GET /api/correlation", h.correlation)
	h.mux.HandleFunc("GET /api/processes", h.listProcesses)
	h.mux.HandleFunc("GET /api/process", h.showProcess)
	h.mux.HandleFunc("POST /api/projections/rebuild", h.rebuild)
	h.mux.HandleFunc("POST /api/projections/drop", h.dropBuild)
	h.mux.HandleFunc("POST /api/deadletters/retry", h.action("retry", h.admin.RetryDeadLetter))
	h.mux.HandleFunc("POST /api/deadletters/discard", h.action("discard", h.admin.DiscardDeadLetter))
	return h, nil
}

// ServeHTTP serves the page, its assets and its API.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Overview is what the page shows, as GET api/overview returns it.
type Overview struct {
	GeneratedAt time.Time            `json:"generated_at"`
	Actions     bool                 `json:"actions"`
	Streams     bool                 `json:"streams"`
	Log         LogOverview          `json:"log"`
	Relay       *RelayOverview       `json:"relay"`
	Projections []ProjectionOverview `json:"projections"`
	DeadLetters []DeadLetterOverview `json:"dead_letters"`
	// Builds lists every projection's builds the projection store keeps
	// (empty with a store that keeps none, such as the memory store).
	Builds []BuildOverview `json:"builds"`
	// Processes is nil unless the console shows processes.
	Processes []ProcessTypeOverview `json:"processes"`
	// ProcessesError says why the process types could not be read.
	ProcessesError string `json:"processes_error,omitempty"`
}

// LogOverview is the head of the log and its held-back horizon.
type LogOverview struct {
	Head              string  `json:"head"`
	HeldBack          int64   `json:"held_back"`
	OldestPID         int     `json:"oldest_pid,omitempty"`
	OldestOpenSeconds float64 `json:"oldest_open_seconds"`
}

// ProjectionOverview is one projection's status.
type ProjectionOverview struct {
	Name        string  `json:"name"`
	State       string  `json:"state"`
	Current     string  `json:"current"`
	Target      string  `json:"target"`
	Checkpoint  string  `json:"checkpoint"`
	LagEvents   int     `json:"lag_events"`
	LagCapped   bool    `json:"lag_capped"`
	LagSeconds  float64 `json:"lag_seconds"`
	DeadLetters int     `json:"dead_letters"`
	Owner       string  `json:"owner,omitempty"`
	// Rate is the events per second the build under way (Target)
	// applied between the two last samples of the overview (taken at
	// least a second apart); nil until there are two, and with a store
	// that keeps no applied counts.
	Rate *float64 `json:"rate"`
	// Rebuild is the last rebuild started from this console, if any.
	Rebuild *RebuildOverview `json:"rebuild,omitempty"`
}

// DeadLetterOverview is one dead letter. With the stream browser
// ([WithStreams]) the page opens its stream at the event to inspect it.
type DeadLetterOverview struct {
	Projection string    `json:"projection"`
	Build      string    `json:"build"`
	EventID    string    `json:"event_id"`
	Stream     string    `json:"stream"`
	Version    int64     `json:"version"`
	Position   string    `json:"position"`
	Type       string    `json:"type"`
	Attempts   int       `json:"attempts"`
	Error      string    `json:"error"`
	FailedAt   time.Time `json:"failed_at"`
}

// Overview gathers what the page shows.
func (h *Handler) Overview(ctx context.Context) (Overview, error) {
	o := Overview{GeneratedAt: time.Now().UTC(), Actions: h.actions, Streams: h.streams != nil, Projections: []ProjectionOverview{}, DeadLetters: []DeadLetterOverview{}, Builds: []BuildOverview{}}
	sts, err := h.admin.Status(ctx)
	if err != nil {
		return o, err
	}
	var head *eventstore.Position // nil when unknown
	for _, st := range sts {
		if len(sts) > 0 {
			o.Log.Head, head = st.Head.String(), &st.Head
			o.Log.HeldBack, o.Log.OldestOpenSeconds = st.HeldBack, st.OldestOpen.Seconds()
		}
		po := ProjectionOverview{
			Name: st.Name, State: string(st.State), Current: st.Current.String(), Target: st.Target.String(),
			Checkpoint: st.Checkpoint.String(), LagEvents: st.Lag, LagCapped: st.LagCapped, LagSeconds: st.LagTime.Seconds(),
			DeadLetters: st.DeadLetters, Owner: st.Heartbeat.Owner, Rebuild: h.rebuildState(st.Name),
		}
		bs, applied, ok, err := h.builds(ctx, st.Name, st.Target)
		if err != nil {
			return o, err
		}
		o.Builds = append(o.Builds, bs...)
		if ok {
			if r, ok := h.rate(st.Name, st.Target, applied, o.GeneratedAt); ok {
				po.Rate = &r
			}
		}
		o.Projections = append(o.Projections, po)
		if st.DeadLetters == 0 {
			continue
		}
		dls, err := h.admin.DeadLetters(ctx, st.Name)
		if err != nil {
			return o, err
		}
		for _, dl := range dls {
			o.DeadLetters = append(o.DeadLetters, DeadLetterOverview{Projection: dl.Projection, Build: dl.Build.String(), EventID: dl.EventID.String(),
				Stream: dl.StreamID, Version: dl.StreamVersion, Position: dl.Position.String(), Type: dl.Type, Attempts: dl.Attempts,
				Error: dl.Error, FailedAt: dl.FailedAt})
		}
	}
	if h.logStatus != nil {
		ls, err := h.logStatus.Status(ctx)
		if err != nil {
			return o, err
		}
		o.Log.Head, o.Log.HeldBack, head = ls.Head.String(), ls.HeldBack, &ls.Head
		if ls.Oldest != nil && ls.HeldBack > 0 {
			o.Log.OldestPID, o.Log.OldestOpenSeconds = ls.Oldest.PID, ls.Oldest.Age.Seconds()
		}
	}
	if h.processes != nil {
		// A process failure (such as tables not migrated) is shown in the
		// processes' section, not in place of the whole page.
		if o.Processes, err = processTypes(ctx, h.processes); err != nil {
			o.Processes, o.ProcessesError = []ProcessTypeOverview{}, "console: process status: "+err.Error()
		}
	}
	if h.relayPool != nil {
		if o.Relay, err = h.relayOverview(ctx, o.Log, head); err != nil {
			return o, err
		}
	}
	return o, nil
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	o, err := h.Overview(r.Context())
	if err != nil {
		http.Error(w, "console: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(o)
}

// actionRequest decodes the JSON body of an action's request into req.
// It answers 403 when actions are not enabled and 400 when the body is not
// what the action takes, and reports whether the action may go on.
func (h *Handler) actionRequest(w http.ResponseWriter, r *http.Request, req any) bool {
	if !h.actions {
		http.Error(w, "console: read-only: actions are not enabled", http.StatusForbidden)
		return false
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(req); err != nil {
		http.Error(w, "console: bad request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// action serves a dead letter action: retry (apply it again) or discard
// (drop it without applying it; the page asks for a confirmation).
func (h *Handler) action(name string, do func(ctx context.Context, projection string, eventID uuid.UUID) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Projection string `json:"projection"`
			EventID    string `json:"event_id"`
		}
		if !h.actionRequest(w, r, &req) {
			return
		}
		id, err := uuid.Parse(req.EventID)
		if err != nil {
			http.Error(w, "console: bad event id: "+err.Error(), http.StatusBadRequest)
			return
		}
		err = do(r.Context(), req.Projection, id)
		h.log.InfoContext(r.Context(), "console: "+name+" dead letter", "projection", req.Projection, "event_id", id.String(),
			"remote", r.RemoteAddr, "err", err)
		if err != nil {
			http.Error(w, "console: "+err.Error(), http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
