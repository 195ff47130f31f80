package cli_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/chronicle-go/chronicle/cli"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
)

// openPTY opens a pseudo-terminal: the CLI writes to the terminal side,
// the test reads what it drew from the other side.
func openPTY(t *testing.T) (ptm, tty *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	var unlock int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, ptm.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		ptm.Close()
		t.Skipf("unlock pseudo-terminal: %v", errno)
	}
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, ptm.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
		ptm.Close()
		t.Skipf("pseudo-terminal number: %v", errno)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ptm.Close()
		t.Skipf("open pseudo-terminal %d: %v", n, err)
	}
	return ptm, tty
}

// TestRebuildLogsDoNotBreakTheBar rebuilds on a terminal, logging a dead letter:
// each log line starts a line of its own (the bar's line cleared first),
// never glued to the end of the bar, and the bar is drawn again after it.
func TestRebuildLogsDoNotBreakTheBar(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ptm, tty := openPTY(t)
	defer ptm.Close()
	var out bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = io.Copy(&out, ptm) // ends with EIO once tty is closed
	}()

	// picky dead-letters the Bad event, logging it, after a first batch of
	// 256 events has drawn the bar.
	var failing atomic.Bool
	failing.Store(true)
	app := e.app(cli.WithUpcasters(chain(t)), cli.WithProjections(projections(&failing)...),
		cli.WithRunnerOptions(projection.WithCatchUpBatchSize(1)))
	evs := make([]eventstore.Event, 300)
	for i := range evs {
		evs[i] = ev("Opened", `{}`)
	}
	e.append("misc-1", evs...)
	e.visible(e.append("misc-2", ev("Bad", `{}`), ev("Opened", `{}`)).Position)
	var stdout bytes.Buffer
	args := []string{"projections", "rebuild", "picky", "--verbose", "--schema", e.schema}
	code := app.Run(testCtx(t, 30*time.Second), args, &stdout, tty)
	tty.Close()
	select {
	case <-read:
	case <-time.After(5 * time.Second):
		t.Fatal("reading the terminal did not end")
	}
	drawn := out.String()
	if code != 0 {
		t.Fatalf("rebuild: exit %d\n%q", code, drawn)
	}
	if !strings.Contains(drawn, "event dead-lettered") {
		t.Fatalf("no log of the switch with --verbose:\n%q", drawn)
	}
	logs := 0
	for i := 0; ; {
		j := strings.Index(drawn[i:], "time=")
		if j < 0 {
			break
		}
		at := i + j
		if at > 0 && !strings.HasSuffix(drawn[:at], "\r\x1b[K") && !strings.HasSuffix(drawn[:at], "\n") {
			t.Fatalf("a log line does not start a line of its own at byte %d:\n%q", at, drawn)
		}
		logs++
		i = at + 1
	}
	// The switch is logged while the bar is drawn: the bar comes back after it.
	after := drawn[strings.Index(drawn, "event dead-lettered"):]
	if !strings.Contains(after, "rebuild picky@v1 [") {
		t.Fatalf("the bar is not drawn again after the log:\n%q", drawn)
	}
	if logs < 2 {
		t.Fatalf("want the rebuild's logs, got %d:\n%q", logs, drawn)
	}
}
