package storage

import (
	"bytes"
	"errors"
	"io"
	"net"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// tcpPair is a connected loopback TCP pair: SendTo writes to w, the test
// reads r.
func tcpPair(t *testing.T) (w *net.TCPConn, r net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r = <-accepted
	if r == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); r.Close() })
	return c.(*net.TCPConn), r
}

func rawConn(t *testing.T, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// sendSlices sends slices over a fresh TCP pair and returns what arrived.
func sendSlices(t *testing.T, slices []FileSlice) []byte {
	t.Helper()
	w, r := tcpPair(t)
	total := 0
	for i := range slices {
		total += slices[i].Len()
	}
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, total)
		_, err := io.ReadFull(r, b)
		if err != nil {
			b = nil
		}
		got <- b
	}()
	raw := rawConn(t, w)
	for i := range slices {
		n, err := slices[i].SendTo(raw)
		if err != nil {
			t.Fatalf("SendTo: %v", err)
		}
		if n != int64(slices[i].Len()) {
			t.Fatalf("SendTo sent %d of %d bytes", n, slices[i].Len())
		}
	}
	b := <-got
	if b == nil {
		t.Fatal("reading the sent bytes failed")
	}
	return b
}

// TestReadSlicesSendsWhatReadReads: the batches a follower gets by
// sendfile are those Read returns, across segments, from any offset, for
// any budget: the same bytes when the budget covers them, else a prefix
// of whole batches (at least the first, whole), never more.
func TestReadSlicesSendsWhatReadReads(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	// Small segments and index entries: a fetch spans segments and a
	// budget ends between indexed batches.
	p := mustCreate(t, st, "t", 0, TopicConfig{SegmentBytes: 20 << 10, IndexIntervalBytes: 2 << 10})
	for i := range 60 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1 + i%4, valueSize: 100 + 97*(i%13)}))
	}
	leo := p.LogEndOffset()
	if segs := len(p.segments); segs < 3 {
		t.Fatalf("%d segments, want several", segs)
	}
	for _, offset := range []int64{0, 1, 7, 40, leo / 2, leo - 1} {
		for _, maxBytes := range []int32{1, 500, 3000, 9000, 25 << 10, 1 << 20} {
			want, err := p.Read(offset, maxBytes, leo)
			if err != nil {
				t.Fatal(err)
			}
			slices, ok, err := p.ReadSlices(offset, maxBytes, leo)
			if err != nil || !ok {
				t.Fatalf("ReadSlices(%d, %d): ok %v, %v", offset, maxBytes, ok, err)
			}
			got := sendSlices(t, slices)
			if !bytes.Equal(got, want) {
				t.Fatalf("ReadSlices(%d, %d): %d bytes, Read %d", offset, maxBytes, len(got), len(want))
			}
			first, err := recordbatch.ParseHeader(want)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) < first.Size() {
				t.Fatalf("ReadSlices(%d, %d): %d bytes, less than the first batch (%d)", offset, maxBytes, len(got), first.Size())
			}
			if len(got) > max(int(maxBytes), first.Size()) {
				t.Fatalf("ReadSlices(%d, %d): %d bytes, over the budget", offset, maxBytes, len(got))
			}
			for n := 0; n < len(got); {
				h, err := recordbatch.ParseHeader(got[n:])
				if err != nil || n+h.Size() > len(got) {
					t.Fatalf("ReadSlices(%d, %d): a partial batch at %d of %d", offset, maxBytes, n, len(got))
				}
				n += h.Size()
			}
		}
	}
	// At the log end: nothing. Past it: out of range, as Read.
	if slices, ok, err := p.ReadSlices(leo, 1<<20, leo); err != nil || !ok || len(slices) != 0 {
		t.Fatalf("at the log end: %d slices, ok %v, %v", len(slices), ok, err)
	}
	if _, _, err := p.ReadSlices(leo+1, 1<<20, leo+1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("past the log end: %v", err)
	}
}

// TestReadSlicesStopsAtAnUpToInsideASegment: a bound inside a segment's
// batches (a consumer's high watermark or last stable offset below the
// log end) ends the slices where Read ends: before the first batch whose
// last offset is at or past it.
func TestReadSlicesStopsAtAnUpToInsideASegment(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{IndexIntervalBytes: 300})
	for range 12 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 100}))
	}
	for _, upTo := range []int64{1, 2, 3, 6, 7, 15, 23, 24} {
		for _, offset := range []int64{0, 5} {
			want, err := p.Read(offset, 1<<20, upTo)
			if err != nil {
				t.Fatal(err)
			}
			slices, ok, err := p.ReadSlices(offset, 1<<20, upTo)
			if err != nil || !ok {
				t.Fatalf("ReadSlices(%d, up to %d): ok %v, %v", offset, upTo, ok, err)
			}
			if got := sendSlices(t, slices); !bytes.Equal(got, want) {
				t.Fatalf("ReadSlices(%d, up to %d): %d bytes, Read %d", offset, upTo, len(got), len(want))
			}
		}
	}
}

// TestFileSliceRefusesATruncatedSegment: bytes located before a
// truncation are not sent after it, where the file may hold other batches
// (a new leader's, after an unclean cut), and a segment deleted meanwhile
// without a delay (file.delete.delay.ms=0) is not read through a closed
// descriptor. (With the delay it is sent: segdelete_test.go.)
func TestFileSliceRefusesATruncatedSegment(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{FileDeleteDelay: NoFileDeleteDelay})
	for range 10 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1, valueSize: 200}))
	}
	slices, ok, err := p.ReadSlices(2, 1<<20, p.LogEndOffset())
	if err != nil || !ok || len(slices) != 1 {
		t.Fatalf("%d slices, ok %v, %v", len(slices), ok, err)
	}
	if err := p.TruncateTo(5); err != nil {
		t.Fatal(err)
	}
	// As long again as before the cut: only the cut says the bytes changed.
	for range 6 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1, valueSize: 200}))
	}
	w, _ := tcpPair(t)
	if _, err := slices[0].SendTo(rawConn(t, w)); !errors.Is(err, ErrSliceGone) {
		t.Fatalf("after a truncation: %v, want ErrSliceGone", err)
	}

	slices, ok, err = p.ReadSlices(0, 1<<20, p.LogEndOffset())
	if err != nil || !ok || len(slices) != 1 {
		t.Fatalf("%d slices, ok %v, %v", len(slices), ok, err)
	}
	if err := st.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	if _, err := slices[0].SendTo(rawConn(t, w)); !errors.Is(err, ErrSliceGone) {
		t.Fatalf("after the segment was deleted: %v, want ErrSliceGone", err)
	}
}

// TestFileSliceDoesNotHoldTheSegmentWhileTheSocketIsFull: a follower that
// stops reading leaves SendTo waiting for its socket, and the partition
// must still truncate meanwhile (truncation holds the partition's lock,
// so a wait under the segment's lock would stall every append and read
// of the partition behind one slow follower). What the file holds after
// the truncation is then not sent.
func TestFileSliceDoesNotHoldTheSegmentWhileTheSocketIsFull(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{})
	for range 64 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 4, valueSize: 64 << 10 / 4}))
	}
	slices, ok, err := p.ReadSlices(0, 64<<20, p.LogEndOffset())
	if err != nil || !ok || len(slices) != 1 {
		t.Fatalf("%d slices, ok %v, %v", len(slices), ok, err)
	}
	w, r := tcpPair(t)
	// Small buffers on both sides: 4 MiB cannot sit in them.
	if err := w.SetWriteBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	if err := r.(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := slices[0].SendTo(rawConn(t, w))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("SendTo of %d bytes returned (%v) with nobody reading", slices[0].Len(), err)
	case <-time.After(200 * time.Millisecond):
	}
	truncated := make(chan error, 1)
	go func() { truncated <- p.TruncateTo(8) }()
	select {
	case err := <-truncated:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("truncation waited for a socket nobody reads")
	}
	go io.Copy(io.Discard, r)
	select {
	case err := <-done:
		if !errors.Is(err, ErrSliceGone) {
			t.Fatalf("SendTo after the truncation: %v, want ErrSliceGone", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SendTo did not end once the socket drained")
	}
}

// TestReadIsolatedSlicesMatchesReadIsolated: a consumer's fetch by
// sendfile returns batches Read would return, bounded by the high
// watermark or the last stable offset, and the aborted transactions of
// exactly the batches it returns (listing them ends at the offset after
// the last batch, which a slice cut between index entries must know
// without reading the file).
func TestReadIsolatedSlicesMatchesReadIsolated(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{SegmentBytes: 8 << 10, IndexIntervalBytes: 1 << 10})
	// Transactions that begin and end in turn, some aborted, between
	// plain batches, over several segments.
	producers := []*txnClient{{t: t, p: p, pid: 1}, {t: t, p: p, pid: 2}, {t: t, p: p, pid: 3}}
	for i := range 40 {
		c := producers[i%len(producers)]
		c.send(1 + i%3)
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1 + i%4, valueSize: 100 + 37*(i%7)}))
		if i%2 == 1 {
			c.end(i%4 == 1, 0)
		}
	}
	for _, c := range producers {
		c.end(false, 0)
	}
	// A transaction left open: read_committed stops at its first batch,
	// inside the last segment, read_uncommitted at the log end.
	producers[0].send(2)
	mustAppend(t, p, makeBatch(t, batchSpec{records: 3, valueSize: 200}))
	if p.LastStableOffset() >= p.LogEndOffset() {
		t.Fatalf("last stable offset %d, log end %d: the open transaction does not hold read_committed back", p.LastStableOffset(), p.LogEndOffset())
	}
	if segs := len(p.segments); segs < 3 {
		t.Fatalf("%d segments, want several", segs)
	}
	leo := p.LogEndOffset()
	aborted := 0
	for _, isolation := range []Isolation{ReadUncommitted, ReadCommitted} {
		for offset := int64(0); offset < leo; offset += 3 {
			for _, maxBytes := range []int32{1, 700, 2500, 1 << 20} {
				want, err := p.ReadIsolated(offset, maxBytes, isolation)
				if err != nil {
					t.Fatal(err)
				}
				got, err := p.ReadIsolatedSlices(offset, maxBytes, isolation)
				if err != nil {
					t.Fatalf("ReadIsolatedSlices(%d, %d, %d): %v", offset, maxBytes, isolation, err)
				}
				sent := sendSlices(t, got.Slices)
				if len(sent) != got.Len() || !bytes.Equal(want.Records, sent) {
					t.Fatalf("ReadIsolatedSlices(%d, %d, %d): %d bytes, ReadIsolated %d", offset, maxBytes, isolation, len(sent), len(want.Records))
				}
				if got.HighWatermark != want.HighWatermark || got.LastStableOffset != want.LastStableOffset || got.LogStartOffset != want.LogStartOffset {
					t.Fatalf("ReadIsolatedSlices(%d, %d, %d): watermarks %d/%d/%d, ReadIsolated %d/%d/%d", offset, maxBytes, isolation,
						got.HighWatermark, got.LastStableOffset, got.LogStartOffset, want.HighWatermark, want.LastStableOffset, want.LogStartOffset)
				}
				var wantAborted []AbortedTxn
				if isolation == ReadCommitted && len(sent) > 0 {
					wantAborted = p.AbortedTransactions(offset, lastOffsetIn(t, sent)+1)
				}
				if !reflect.DeepEqual(got.AbortedTransactions, wantAborted) {
					t.Fatalf("ReadIsolatedSlices(%d, %d, %d): aborted %+v, want %+v", offset, maxBytes, isolation, got.AbortedTransactions, wantAborted)
				}
				aborted += len(wantAborted)
			}
		}
	}
	if aborted == 0 {
		t.Fatal("no read listed an aborted transaction: the log does not test what it should")
	}
}
