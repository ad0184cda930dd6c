package chaos

import (
	"strings"
	"testing"
	"time"
)

// txn helpers of the history builder.
func (b *builder) txnInvoke(p int, n int64, commit bool, writes ...Write) {
	b.add(Event{Process: p, Status: Invoke, Func: Txn, Txn: n, Writes: writes, Commit: commit})
}

func (b *builder) txnEnd(p int, n int64) {
	b.add(Event{Process: p, Status: Invoke, Func: TxnEnd, Txn: n})
}

func (b *builder) txnDone(p int, n int64, st Status) {
	b.add(Event{Process: p, Status: st, Func: Txn, Txn: n})
}

// txn runs a whole transaction: invoke, the commit asked for when it means
// to commit, and its outcome.
func (b *builder) txn(p int, n int64, commit bool, st Status, writes ...Write) {
	b.txnInvoke(p, n, commit, writes...)
	if commit {
		b.txnEnd(p, n)
	}
	b.txnDone(p, n, st)
}

func (b *builder) fence(p int) { b.add(Event{Process: p, Status: OK, Func: Fence}) }

func (b *builder) pollCommitted(p int, final bool, rs ...Read) {
	b.add(Event{Process: p, Status: Invoke, Func: Poll})
	b.add(Event{Process: p, Status: OK, Func: Poll, Reads: rs, Final: final, ReadCommitted: true})
}

func (b *builder) offsetRead(observer, owner int, value int64, final bool) {
	b.add(Event{Process: observer, Status: Invoke, Func: OffsetRead, Key: groupOf(owner), Txn: int64(owner)})
	b.add(Event{Process: observer, Status: OK, Func: OffsetRead, Key: groupOf(owner), Txn: int64(owner), Value: value, Final: final})
}

func w(key string, v int64) Write { return Write{Key: key, Value: v} }

// cleanTxns: a producer commits transactions 1 and 3 and aborts 2, is
// fenced, and its next incarnation commits 4; a read_committed consumer
// reads as it goes (with the gaps markers and aborted records leave); the
// offsets observed are those of committed transactions; the drain reads
// the committed values.
func cleanTxns() *builder {
	b := &builder{t0: time.Unix(0, 0)}
	b.fence(200)
	b.txn(200, 1, true, OK, w("x-0", 1), w("x-1", 2))
	b.txn(200, 2, false, Fail, w("x-0", 3))
	b.pollCommitted(300, false, Read{"x-0", 0, 1})
	b.offsetRead(400, 200, 1, false)
	b.txn(200, 3, true, OK, w("x-0", 4))
	b.fence(200)
	b.txn(200, 4, true, OK, w("x-1", 5))
	b.pollCommitted(300, false, Read{"x-0", 4, 4}, Read{"x-1", 0, 2}, Read{"x-1", 2, 5})
	b.offsetRead(400, 200, 4, false)
	b.seek(998, "x-0")
	b.seek(998, "x-1")
	b.pollCommitted(998, true, Read{"x-0", 0, 1}, Read{"x-0", 4, 4}, Read{"x-1", 0, 2}, Read{"x-1", 2, 5})
	b.offsetRead(400, 200, 4, true)
	return b
}

func TestCleanTransactionalHistoryIsValid(t *testing.T) {
	b := cleanTxns()
	res := Check(b.events, Options{RequireAllSeen: true})
	if !res.Valid {
		t.Fatalf("clean transactional history flagged:\n%s", res.Report(b.events, 0))
	}
	if st := res.Stats; st.Txns != 4 || st.TxnCommitted != 3 || st.TxnAborted != 1 || st.OffsetReads != 3 {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(res.Report(b.events, 0), "4 transactions (3 committed, 1 not committed") {
		t.Fatalf("report:\n%s", res.Report(b.events, 0))
	}
}

// TestEachTransactionalAnomalyIsCaught: every transactional anomaly trips
// on a history that contains it, citing its events.
func TestEachTransactionalAnomalyIsCaught(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(b *builder)
		history func() *builder
		want    string
	}{
		{name: "aborted read", mutate: func(b *builder) {
			b.pollCommitted(301, false, Read{"x-0", 2, 3}) // 3 was in aborted transaction 2
		}, want: AbortedRead},
		{name: "aborted read of a transaction that never asked to commit", mutate: func(b *builder) {
			b.txnInvoke(200, 5, true, w("x-1", 6)) // no TxnEnd, no outcome: a crash
			b.pollCommitted(301, false, Read{"x-1", 4, 6})
		}, want: AbortedRead},
		{name: "uncommitted read (past the last stable offset)", mutate: func(b *builder) {
			b.txnInvoke(200, 5, true, w("x-1", 6))
			b.pollCommitted(301, false, Read{"x-1", 4, 6}) // before the commit is asked
			b.txnEnd(200, 5)
			b.txnDone(200, 5, OK)
		}, want: UncommittedRead},
		{name: "lost committed write", history: func() *builder {
			b := &builder{t0: time.Unix(0, 0)}
			b.fence(200)
			b.txn(200, 1, true, OK, w("x-0", 1), w("x-1", 2))
			b.txn(200, 2, true, OK, w("x-0", 3))
			b.seek(998, "x-0")
			b.pollCommitted(998, true, Read{"x-0", 0, 1}, Read{"x-1", 0, 2}) // 3 missing
			return b
		}, want: LostWrite},
		{name: "partial transaction", history: func() *builder {
			b := &builder{t0: time.Unix(0, 0)}
			b.fence(200)
			b.txn(200, 1, true, Info, w("x-0", 1), w("x-1", 2)) // outcome unknown
			b.seek(998, "x-0")
			b.pollCommitted(998, true, Read{"x-0", 0, 1}) // 2 missing: half a transaction
			return b
		}, want: PartialTransaction},
		{name: "duplicate write across a fencing", mutate: func(b *builder) {
			// The first incarnation's value 4 shows up a second time,
			// at a later offset, after the producer was fenced.
			b.pollCommitted(301, false, Read{"x-0", 4, 4}, Read{"x-0", 7, 4})
		}, want: FencedDuplicate},
		{name: "offset of an aborted transaction visible", mutate: func(b *builder) {
			b.offsetRead(400, 200, 2, false)
		}, want: AbortedOffset},
		{name: "offset visible before its commit", mutate: func(b *builder) {
			b.txnInvoke(200, 5, true, w("x-1", 6))
			b.offsetRead(401, 200, 5, false)
			b.txnEnd(200, 5)
			b.txnDone(200, 5, OK)
		}, want: UncommittedOffset},
		{name: "committed offset lost", mutate: func(b *builder) {
			b.offsetRead(400, 200, 3, false) // after 4
		}, want: LostOffset},
		{name: "final offset below the last committed", history: func() *builder {
			b := &builder{t0: time.Unix(0, 0)}
			b.fence(200)
			b.txn(200, 1, true, OK, w("x-0", 1))
			b.txn(200, 2, true, OK, w("x-0", 2))
			b.offsetRead(400, 200, 1, true)
			return b
		}, want: LostOffset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b *builder
			if tt.history != nil {
				b = tt.history()
			} else {
				b = cleanTxns()
				tt.mutate(b)
			}
			res := Check(b.events, Options{RequireAllSeen: true})
			if res.Valid || res.Kinds()[tt.want] == 0 {
				t.Fatalf("want %s, got %v\n%s", tt.want, res.Kinds(), res.Report(b.events, 0))
			}
			report := res.Report(b.events, 0)
			if !strings.Contains(report, "INVALID") || !strings.Contains(report, tt.want) {
				t.Fatalf("report does not show the anomaly:\n%s", report)
			}
			for _, a := range res.Anomalies {
				if len(a.Events) == 0 {
					t.Fatalf("anomaly %+v cites no events", a)
				}
			}
		})
	}
}

// wAt is a transactional write acknowledged at offset off.
func wAt(key string, v, off int64) Write { return Write{Key: key, Value: v, Offset: off} }

// txnAt runs a whole transaction as txn does, its completion carrying the
// offsets its writes were acknowledged at (the invocation has none).
func (b *builder) txnAt(p int, n int64, commit bool, st Status, writes ...Write) {
	bare := make([]Write, len(writes))
	for i, x := range writes {
		bare[i] = Write{Key: x.Key, Value: x.Value}
	}
	b.txnInvoke(p, n, commit, bare...)
	if commit {
		b.txnEnd(p, n)
	}
	b.add(Event{Process: p, Status: st, Func: Txn, Txn: n, Writes: writes})
}

// retainedTxns: transaction 1 commits 1 at x-0@0 and 2 at x-1@0,
// transaction 2 aborts 3 at x-0@2, transaction 3 commits 4 at x-0@4 (the
// markers are at 1, 3 and 5, and x-1@1). Retention then moves x-0's log
// start to 4; the drain records it and reads x-0 from there and x-1 from
// 0. Events are 1 ms apart: the transactions begin at 1, 4 and 6 ms, the
// log start is observed at 13 ms.
func retainedTxns() *builder {
	b := &builder{t0: time.Unix(0, 0)}
	b.fence(200)
	b.txnAt(200, 1, true, OK, wAt("x-0", 1, 0), wAt("x-1", 2, 0))
	b.txnAt(200, 2, false, Fail, wAt("x-0", 3, 2))
	b.txnAt(200, 3, true, OK, wAt("x-0", 4, 4))
	b.pollCommitted(300, false, Read{"x-0", 0, 1}, Read{"x-1", 0, 2})
	b.seek(998, "x-0")
	b.seek(998, "x-1")
	b.logStart(998, "x-0", 4)
	b.logStart(998, "x-1", 0)
	b.pollCommitted(998, true, Read{"x-0", 4, 4}, Read{"x-1", 0, 2})
	return b
}

// TestRetentionExcusesRemovedTransactionalRecords: a committed value
// missing from the final drain below a log start observed at least the
// topic's retention after its transaction began is not lost, and its
// transaction, whose other value the drain has, is not partial; the
// checker still finds a committed value above the log start missing, a
// value the log start passed too soon, one whose offset the history does
// not give, and a read_committed read of an aborted value.
func TestRetentionExcusesRemovedTransactionalRecords(t *testing.T) {
	const retention = 5 * time.Millisecond
	b := retainedTxns()
	res := Check(b.events, Options{RequireAllSeen: true, Retention: retention})
	if !res.Valid || res.Stats.TxnRemoved != 1 || res.Stats.TxnCommitted != 2 {
		t.Fatalf("value 1 below the log start observed 12 ms after its transaction began: valid %v, %d removed, want valid and 1\n%s", res.Valid, res.Stats.TxnRemoved, res.Report(b.events, 0))
	}
	if report := res.Report(b.events, 0); !strings.Contains(report, "1 values of committed transactions missing from the final drain, removed by retention") {
		t.Fatalf("report does not count the removed value:\n%s", report)
	}

	tests := []struct {
		name      string
		history   func() *builder
		retention time.Duration
		want      string // anomaly kind
		detail    string // in its detail
	}{
		{name: "committed value above the log start missing", retention: retention, want: LostWrite, history: func() *builder {
			b := retainedTxns()
			b.events = b.events[:len(b.events)-2]
			b.pollCommitted(998, true, Read{"x-1", 0, 2}) // 4, at x-0@4, is not there
			return b
		}},
		{name: "no retention", want: PartialTransaction, detail: "but not [x-0=1@0]", history: retainedTxns},
		{name: "removed before its retention", retention: 15 * time.Millisecond, want: PartialTransaction, detail: "before its retention of 15ms", history: retainedTxns},
		{name: "offsets not recorded", retention: retention, want: PartialTransaction, history: func() *builder {
			b := retainedTxns()
			for i, e := range b.events {
				if e.Func == Txn && e.Status != Invoke {
					b.events[i].Writes = nil
				}
			}
			return b
		}},
		{name: "aborted value read at read_committed", retention: retention, want: AbortedRead, history: func() *builder {
			b := retainedTxns()
			b.pollCommitted(301, false, Read{"x-0", 2, 3}) // 3 was in aborted transaction 2
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.history()
			res := Check(b.events, Options{RequireAllSeen: true, Retention: tt.retention})
			if res.Valid || res.Kinds()[tt.want] == 0 {
				t.Fatalf("want %s, got %v\n%s", tt.want, res.Kinds(), res.Report(b.events, 0))
			}
			for _, a := range res.Anomalies {
				if len(a.Events) == 0 {
					t.Fatalf("anomaly %+v cites no events", a)
				}
				if a.Kind == tt.want && !strings.Contains(a.Detail, tt.detail) {
					t.Errorf("%q does not say %q", a.Detail, tt.detail)
				}
			}
		})
	}
}
