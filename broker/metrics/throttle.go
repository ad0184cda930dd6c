package metrics

import (
	"sync"
	"sync/atomic"
	"time"
)

// ThrottleKind is the client quota a throttle came from, as MSK's metric
// families name them: Produce (producer_byte_rate), Fetch
// (consumer_byte_rate) and Request (request_percentage).
type ThrottleKind int

const (
	ThrottleProduce ThrottleKind = iota
	ThrottleFetch
	ThrottleRequest
	numThrottleKinds
)

func (k ThrottleKind) String() string {
	switch k {
	case ThrottleProduce:
		return "produce"
	case ThrottleFetch:
		return "fetch"
	case ThrottleRequest:
		return "request"
	}
	return "unknown"
}

// msk is the kind's prefix in MSK's metric names (ProduceThrottleTime ...).
func (k ThrottleKind) msk() string {
	switch k {
	case ThrottleProduce:
		return "Produce"
	case ThrottleFetch:
		return "Fetch"
	}
	return "Request"
}

// throttleCounters are one quota's totals since start, and its throttle
// queue: the end times of the throttles not yet over (a throttled
// connection is muted until then, as Kafka's throttled channels wait in
// its quota manager's delay queue).
type throttleCounters struct {
	throttled, timeNanos, bytes atomic.Int64
	mu                          sync.Mutex
	until                       []time.Time
}

// ThrottleTotals are one quota's counters at a snapshot.
type ThrottleTotals struct {
	// Throttled is how many responses were throttled, TimeNanos their
	// throttle times summed.
	Throttled, TimeNanos int64
	// Bytes are the bytes measured against the quota (byte-rate quotas).
	Bytes int64
	// Queue is how many throttles are still running.
	Queue int64
}

// RecordQuotaBytes counts bytes measured against a byte-rate quota: a
// Produce request's, a Fetch response's, for a client whose quota is in
// force (MSK ProduceThrottleByteRate, FetchThrottleByteRate).
func (r *Registry) RecordQuotaBytes(kind ThrottleKind, bytes int) {
	if kind >= 0 && kind < numThrottleKinds {
		r.throttles[kind].bytes.Add(int64(bytes))
	}
}

// RecordThrottle counts a response throttled by kind's quota for d (MSK
// ProduceThrottleTime, FetchThrottleTime, RequestThrottleTime and their
// QueueSize). d <= 0 is no throttle.
func (r *Registry) RecordThrottle(kind ThrottleKind, d time.Duration) {
	if d <= 0 || kind < 0 || kind >= numThrottleKinds {
		return
	}
	t := &r.throttles[kind]
	t.throttled.Add(1)
	t.timeNanos.Add(int64(d))
	now := r.now()
	t.mu.Lock()
	t.until = pruneThrottles(t.until, now)
	t.until = append(t.until, now.Add(d))
	t.mu.Unlock()
}

// RecordExemptRequest counts a request no quota measures (ApiVersions,
// SASL), handled in d (MSK RequestExemptFromThrottleTime).
func (r *Registry) RecordExemptRequest(d time.Duration) {
	r.exempt.count.Add(1)
	r.exempt.sum.Add(int64(d))
}

// pruneThrottles drops the throttles over by now. Each throttled
// connection is muted until its throttle ends, so it has at most one
// running: the list stays as short as the connections.
func pruneThrottles(until []time.Time, now time.Time) []time.Time {
	kept := until[:0]
	for _, u := range until {
		if u.After(now) {
			kept = append(kept, u)
		}
	}
	return kept
}

func (r *Registry) throttleTotals(now time.Time) [numThrottleKinds]ThrottleTotals {
	var out [numThrottleKinds]ThrottleTotals
	for k := range r.throttles {
		t := &r.throttles[k]
		t.mu.Lock()
		t.until = pruneThrottles(t.until, now)
		out[k].Queue = int64(len(t.until))
		t.mu.Unlock()
		out[k].Throttled, out[k].TimeNanos, out[k].Bytes = t.throttled.Load(), t.timeNanos.Load(), t.bytes.Load()
	}
	return out
}

// SetLogDroppedSource registers the count of broker log lines the log
// shipper dropped since start (its buffer was full while CloudWatch Logs
// could not take them); nil while the broker ships no logs.
func (r *Registry) SetLogDroppedSource(f func() int64) {
	r.sourcesMu.Lock()
	r.logDropped = f
	r.sourcesMu.Unlock()
}

// FetchMemory is the memory fetch responses read into (TLS listeners, the
// TLS replication listener) hold until written, against its bound
// (fetch.memory.max.bytes): Held bytes now, Limit the bound, Cut the
// fetches that got less than they asked because it was spent, Leaked the
// read buffers released only when their connection ended (a path that
// dropped a response without releasing them: a bug, should stay 0).
type FetchMemory struct {
	Held, Limit, Cut, Leaked int64
}

// SetFetchMemorySource registers the broker's read budget, read at each
// snapshot.
func (r *Registry) SetFetchMemorySource(f func() FetchMemory) {
	r.sourcesMu.Lock()
	r.fetchMemory = f
	r.sourcesMu.Unlock()
}

func (r *Registry) fetchMemorySource() func() FetchMemory {
	r.sourcesMu.RLock()
	defer r.sourcesMu.RUnlock()
	return r.fetchMemory
}

// RequestMemory is the request bytes a listener kind ("client",
// "replication") holds read from its sockets against its bound
// (queued.max.request.bytes for the client listeners): Held bytes now,
// Limit the bound (0: none), Waiting the connections waiting for memory
// now, Waits and WaitSeconds the waits ended since the start and their
// time, Refused the requests refused as larger than the whole bound.
type RequestMemory struct {
	Listener                    string
	Held, Limit, Waiting, Waits int64
	WaitSeconds                 float64
	Refused                     int64
}

// SetRequestMemorySource registers the broker's request memory budgets,
// read at each snapshot.
func (r *Registry) SetRequestMemorySource(f func() []RequestMemory) {
	r.sourcesMu.Lock()
	r.requestMemory = f
	r.sourcesMu.Unlock()
}

func (r *Registry) requestMemorySource() func() []RequestMemory {
	r.sourcesMu.RLock()
	defer r.sourcesMu.RUnlock()
	return r.requestMemory
}

func (r *Registry) logDroppedSource() func() int64 {
	r.sourcesMu.RLock()
	defer r.sourcesMu.RUnlock()
	return r.logDropped
}
