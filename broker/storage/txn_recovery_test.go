package storage

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// TestTxnRecoveryCutAtEveryByteOfLastBatch tears the log at every byte of
// its last batch, an ABORT marker and then a transactional batch, and
// checks that recovery brings back the transaction state of the log that
// survived: as before that batch while it is torn, as after it once whole,
// including the aborted-transaction index on disk.
func TestTxnRecoveryCutAtEveryByteOfLastBatch(t *testing.T) {
	for _, tc := range []struct {
		name            string
		last            string // "abort" or "data"
		checkpointAfter bool   // a checkpoint right before the last batch
	}{
		{"abort marker", "abort", false},
		{"abort marker after a checkpoint", "abort", true},
		{"transactional batch", "data", false},
		{"transactional batch after a checkpoint", "data", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := memTempDir(t)
			st := openStore(t, dir, Options{CheckpointInterval: time.Hour})
			p := mustCreate(t, st, "cut", 0, TopicConfig{SegmentBytes: 600})
			a, b := &txnClient{t: t, p: p, pid: 1}, &txnClient{t: t, p: p, pid: 2}
			for i := 0; i < 3; i++ {
				a.send(2)
				b.send(1)
				a.end(i == 1, 0)
				b.end(false, 0)
			}
			a.send(1)
			b.send(1)
			if tc.checkpointAfter {
				if err := p.checkpoint(); err != nil {
					t.Fatal(err)
				}
			}
			before := viewOf(p)
			if tc.last == "abort" {
				b.end(false, 0)
			} else {
				b.send(1)
			}
			after := viewOf(p)
			base := crashCopy(t, dir)
			seg := lastSegmentPath(t, filepath.Join(base, "cut-0"))
			full, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			h := lastHeader(t, full)
			lastStart := int64(len(full) - h.Size())
			for cut := lastStart; cut <= int64(len(full)); cut++ {
				crashed := crashCopy(t, base)
				if err := os.Truncate(filepath.Join(crashed, "cut-0", filepath.Base(seg)), cut); err != nil {
					t.Fatal(err)
				}
				st2, err := Open(crashed, Options{Logger: quietLogger()})
				if err != nil {
					t.Fatalf("cut at %d: Open: %v", cut, err)
				}
				p2, _ := st2.Partition("cut", 0)
				want := before
				if cut == int64(len(full)) {
					want = after
				}
				if got := viewOf(p2); !reflect.DeepEqual(got, want) {
					t.Fatalf("cut at %d of %d:\ngot  %+v\nwant %+v", cut, len(full), got, want)
				}
				checkTxnIndexFiles(t, p2)
				if err := st2.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func lastHeader(t testing.TB, log []byte) recordbatch.Header {
	t.Helper()
	var h recordbatch.Header
	for pos := 0; pos < len(log); pos += h.Size() {
		var err error
		if h, err = recordbatch.ParseHeader(log[pos:]); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// checkTxnIndexFiles checks every segment's .txnindex holds exactly what
// the partition serves from memory.
func checkTxnIndexFiles(t testing.TB, p *Partition) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.segments {
		if err := s.writeTxnIndex(false); err != nil {
			t.Fatal(err)
		}
		ix, err := loadTxnIndex(s.txnIndexPath(), s.base, max(s.next, s.base+1), false)
		if err != nil {
			t.Fatalf("%s: %v", s.txnIndexPath(), err)
		}
		if !sameAborted(ix.entries, s.txn.entries) {
			t.Fatalf("%s holds %+v, the partition serves %+v", s.txnIndexPath(), ix.entries, s.txn.entries)
		}
	}
}

// modelFromLog reads a partition's log into the fuzz test's model, so the
// state the partition rebuilt can be compared with what its log implies.
func modelFromLog(t testing.TB, p *Partition) *txnModel {
	t.Helper()
	var m txnModel
	b, err := p.Read(p.LogStartOffset(), 1<<30, p.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	for len(b) > 0 {
		h, err := recordbatch.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		mb := modelBatch{base: h.BaseOffset, last: h.LastOffset(), pid: h.ProducerID, epoch: h.ProducerEpoch,
			firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), txn: h.IsTransactional()}
		if h.IsControl() {
			_, mk, ok, err := recordbatch.ParseControl(&h, b[:h.Size()])
			if err != nil || !ok {
				t.Fatalf("control batch at %d: %v", h.BaseOffset, err)
			}
			mb.marker, mb.commit, mb.coordEpoch = true, mk.Commit, mk.CoordinatorEpoch
		}
		m.log = append(m.log, mb)
		b = b[h.Size():]
	}
	return &m
}

// committedValues reads the partition as a read_committed consumer does
// (Kafka's consumer algorithm): fetch up to the LSO, and drop the records of
// a producer from an aborted transaction's first offset to its ABORT marker.
// It returns the values of the transactional records it keeps.
func committedValues(t testing.TB, p *Partition) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	off := p.LogStartOffset()
	for {
		res, err := p.ReadIsolated(off, 64<<10, ReadCommitted)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) == 0 {
			return out
		}
		pending := append([]AbortedTxn(nil), res.AbortedTransactions...)
		sort.Slice(pending, func(i, j int) bool { return pending[i].FirstOffset < pending[j].FirstOffset })
		aborting := map[int64]bool{}
		for b := res.Records; len(b) > 0; {
			h, err := recordbatch.ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			data := b[:h.Size()]
			b = b[h.Size():]
			off = h.LastOffset() + 1
			for len(pending) > 0 && pending[0].FirstOffset <= h.LastOffset() {
				aborting[pending[0].ProducerID] = true
				pending = pending[1:]
			}
			if h.IsControl() {
				if typ, _, ok, _ := recordbatch.ParseControl(&h, data); ok && typ == recordbatch.ControlAbort {
					delete(aborting, h.ProducerID)
				}
				continue
			}
			if !h.IsTransactional() || aborting[h.ProducerID] {
				continue
			}
			err = forEachRecordOf(&h, data, func(r *recordbatch.Record) error {
				out[string(r.Value)] = true
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

const txnHelperDirEnv = "TRIBUTARY_STORAGE_TXN_DIR"

// TestKill9Transactions runs transactional producers in a child process
// (each: verify, one to three batches, then COMMIT or ABORT, with group
// commit), kills it with SIGKILL mid-stream and reopens the log. Every
// acknowledged marker must be there; the producer state, ongoing
// transactions, LSO and aborted index rebuilt after the crash must be what
// the surviving log implies; and a read_committed reader must see every
// record of every acknowledged commit and none of any abort.
func TestKill9Transactions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTxnAppender$", "-test.v")
	cmd.Env = append(os.Environ(), txnHelperDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type ack struct {
		commit bool
		offset int64
		values []string
	}
	var acks []ack
	lines := bufio.NewScanner(out)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	deadline := time.Now().Add(30 * time.Second)
	for len(acks) < 400 && time.Now().Before(deadline) && lines.Scan() {
		f := strings.Fields(lines.Text())
		if len(f) >= 3 && (f[0] == "commit" || f[0] == "abort") {
			off, _ := strconv.ParseInt(f[1], 10, 64)
			acks = append(acks, ack{commit: f[0] == "commit", offset: off, values: f[2:]})
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acks) < 20 {
		t.Fatalf("child acknowledged only %d transactions before the deadline", len(acks))
	}

	st := openStore(t, dir, Options{})
	p, ok := st.Partition("ktx", 0)
	if !ok {
		t.Fatal("partition lost")
	}
	m := modelFromLog(t, p)
	checkAgainstModel(t, "recovery after kill -9", p, m)
	checkTxnIndexFiles(t, p)
	markers := map[int64]modelBatch{}
	for _, b := range m.log {
		if b.marker {
			markers[b.base] = b
		}
	}
	for _, a := range acks {
		if b, ok := markers[a.offset]; !ok || b.commit != a.commit {
			t.Fatalf("acknowledged marker (commit %v) at %d lost after kill -9 (log has %+v)", a.commit, a.offset, b)
		}
	}
	// The producers died mid-transaction: their transactions hold the LSO
	// back, and no aborted record is visible meanwhile.
	ongoing := p.OngoingTransactions()
	if len(ongoing) > 0 && p.LastStableOffset() != ongoing[0].FirstOffset {
		t.Fatalf("LSO %d with a transaction open from %d", p.LastStableOffset(), ongoing[0].FirstOffset)
	}
	checkVisible := func(stage string, all bool) {
		t.Helper()
		visible := committedValues(t, p)
		for _, a := range acks {
			for _, v := range a.values {
				if visible[v] && !a.commit {
					t.Fatalf("%s: record %s of an aborted transaction is visible to read_committed", stage, v)
				}
				if all && a.commit && !visible[v] {
					t.Fatalf("%s: record %s of a committed transaction is not visible to read_committed", stage, v)
				}
			}
		}
	}
	checkVisible("after recovery", false)
	// The coordinator aborts them (transaction.timeout.ms): every
	// acknowledged commit is then readable, and still no abort.
	for _, o := range ongoing {
		if _, err := p.AppendTxnMarker(context.Background(), TxnMarker{ProducerID: o.ProducerID, ProducerEpoch: o.ProducerEpoch + 1}, AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != hw {
		t.Fatalf("after aborting the open transactions: LSO %d, HW %d", lso, hw)
	}
	checkVisible("after the hanging transactions were aborted", true)
	commits := 0
	for _, a := range acks {
		if a.commit {
			commits++
		}
	}
	t.Logf("%d acknowledged commits and %d aborts checked; %d transactions were open at the kill", commits, len(acks)-commits, len(ongoing))
}

// TestHelperTxnAppender is the child of TestKill9Transactions; it does
// nothing in a normal run.
func TestHelperTxnAppender(t *testing.T) {
	dir := os.Getenv(txnHelperDirEnv)
	if dir == "" {
		t.Skip("child process of TestKill9Transactions")
	}
	st, err := Open(dir, Options{Logger: quietLogger(), CheckpointInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.CreatePartition("ktx", 0, TopicConfig{SegmentBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	stopAt := time.Now().Add(60 * time.Second) // bounded even if never killed
	ctx := context.Background()
	for w := int64(1); w <= 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(w))
			seq := int32(0)
			for i := 0; i < 100000 && time.Now().Before(stopAt); i++ {
				var values []string
				for j := 0; j < 1+rng.Intn(3); j++ {
					v := fmt.Sprintf("p%d-t%d-b%d", w, i, j)
					b, err := encodeTxnRecord(w, seq, v)
					if err != nil {
						t.Error(err)
						return
					}
					guard := p.StartTxnVerification(w, 0, seq)
					if _, err := p.Append(ctx, b, AppendOptions{VerificationGuard: guard}); err != nil {
						t.Error(err)
						return
					}
					seq++
					values = append(values, v)
				}
				commit := rng.Intn(3) != 0
				res, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: w, ProducerEpoch: 0, Commit: commit}, AppendOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				word := "abort"
				if commit {
					word = "commit"
				}
				mu.Lock()
				fmt.Printf("%s %d %s\n", word, res.BaseOffset, strings.Join(values, " "))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// encodeTxnRecord builds a one-record transactional batch; safe in goroutines.
func encodeTxnRecord(pid int64, seq int32, value string) ([]byte, error) {
	rec := recordbatch.AppendNewRecord(nil, recordbatch.NewRecord{Key: []byte("k"), Value: []byte(value)})
	return recordbatch.Encode(recordbatch.Header{
		PartitionLeaderEpoch: -1, Attributes: recordbatch.TransactionalBit,
		BaseTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_000,
		ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq, RecordCount: 1,
	}, rec)
}
