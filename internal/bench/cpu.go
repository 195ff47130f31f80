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
type stCPU struct{ client, server time.Duration }

// stClockTick is the unit of /proc/<pid>/stat's times (USER_HZ).
const stClockTick = 10 * time.Millisecond

// stCPUNow samples the CPU spent so far.
func stCPUNow() stCPU {
	var c stCPU
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return c
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
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
		c.server += time.Duration(u+st) * stClockTick
	}
	return c
}

func (c stCPU) sub(o stCPU) stCPU { return stCPU{c.client - o.client, c.server - o.server} }
func (c stCPU) add(o stCPU) stCPU { return stCPU{c.client + o.client, c.server + o.server} }

// per formats the CPU per event of n events.
func (c stCPU) per(n int) string {
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	return fmt.Sprintf("CPU %.0f µs/event (client %.0f + server %.0f)", us(c.client+c.server), us(c.client), us(c.server))
}
