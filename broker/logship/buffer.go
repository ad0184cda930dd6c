package logship

import (
	"sync"
	"sync/atomic"
)

// Stream says which of the broker's two log streams an event goes to.
type Stream uint8

const (
	// StreamBroker is the broker's own log.
	StreamBroker Stream = iota
	// StreamAudit is the audit trail (lines with log=audit).
	StreamAudit
	streamCount
)

// Event is one log line waiting to be shipped.
type Event struct {
	Stream  Stream
	UnixMs  int64
	Message string
}

// eventOverhead is what CloudWatch Logs counts for an event besides its
// message in PutLogEvents' 1 MiB budget.
const eventOverhead = 26

func (e Event) size() int { return len(e.Message) + eventOverhead }

// buffer is a bounded queue of events. Adding never blocks beyond a short
// mutex: when the queue holds more than maxBytes, the oldest events are
// dropped and counted, so a CloudWatch Logs outage costs old log lines,
// never the broker's memory or its requests.
type buffer struct {
	maxBytes int

	mu     sync.Mutex
	events []Event // oldest first; events[head:] are queued
	head   int
	bytes  int
	// ready is signalled (without blocking) when events are added.
	ready chan struct{}

	dropped atomic.Int64
}

func newBuffer(maxBytes int) *buffer {
	return &buffer{maxBytes: maxBytes, ready: make(chan struct{}, 1)}
}

// add queues e, dropping the oldest events while over the bound.
func (b *buffer) add(e Event) {
	b.mu.Lock()
	b.events = append(b.events, e)
	b.bytes += e.size()
	b.trimLocked()
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// trimLocked drops the oldest events until the queue fits its bound (the
// newest event always stays, however large).
func (b *buffer) trimLocked() {
	for b.bytes > b.maxBytes && len(b.events)-b.head > 1 {
		b.bytes -= b.events[b.head].size()
		b.events[b.head] = Event{}
		b.head++
		b.dropped.Add(1)
	}
	// Compact once the dropped or taken prefix is the larger part, so the
	// slice does not grow without bound under a steady stream.
	if b.head > 0 && b.head >= len(b.events)/2 {
		n := copy(b.events, b.events[b.head:])
		clear(b.events[n:])
		b.events = b.events[:n]
		b.head = 0
	}
}

// take removes and returns up to maxCount events totalling at most
// maxBytes (at least one event when any is queued).
func (b *buffer) take(maxCount, maxBytes int) []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Event
	size := 0
	for b.head < len(b.events) && len(out) < maxCount {
		e := b.events[b.head]
		if len(out) > 0 && size+e.size() > maxBytes {
			break
		}
		out = append(out, e)
		size += e.size()
		b.bytes -= e.size()
		b.events[b.head] = Event{}
		b.head++
	}
	b.trimLocked()
	return out
}

// putBack returns events a failed shipment took to the front of the queue,
// in their order, then applies the bound: when new events arrived in the
// meantime, the oldest go first, which are these.
func (b *buffer) putBack(events []Event) {
	if len(events) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	queued := b.events[b.head:]
	merged := make([]Event, 0, len(events)+len(queued))
	merged = append(merged, events...)
	merged = append(merged, queued...)
	for _, e := range events {
		b.bytes += e.size()
	}
	b.events, b.head = merged, 0
	b.trimLocked()
}

// len is the number of queued events.
func (b *buffer) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.events) - b.head
}

// queuedBytes is the queued events' size as CloudWatch Logs counts it.
func (b *buffer) queuedBytes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}

// clear drops every queued event without counting it (shipping is off).
func (b *buffer) clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.events)
	b.events, b.head, b.bytes = nil, 0, 0
}
