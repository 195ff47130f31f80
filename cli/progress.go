package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/chronicle-go/chronicle/projection"
)

// progressBar draws a rebuild's progress. On a terminal it redraws one line
// in place; elsewhere (a pipe, a log file, a test) it prints a line at most
// every few seconds and a last one when the rebuild finishes.
type progressBar struct {
	w     io.Writer
	name  string
	tty   bool
	every time.Duration

	mu      sync.Mutex
	last    projection.Progress
	have    bool
	printed time.Time
	drawn   bool
}

const barWidth = 30

func newProgressBar(w io.Writer, name string) *progressBar {
	return &progressBar{w: w, name: name, tty: isTerminal(w), every: 2 * time.Second}
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// update records and draws a progress report. It does not block on
// anything but the writer.
func (b *progressBar) update(p projection.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last, b.have = p, true
	switch {
	case b.tty:
		fmt.Fprintf(b.w, "\r%s\x1b[K", b.line(p))
		b.drawn = true
	case p.Finished || time.Since(b.printed) >= b.every:
		fmt.Fprintln(b.w, b.line(p))
		b.printed = time.Now()
	}
}

// record keeps a progress report without drawing it.
func (b *progressBar) record(p projection.Progress) {
	b.mu.Lock()
	b.last, b.have = p, true
	b.mu.Unlock()
}

// applied is the number of events the last report says were applied.
func (b *progressBar) applied() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last.Applied
}

// done ends the bar's line on a terminal.
func (b *progressBar) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
	}
	b.drawn = false
}

// Write writes log output through the bar, so that logs and the bar share
// stderr: while the bar is drawn on a terminal, it clears the bar's line,
// writes p on a line of its own, and draws the bar again below it.
// Otherwise it writes p as it is.
func (b *progressBar) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.tty || !b.drawn {
		return b.w.Write(p)
	}
	if _, err := io.WriteString(b.w, "\r\x1b[K"); err != nil {
		return 0, err
	}
	n, err := b.w.Write(p)
	if err != nil {
		return n, err
	}
	if len(p) > 0 && p[len(p)-1] != '\n' {
		if _, err := io.WriteString(b.w, "\n"); err != nil {
			return n, err
		}
	}
	_, err = io.WriteString(b.w, b.line(b.last))
	return n, err
}

// line is "rebuild balances@v1_1 [=====>    ]  52%  2600/5000 events  12400 ev/s  ETA 1s".
func (b *progressBar) line(p projection.Progress) string {
	frac := 1.0
	if p.Total > 0 {
		frac = min(max(float64(p.Done)/float64(p.Total), 0), 1)
	}
	done, total := p.Done, p.Total
	if p.Finished {
		frac, done = 1, total
	}
	filled := int(frac * barWidth)
	bar := strings.Repeat("=", filled)
	if filled < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-filled-1)
	}
	eta := "ETA " + formatDuration(p.ETA)
	if p.Finished {
		eta = "done"
	}
	label := b.name
	if !p.Build.IsZero() {
		label = p.Build.String()
	}
	return fmt.Sprintf("rebuild %s [%s] %3.0f%%  %d/%d  %.0f events/s  %s",
		label, bar, frac*100, done, total, p.Rate, eta)
}
