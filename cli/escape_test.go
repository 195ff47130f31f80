package cli_test

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chronicle-go/chronicle/cli"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
)

// terminalSafe fails unless every rune of out is printable or a newline:
// no escape sequence, carriage return, tab, bidi override or invalid
// UTF-8 written by a user reaches the operator's terminal.
func terminalSafe(t *testing.T, what, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("%s: invalid UTF-8 in:\n%s", what, strconv.Quote(out))
	}
	for i, r := range out {
		if r != '\n' && !strconv.IsPrint(r) {
			t.Fatalf("%s: unescaped %q at byte %d of:\n%s", what, r, i, strconv.Quote(out))
		}
	}
}

func lines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

func TestTextOutputEscapesControlCharactersInUserData(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var failing atomic.Bool
	failing.Store(true)
	app := e.app(cli.WithProjections(projections(&failing)...),
		cli.WithRunnerOptions(projection.WithBackoff(time.Millisecond, time.Millisecond)))

	// A stream ID that would forge a row, recolour the terminal, set its
	// title and reverse the rest of the line; a type, metadata and data
	// with escape sequences, C1 controls and bidi overrides.
	id := "account-evil\nforged-row\t7\x1b]0;pwned\x07\u202e"
	hostile := eventstore.Event{
		Type:     "Opened\r\x1b[1A",
		Metadata: eventstore.Metadata{"user\x1b[8m": "\x1b[2Jops\u009b", "note": "a\nb"},
		Data:     []byte("{\"s\":\"\u202etxt\u009b[31m\u200f\"}"),
	}
	res := e.append(id, hostile, ev("Bad", `{}`))
	e.visible(res.Position)

	r := mustOK(t, e.run(app, "streams", "list"))
	terminalSafe(t, "streams list", r.stdout)
	if got := lines(r.stdout); len(got) != 3 {
		t.Fatalf("streams list: want a header, one row and a summary, got %d lines:\n%s", len(got), r.stdout)
	}
	r = mustOK(t, e.run(app, "streams", "list", "--limit", "1"))
	terminalSafe(t, "streams list --limit 1", r.stdout)

	r = mustOK(t, e.run(app, "streams", "show", id))
	terminalSafe(t, "streams show", r.stdout)
	if got := lines(r.stdout); len(got) != 6 {
		t.Fatalf("streams show: want 3 lines per event, got %d:\n%s", len(got), r.stdout)
	}
	// Escaped, not dropped: the operator can still tell what is there.
	contains(t, r.stdout, `\x1b]0;pwned\a`, `\u202e`, `\u009b`)

	r = mustOK(t, e.run(app, "tail", "--from", "start", "--limit", "2"))
	terminalSafe(t, "tail", r.stdout)
	if got := lines(r.stdout); len(got) != 2 {
		t.Fatalf("tail: want one line per record, got %d:\n%s", len(got), r.stdout)
	}

	// picky sets the Bad event aside, with an error naming the stream.
	mustOK(t, e.run(app, "projections", "rebuild", "picky", "--no-progress"))
	r = mustOK(t, e.run(app, "dlq", "list"))
	terminalSafe(t, "dlq list", r.stdout)
	if got := lines(r.stdout); len(got) != 2 {
		t.Fatalf("dlq list: want a header and one row, got %d lines:\n%s", len(got), r.stdout)
	}
	r = mustOK(t, e.run(app, "projections", "status"))
	terminalSafe(t, "projections status", r.stdout)
	r = mustOK(t, e.run(e.app(), "projections", "status"))
	terminalSafe(t, "projections status (generic)", r.stdout)

	// A retry that fails prints the handler's error, naming the stream,
	// on stdout and stderr.
	dls := jsonValue[[]struct {
		EventID string `json:"event_id"`
	}](t, mustOK(t, e.run(app, "dlq", "list", "--json")).stdout)
	if len(dls) != 1 {
		t.Fatalf("want one dead letter, got %+v", dls)
	}
	r = e.run(app, "dlq", "retry", "picky", dls[0].EventID)
	if r.code != cli.ExitError {
		t.Fatalf("want exit %d, got %s", cli.ExitError, r)
	}
	terminalSafe(t, "dlq retry stdout", r.stdout)
	terminalSafe(t, "dlq retry stderr", r.stderr)
	if got := lines(r.stderr); len(got) != 1 {
		t.Fatalf("dlq retry: want one line on stderr, got %d:\n%s", len(got), r.stderr)
	}
	contains(t, r.stderr, "cannot stomach account-evil")

	// Plain data is printed as it is.
	e.visible(e.append("account-plain", ev("Opened", `{"owner":"zoë \"z\""}`)).Position)
	r = mustOK(t, e.run(app, "streams", "show", "account-plain"))
	contains(t, r.stdout, "account-plain@1  Opened v1", `{"owner":"zoë \"z\""}`)
}
