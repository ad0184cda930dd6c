// Package logship ships the broker's structured logs to Amazon MSK's
// logging_info destinations: to CloudWatch Logs, one stream per broker
// (broker-<id>) in the cluster's log group and the audit trail (lines with
// log=audit, written by broker/security/audit) in a stream of its own
// (broker-<id>/audit), so a security team reads who changed what without the
// broker's chatter; to S3, as gzip objects under the cluster's prefix in
// MSK's key layout, the audit trail in objects of its own; and to a Firehose
// delivery stream, a record per line.
//
// The broker logs through a Handler, which passes every record to the
// broker's own handler (stderr, the journal) and, while shipping is on, also
// queues the record as one JSON line in one queue per destination. A Shipper
// (CloudWatch Logs), an S3Shipper and a FirehoseShipper send their queue in
// batches from their own goroutines. Each queue is bounded: when its destination is slow,
// refuses or is unreachable, the oldest lines are dropped and counted, so an
// outage costs log lines, never memory or a stalled request, and one
// destination's outage costs the other nothing. A failed batch is retried
// with exponential backoff; lines that arrive meanwhile wait behind it.
package logship

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultMaxBufferBytes bounds each destination's queued lines (CloudWatch
// Logs' size: message plus 26 bytes each): about a minute of a busy
// broker's INFO log.
const DefaultMaxBufferBytes = 8 << 20

// Destination is where queued lines go.
type Destination uint8

const (
	// DestCloudWatchLogs is CloudWatch Logs (Shipper).
	DestCloudWatchLogs Destination = iota
	// DestS3 is S3 (S3Shipper).
	DestS3
	// DestFirehose is a Firehose delivery stream (FirehoseShipper).
	DestFirehose
	destCount
)

func (d Destination) String() string {
	switch d {
	case DestS3:
		return "S3"
	case DestFirehose:
		return "Firehose"
	}
	return "CloudWatch Logs"
}

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	// Level is the lowest level shipped (default INFO); the broker's own
	// handler keeps its own level.
	Level slog.Leveler
	// MaxBufferBytes bounds each destination's queue (default
	// DefaultMaxBufferBytes).
	MaxBufferBytes int
}

// shipState is what every Handler derived from one NewHandler shares.
type shipState struct {
	on   atomic.Bool            // some destination is queued for
	dest [destCount]atomic.Bool // which are
	bufs [destCount]*buffer     // one queue per destination
	now  func() time.Time
}

// Handler is a slog.Handler that passes records on to the broker's handler
// and, while shipping is on, queues them as JSON lines for a Shipper.
// Records start being queued at once, so the lines written before the
// broker has read its configuration (its start line) are shipped too; call
// Disable when the configuration says logs are not shipped.
type Handler struct {
	next  slog.Handler
	state *shipState
	// json renders the queued lines, one handler per stream so the stream
	// is known from which one wrote.
	json [streamCount]slog.Handler
	// audit is set once log=audit is among the logger's attributes.
	audit bool
	// grouped is set once WithGroup was called: later attributes are
	// nested, so a log attribute among them is not the routing key.
	grouped bool
}

var _ slog.Handler = (*Handler)(nil)

// NewHandler wraps next.
func NewHandler(next slog.Handler, opts HandlerOptions) *Handler {
	if opts.MaxBufferBytes <= 0 {
		opts.MaxBufferBytes = DefaultMaxBufferBytes
	}
	if opts.Level == nil {
		opts.Level = slog.LevelInfo
	}
	st := &shipState{now: time.Now}
	for d := range destCount {
		st.bufs[d] = newBuffer(opts.MaxBufferBytes)
		st.dest[d].Store(true)
	}
	st.on.Store(true)
	h := &Handler{next: next, state: st}
	for s := range streamCount {
		h.json[s] = slog.NewJSONHandler(streamWriter{state: st, stream: s}, &slog.HandlerOptions{Level: opts.Level})
	}
	return h
}

// Disable stops queueing and drops what is queued: the broker does not ship
// its logs.
func (h *Handler) Disable() { h.Keep() }

// Keep keeps queueing for the destinations named only, and drops what the
// others queued: the configuration ships to those. Keep() is Disable.
func (h *Handler) Keep(dests ...Destination) {
	kept := false
	for d := range destCount {
		keep := slices.Contains(dests, d)
		kept = kept || keep
		if !keep {
			h.state.dest[d].Store(false)
			h.state.bufs[d].clear()
		}
	}
	h.state.on.Store(kept)
}

// Shipping reports whether records are being queued.
func (h *Handler) Shipping() bool { return h.state.on.Load() }

// Dropped is the number of lines dropped because a queue was full, over
// every destination (the LogLinesDropped metric).
func (h *Handler) Dropped() int64 {
	var n int64
	for _, b := range h.state.bufs {
		n += b.dropped.Load()
	}
	return n
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l) || (h.state.on.Load() && h.json[StreamBroker].Enabled(ctx, l))
}

// Handle implements slog.Handler: the broker's handler first; then the
// queue, which never blocks beyond a short mutex.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	if !h.state.on.Load() {
		return err
	}
	s := StreamBroker
	if h.audit || (!h.grouped && isAuditRecord(r)) {
		s = StreamAudit
	}
	if h.json[s].Enabled(ctx, r.Level) {
		_ = h.json[s].Handle(ctx, r) // the writer cannot fail
	}
	return err
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	for s := range c.json {
		c.json[s] = h.json[s].WithAttrs(attrs)
	}
	if !h.grouped {
		for _, a := range attrs {
			if isAuditAttr(a) {
				c.audit = true
			}
		}
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	for s := range c.json {
		c.json[s] = h.json[s].WithGroup(name)
	}
	c.grouped = true
	return &c
}

// AuditKey and AuditValue mark the audit trail's lines (broker/security/audit).
const (
	AuditKey   = "log"
	AuditValue = "audit"
)

func isAuditAttr(a slog.Attr) bool {
	return a.Key == AuditKey && a.Value.Kind() == slog.KindString && a.Value.String() == AuditValue
}

func isAuditRecord(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = isAuditAttr(a)
		return !found
	})
	return found
}

// maxMessageBytes is the largest message CloudWatch Logs takes in one
// event (256 KiB with the event's 26 bytes).
const maxMessageBytes = 256<<10 - eventOverhead

// streamWriter receives one JSON line per record from slog's JSON handler,
// which writes each record with a single Write.
type streamWriter struct {
	state  *shipState
	stream Stream
}

func (w streamWriter) Write(p []byte) (int, error) {
	line := bytes.TrimRight(p, "\n")
	if len(line) > maxMessageBytes {
		// CloudWatch Logs refuses a larger event; the start of the line
		// says what it was.
		line = line[:maxMessageBytes]
	}
	msg := strings.ToValidUTF8(string(line), "")
	if msg != "" {
		e := Event{Stream: w.stream, UnixMs: w.state.now().UnixMilli(), Message: msg}
		for d, b := range w.state.bufs {
			if w.state.dest[d].Load() {
				b.add(e)
			}
		}
	}
	return len(p), nil
}
