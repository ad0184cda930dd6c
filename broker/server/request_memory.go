package server

import (
	"math"
	"runtime/debug"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/internal/reqmem"
	"github.com/tributary/tributary/broker/metrics"
)

// The broker-wide bound on request memory (queued.max.request.bytes,
// Kafka's memory pool for request bytes read from sockets): without it a
// size header pins what it announces up to 1 MiB per connection at once
// (reqmem.GrowAbove), so 10,000 connections each sending a 1 MiB header
// pin 10 GiB, and clients that pipeline large Produce requests hold up to
// 16 MiB each (readAheadBytes).
//
// The default is a quarter of the memory the process may use, the share
// fetch.memory.max.bytes takes for responses: `run` sets GOMEMLIMIT to
// three quarters of the instance's memory, so on an 8 GiB broker requests
// and TLS fetch responses together may hold half the soft limit (3 GiB),
// the rest being the heap's working set and the collector's headroom.
// That is far more than a busy broker holds (producers flat out on one
// node keep a few tens of MiB in flight), so the bound stops floods of
// headers and pipelined requests without slowing ordinary traffic. It is
// at least socket.request.max.bytes, so that every request the broker
// accepts fits.

const requestMemoryShare = 4

// requestMemoryLimit resolves queued.max.request.bytes: the setting when
// above 0, no bound (0) for -1, else a quarter of what the process may
// use (as fetchMemoryLimit), at least socket.request.max.bytes. from says
// which.
func requestMemoryLimit(cfg *config.Config, procRoot, cgroupRoot string) (limit int64, from string) {
	switch {
	case cfg.QueuedMaxRequestBytes > 0:
		return cfg.QueuedMaxRequestBytes, "queued.max.request.bytes"
	case cfg.QueuedMaxRequestBytes < 0:
		return 0, "queued.max.request.bytes (-1: no bound)"
	}
	floor := int64(cfg.SocketRequestMaxBytes)
	var total int64
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		total, from = l, "GOMEMLIMIT"
	} else if m, f, ok := metrics.ProcessMemory(procRoot, cgroupRoot); ok {
		total, from = m, f
	}
	if total == 0 || total/requestMemoryShare < floor {
		return floor, "socket.request.max.bytes (the floor)"
	}
	return total / requestMemoryShare, "a quarter of " + from
}

// applyRequestMemory sets the client listeners' request memory bound from
// cfg (at start and on every dynamic change): connections waiting for
// memory that a raised bound lets in go on at once.
func (s *Server) applyRequestMemory(cfg *config.Config) {
	limit, from := requestMemoryLimit(cfg, "/proc", "/sys/fs/cgroup")
	if s.reqMem.Stats().Limit != limit {
		s.log.Info("request memory bound", "queued_max_request_bytes", limit, "from", from)
	}
	s.reqMem.SetLimit(limit)
}

// requestMemory reports the request memory budgets to the metrics.
func requestMemory(client, replication *reqmem.Budget) func() []metrics.RequestMemory {
	return func() []metrics.RequestMemory {
		out := make([]metrics.RequestMemory, 0, 2)
		for _, b := range []struct {
			listener string
			b        *reqmem.Budget
		}{{"client", client}, {"replication", replication}} {
			st := b.b.Stats()
			out = append(out, metrics.RequestMemory{Listener: b.listener, Held: st.Held, Limit: st.Limit, Waiting: st.Waiting,
				Waits: st.Waits, WaitSeconds: st.WaitSeconds, Refused: st.Refused})
		}
		return out
	}
}
