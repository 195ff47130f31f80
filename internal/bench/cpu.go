package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stCPU is CPU time spent by this process (client) and by the machine's
// PostgreSQL processes (server). The server figure counts every backend on
// the server, so on a shared machine it includes others' work; alternating
// rounds spread that over both sides of a figure.
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

// stCPUNow samples the CPU spent so far.
func stCPUNow() stCPU {
	c := stCPU{pids: map[int]time.Duration{}}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return c
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
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
func (c stCPU) per(n int) string {
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	return fmt.Sprintf("CPU %.0f µs/event (client %.0f + server %.0f)", us(c.client+c.server), us(c.client), us(c.server))
}
