package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stCPU is CPU time spent by this process (client) and by the PostgreSQL
// backends serving the bench's pool (server): every connection the pool
// opens records its backend's pid (Env.backends), so other sessions'
// queries on a shared machine are not counted. What the server spends
// outside those backends (the WAL writer, the checkpointer) is left out on
// both sides of a figure.
type stCPU struct {
	client, server time.Duration
	// pids is each PostgreSQL process's CPU in a sample, so that a
	// difference counts only what processes spent between two samples
	// (a process that exited meanwhile is not subtracted; one that started
	// meanwhile counts whole).
	pids map[int]time.Duration
}

// stClockTick is the unit of /proc/<pid>/stat's times (USER_HZ).
const stClockTick = 10 * time.Millisecond

// backends is the set of PostgreSQL backend pids serving the bench's pool.
type backends struct {
	mu   sync.Mutex
	pids map[int]bool
}

func (b *backends) add(pid int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pids == nil {
		b.pids = map[int]bool{}
	}
	b.pids[pid] = true
}

func (b *backends) has(pid int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pids[pid]
}

// cpuNow samples the CPU spent so far by the bench and its backends.
func (e *Env) cpuNow() stCPU {
	c := stCPU{pids: map[int]time.Duration{}}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	bk := &e.backends
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return c
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !bk.has(pid) {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... field 14 utime, 15 stime.
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open || s[open+1:close] != "postgres" {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		c.pids[pid] = time.Duration(u+st) * stClockTick
	}
	return c
}

// sub returns what was spent from sample o to sample c.
func (c stCPU) sub(o stCPU) stCPU {
	d := stCPU{client: c.client - o.client}
	for pid, t := range c.pids {
		d.server += max(t-o.pids[pid], 0)
	}
	return d
}

func (c stCPU) add(o stCPU) stCPU {
	return stCPU{client: c.client + o.client, server: c.server + o.server}
}

// per formats the CPU per event of n events.
func (c stCPU) per(n int) string { return c.perUnit(n, "event") }

// perUnit formats the CPU per unit of n units.
func (c stCPU) perUnit(n int, unit string) string {
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	return fmt.Sprintf("CPU %.0f µs/%s (client %.0f + server %.0f)", us(c.client+c.server), unit, us(c.client), us(c.server))
}
