package chaos

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Anomaly kinds.
const (
	// LostWrite: an acknowledged send that is not where it should be: no
	// consumer read it though offsets above it on its key were read, or a
	// consumer read it and the final drain, which read its key past the
	// send's offset (or, with Options.RequireAllSeen, to the end), does
	// not have it. A read before a fault does not excuse a value the log
	// lost afterwards.
	LostWrite = "lost-write"
	// Unseen: an acknowledged send no consumer read, above every offset
	// read on its key. Only an anomaly with Options.RequireAllSeen (the
	// run ended with a drain that read every key to its end).
	Unseen = "unseen"
	// Duplicate: one value at two positions (offsets or keys).
	Duplicate = "duplicate"
	// InconsistentOffset: two different values at one key and offset.
	InconsistentOffset = "inconsistent-offset"
	// OffsetGap: a consumer read offset o then o+k, k > 1, on one key
	// without seeking in between (this workload writes no transaction
	// markers and uses no compaction, so offsets are contiguous).
	OffsetGap = "offset-gap"
	// OffsetReorder: a consumer read offset o then o' <= o on one key
	// without seeking in between.
	OffsetReorder = "offset-reorder"
	// SendReorder: one producer's acknowledged sends to a key got offsets
	// out of their invocation order (idempotence promises order).
	SendReorder = "send-reorder"
	// AbortedRead: a consumer read a value whose send definitely failed.
	AbortedRead = "aborted-read"
	// PhantomRead: a consumer read a value nobody sent.
	PhantomRead = "phantom-read"
	// VanishedRead: a consumer read a value whose send was never
	// acknowledged, and the final drain shows it is not in the log: the
	// drain read past the offset it was read at, or (with
	// Options.RequireAllSeen) read its key to the end, without finding it.
	VanishedRead = "vanished-read"

	// The anomalies of transactions (Jepsen's for Kafka-compatible
	// systems). AbortedRead and LostWrite apply too: a read of a value of
	// a transaction that did not commit, and a value of a committed
	// transaction missing from the final read_committed drain.

	// UncommittedRead: a read_committed consumer read a value before its
	// transaction's commit was even asked for: it read past the last
	// stable offset.
	UncommittedRead = "uncommitted-read"
	// PartialTransaction: the final drain holds some of a transaction's
	// values but not all (atomicity).
	PartialTransaction = "partial-transaction"
	// FencedDuplicate: a transactional value at two positions, its
	// producer having been fenced (a new incarnation of its transactional
	// id) after it sent it: a zombie's write survived the fencing.
	FencedDuplicate = "fenced-duplicate"
	// AbortedOffset: a group offset committed in a transaction that did
	// not commit became visible to OffsetFetch.
	AbortedOffset = "aborted-offset"
	// UncommittedOffset: a group offset committed in a transaction was
	// visible before that transaction's commit was asked for.
	UncommittedOffset = "uncommitted-offset"
	// LostOffset: a group's committed offset went back, or the final read
	// of it is below the last transaction that committed it.
	LostOffset = "lost-offset"
)

// Anomaly is one violation, with the events that show it.
type Anomaly struct {
	Kind   string
	Key    string
	Offset int64
	Value  int64
	Detail string
	Events []int
}

// Options tune the checker.
type Options struct {
	// RequireAllSeen makes every acknowledged send that nobody read an
	// anomaly; set it when the history ends with a drain (Final polls).
	RequireAllSeen bool
	// Retention is the workload topics' retention.ms, the transactional
	// topic's too (0: records are never removed). A record missing from
	// a read (a transaction's: from the final drain) is excused when a
	// LogStart event above its offset was observed at least Retention
	// after its send (its transaction) was invoked: retention removed it
	// (a segment goes only once its newest record is older than
	// retention.ms, and a record's timestamp is taken after that
	// invocation). A log start that passed it sooner excuses nothing: the
	// record went before its time.
	Retention time.Duration
}

// Stats summarise a history.
type Stats struct {
	Sends, Acknowledged, Failed, Indeterminate int
	Polls, Records                             int
	Keys                                       int
	// Transactions: committed, definitely not committed, unknown.
	Txns, TxnCommitted, TxnAborted, TxnIndeterminate int
	OffsetReads                                      int
	// Removed counts acknowledged sends missing from the reads that
	// retention had removed (Options.Retention).
	Removed int
	// TxnRemoved counts the values of committed transactions missing
	// from the final drain that retention had removed.
	TxnRemoved int
}

// Result is the checker's verdict.
type Result struct {
	Valid     bool
	Stats     Stats
	Anomalies []Anomaly
}

type sendOp struct {
	key      string
	value    int64
	process  int
	status   Status // "" until completed (a crash mid-op)
	offset   int64
	invoke   int
	invoked  time.Time
	complete int
}

// logStart is one observation of a partition's log start offset.
type logStart struct {
	offset int64
	at     time.Time
	event  int
}

// logStarts are the log start offsets observed, by key.
type logStarts map[string][]logStart

// removed says whether retention removed the record at key/offset, sent
// at invoked: the first log start observed above it was observed at
// least retention after the send (retention deletes a segment only once
// its newest record is older than retention.ms, and a record's timestamp
// is taken after its send's invocation). It cites that observation, and
// explains one that passed the record too soon. With no retention
// nothing is removed.
func (ls logStarts) removed(key string, offset int64, invoked time.Time, retention time.Duration) (ok bool, why string, events []int) {
	if retention <= 0 {
		return false, "", nil
	}
	var first *logStart
	for i, s := range ls[key] {
		if s.offset > offset && (first == nil || s.at.Before(first.at)) {
			first = &ls[key][i]
		}
	}
	switch {
	case first == nil:
		return false, "", nil
	case first.at.Before(invoked.Add(retention)):
		return false, fmt.Sprintf("; the log started at %d %v after the send, before its retention of %v", first.offset, first.at.Sub(invoked).Round(time.Millisecond), retention), []int{first.event}
	}
	return true, "", []int{first.event}
}

type readAt struct {
	Read
	event     int
	process   int
	final     bool
	committed bool // read_committed
}

type position struct {
	key    string
	offset int64
}

// Check analyses a history.
func Check(events []Event, opts Options) Result {
	var res Result
	sends := map[int64]*sendOp{}
	var sendOrder []*sendOp
	var reads []readAt
	keys := map[string]bool{}

	txns := newTxnIndex()
	starts := logStarts{}
	for _, e := range events {
		switch e.Func {
		case LogStart:
			if e.Status == OK {
				starts[e.Key] = append(starts[e.Key], logStart{offset: e.Offset, at: e.Time, event: e.Index})
			}
		case Txn, TxnEnd, Fence, OffsetRead:
			txns.note(e, &res)
		case Send:
			keys[e.Key] = true
			s, ok := sends[e.Value]
			if e.Status == Invoke {
				if ok {
					res.add(Anomaly{Kind: Duplicate, Key: e.Key, Value: e.Value, Detail: "value sent twice (the workload must use unique values)", Events: []int{s.invoke, e.Index}})
					continue
				}
				s = &sendOp{key: e.Key, value: e.Value, process: e.Process, invoke: e.Index, invoked: e.Time, complete: -1}
				sends[e.Value] = s
				sendOrder = append(sendOrder, s)
				res.Stats.Sends++
				continue
			}
			if !ok {
				continue // completion without invocation: ignore
			}
			s.status, s.complete = e.Status, e.Index
			switch e.Status {
			case OK:
				s.offset = e.Offset
				res.Stats.Acknowledged++
			case Fail:
				res.Stats.Failed++
			default:
				res.Stats.Indeterminate++
			}
		case Poll:
			if e.Status != OK {
				continue
			}
			res.Stats.Polls++
			for _, r := range e.Reads {
				keys[r.Key] = true
				reads = append(reads, readAt{Read: r, event: e.Index, process: e.Process, final: e.Final, committed: e.ReadCommitted})
			}
		}
	}
	res.Stats.Records = len(reads)
	res.Stats.Keys = len(keys)

	// Who is where: every acknowledged send and every read.
	at := map[position]map[int64][]int{} // position -> value -> events
	where := map[int64]map[position][]int{}
	note := func(p position, v int64, ev int) {
		if at[p] == nil {
			at[p] = map[int64][]int{}
		}
		at[p][v] = append(at[p][v], ev)
		if where[v] == nil {
			where[v] = map[position][]int{}
		}
		where[v][p] = append(where[v][p], ev)
	}
	for _, s := range sendOrder {
		if s.status == OK {
			note(position{s.key, s.offset}, s.value, s.complete)
		}
	}
	maxRead := map[string]int64{}
	finalMax := map[string]int64{}
	finalEvent := map[string]int{} // key -> the drain poll that read finalMax
	firstRead := map[int64]int{}   // value -> first event that read it
	finalValues := map[int64]bool{}
	for _, r := range reads {
		note(position{r.Key, r.Offset}, r.Value, r.event)
		if _, ok := firstRead[r.Value]; !ok {
			firstRead[r.Value] = r.event
		}
		if m, ok := maxRead[r.Key]; !ok || r.Offset > m {
			maxRead[r.Key] = r.Offset
		}
		if r.final {
			finalValues[r.Value] = true
			if m, ok := finalMax[r.Key]; !ok || r.Offset > m {
				finalMax[r.Key] = r.Offset
				finalEvent[r.Key] = r.event
			}
		}
	}
	// missingFromDrain says whether the final drain shows that a value
	// read or acknowledged at key/offset is no longer in the log: the
	// drain read that key past the offset, or read every key to its end.
	// It also describes the drain and cites its last poll of the key.
	missingFromDrain := func(v int64, key string, offset int64) (missing bool, drain string, events []int) {
		if finalValues[v] {
			return false, "", nil
		}
		fm, drained := finalMax[key]
		if !opts.RequireAllSeen && (!drained || offset > fm) {
			return false, "", nil
		}
		if !drained {
			return true, fmt.Sprintf("the final drain found nothing on %s", key), nil
		}
		return true, fmt.Sprintf("the final drain, which read %s to offset %d, does not have it", key, fm), []int{finalEvent[key]}
	}

	removed := func(key string, offset int64, invoked time.Time) (bool, string, []int) {
		return starts.removed(key, offset, invoked, opts.Retention)
	}

	for _, p := range sortedPositions(at) {
		if vals := at[p]; len(vals) > 1 {
			var evs []int
			for _, v := range sortedValues(vals) {
				evs = append(evs, vals[v]...)
			}
			res.add(Anomaly{Kind: InconsistentOffset, Key: p.key, Offset: p.offset, Detail: fmt.Sprintf("values %v at one offset", sortedValues(vals)), Events: sortedInts(evs)})
		}
	}
	for _, v := range sortedValues(where) {
		if ps := where[v]; len(ps) > 1 {
			var evs []int
			var desc []string
			for _, p := range sortedPositions(ps) {
				evs = append(evs, ps[p]...)
				desc = append(desc, fmt.Sprintf("%s@%d", p.key, p.offset))
			}
			kind, detail := Duplicate, "value at "+strings.Join(desc, ", ")
			if t := txns.byValue[v]; t != nil {
				if fence, ok := txns.fencedAfter(t); ok {
					kind = FencedDuplicate
					detail += fmt.Sprintf("; process %d was fenced after sending it", t.process)
					evs = append(evs, t.invoke, fence)
				}
			}
			res.add(Anomaly{Kind: kind, Value: v, Detail: detail, Events: sortedInts(evs)})
		}
	}
	for _, s := range sendOrder {
		if s.status != OK {
			continue
		}
		if ev, read := firstRead[s.value]; read {
			if missing, drain, drainEvents := missingFromDrain(s.value, s.key, s.offset); missing {
				gone, why, lsEvents := removed(s.key, s.offset, s.invoked)
				if gone {
					res.Stats.Removed++
					continue
				}
				res.add(Anomaly{Kind: LostWrite, Key: s.key, Offset: s.offset, Value: s.value, Detail: "acknowledged and read, but " + drain + why, Events: append(append([]int{s.invoke, s.complete, ev}, drainEvents...), lsEvents...)})
			}
			continue
		}
		m, ok := maxRead[s.key]
		if !(ok && s.offset <= m) && !opts.RequireAllSeen {
			continue
		}
		gone, why, lsEvents := removed(s.key, s.offset, s.invoked)
		switch {
		case gone:
			res.Stats.Removed++
		case ok && s.offset <= m:
			res.add(Anomaly{Kind: LostWrite, Key: s.key, Offset: s.offset, Value: s.value, Detail: fmt.Sprintf("acknowledged, never read, though offsets up to %d were read", m) + why, Events: append([]int{s.invoke, s.complete}, lsEvents...)})
		default:
			res.add(Anomaly{Kind: Unseen, Key: s.key, Offset: s.offset, Value: s.value, Detail: "acknowledged, never read by the final drain" + why, Events: append([]int{s.invoke, s.complete}, lsEvents...)})
		}
	}
	for _, r := range reads {
		if txns.byValue[r.Value] != nil {
			continue // checked with its transaction
		}
		s, ok := sends[r.Value]
		switch {
		case !ok:
			res.add(Anomaly{Kind: PhantomRead, Key: r.Key, Offset: r.Offset, Value: r.Value, Detail: "read a value that was never sent", Events: []int{r.event}})
		case s.status == Fail:
			res.add(Anomaly{Kind: AbortedRead, Key: r.Key, Offset: r.Offset, Value: r.Value, Detail: "read a value whose send failed", Events: []int{s.invoke, s.complete, r.event}})
		case s.status != OK && !r.final:
			if missing, drain, drainEvents := missingFromDrain(r.Value, r.Key, r.Offset); missing {
				gone, why, lsEvents := removed(r.Key, r.Offset, s.invoked)
				if !gone {
					res.add(Anomaly{Kind: VanishedRead, Key: r.Key, Offset: r.Offset, Value: r.Value, Detail: "read an unacknowledged value, but " + drain + why, Events: append(append([]int{s.invoke, r.event}, drainEvents...), lsEvents...)})
				}
			}
		}
	}
	txns.check(&res, reads, starts, opts)
	res.checkConsumerOrder(events)
	res.checkSendOrder(sendOrder)
	res.Valid = len(res.Anomalies) == 0
	return res
}

func (res *Result) add(a Anomaly) { res.Anomalies = append(res.Anomalies, a) }

// checkConsumerOrder follows each process's reads of each key: offsets
// go up by one until the process seeks.
func (res *Result) checkConsumerOrder(events []Event) {
	type last struct {
		offset int64
		event  int
	}
	seen := map[int]map[string]last{}
	for _, e := range events {
		if seen[e.Process] == nil {
			seen[e.Process] = map[string]last{}
		}
		cur := seen[e.Process]
		switch {
		case e.Func == Seek:
			delete(cur, e.Key)
		case e.Func == Poll && e.Status == OK:
			for _, r := range e.Reads {
				prev, ok := cur[r.Key]
				switch {
				case ok && r.Offset <= prev.offset:
					res.add(Anomaly{Kind: OffsetReorder, Key: r.Key, Offset: r.Offset, Value: r.Value, Detail: fmt.Sprintf("process %d read offset %d after %d", e.Process, r.Offset, prev.offset), Events: []int{prev.event, e.Index}})
				case ok && r.Offset > prev.offset+1 && !e.ReadCommitted:
					// read_committed readers skip markers and aborted
					// records: only their order is checked.
					res.add(Anomaly{Kind: OffsetGap, Key: r.Key, Offset: r.Offset, Value: r.Value, Detail: fmt.Sprintf("process %d skipped from offset %d to %d", e.Process, prev.offset, r.Offset), Events: []int{prev.event, e.Index}})
				}
				cur[r.Key] = last{r.Offset, e.Index}
			}
		}
	}
}

// checkSendOrder: each process's acknowledged sends to a key, in
// invocation order, have increasing offsets.
func (res *Result) checkSendOrder(sends []*sendOp) {
	type k struct {
		process int
		key     string
	}
	prev := map[k]*sendOp{}
	for _, s := range sends {
		if s.status != OK {
			continue
		}
		kk := k{s.process, s.key}
		if p, ok := prev[kk]; ok && s.offset <= p.offset {
			res.add(Anomaly{Kind: SendReorder, Key: s.key, Offset: s.offset, Value: s.value, Detail: fmt.Sprintf("process %d sent %d before %d, but got offsets %d and %d", s.process, p.value, s.value, p.offset, s.offset), Events: []int{p.invoke, s.invoke, p.complete, s.complete}})
		}
		prev[kk] = s
	}
}

// Kinds counts anomalies by kind.
func (res Result) Kinds() map[string]int {
	out := map[string]int{}
	for _, a := range res.Anomalies {
		out[a.Kind]++
	}
	return out
}

// Report describes the result, quoting the events behind each anomaly
// (at most limit anomalies; 0 means all).
func (res Result) Report(events []Event, limit int) string {
	var b strings.Builder
	st := res.Stats
	fmt.Fprintf(&b, "%d sends (%d acknowledged, %d failed, %d indeterminate), %d polls reading %d records on %d keys\n",
		st.Sends, st.Acknowledged, st.Failed, st.Indeterminate, st.Polls, st.Records, st.Keys)
	if st.Removed > 0 {
		fmt.Fprintf(&b, "%d acknowledged sends missing from the reads, removed by retention\n", st.Removed)
	}
	if st.Txns > 0 {
		fmt.Fprintf(&b, "%d transactions (%d committed, %d not committed, %d indeterminate), %d group offset reads\n",
			st.Txns, st.TxnCommitted, st.TxnAborted, st.TxnIndeterminate, st.OffsetReads)
	}
	if st.TxnRemoved > 0 {
		fmt.Fprintf(&b, "%d values of committed transactions missing from the final drain, removed by retention\n", st.TxnRemoved)
	}
	if res.Valid {
		b.WriteString("valid: no anomalies\n")
		return b.String()
	}
	kinds := res.Kinds()
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		fmt.Fprintf(&b, "INVALID: %d %s\n", kinds[k], k)
	}
	for i, a := range res.Anomalies {
		if limit > 0 && i == limit {
			fmt.Fprintf(&b, "... %d more\n", len(res.Anomalies)-limit)
			break
		}
		fmt.Fprintf(&b, "%s key=%s offset=%d value=%d: %s\n", a.Kind, a.Key, a.Offset, a.Value, a.Detail)
		for _, ev := range a.Events {
			if ev >= 0 && ev < len(events) {
				fmt.Fprintf(&b, "    %s\n", events[ev])
			}
		}
	}
	return b.String()
}

func sortedPositions[V any](m map[position]V) []position {
	out := make([]position, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].key != out[j].key {
			return out[i].key < out[j].key
		}
		return out[i].offset < out[j].offset
	})
	return out
}

func sortedValues[V any](m map[int64]V) []int64 {
	return slices.Sorted(maps.Keys(m))
}

func sortedInts(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
