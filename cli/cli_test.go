package cli_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/cli"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

func TestMigrateIsIdempotentAndPrintsJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := mustOK(t, e.run(e.app(), "migrate"))
	contains(t, r.stdout, `migrated schema "`+e.schema+`"`)
	j := jsonValue[struct {
		Schema     string
		Components []string
	}](t, mustOK(t, e.run(e.app(), "migrate", "--json")).stdout)
	if j.Schema != e.schema || strings.Join(j.Components, ",") != "eventstore,snapshot,projection,relay,process" {
		t.Fatalf("migrate --json: %+v", j)
	}
	// The tables exist: appending works, and the process commands read
	// the process tables.
	e.append("account-1", ev("Opened", `{"owner":"ada"}`))
	contains(t, mustOK(t, e.run(e.app(), "processes", "list")).stdout, "(no processes)")
}

func TestStreamsList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app()
	mustOK(t, e.run(app, "streams", "list"))
	contains(t, e.run(app, "streams", "list").stdout, "(no streams)")

	e.append("account-1", ev("Opened", `{}`), ev("Deposited", `{}`), ev("Deposited", `{}`))
	e.append("account-2", ev("Opened", `{}`))
	e.append("order-1", ev("Placed", `{}`), ev("Shipped", `{}`))

	r := mustOK(t, e.run(app, "streams", "list"))
	contains(t, r.stdout, "STREAM", "VERSION", "(3 streams)")
	fields := map[string]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			fields[f[0]] = f[1]
		}
	}
	if fields["account-1"] != "3" || fields["account-2"] != "1" || fields["order-1"] != "2" {
		t.Fatalf("streams list: want versions 3, 1, 2, got %v from\n%s", fields, r.stdout)
	}

	r = mustOK(t, e.run(app, "streams", "list", "--category", "account"))
	contains(t, r.stdout, "account-1", "account-2", "(2 streams)")
	notContains(t, r.stdout, "order-1")

	r = mustOK(t, e.run(app, "streams", "list", "--category", "account", "--limit", "1"))
	contains(t, r.stdout, "account-1", "next page: --after account-1")
	notContains(t, r.stdout, "account-2")
	r = mustOK(t, e.run(app, "streams", "list", "--category", "account", "--limit", "1", "--after", "account-1"))
	contains(t, r.stdout, "account-2")
	notContains(t, r.stdout, "account-1 ")

	type js struct {
		StreamID string `json:"stream_id"`
		Category string `json:"category"`
		Version  int64  `json:"version"`
	}
	got := jsonLines[js](t, mustOK(t, e.run(app, "streams", "list", "--json")).stdout)
	want := []js{{"account-1", "account", 3}, {"account-2", "account", 1}, {"order-1", "order", 2}}
	if len(got) != len(want) {
		t.Fatalf("streams list --json: got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("streams list --json: got %+v, want %+v", got, want)
		}
	}
}

type jsonRecord struct {
	StreamID      string            `json:"stream_id"`
	Version       int64             `json:"version"`
	Position      string            `json:"position"`
	ID            string            `json:"id"`
	Type          string            `json:"type"`
	SchemaVersion int               `json:"schema_version"`
	GoType        string            `json:"go_type"`
	RecordedAt    time.Time         `json:"recorded_at"`
	Metadata      map[string]string `json:"metadata"`
	Data          map[string]any    `json:"data"`
	UpcastFrom    *struct {
		Type          string `json:"type"`
		SchemaVersion int    `json:"schema_version"`
	} `json:"upcast_from"`
}

func TestStreamsShow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app()
	opened := ev("Opened", `{"owner":"ada"}`)
	opened.Metadata = eventstore.Metadata{eventstore.CorrelationIDKey: "req-7", "user": "ops"}
	res := e.append("account-1", opened, ev("Deposited", `{"amount":500}`), ev("Deposited", `{"amount":250}`))

	r := mustOK(t, e.run(app, "streams", "show", "account-1"))
	contains(t, r.stdout,
		"account-1@1  Opened v1", "account-1@2  Deposited v1", "account-1@3  Deposited v1",
		"correlation_id=req-7 user=ops", `{"owner":"ada"}`, `{"amount":250}`,
		"position "+res.Position.String())

	recs := jsonLines[jsonRecord](t, mustOK(t, e.run(app, "streams", "show", "account-1", "--json")).stdout)
	if len(recs) != 3 {
		t.Fatalf("want 3 records, got %+v", recs)
	}
	for i, rec := range recs {
		if rec.StreamID != "account-1" || rec.Version != int64(i+1) || rec.ID == "" || rec.RecordedAt.IsZero() || rec.UpcastFrom != nil {
			t.Fatalf("record %d: %+v", i, rec)
		}
	}
	if recs[0].Metadata["user"] != "ops" || recs[0].Data["owner"] != "ada" || recs[2].Position != res.Position.String() {
		t.Fatalf("streams show --json: %+v", recs)
	}

	recs = jsonLines[jsonRecord](t, mustOK(t, e.run(app, "streams", "show", "account-1", "--json", "--backward", "--limit", "2")).stdout)
	if len(recs) != 2 || recs[0].Version != 3 || recs[1].Version != 2 {
		t.Fatalf("--backward --limit 2: %+v", recs)
	}
	recs = jsonLines[jsonRecord](t, mustOK(t, e.run(app, "streams", "show", "account-1", "--json", "--from", "2")).stdout)
	if len(recs) != 2 || recs[0].Version != 2 {
		t.Fatalf("--from 2: %+v", recs)
	}
	contains(t, mustOK(t, e.run(app, "streams", "show", "account-1", "--from", "9")).stdout, "(no events")

	r = e.run(app, "streams", "show", "account-9")
	mustFail(t, r, cli.ExitError, `chronicle: streams show: stream "account-9" not found`)
	if r.stdout != "" {
		t.Fatalf("want nothing on stdout, got %q", r.stdout)
	}
}

func TestStreamsShowUpcastsThroughTheRegisteredChain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.append("account-1", ev("Opened", `{"owner":"ada"}`),
		eventstore.Event{Type: "Deposited", SchemaVersion: 1, Data: []byte(`{"amount":500}`)},
		eventstore.Event{Type: "Deposited", SchemaVersion: 2, Data: []byte(`{"cents":70}`)})
	app := e.app(cli.WithUpcasters(chain(t)))

	r := mustOK(t, e.run(app, "streams", "show", "account-1"))
	contains(t, r.stdout, "account-1@2  Deposited v2 (upcast from v1)", `{"cents":500}`, "account-1@3  Deposited v2  position",
		"go cli_test.Deposited")
	notContains(t, r.stdout, `"amount"`)

	recs := jsonLines[jsonRecord](t, mustOK(t, e.run(app, "streams", "show", "account-1", "--json")).stdout)
	if recs[1].SchemaVersion != 2 || recs[1].Data["cents"] != float64(500) || recs[1].UpcastFrom == nil ||
		recs[1].UpcastFrom.SchemaVersion != 1 || recs[1].GoType != "cli_test.Deposited" || recs[2].UpcastFrom != nil {
		t.Fatalf("upcast --json: %+v", recs)
	}

	r = mustOK(t, e.run(app, "streams", "show", "account-1", "--raw"))
	contains(t, r.stdout, "account-1@2  Deposited v1  position", `{"amount":500}`)
	notContains(t, r.stdout, "upcast")

	// The generic binary has no chain: it shows what is stored.
	contains(t, mustOK(t, e.run(e.app(), "streams", "show", "account-1")).stdout, "Deposited v1  position")
}

func TestStreamsShowFailsOnAnEventNoUpcasterReaches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.append("account-1", eventstore.Event{Type: "Opened", SchemaVersion: 7, Data: []byte(`{}`)})
	r := e.run(e.app(cli.WithUpcasters(chain(t))), "streams", "show", "account-1")
	mustFail(t, r, cli.ExitError, "Opened")
	contains(t, r.stderr, "--raw")
	mustOK(t, e.run(e.app(cli.WithUpcasters(chain(t))), "streams", "show", "account-1", "--raw"))
}

func TestTail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(cli.WithUpcasters(chain(t)))
	e.append("account-1", ev("Opened", `{"owner":"ada"}`), eventstore.Event{Type: "Deposited", SchemaVersion: 1, Data: []byte(`{"amount":5}`)})
	e.visible(e.append("order-1", ev("Placed", `{}`)).Position)

	// From the start, filtered, live: the third account event is
	// appended while tail follows, and --limit ends it.
	done := make(chan result, 1)
	go func() {
		done <- e.run(app, "tail", "--from", "start", "--category", "account", "--limit", "3", "--json")
	}()
	time.Sleep(300 * time.Millisecond)
	live := e.append("account-2", ev("Opened", `{"owner":"bob"}`))
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("tail did not return after --limit records")
	}
	recs := jsonLines[jsonRecord](t, mustOK(t, r).stdout)
	if len(recs) != 3 || recs[0].Type != "Opened" || recs[1].Data["cents"] != float64(5) || recs[2].StreamID != "account-2" ||
		recs[2].Position != live.Position.String() {
		t.Fatalf("tail --json: %+v", recs)
	}

	// --type filter, text output, stopped by its context (like Ctrl-C):
	// a clean stop, exit 0.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r = mustOK(t, e.runCtx(ctx, app, "tail", "--from", "0/0", "--type", "Deposited,Placed"))
	contains(t, r.stdout, "account-1@2  Deposited v2 (upcast from v1)  {\"cents\":5}", "order-1@1  Placed v1")
	notContains(t, r.stdout, "Opened")

	// From the head (the default), nothing old is printed.
	ctx, cancel = context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	r = mustOK(t, e.runCtx(ctx, app, "tail"))
	if r.stdout != "" {
		t.Fatalf("tail from head printed old records:\n%s", r.stdout)
	}
}

func TestProjectionsStatusRebuildAndDeadLetters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var failing atomic.Bool
	failing.Store(true)
	app := e.app(cli.WithUpcasters(chain(t)), cli.WithProjections(projections(&failing)...),
		cli.WithRunnerOptions(projection.WithBackoff(time.Millisecond, time.Millisecond)))

	e.append("account-1", ev("Opened", `{"owner":"ada"}`), eventstore.Event{Type: "Deposited", SchemaVersion: 1, Data: []byte(`{"amount":500}`)},
		eventstore.Event{Type: "Deposited", SchemaVersion: 2, Data: []byte(`{"cents":25}`)})
	e.append("account-2", ev("Opened", `{"owner":"bob"}`))
	bad := e.append("misc-1", ev("Bad", `{}`))
	e.visible(bad.Position)

	// Before any build: status shows nothing applied, the whole lag.
	r := mustOK(t, e.run(app, "projections", "status"))
	contains(t, r.stdout, "NAME", "CHECKPOINT", "LAG", "DEAD LETTERS", "HELD BACK", "totals", "picky")
	type status struct {
		Name        string `json:"name"`
		Current     string `json:"current"`
		Checkpoint  string `json:"checkpoint"`
		Head        string `json:"head"`
		LagEvents   int    `json:"lag_events"`
		DeadLetters int    `json:"dead_letters"`
		State       string `json:"state"`
	}
	sts := jsonValue[[]status](t, mustOK(t, e.run(app, "projections", "status", "--json")).stdout)
	if len(sts) != 2 || sts[0].Name != "totals" || sts[0].LagEvents != 4 || sts[1].LagEvents != 5 || sts[0].Current != "" ||
		sts[0].Head != bad.Position.String() {
		t.Fatalf("status before build: %+v", sts)
	}

	// Rebuild with progress: a bar on stderr, the result on stdout.
	r = mustOK(t, e.run(app, "projections", "rebuild", "totals"))
	contains(t, r.stderr, "rebuild totals@v1", "100%", "events/s", "done")
	contains(t, r.stdout, "rebuilt totals: build totals@v1 is current (4 events applied")
	var cents int
	if err := e.pool.QueryRow(context.Background(), `SELECT cents FROM "`+e.schema+`".totals WHERE stream_id = 'account-1'`).Scan(&cents); err != nil || cents != 525 {
		t.Fatalf("read model after rebuild: cents %d, err %v", cents, err)
	}
	// A second rebuild is a new generation, switched atomically.
	r = mustOK(t, e.run(app, "projections", "rebuild", "totals", "--no-progress", "--json"))
	if r.stderr != "" {
		t.Fatalf("--no-progress printed %q", r.stderr)
	}
	rb := jsonValue[struct {
		Build  string `json:"build"`
		Events int64  `json:"events"`
	}](t, r.stdout)
	if rb.Build != "totals@v1_1" || rb.Events != 4 {
		t.Fatalf("rebuild --json: %+v", rb)
	}

	// picky sets the Bad event aside.
	mustOK(t, e.run(app, "projections", "rebuild", "picky", "--no-progress"))
	sts = jsonValue[[]status](t, mustOK(t, e.run(app, "projections", "status", "--json")).stdout)
	if sts[0].Current != "totals@v1_1" || sts[0].LagEvents != 0 || sts[0].Checkpoint != bad.Position.String() && sts[0].Checkpoint == "0/0" ||
		sts[1].DeadLetters != 1 || sts[1].LagEvents != 0 {
		t.Fatalf("status after rebuilds: %+v", sts)
	}
	r = mustOK(t, e.run(app, "projections", "status"))
	contains(t, r.stdout, "totals@v1_1")

	// dlq list, in text and JSON; the generic binary lists by name.
	r = mustOK(t, e.run(app, "dlq", "list"))
	contains(t, r.stdout, "PROJECTION", "picky", "misc-1@1", "Bad", "cannot stomach misc-1")
	type dl struct {
		Projection string `json:"projection"`
		EventID    string `json:"event_id"`
		Attempts   int    `json:"attempts"`
		Error      string `json:"error"`
	}
	dls := jsonValue[[]dl](t, mustOK(t, e.run(e.app(), "dlq", "list", "picky", "--json")).stdout)
	if len(dls) != 1 || dls[0].Projection != "picky" || dls[0].Attempts != 1 {
		t.Fatalf("dlq list --json: %+v", dls)
	}
	id := dls[0].EventID
	contains(t, mustOK(t, e.run(app, "dlq", "list", "totals")).stdout, "(no dead letters)")

	// A retry that fails again keeps the dead letter, one more attempt.
	r = e.run(app, "dlq", "retry", "picky", id)
	mustFail(t, r, cli.ExitError, "cannot stomach misc-1")
	contains(t, r.stdout, "failed   picky "+id)
	dls = jsonValue[[]dl](t, mustOK(t, e.run(app, "dlq", "list", "--json")).stdout)
	if len(dls) != 1 || dls[0].Attempts != 2 {
		t.Fatalf("after a failed retry: %+v", dls)
	}

	// Fixed: retry --all applies it and empties the list.
	failing.Store(false)
	r = mustOK(t, e.run(app, "dlq", "retry", "--all"))
	contains(t, r.stdout, "retried  picky "+id)
	contains(t, mustOK(t, e.run(app, "dlq", "list")).stdout, "(no dead letters)")

	// Discard by ID and with --all.
	failing.Store(true)
	e.append("misc-2", ev("Bad", `{}`))
	e.visible(e.append("misc-3", ev("Bad", `{}`)).Position)
	mustOK(t, e.run(app, "projections", "rebuild", "picky", "--no-progress"))
	dls = jsonValue[[]dl](t, mustOK(t, e.run(app, "dlq", "list", "picky", "--json")).stdout)
	if len(dls) != 3 {
		t.Fatalf("want 3 dead letters, got %+v", dls)
	}
	r = mustOK(t, e.run(app, "dlq", "discard", "picky", dls[0].EventID, "--json"))
	acts := jsonValue[[]struct {
		EventID string `json:"event_id"`
		OK      bool   `json:"ok"`
	}](t, r.stdout)
	if len(acts) != 1 || !acts[0].OK || acts[0].EventID != dls[0].EventID {
		t.Fatalf("dlq discard --json: %+v", acts)
	}
	r = mustOK(t, e.run(app, "dlq", "discard", "picky", "--all"))
	contains(t, r.stdout, "discarded picky "+dls[1].EventID, "discarded picky "+dls[2].EventID)
	contains(t, mustOK(t, e.run(app, "dlq", "list")).stdout, "(no dead letters)")

	// Missing dead letters and unknown projections are clear errors.
	mustFail(t, e.run(app, "dlq", "discard", "picky", dls[0].EventID), cli.ExitError,
		`projection "picky" has no dead letter `+dls[0].EventID)
	mustFail(t, e.run(app, "projections", "rebuild", "nope"), cli.ExitError, `unknown projection "nope" (registered: totals, picky)`)
	mustFail(t, e.run(app, "dlq", "list", "nope"), cli.ExitError, `unknown projection "nope"`)

	// A schema nobody migrated says so.
	r = run(testCtx(t, 10*time.Second), app, "dlq", "list", "picky", "--schema", "never_migrated", "--database-url", testenv.DatabaseURL())
	mustFail(t, r, cli.ExitError, `(has "chronicle migrate" run on this schema?)`)
}

func TestTheGenericBinarySaysWhatNeedsProjectionCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app()
	for _, args := range [][]string{
		{"projections", "rebuild", "totals"},
		{"dlq", "retry", "totals", "--all"},
		{"dlq", "discard", "totals", "0190a4c2-7d1e-7a3b-9c55-2f1e4b8d6a01"},
	} {
		mustFail(t, e.run(app, args...), cli.ExitError, "no projections are registered in chronicle")
	}
	contains(t, mustOK(t, e.run(app, "dlq", "list")).stdout, "(no dead letters)")
	contains(t, mustOK(t, e.run(app, "dlq", "list", "totals")).stdout, "(no dead letters)")
	contains(t, mustOK(t, e.run(app, "projections", "status")).stdout, "(no projections have run on this database)")
	if out := mustOK(t, e.run(app, "projections", "status", "--json")).stdout; out != "[]\n" {
		t.Fatalf("status --json of an empty database = %q", out)
	}
}

func TestRelayPublishesUntilStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ns := testenv.NATS(t)
	stream := strings.ToUpper(testenv.Name("cli"))
	app := e.app(cli.WithRelayStream(relay.StreamConfig{Topology: wire.Topology{Stream: stream, SubjectPrefix: "test.events"}}))
	e.append("account-1", ev("Opened", `{}`), ev("Deposited", `{}`))
	last := e.append("account-2", ev("Opened", `{}`))
	e.visible(last.Position)

	type relayStatus struct {
		Checkpoint     string `json:"checkpoint"`
		PublishedTotal int64  `json:"published_total"`
		LagEvents      int64  `json:"lag_events"`
	}
	st := jsonValue[relayStatus](t, mustUnhealthy(t, e.run(app, "relay", "status", "--json"), "no relay leads").stdout)
	if st.LagEvents != 3 || st.PublishedTotal != 0 {
		t.Fatalf("relay status before: %+v", st)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- e.runCtx(ctx, app, "relay", "--nats-url", ns.URL()) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		// Until the relay leads, the status is unhealthy (exit 3).
		st = jsonValue[relayStatus](t, e.run(app, "relay", "status", "--json").stdout)
		if st.Checkpoint == last.Position.String() {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("relay did not publish: %+v\n%s", st, <-done)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.PublishedTotal != 3 || st.LagEvents != 0 {
		t.Fatalf("relay status after: %+v", st)
	}
	cancel() // Ctrl-C
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not stop")
	}
	mustOK(t, r)
	contains(t, r.stderr, "publishing schema", "stopped; published 3 events")

	// The events are in the JetStream stream, under the configured prefix.
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	str, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := str.GetLastMsgForSubject(context.Background(), "test.events.account.Opened")
	if err != nil || msg.Header.Get(wire.HeaderStream) != "account-2" {
		t.Fatalf("last Opened message: %+v, %v", msg, err)
	}
	if info, err := str.Info(context.Background()); err != nil || info.State.Msgs != 3 {
		t.Fatalf("stream info: %+v, %v", info, err)
	}

	mustFail(t, e.run(e.app(), "relay"), cli.ExitError, "no NATS server: set NATS_URL or pass --nats-url")
}

func TestBadCommandLines(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 10*time.Second)
	app := cli.New(cli.WithEnv(func(string) string { return "" }))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `chronicle: unknown command "frobnicate"`},
		{[]string{"streams", "frobnicate"}, `chronicle: streams: unknown command "frobnicate"`},
		{[]string{"streams", "list", "--bogus"}, "chronicle: streams list: unknown flag: --bogus"},
		{[]string{"streams", "list", "--limit", "x"}, `chronicle: streams list: invalid argument "x" for "--limit"`},
		{[]string{"streams", "list", "--limit", "-1"}, "--limit must not be negative"},
		{[]string{"streams", "show"}, "chronicle: streams show: missing STREAM_ID"},
		{[]string{"streams", "show", "a-1", "b-1"}, `unexpected argument "b-1"`},
		{[]string{"streams", "show", "a-1", "--from", "-2"}, "--from must not be negative"},
		{[]string{"tail", "--from", "yesterday"}, `--from: want head, start or TXID/SEQ, got "yesterday"`},
		{[]string{"projections", "rebuild"}, "chronicle: projections rebuild: missing NAME"},
		{[]string{"dlq", "retry"}, "name a projection and dead letter IDs, or pass --all"},
		{[]string{"dlq", "retry", "totals"}, "name the dead letter IDs to retry, or pass --all"},
		{[]string{"dlq", "discard", "totals", "not-a-uuid"}, `invalid dead letter ID "not-a-uuid"`},
		{[]string{"migrate", "now"}, `chronicle: migrate: unexpected argument "now"`},
	} {
		r := run(ctx, app, tc.args...)
		mustFail(t, r, cli.ExitUsage, tc.want)
		if r.stdout != "" {
			t.Fatalf("%v: want nothing on stdout, got %q", tc.args, r.stdout)
		}
	}
}

func TestMissingDatabase(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 20*time.Second)
	r := run(ctx, cli.New(cli.WithEnv(func(string) string { return "" })), "streams", "list")
	mustFail(t, r, cli.ExitError, "chronicle: streams list: no database: set DATABASE_URL or pass --database-url")

	// Nothing listens on port 1.
	env := func(k string) string {
		if k == cli.EnvDatabaseURL {
			return "postgres://postgres:secret@127.0.0.1:1/test?sslmode=disable"
		}
		return ""
	}
	r = run(ctx, cli.New(cli.WithEnv(env)), "migrate", "--connect-timeout", "3s")
	mustFail(t, r, cli.ExitError, `chronicle: migrate: connect to database "test" on 127.0.0.1:1 as "postgres"`)
	notContains(t, r.stderr, "secret")

	r = run(ctx, cli.New(), "streams", "list", "--database-url", "postgres://[::1", "--connect-timeout", "1s")
	mustFail(t, r, cli.ExitError, "invalid database URL")
}

func TestInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := run(ctx, cli.New(), "streams", "list", "--database-url", testenv.DatabaseURL())
	if r.code != cli.ExitInterrupted || r.stderr != "chronicle: streams list: interrupted\n" {
		t.Fatalf("want exit %d and one line, got %s", cli.ExitInterrupted, r)
	}
}

func TestProjectionsStatusShowsEventsHeldBackByAnOpenTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var failing atomic.Bool
	app := e.app(cli.WithUpcasters(chain(t)), cli.WithProjections(projections(&failing)...))
	ctx := testCtx(t, 20*time.Second)

	// An open transaction that has a transaction id holds every reader of
	// the log back; keep it short, it holds back other tests too.
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	e.append("account-1", ev("Opened", `{}`))
	type status struct {
		HeldBack   int64   `json:"held_back"`
		OldestOpen float64 `json:"oldest_open_seconds"`
		LagEvents  int     `json:"lag_events"`
	}
	sts := jsonValue[[]status](t, mustOK(t, e.run(app, "projections", "status", "--json")).stdout)
	if sts[0].HeldBack < 1 || sts[0].OldestOpen <= 0 || sts[0].LagEvents < 1 { // held back is lag too
		t.Fatalf("status with an open transaction: %+v", sts)
	}
	contains(t, mustOK(t, e.run(app, "projections", "status")).stdout, "(open ")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 10*time.Second)
	app := cli.New(cli.WithName("bankctl"))
	for _, args := range everyCommand(t, app) {
		r := run(ctx, app, append(args, "--help")...)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "bankctl") ||
			!strings.Contains(r.stdout, "--database-url") {
			t.Fatalf("%v --help: %s", args, r)
		}
	}
	// With no command, the binary prints its help.
	r := run(ctx, app)
	if r.code != 0 || !strings.Contains(r.stdout, "Available Commands") {
		t.Fatalf("no command: %s", r)
	}
}

// TestRelayStreamFlagKeepsTheServiceStream gives the stream through
// WithRelayOptions: --help shows its name, and --stream renames it without
// resetting its max age, duplicate window or subject prefix.
func TestRelayStreamFlagKeepsTheServiceStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ns := testenv.NATS(t)
	svc := strings.ToUpper(testenv.Name("svc"))
	app := e.app(cli.WithRelayOptions(relay.WithStream(relay.StreamConfig{
		Topology: wire.Topology{Stream: svc, SubjectPrefix: "svc.ev"}, MaxAge: time.Hour, Duplicates: time.Minute})))
	contains(t, mustOK(t, e.run(app, "relay", "--help")).stdout, `--stream string           the JetStream stream to publish to (default "`+svc+`")`)
	type relayStatus struct {
		Name   string `json:"name"`
		Stream string `json:"stream"`
	}
	if st := jsonValue[relayStatus](t, mustUnhealthy(t, e.run(app, "relay", "status", "--json")).stdout); st.Stream != svc || st.Name != relay.DefaultName {
		t.Fatalf("relay status: %+v, want stream %s", st, svc)
	}
	other := svc + "_B"
	if st := jsonValue[relayStatus](t, mustUnhealthy(t, e.run(app, "relay", "status", "--json", "--stream", other, "--relay-name", "b")).stdout); st.Stream != other || st.Name != "b" {
		t.Fatalf("relay status --stream %s --relay-name b: %+v", other, st)
	}

	e.visible(e.append("account-1", ev("Opened", `{}`)).Position)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- e.runCtx(ctx, app, "relay", "--nats-url", ns.URL(), "--stream", other) }()

	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var info *jetstream.StreamInfo
	for {
		if s, err := js.Stream(context.Background(), other); err == nil {
			if info, err = s.Info(context.Background()); err == nil && info.State.Msgs == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("relay --stream %s did not publish into it: %+v\n%s", other, info, <-done)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	mustOK(t, <-done)
	c := info.Config
	if c.MaxAge != time.Hour || c.Duplicates != time.Minute || len(c.Subjects) != 1 || c.Subjects[0] != "svc.ev.>" {
		t.Fatalf("stream %s: max age %s, duplicates %s, subjects %v; want the service's 1h, 1m, svc.ev.>",
			other, c.MaxAge, c.Duplicates, c.Subjects)
	}
}
