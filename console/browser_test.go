package console_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// browser drives headless Chromium through the DevTools protocol over a
// pipe (--remote-debugging-pipe: commands on fd 3, replies on fd 4, each
// a JSON message ending with a NUL byte), with no dependency.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	in      *os.File
	mu      sync.Mutex
	next    int
	waiting map[int]chan json.RawMessage
	session string
}

// chromium returns the path of Chromium, or skips the test (fails it when
// CI is set).
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (apt-get install chromium)")
	}
	t.Skip("chromium is not installed")
	return ""
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// Chromium's helper processes may still write to the profile for a
	// moment after it exits: the profile is removed best-effort, not with
	// t.TempDir (whose cleanup fails the test on a non-empty directory).
	profile, err := os.MkdirTemp("", "chronicle-console-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromium(t), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--remote-debugging-pipe",
		"--user-data-dir="+profile, "--window-size=1400,900", "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, resW}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmdR.Close()
	resW.Close()
	b := &browser{t: t, cmd: cmd, in: cmdW, waiting: map[int]chan json.RawMessage{}}
	go b.read(resR)
	t.Cleanup(func() {
		// Closing the pipe asks Chromium to exit; kill it if it has not
		// within five seconds.
		cmdW.Close()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		for range 20 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	var targets struct {
		TargetInfos []struct {
			TargetID string `json:"targetId"`
			Type     string `json:"type"`
		} `json:"targetInfos"`
	}
	b.call("", "Target.getTargets", nil, &targets)
	id := ""
	for _, ti := range targets.TargetInfos {
		if ti.Type == "page" {
			id = ti.TargetID
		}
	}
	if id == "" {
		var created struct {
			TargetID string `json:"targetId"`
		}
		b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &created)
		id = created.TargetID
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.call("", "Target.attachToTarget", map[string]any{"targetId": id, "flatten": true}, &att)
	b.session = att.SessionID
	return b
}

func (b *browser) read(f *os.File) {
	r := bufio.NewReader(f)
	for {
		msg, err := r.ReadBytes(0)
		if err != nil {
			return
		}
		var m struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil || m.ID == 0 {
			continue // an event
		}
		b.mu.Lock()
		ch := b.waiting[m.ID]
		delete(b.waiting, m.ID)
		b.mu.Unlock()
		if ch != nil {
			if m.Error != nil {
				ch <- append(json.RawMessage(`{"__error":`), append(m.Error, '}')...)
			} else {
				ch <- m.Result
			}
		}
	}
}

// call sends a command (to the page's session unless session is ""
// for the browser) and decodes its result into out.
func (b *browser) call(session, method string, params any, out any) {
	b.t.Helper()
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan json.RawMessage, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	if params == nil {
		msg["params"] = map[string]any{}
	}
	data, _ := json.Marshal(msg)
	if _, err := b.in.Write(append(data, 0)); err != nil {
		b.t.Fatalf("devtools %s: %v", method, err)
	}
	select {
	case res := <-ch:
		var e struct {
			Err json.RawMessage `json:"__error"`
		}
		if json.Unmarshal(res, &e) == nil && e.Err != nil {
			b.t.Fatalf("devtools %s: %s", method, e.Err)
		}
		if out != nil {
			if err := json.Unmarshal(res, out); err != nil {
				b.t.Fatalf("devtools %s: %v", method, err)
			}
		}
	case <-time.After(30 * time.Second):
		b.t.Fatalf("devtools %s: no answer in 30s", method)
	}
}

// navigate loads url in the page.
func (b *browser) navigate(url string) {
	b.t.Helper()
	b.call(b.session, "Page.navigate", map[string]any{"url": url}, nil)
}

// eval evaluates a JavaScript expression in the page and returns its
// value as a string (JSON for objects).
func (b *browser) eval(expr string) string {
	b.t.Helper()
	var res struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails json.RawMessage `json:"exceptionDetails"`
	}
	b.call(b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if res.ExceptionDetails != nil {
		return ""
	}
	var s string
	if json.Unmarshal(res.Result.Value, &s) == nil {
		return s
	}
	return string(res.Result.Value)
}

// waitEval waits, at most 20 seconds, until expr evaluates to want.
func (b *browser) waitEval(expr, want string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	got := ""
	for time.Now().Before(deadline) {
		if got = b.eval(expr); got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("page: %s = %q after 20s, want %q", expr, got, want)
}

// screenshot saves the page as a PNG.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	var res struct {
		Data []byte `json:"data"`
	}
	b.call(b.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &res)
	if err := os.WriteFile(path, res.Data, 0o644); err != nil {
		b.t.Fatal(fmt.Errorf("save screenshot: %w", err))
	}
}
