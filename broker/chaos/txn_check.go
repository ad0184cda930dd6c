package chaos

import (
	"fmt"
	"time"
)

// txnOp is one transaction of the history.
type txnOp struct {
	process int
	n       int64
	writes  []Write
	commit  bool   // meant to commit
	status  Status // "" until completed
	invoke  int
	invoked time.Time
	// offsets are where its writes went, by value, as its completion
	// recorded them (nil when it did not: a value retention may have
	// removed cannot then be told from a lost one).
	offsets map[int64]int64
	// endInvoke is the TxnEnd event (the commit asked for), -1 if none.
	endInvoke int
	complete  int
}

type txnKey struct {
	process int
	n       int64
}

// txnIndex gathers the transactional operations of a history.
type txnIndex struct {
	ops     map[txnKey]*txnOp
	order   []*txnOp
	byValue map[int64]*txnOp
	fences  map[int][]int // process -> Fence events
	offsets []Event       // OffsetRead completions
}

func newTxnIndex() *txnIndex {
	return &txnIndex{ops: map[txnKey]*txnOp{}, byValue: map[int64]*txnOp{}, fences: map[int][]int{}}
}

func (x *txnIndex) note(e Event, res *Result) {
	switch e.Func {
	case Fence:
		x.fences[e.Process] = append(x.fences[e.Process], e.Index)
	case OffsetRead:
		if e.Status == OK {
			x.offsets = append(x.offsets, e)
			res.Stats.OffsetReads++
		}
	case TxnEnd:
		if t := x.ops[txnKey{e.Process, e.Txn}]; t != nil && t.endInvoke < 0 {
			t.endInvoke = e.Index
		}
	case Txn:
		k := txnKey{e.Process, e.Txn}
		if e.Status == Invoke {
			if prev := x.ops[k]; prev != nil {
				res.add(Anomaly{Kind: Duplicate, Detail: fmt.Sprintf("process %d ran transaction %d twice (the workload must number them uniquely)", e.Process, e.Txn), Events: []int{prev.invoke, e.Index}})
				return
			}
			t := &txnOp{process: e.Process, n: e.Txn, writes: e.Writes, commit: e.Commit, invoke: e.Index, invoked: e.Time, endInvoke: -1, complete: -1}
			x.ops[k] = t
			x.order = append(x.order, t)
			for _, w := range e.Writes {
				if prev := x.byValue[w.Value]; prev != nil {
					res.add(Anomaly{Kind: Duplicate, Value: w.Value, Detail: "value sent in two transactions (the workload must use unique values)", Events: []int{prev.invoke, e.Index}})
					continue
				}
				x.byValue[w.Value] = t
			}
			res.Stats.Txns++
			return
		}
		t := x.ops[k]
		if t == nil {
			return
		}
		t.status, t.complete = e.Status, e.Index
		for _, w := range e.Writes {
			if t.offsets == nil {
				t.offsets = map[int64]int64{}
			}
			t.offsets[w.Value] = w.Offset
		}
		switch e.Status {
		case OK:
			res.Stats.TxnCommitted++
		case Fail:
			res.Stats.TxnAborted++
		default:
			res.Stats.TxnIndeterminate++
		}
	}
}

// fencedAfter reports a Fence of the transaction's process after it began.
func (x *txnIndex) fencedAfter(t *txnOp) (int, bool) {
	for _, f := range x.fences[t.process] {
		if f > t.invoke {
			return f, true
		}
	}
	return 0, false
}

// committed reports whether a transaction may have committed: its commit
// was asked for and it did not definitely fail.
func (t *txnOp) mayHaveCommitted() bool { return t.endInvoke >= 0 && t.status != Fail }

func (t *txnOp) events() []int {
	out := []int{t.invoke}
	if t.endInvoke >= 0 {
		out = append(out, t.endInvoke)
	}
	if t.complete >= 0 {
		out = append(out, t.complete)
	}
	return out
}

// check finds the transactional anomalies: reads of transactions that did
// not commit or had not asked to yet, committed values missing from the
// final drain, transactions only partly there, and the same for the group
// offsets committed in transactions. A value missing from the drain that
// retention removed (below a log start observed at least
// Options.Retention after its transaction began, at the offset its
// completion recorded) is neither lost nor makes its transaction partial.
func (x *txnIndex) check(res *Result, reads []readAt, starts logStarts, opts Options) {
	finalSeen := map[int64]bool{}
	drained := false
	for _, r := range reads {
		t := x.byValue[r.Value]
		if t == nil {
			continue
		}
		if r.final {
			finalSeen[r.Value] = true
			drained = true
		}
		switch {
		case !t.mayHaveCommitted():
			res.add(Anomaly{Kind: AbortedRead, Key: r.Key, Offset: r.Offset, Value: r.Value,
				Detail: fmt.Sprintf("read a value of transaction %d of process %d, which did not commit", t.n, t.process), Events: append(t.events(), r.event)})
		case r.committed && r.event < t.endInvoke:
			res.add(Anomaly{Kind: UncommittedRead, Key: r.Key, Offset: r.Offset, Value: r.Value,
				Detail: fmt.Sprintf("read_committed read a value of transaction %d of process %d before its commit was asked for (past the last stable offset)", t.n, t.process),
				Events: []int{t.invoke, r.event, t.endInvoke}})
		}
	}
	if !drained && !opts.RequireAllSeen {
		// Without a drain nothing is known missing.
		x.checkOffsets(res)
		return
	}
	for _, t := range x.order {
		var have, missing, gone []Write
		var why string
		var lsEvents []int
		for _, w := range t.writes {
			if finalSeen[w.Value] {
				have = append(have, w)
				continue
			}
			if off, ok := t.offsets[w.Value]; ok {
				removed, whyNot, evs := starts.removed(w.Key, off, t.invoked, opts.Retention)
				if removed {
					gone = append(gone, w)
					continue
				}
				if why == "" {
					why, lsEvents = whyNot, evs
				}
			}
			missing = append(missing, w)
		}
		if t.status == OK {
			res.Stats.TxnRemoved += len(gone)
		}
		switch {
		case len(missing) == 0:
		case len(have) > 0:
			// Part of it is there, so it committed: what is missing
			// is lost, unless retention removed it.
			desc := writes(have, false)
			if len(gone) > 0 {
				desc += fmt.Sprintf(" (retention removed %s)", writes(gone, false))
			}
			res.add(Anomaly{Kind: PartialTransaction, Value: missing[0].Value,
				Detail: fmt.Sprintf("the final drain has %s of transaction %d of process %d but not %s%s", desc, t.n, t.process, writes(missing, t.offsets != nil), why), Events: append(t.events(), lsEvents...)})
		case t.status == OK && opts.RequireAllSeen:
			for _, w := range missing {
				res.add(Anomaly{Kind: LostWrite, Key: w.Key, Offset: t.offsets[w.Value], Value: w.Value,
					Detail: fmt.Sprintf("transaction %d of process %d committed, but the final drain does not have its value%s", t.n, t.process, why), Events: append(t.events(), lsEvents...)})
			}
		}
	}
	x.checkOffsets(res)
}

// checkOffsets follows the group offsets the transactions commit: each
// observed value is a transaction's number, which must have asked to
// commit before it was seen and not definitely failed; per observer and
// group, values never go back; the last read is at least the last
// transaction known committed.
func (x *txnIndex) checkOffsets(res *Result) {
	type obs struct {
		value int64
		event int
	}
	last := map[[2]int]obs{} // observer, group owner -> last observation
	finalRead := map[int]obs{}
	for _, e := range x.offsets {
		owner := int(e.Txn)
		t := x.ops[txnKey{owner, e.Value}]
		switch {
		case t == nil:
			res.add(Anomaly{Kind: AbortedOffset, Key: e.Key, Value: e.Value,
				Detail: fmt.Sprintf("group offset %d of process %d, which ran no such transaction", e.Value, owner), Events: []int{e.Index}})
		case !t.mayHaveCommitted():
			res.add(Anomaly{Kind: AbortedOffset, Key: e.Key, Value: e.Value,
				Detail: fmt.Sprintf("group offset committed by transaction %d of process %d, which did not commit", t.n, owner), Events: append(t.events(), e.Index)})
		case e.Index < t.endInvoke:
			res.add(Anomaly{Kind: UncommittedOffset, Key: e.Key, Value: e.Value,
				Detail: fmt.Sprintf("group offset of transaction %d of process %d read before its commit was asked for", t.n, owner), Events: []int{t.invoke, e.Index, t.endInvoke}})
		}
		k := [2]int{e.Process, owner}
		if prev, ok := last[k]; ok && e.Value < prev.value {
			res.add(Anomaly{Kind: LostOffset, Key: e.Key, Value: e.Value,
				Detail: fmt.Sprintf("process %d saw group offset %d of process %d after %d", e.Process, e.Value, owner, prev.value), Events: []int{prev.event, e.Index}})
		}
		last[k] = obs{e.Value, e.Index}
		if e.Final {
			finalRead[owner] = obs{e.Value, e.Index}
		}
	}
	for owner, f := range finalRead {
		var best *txnOp
		for _, t := range x.order {
			if t.process == owner && t.status == OK && t.commit && (best == nil || t.n > best.n) {
				best = t
			}
		}
		if best != nil && f.value < best.n {
			res.add(Anomaly{Kind: LostOffset, Key: groupOf(owner), Value: f.value,
				Detail: fmt.Sprintf("the final read of process %d's group offset is %d, but transaction %d committed it", owner, f.value, best.n),
				Events: append(best.events(), f.event)})
		}
	}
}

// groupOf is the consumer group a transactional producer commits its
// transaction numbers to.
func groupOf(process int) string { return fmt.Sprintf("chaos-txn-%d", process) }
