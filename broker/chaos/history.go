// Package chaos is Tributary's Jepsen-style safety test: a history of
// client operations recorded while faults are injected into a cluster of
// broker processes, and a checker that finds the anomalies Kafka's
// guarantees rule out (after jepsen.tests.kafka): lost acknowledged writes,
// duplicates, two values at one offset, gaps and reordering seen by a
// consumer, reads of writes that failed or later vanished.
//
// The history is a list of events, each an invocation or a completion of
// an operation, with wall-clock times:
//
//	invoke  the client is about to do it
//	ok      it happened (a send was acknowledged at an offset; a poll
//	        returned these records)
//	fail    it definitely did not happen
//	info    unknown: it may or may not have happened (a timeout, a
//	        connection lost mid-request)
//
// Keys name a topic partition ("t-0"); every sent value is unique in the
// run, so a value identifies its send.
package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Status is an event's kind.
type Status string

// Event kinds.
const (
	Invoke Status = "invoke"
	OK     Status = "ok"
	Fail   Status = "fail"
	Info   Status = "info"
)

// Func is an operation.
type Func string

// Operations.
const (
	// Send produces one value to a key. ok carries the offset.
	Send Func = "send"
	// Poll reads records. ok carries them, in the order returned.
	Poll Func = "poll"
	// Seek says a consumer repositioned on a key (assignment, reset,
	// restart): its next read of that key need not follow the last one.
	Seek Func = "seek"
	// Fault records a fault injected or healed (Error describes it); the
	// checker ignores it, reports show it.
	Fault Func = "fault"
	// Txn is one transaction of a transactional producer, numbered Txn
	// in its process: invoke carries its Writes and whether it means to
	// Commit; ok means it committed, fail that it definitely did not
	// (aborted, or refused before a commit was asked for), info that the
	// commit's outcome is unknown. A completion carries the Writes with
	// their offsets when every send was acknowledged.
	Txn Func = "txn"
	// TxnEnd is invoked right before the commit of transaction Txn is
	// asked for (EndTxn): nothing of it may be visible to read_committed
	// readers before.
	TxnEnd Func = "txn-end"
	// Fence says a transactional producer started a new incarnation of
	// its transactional id, fencing the previous one.
	Fence Func = "fence"
	// OffsetRead observed the committed offset (Value) of group Key, which
	// the transactional producer Txn's process commits in each
	// transaction: the offset is the transaction's number.
	OffsetRead Func = "offset-read"
	// LogStart observed the log start offset (Offset) of partition Key,
	// as ListOffsets for the earliest offset answered it: retention had
	// removed every record below it. Consumers record it when they start
	// reading from the start, the drain before and after it reads.
	LogStart Func = "log-start"
)

// Write is one send of a transaction. Offset is where it went: the
// completion of a transaction whose sends were all acknowledged carries
// its writes again with their offsets (the invocation's have none), so
// that the checker can tell a value retention removed from a lost one.
type Write struct {
	Key    string `json:"key"`
	Value  int64  `json:"value"`
	Offset int64  `json:"offset,omitempty"`
}

// Read is one record a poll returned.
type Read struct {
	Key    string `json:"key"`
	Offset int64  `json:"offset"`
	Value  int64  `json:"value"`
}

// Event is one entry of a history.
type Event struct {
	Index   int       `json:"index"`
	Time    time.Time `json:"time"`
	Process int       `json:"process"`
	Status  Status    `json:"status"`
	Func    Func      `json:"f"`
	Key     string    `json:"key,omitempty"`
	Value   int64     `json:"value,omitempty"`
	Offset  int64     `json:"offset,omitempty"`
	Reads   []Read    `json:"reads,omitempty"`
	// Final marks the polls of the drain at the end of a run, which read
	// every key from its start to its end after the faults stopped (and
	// the last offset reads).
	Final bool   `json:"final,omitempty"`
	Error string `json:"error,omitempty"`
	// ReadCommitted marks polls made at isolation level read_committed.
	ReadCommitted bool `json:"read_committed,omitempty"`
	// Txn numbers a transaction of its process (Txn, TxnEnd); for an
	// OffsetRead, the process whose group was read.
	Txn    int64   `json:"txn,omitempty"`
	Writes []Write `json:"writes,omitempty"`
	Commit bool    `json:"commit,omitempty"`
}

func (e Event) String() string {
	s := fmt.Sprintf("#%d %s p%d %s %s", e.Index, e.Time.Format("15:04:05.000"), e.Process, e.Status, e.Func)
	switch {
	case e.Func == Send && e.Status == OK:
		s += fmt.Sprintf(" %s=%d @%d", e.Key, e.Value, e.Offset)
	case e.Func == Send || e.Func == Seek:
		s += fmt.Sprintf(" %s=%d", e.Key, e.Value)
	case e.Func == Txn && e.Status == Invoke:
		s += fmt.Sprintf(" #%d commit=%v %s", e.Txn, e.Commit, writes(e.Writes, false))
	case e.Func == Txn && len(e.Writes) > 0:
		// A completion with the offsets its writes went to.
		s += fmt.Sprintf(" #%d %s", e.Txn, writes(e.Writes, true))
	case e.Func == Txn || e.Func == TxnEnd:
		s += fmt.Sprintf(" #%d", e.Txn)
	case e.Func == OffsetRead:
		s += fmt.Sprintf(" %s=%d", e.Key, e.Value)
	case e.Func == LogStart:
		s += fmt.Sprintf(" %s starts @%d", e.Key, e.Offset)
	case e.Func == Poll && len(e.Reads) > 0:
		first, last := e.Reads[0], e.Reads[len(e.Reads)-1]
		s += fmt.Sprintf(" %d records, %s@%d..%s@%d", len(e.Reads), first.Key, first.Offset, last.Key, last.Offset)
	}
	if e.Error != "" {
		s += " error: " + e.Error
	}
	return s
}

// writes describes a transaction's writes, with their offsets when the
// event carries them (an invocation's are not known yet).
func writes(ws []Write, offsets bool) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprintf("%s=%d", w.Key, w.Value)
		if offsets {
			parts[i] += fmt.Sprintf("@%d", w.Offset)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// Recorder collects a history from concurrent clients.
type Recorder struct {
	mu     sync.Mutex
	events []Event
	now    func() time.Time
}

// NewRecorder returns an empty recorder using the wall clock.
func NewRecorder() *Recorder { return &Recorder{now: time.Now} }

// Add appends an event, numbering and timing it; it returns the index.
func (r *Recorder) Add(e Event) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.Index = len(r.events)
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	r.events = append(r.events, e)
	return e.Index
}

// Events returns a copy of the history so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// WriteHistory writes events as JSON lines.
func WriteHistory(w io.Writer, events []Event) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("writing history: %w", err)
		}
	}
	return bw.Flush()
}

// ReadHistory reads what WriteHistory wrote.
func ReadHistory(r io.Reader) ([]Event, error) {
	var out []Event
	dec := json.NewDecoder(r)
	for {
		var e Event
		if err := dec.Decode(&e); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("reading history event %d: %w", len(out), err)
		}
		out = append(out, e)
	}
}
