package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"
)

// txnModel is the reference the transaction fuzz test checks the partition
// against: the log as a list of batches, and everything derived from it
// by Kafka's rules, recomputed from scratch each time.
type txnModel struct {
	log []modelBatch
}

type modelBatch struct {
	base, last  int64
	pid         int64
	epoch       int16
	firstSeq    int32
	lastSeq     int32
	txn, marker bool
	commit      bool
	coordEpoch  int32
}

type modelDerived struct {
	ongoing   map[int64]int64 // pid -> first offset
	aborted   []AbortedTxn
	completed []completedTxn
	epoch     map[int64]int16
	coord     map[int64]int32
	nextSeq   map[int64]int32
}

func (m *txnModel) leo() int64 {
	if len(m.log) == 0 {
		return 0
	}
	return m.log[len(m.log)-1].last + 1
}

func (m *txnModel) derive() modelDerived {
	d := modelDerived{ongoing: map[int64]int64{}, epoch: map[int64]int16{}, coord: map[int64]int32{}, nextSeq: map[int64]int32{}}
	for _, b := range m.log {
		if b.pid < 0 {
			continue
		}
		if e, ok := d.epoch[b.pid]; !ok || b.epoch != e {
			d.nextSeq[b.pid] = 0 // a new epoch starts its sequences over
		}
		d.epoch[b.pid] = b.epoch
		if b.marker {
			d.coord[b.pid] = b.coordEpoch
			first, ok := d.ongoing[b.pid]
			if !ok {
				continue
			}
			delete(d.ongoing, b.pid)
			lso := b.base + 1
			for pid, f := range d.ongoing {
				if pid != b.pid && f < lso {
					lso = f
				}
			}
			if !b.commit {
				d.aborted = append(d.aborted, AbortedTxn{ProducerID: b.pid, FirstOffset: first, LastOffset: b.base, LastStableOffset: lso})
			}
			d.completed = append(d.completed, completedTxn{producerID: b.pid, firstOffset: first, lastOffset: b.base})
			continue
		}
		d.nextSeq[b.pid] = b.lastSeq + 1
		if _, ok := d.ongoing[b.pid]; b.txn && !ok {
			d.ongoing[b.pid] = b.base
		}
	}
	return d
}

func (d modelDerived) lso(hw, logStart int64) int64 {
	lso := hw
	for _, f := range d.ongoing {
		lso = min(lso, f)
	}
	for _, c := range d.completed {
		if c.lastOffset >= hw {
			lso = min(lso, c.firstOffset)
		}
	}
	return max(lso, logStart)
}

func (d modelDerived) overlapping(from, to int64) []AbortedTxn {
	var out []AbortedTxn
	for _, t := range d.aborted {
		if t.LastOffset >= from && t.FirstOffset < to {
			out = append(out, t)
		}
	}
	return out
}

// FuzzTransactions runs a random sequence of transactional appends,
// markers (some from fenced epochs or coordinators), plain appends,
// truncations, high watermark moves, checkpoints, clean restarts and kill -9
// restarts, on a partition of small segments, and after every step checks
// the partition against the model: log end, last stable offset, ongoing
// transactions, aborted transactions (with their index LSOs), producer
// epochs and transaction starts, and that read_committed reads stop at the
// LSO and list exactly the aborts overlapping what they return.
func FuzzTransactions(f *testing.F) {
	f.Add([]byte{0, 1, 3, 0, 4, 1, 9, 10, 0, 2, 8, 200, 13, 5, 11, 3})
	f.Add([]byte{0, 0, 1, 1, 2, 2, 4, 0, 3, 1, 12, 80, 13, 40, 10, 5, 2, 0, 6, 1, 7, 0, 8, 100, 13, 0})
	f.Add([]byte{0, 5, 1, 6, 4, 5, 9, 0, 0, 4, 1, 3, 0, 8, 150, 10, 0, 13, 30, 14, 2})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 120 {
			ops = ops[:120]
		}
		dir := memTempDir(t)
		opts := Options{Logger: quietLogger(), FlushPolicy: FlushNone, CheckpointInterval: time.Hour}
		st, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { st.Close() }()
		p, err := st.CreatePartition("fz", 0, TopicConfig{SegmentBytes: 300})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var m txnModel
		coordEpoch := int32(0)
		reopen := func(crash bool) {
			t.Helper()
			d := dir
			if crash {
				d = crashCopy(t, dir)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			dir = d
			if st, err = Open(dir, opts); err != nil {
				t.Fatalf("reopen (crash %v): %v", crash, err)
			}
			p, _ = st.Partition("fz", 0)
		}
		next := func(i *int) byte {
			if *i >= len(ops) {
				return 0
			}
			b := ops[*i]
			*i++
			return b
		}
		for i := 0; i < len(ops); {
			op := next(&i) % 15
			arg := next(&i)
			pid := int64(arg%3) + 1
			d := m.derive()
			epoch := d.epoch[pid]
			step := fmt.Sprintf("op %d (arg %d)", op, arg)
			switch op {
			case 0, 1, 2: // transactional data, verified as the leader does
				n := int(op) + 1
				seq := d.nextSeq[pid]
				guard := p.StartTxnVerification(pid, epoch, seq)
				b := makeBatch(t, batchSpec{records: n, valueSize: 20, producerID: pid, producerEpoch: epoch, baseSequence: seq, transactional: true})
				res, err := p.Append(ctx, b, AppendOptions{VerificationGuard: guard})
				if err != nil {
					t.Fatalf("%s: transactional append for %d: %v", step, pid, err)
				}
				m.log = append(m.log, modelBatch{base: res.BaseOffset, last: res.LastOffset, pid: pid, epoch: epoch, firstSeq: seq, lastSeq: seq + int32(n) - 1, txn: true})
			case 3, 4, 5: // commit, abort, abort with the epoch bumped (timeout)
				me := epoch
				if op == 5 {
					me++
				}
				res, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: pid, ProducerEpoch: me, CoordinatorEpoch: coordEpoch, Commit: op == 3}, AppendOptions{})
				if err != nil {
					t.Fatalf("%s: marker for %d: %v", step, pid, err)
				}
				m.log = append(m.log, modelBatch{base: res.BaseOffset, last: res.BaseOffset, pid: pid, epoch: me, marker: true, commit: op == 3, coordEpoch: coordEpoch})
			case 6: // fenced: an older producer epoch, or an older coordinator
				if ce, ok := d.coord[pid]; ok && ce > 0 {
					_, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: pid, ProducerEpoch: epoch, CoordinatorEpoch: ce - 1}, AppendOptions{})
					if !errors.Is(err, ErrTransactionCoordinatorFenced) {
						t.Fatalf("%s: marker from coordinator epoch %d after %d: %v", step, ce-1, ce, err)
					}
				}
				if _, known := d.epoch[pid]; known && epoch > 0 {
					guard := p.StartTxnVerification(pid, epoch-1, 0)
					b := makeBatch(t, batchSpec{records: 1, producerID: pid, producerEpoch: epoch - 1, baseSequence: 0, transactional: true})
					if _, err := p.Append(ctx, b, AppendOptions{VerificationGuard: guard}); !errors.Is(err, ErrInvalidProducerEpoch) {
						t.Fatalf("%s: data from fenced epoch %d: %v", step, epoch-1, err)
					}
				}
			case 7: // plain records
				res := mustAppend(t, p, makeBatch(t, batchSpec{records: 1 + int(arg%3), valueSize: 30}))
				m.log = append(m.log, modelBatch{base: res.BaseOffset, last: res.LastOffset, pid: -1})
			case 8: // truncate (a follower cutting a diverged suffix)
				to := int64(arg) % (m.leo() + 1)
				if err := p.TruncateTo(to); err != nil {
					t.Fatalf("%s: TruncateTo(%d): %v", step, to, err)
				}
				keep := 0
				for keep < len(m.log) && m.log[keep].last < to {
					keep++
				}
				m.log = m.log[:keep]
			case 9:
				if err := p.checkpoint(); err != nil {
					t.Fatalf("%s: checkpoint: %v", step, err)
				}
			case 10:
				reopen(true)
			case 11:
				reopen(false)
			case 12: // the high watermark moves up
				hw := p.HighWatermark()
				p.SetHighWatermark(hw + int64(arg)%(m.leo()-hw+1))
			case 13: // a read_committed fetch
				from := p.LogStartOffset() + int64(arg)%(m.leo()-p.LogStartOffset()+1)
				res, err := p.ReadIsolated(from, int32(200+int(arg)*4), ReadCommitted)
				if err != nil {
					t.Fatalf("%s: ReadIsolated(%d): %v", step, from, err)
				}
				want := d.lso(res.HighWatermark, p.LogStartOffset())
				if res.LastStableOffset != want {
					t.Fatalf("%s: read reports LSO %d, model %d", step, res.LastStableOffset, want)
				}
				last := int64(-1)
				if len(res.Records) > 0 {
					last = lastOffsetIn(t, res.Records)
					if last >= res.LastStableOffset {
						t.Fatalf("%s: read_committed returned offset %d at or past the LSO %d", step, last, res.LastStableOffset)
					}
				}
				var wantAborted []AbortedTxn
				if last >= 0 {
					wantAborted = d.overlapping(from, last+1)
				}
				if !sameAborted(res.AbortedTransactions, wantAborted) {
					t.Fatalf("%s: fetch %d-%d lists aborted %+v, model %+v", step, from, last, res.AbortedTransactions, wantAborted)
				}
			case 14:
				coordEpoch++
			}
			checkAgainstModel(t, step, p, &m)
		}
	})
}

func sameAborted(a, b []AbortedTxn) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

func checkAgainstModel(t *testing.T, step string, p *Partition, m *txnModel) {
	t.Helper()
	checkAgainstModelExceptAborted(t, step, p, m)
	if got, want := p.AbortedTransactions(p.LogStartOffset(), p.LogEndOffset()), m.derive().aborted; !sameAborted(got, want) {
		t.Fatalf("after %s: aborted %+v, model %+v", step, got, want)
	}
}

func checkAgainstModelExceptAborted(t *testing.T, step string, p *Partition, m *txnModel) {
	t.Helper()
	d := m.derive()
	if got := p.LogEndOffset(); got != m.leo() {
		t.Fatalf("after %s: log end %d, model %d", step, got, m.leo())
	}
	if got, want := p.LastStableOffset(), d.lso(p.HighWatermark(), p.LogStartOffset()); got != want {
		t.Fatalf("after %s: LSO %d, model %d (HW %d, ongoing %v)", step, got, want, p.HighWatermark(), d.ongoing)
	}
	var wantOngoing [][2]int64
	for pid, f := range d.ongoing {
		wantOngoing = append(wantOngoing, [2]int64{f, pid})
	}
	sort.Slice(wantOngoing, func(i, j int) bool { return wantOngoing[i][0] < wantOngoing[j][0] })
	var gotOngoing [][2]int64
	for _, o := range p.OngoingTransactions() {
		gotOngoing = append(gotOngoing, [2]int64{o.FirstOffset, o.ProducerID})
	}
	if !reflect.DeepEqual(gotOngoing, wantOngoing) {
		t.Fatalf("after %s: ongoing %v, model %v", step, gotOngoing, wantOngoing)
	}
	for _, ps := range p.Producers() {
		wantStart := int64(-1)
		if f, ok := d.ongoing[ps.ProducerID]; ok {
			wantStart = f
		}
		if e, ok := d.epoch[ps.ProducerID]; !ok || e != ps.ProducerEpoch || ps.CurrentTxnStartOffset != wantStart {
			t.Fatalf("after %s: producer %+v, model epoch %d (known %v), txn start %d", step, ps, e, ok, wantStart)
		}
	}
	if got, want := len(p.Producers()), len(d.epoch); got != want {
		t.Fatalf("after %s: %d producers, model %d", step, got, want)
	}
}

// FuzzTxnIndexRecovery puts arbitrary bytes in one segment's .txnindex of
// a log with aborted transactions, with or without the producer-state
// snapshot, and opens it as after a crash. Invariants: Open succeeds; the
// files hold what the partition serves; producer state, ongoing
// transactions and the LSO are what the log implies; and the aborted
// transactions too, except that an index that passes every check (an
// empty one too) and lies below the snapshot is trusted as written (the
// format has no checksum, as Kafka's has none), in which case exactly its
// entries are served for that segment.
func FuzzTxnIndexRecovery(f *testing.F) {
	template := memTempDir(f)
	st, err := Open(template, Options{Logger: quietLogger(), FlushPolicy: FlushNone, CheckpointInterval: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	p, err := st.CreatePartition("ti", 0, TopicConfig{SegmentBytes: 250})
	if err != nil {
		f.Fatal(err)
	}
	a, b := &txnClient{t: f, p: p, pid: 1}, &txnClient{t: f, p: p, pid: 2}
	for i := 0; i < 6; i++ {
		a.send(1)
		b.send(1)
		a.end(i%2 == 0, 0)
		b.end(i%3 == 0, 0)
	}
	a.send(1)
	if err := p.checkpoint(); err != nil {
		f.Fatal(err)
	}
	type segInfo struct {
		path       string
		base, next int64
		last       bool
	}
	var segs []segInfo
	for i, s := range p.segments {
		segs = append(segs, segInfo{filepath.Base(s.txnIndexPath()), s.base, s.next, i == len(p.segments)-1})
		if len(s.txn.entries) > 0 {
			valid, _ := os.ReadFile(s.txnIndexPath())
			f.Add(valid, uint8(i), true)
			f.Add(valid[:len(valid)-5], uint8(i), true)
			flipped := append([]byte(nil), valid...)
			flipped[20] ^= 0x40
			f.Add(flipped, uint8(i), false)
		}
	}
	if err := st.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{}, uint8(0), true)
	f.Add(make([]byte, txnEntrySize), uint8(1), true)
	f.Fuzz(func(t *testing.T, idx []byte, which uint8, withSnapshot bool) {
		dir := crashCopy(t, template)
		os.Remove(filepath.Join(dir, cleanShutdownMarker))
		s := segs[int(which)%len(segs)]
		part := filepath.Join(dir, "ti-0")
		if err := os.WriteFile(filepath.Join(part, s.path), idx, 0o644); err != nil {
			t.Fatal(err)
		}
		if !withSnapshot {
			if err := os.Remove(filepath.Join(part, producerStateFile)); err != nil {
				t.Fatal(err)
			}
		}
		st, err := Open(dir, Options{Logger: quietLogger(), FlushPolicy: FlushNone})
		if err != nil {
			t.Fatalf("Open with a damaged transaction index: %v", err)
		}
		defer st.Close()
		p, _ := st.Partition("ti", 0)
		checkTxnIndexFiles(t, p)
		m := modelFromLog(t, p)
		end := s.next
		if s.last {
			end = math.MaxInt64
		}
		fuzzed, decodeErr := decodeTxnEntries(idx, s.base, end)
		// Recovery starts from the checkpoint's snapshot at the log end,
		// or without it from the snapshot taken when the last segment was
		// rolled in; index entries below that offset are trusted.
		from := segs[len(segs)-1].base
		if withSnapshot {
			from = p.LogEndOffset()
		}
		if decodeErr == nil {
			var want []AbortedTxn
			for _, e := range m.derive().aborted {
				if e.LastOffset >= s.base && e.LastOffset < s.next && e.LastOffset < from {
					continue // replaced by the file's entries
				}
				want = append(want, e)
			}
			for _, e := range fuzzed {
				if e.LastOffset < s.next && e.LastOffset < from {
					want = append(want, e)
				}
			}
			sort.Slice(want, func(i, j int) bool { return want[i].LastOffset < want[j].LastOffset })
			var served []AbortedTxn
			for _, seg := range p.segments {
				served = append(served, seg.txn.entries...)
			}
			if !sameAborted(served, want) {
				t.Fatalf("index entries below offset %d trusted as written: serving %+v, want %+v", from, served, want)
			}
			// Everything but the aborted list still follows the log.
			checkAgainstModelExceptAborted(t, "recovery", p, m)
			return
		}
		checkAgainstModel(t, "recovery", p, m)
		c := &txnClient{t: t, p: p, pid: 3}
		c.send(1)
		c.end(false, 0)
		checkAgainstModel(t, "abort after recovery", p, modelFromLog(t, p))
	})
}
