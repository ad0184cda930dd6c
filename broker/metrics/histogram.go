package metrics

import (
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds of the request-time histogram. They
// span a fast in-memory answer (0.5 ms) to a long-polled Fetch (Kafka's
// fetch.max.wait.ms defaults to 500 ms; clients may ask for more) and a
// slow fsync.
var latencyBuckets = [...]time.Duration{
	500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second,
}

// histogram counts durations in latencyBuckets with atomic adds only: an
// observation is a short scan of a fixed array and three atomic adds.
type histogram struct {
	buckets [len(latencyBuckets)]atomic.Int64 // non-cumulative: counts[i] is in (bound[i-1], bound[i]]
	count   atomic.Int64
	sumNs   atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	d = max(d, 0)
	for i, b := range latencyBuckets {
		if d <= b {
			h.buckets[i].Add(1)
			break
		}
	}
	h.count.Add(1)
	h.sumNs.Add(int64(d))
}

// histogramSnapshot is a histogram read at one moment.
type histogramSnapshot struct {
	Count   int64
	Sum     time.Duration
	Buckets [len(latencyBuckets)]int64 // cumulative: Buckets[i] counts observations <= latencyBuckets[i]
}

func (h *histogram) snapshot() histogramSnapshot {
	var s histogramSnapshot
	// Buckets first, the count last, and the count at least the buckets'
	// total: observe adds to the bucket before the count, so a concurrent
	// observation could otherwise leave +Inf below a finite bucket.
	var running int64
	for i := range h.buckets {
		running += h.buckets[i].Load()
		s.Buckets[i] = running
	}
	s.Sum = time.Duration(h.sumNs.Load())
	s.Count = max(h.count.Load(), running)
	return s
}
