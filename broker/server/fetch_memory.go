package server

import (
	"math"
	"runtime/debug"

	"github.com/tributary/tributary/broker/metrics"
	"github.com/tributary/tributary/broker/storage"
)

// The broker-wide bound on the memory of fetch responses read into
// memory (fetch.memory.max.bytes). Plaintext listeners send record
// batches from the segment files and hold none; a TLS listener must read
// them to encrypt them, and holds them until the response is written, so
// without a bound a broker's memory grows with its TLS consumers times
// their fetch.max.bytes (40 consumers of 50 MiB: 2 GiB) until it is
// killed for it. Kafka reads TLS fetches in bounded chunks instead.

const (
	// fetchMemoryShare is the part of the memory the process may use
	// that the bound takes by default: the rest is the heap's (produce
	// frames, the garbage collector's headroom at GOGC=200) and the page
	// cache's, which serves the reads themselves.
	fetchMemoryShare = 4
	// minFetchMemory is the least the default bound is: one fetch of
	// kgo's default fetch.max.bytes (50 MiB) fits.
	minFetchMemory = 64 << 20
)

// fetchMemoryLimit resolves fetch.memory.max.bytes: the setting when it is
// not 0, else a quarter of what the process may use (the soft memory
// limit GOMEMLIMIT when set, as `run` does by default, else its cgroup's
// memory limit or the host's memory, whichever is lower), at least
// minFetchMemory. from says which.
func fetchMemoryLimit(setting int64, procRoot, cgroupRoot string) (limit int64, from string) {
	if setting > 0 {
		return setting, "fetch.memory.max.bytes"
	}
	var total int64
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		total, from = l, "GOMEMLIMIT"
	} else if m, f, ok := metrics.ProcessMemory(procRoot, cgroupRoot); ok {
		total, from = m, f
	}
	if total == 0 {
		return minFetchMemory, "the floor (no memory size found)"
	}
	return max(total/fetchMemoryShare, minFetchMemory), "a quarter of " + from
}

// fetchMemory reports the read budget to the metrics.
func fetchMemory(b *storage.ReadBudget) func() metrics.FetchMemory {
	return func() metrics.FetchMemory {
		return metrics.FetchMemory{Held: b.Held(), Limit: b.Limit(), Cut: b.Cut(), Leaked: b.Leaked()}
	}
}
