package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/console"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/projection"
)

// streamsFixture writes a command's causation chain across three streams
// (correlation "cmd-1"), an unrelated event, and returns the console.
func streamsFixture(t *testing.T, opts ...console.Option) (*projection.Admin, *console.Handler, map[string]eventstore.Record) {
	t.Helper()
	ctx := testCtx(t)
	_, _, es, ps := newStores(t, false, espg.WithPollInterval(50*time.Millisecond))
	r, err := projection.NewRunner(es, ps, []projection.Projection{{Name: "noop",
		Handler: projection.HandlerFunc(func(context.Context, projection.Tx, projection.Event) error { return nil })}})
	if err != nil {
		t.Fatal(err)
	}
	recs := map[string]eventstore.Record{}
	write := func(name, stream, causation string, data string) {
		t.Helper()
		md := eventstore.Metadata{eventstore.CorrelationIDKey: "cmd-1"}
		if causation != "" {
			md[eventstore.CausationIDKey] = recs[causation].ID.String()
		} else {
			md[eventstore.CausationIDKey] = "cmd-1"
		}
		if _, err := es.Append(ctx, stream, eventstore.Any, eventstore.Event{Type: name, Data: []byte(data), Metadata: md}); err != nil {
			t.Fatal(err)
		}
		for rec, err := range es.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backward, Limit: 1}) {
			if err != nil {
				t.Fatal(err)
			}
			recs[name] = rec
		}
	}
	write("TransferRequested", "transfer-1", "", `{"amount":5,"note":"<img src=x onerror=alert(1)>"}`)
	write("Debited", "account-a", "TransferRequested", `{"amount":5}`)
	write("Credited", "account-b", "Debited", `{"amount":5}`)
	write("TransferCompleted", "transfer-1", "Credited", `{}`)
	write("Notified", "mail-<b>x</b>", "Debited", `{}`)
	last, err := es.Append(ctx, "account-c", eventstore.Any, eventstore.Event{Type: "Opened", Data: []byte(`{}`),
		Metadata: eventstore.Metadata{eventstore.CorrelationIDKey: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	// The log shows events once no older transaction (of any test sharing
	// the server) is open: wait until the last one is visible.
	for rec, err := range es.Follow(ctx, eventstore.ReadAllOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Position == last.Position {
			break
		}
	}
	h, err := console.New(r.Admin(), append([]console.Option{console.WithStreams(es)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r.Admin(), h, recs
}

func getJSON(t *testing.T, h http.Handler, path string, out any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code == http.StatusOK && out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, rec.Body)
		}
	}
	return rec.Code
}

// The stream browser lists and searches streams, shows a stream's events
// raw and decoded, and follows a correlation ID as a causation tree.
func TestStreamBrowser(t *testing.T) {
	t.Parallel()
	admin, h, recs := streamsFixture(t, console.WithDecoder(upcaster()))

	var page console.StreamsPage
	if code := getJSON(t, h, "/api/streams", &page); code != http.StatusOK || len(page.Streams) != 5 || page.Next != "" {
		t.Fatalf("list: %d %+v", code, page)
	}
	if code := getJSON(t, h, "/api/streams?category=account", &page); code != http.StatusOK || len(page.Streams) != 3 {
		t.Fatalf("list account: %d %+v", code, page)
	}
	if code := getJSON(t, h, "/api/streams?search=fer", &page); code != http.StatusOK || len(page.Streams) != 1 ||
		page.Streams[0] != (console.StreamOverview{StreamID: "transfer-1", Version: 2}) {
		t.Fatalf("search: %d %+v", code, page)
	}
	if code := getJSON(t, h, "/api/streams?limit=2", &page); code != http.StatusOK || len(page.Streams) != 2 || page.Next != page.Streams[1].StreamID {
		t.Fatalf("page 1: %d %+v", code, page)
	}
	if code := getJSON(t, h, "/api/streams?limit=2&after="+url.QueryEscape(page.Next), &page); code != http.StatusOK || len(page.Streams) != 2 ||
		page.Streams[0].StreamID != "account-c" {
		t.Fatalf("page 2: %d %+v", code, page)
	}

	var evs []console.EventView
	if code := getJSON(t, h, "/api/stream?id=transfer-1", &evs); code != http.StatusOK || len(evs) != 2 {
		t.Fatalf("stream: %d %+v", code, evs)
	}
	if evs[0].Type != "TransferRequested" || evs[0].Version != 1 || evs[0].EventID != recs["TransferRequested"].ID.String() ||
		evs[0].Metadata[eventstore.CorrelationIDKey] != "cmd-1" || !strings.Contains(string(evs[0].Data), "onerror") ||
		len(evs[0].Decoded) != 1 || evs[0].Decoded[0].(map[string]any)["upcast"] != true {
		t.Fatalf("stream event: %+v", evs[0])
	}
	evs = nil
	if code := getJSON(t, h, "/api/stream?id=account-b", &evs); code != http.StatusOK || len(evs) != 1 ||
		!strings.Contains(evs[0].DecodeError, "no codec for Credited") || evs[0].Decoded != nil {
		t.Fatalf("undecodable event: %d %+v", code, evs)
	}
	if code := getJSON(t, h, "/api/stream?id=nope", nil); code != http.StatusNotFound {
		t.Fatalf("missing stream: %d", code)
	}
	if code := getJSON(t, h, "/api/stream", nil); code != http.StatusBadRequest {
		t.Fatalf("no stream id: %d", code)
	}

	var tree []*console.EventView
	if code := getJSON(t, h, "/api/correlation?id=cmd-1", &tree); code != http.StatusOK {
		t.Fatalf("correlation: %d", code)
	}
	// TransferRequested → Debited → (Credited → TransferCompleted, Notified)
	shape := func(e *console.EventView) string {
		var s func(e *console.EventView) string
		s = func(e *console.EventView) string {
			out := e.Type
			if len(e.Children) > 0 {
				parts := []string{}
				for _, c := range e.Children {
					parts = append(parts, s(c))
				}
				out += "(" + strings.Join(parts, ",") + ")"
			}
			return out
		}
		return s(e)
	}
	if len(tree) != 1 || shape(tree[0]) != "TransferRequested(Debited(Credited(TransferCompleted),Notified))" {
		t.Fatalf("causation tree: %d roots, %s", len(tree), shape(tree[0]))
	}
	if code := getJSON(t, h, "/api/correlation?id=none", &tree); code != http.StatusOK || len(tree) != 0 {
		t.Fatalf("unknown correlation: %d %+v", code, tree)
	}

	// Without WithStreams, the browser is off.
	ro, err := console.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	if code := getJSON(t, ro, "/api/streams", nil); code != http.StatusNotFound {
		t.Fatalf("streams without WithStreams: %d", code)
	}
}

// upcaster decodes an event as a map with "upcast": true added; Credited
// fails to decode.
func upcaster() projection.Decoder {
	return projection.DecoderFunc(func(rec eventstore.Record) ([]any, error) {
		if rec.Type == "Credited" {
			return nil, errors.New("no codec for Credited")
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Data, &m); err != nil {
			return nil, err
		}
		m["upcast"] = true
		return []any{m}, nil
	})
}

// In Chromium: search the streams, open one, follow its correlation ID to
// the causation tree; IDs, types and data are shown as text, never markup.
func TestStreamBrowserInChromium(t *testing.T) {
	t.Parallel()
	_, h, _ := streamsFixture(t, console.WithDecoder(upcaster()))
	srv := httptest.NewServer(h)
	defer srv.Close()
	b := newBrowser(t)
	b.navigate(srv.URL + "/")
	b.waitEval(`document.body.dataset.streams || ""`, "1")
	b.waitEval(`document.querySelectorAll("#streams a.stream").length.toString()`, "5")
	b.waitEval(`document.querySelector('#streams a[data-stream="mail-<b>x</b>"]').textContent`, "mail-<b>x</b> (v1)")
	b.eval(`document.getElementById("search").value = "transfer"; document.querySelector("#streamsearch button").click(); "searched"`)
	b.waitEval(`document.body.dataset.streams`, "2")
	b.waitEval(`document.querySelectorAll("#streams a.stream").length.toString()`, "1")
	b.eval(`document.querySelector("#streams a.stream").click(); "opened"`)
	b.waitEval(`document.body.dataset.stream || ""`, "transfer-1")
	b.waitEval(`Array.from(document.querySelectorAll("#events tbody td.type")).map(td => td.textContent).join(",")`, "TransferRequested,TransferCompleted")
	b.waitEval(`document.querySelector("#events tbody td.data").textContent.includes('<img src=x onerror=alert(1)>').toString()`, "true")
	// Upcast by default, raw once asked.
	b.waitEval(`document.querySelector("#events tbody td.data").textContent.includes('"upcast":true').toString()`, "true")
	b.eval(`document.getElementById("raw").click(); "raw"`)
	b.waitEval(`document.querySelector("#events tbody td.data").textContent.includes('"upcast":true').toString()`, "false")
	b.waitEval(`document.querySelector("#events tbody td.data").textContent.includes('<img src=x onerror=alert(1)>').toString()`, "true")
	b.eval(`document.getElementById("raw").click(); "upcast"`)
	b.waitEval(`document.querySelector("#events tbody td.data").textContent.includes('"upcast":true').toString()`, "true")
	b.eval(`document.querySelector("#events a.corr").click(); "followed"`)
	b.waitEval(`document.body.dataset.followed || ""`, "cmd-1")
	b.waitEval(`document.querySelectorAll("#tree li").length.toString()`, "5")
	// Credited sits three levels down: TransferRequested > Debited > Credited.
	b.waitEval(`Array.from(document.querySelectorAll("#tree > li > ul > li > ul > li > span")).map(s => s.textContent.split(" ")[0]).join(",")`, "Credited,Notified")
	b.waitEval(`document.querySelectorAll("img, b").length.toString()`, "0")
}
