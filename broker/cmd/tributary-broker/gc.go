package main

import (
	"os"
	"runtime/debug"
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
