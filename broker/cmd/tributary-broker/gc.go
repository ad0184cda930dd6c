package main

import (
	"math"
	"os"
	"runtime/debug"

	"github.com/tributary/tributary/broker/metrics"
)

// brokerGCPercent is the broker's GOGC when the environment sets none.
//
// A broker's live heap is small (20 MB with 5,000 partitions) while the
// produce and replication paths allocate hundreds of MB a second: request
// buffers, fetch responses and the chunks read for them. At Go's default
// of 100 the heap goal stays near 40 MB and the collector runs tens of
// times a second; its fixed cost per cycle then weighs on every MiB
// produced. At 200 the three-broker benchmark's brokers spent 10-11 CPU
// seconds per GiB produced instead of 13 (docs/benchmarks.md), for a heap
// goal three times the live heap instead of twice.
const brokerGCPercent = 200

// configureGC sets the collector's target percentage to brokerGCPercent
// unless GOGC is set, which the runtime has already applied. It returns
// the percentage in force and whether it came from the environment.
func configureGC() (percent int, fromEnv bool) {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		// SetGCPercent returns the value it replaces: read it and put it
		// back.
		percent = debug.SetGCPercent(100)
		debug.SetGCPercent(percent)
		return percent, true
	}
	debug.SetGCPercent(brokerGCPercent)
	return brokerGCPercent, false
}

// brokerMemoryShare is the part of the memory the process may use that
// `run` sets as the runtime's soft memory limit when GOMEMLIMIT is unset.
//
// At GOGC=200 the heap may grow to three times what is live before a
// collection, and memory given back to pools (read buffers, request
// frames) stays until two collections pass: a broker whose TLS consumers
// hold 256 MiB of fetch responses reached 1.9 GiB of RSS without a limit
// and 1.0 GiB under GOMEMLIMIT=1GiB (docs/benchmarks.md). Near the limit
// the collector runs more often instead of the heap growing into an OOM
// kill; far from it, which is where a broker lives, nothing changes. The
// quarter left over is for the page cache the log reads are served from
// and for what the runtime does not count (the binary, thread stacks).
const brokerMemoryShare = 0.75

// configureMemoryLimit sets the runtime's soft memory limit to
// brokerMemoryShare of the memory the process may use (its cgroup's limit
// or the host's memory, read under procRoot and cgroupRoot) unless
// GOMEMLIMIT is set, which the runtime has already applied. It returns
// the limit in force (0: none) and where it came from.
func configureMemoryLimit(procRoot, cgroupRoot string) (limit int64, from string) {
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok && v != "" {
		if l := debug.SetMemoryLimit(-1); l < math.MaxInt64 {
			return l, "GOMEMLIMIT"
		}
		return 0, "GOMEMLIMIT"
	}
	total, from, ok := metrics.ProcessMemory(procRoot, cgroupRoot)
	if !ok {
		return 0, "no memory size found"
	}
	limit = int64(float64(total) * brokerMemoryShare)
	debug.SetMemoryLimit(limit)
	return limit, "three quarters of " + from
}
