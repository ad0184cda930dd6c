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
