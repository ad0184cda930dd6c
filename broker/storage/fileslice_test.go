package storage

import (
	"bytes"
	"errors"
	"io"
	"net"
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
			if !bytes.HasPrefix(want, got) {
				t.Fatalf("ReadSlices(%d, %d): %d bytes, not a prefix of Read's %d", offset, maxBytes, len(got), len(want))
			}
			if maxBytes == 1<<20 && !bytes.Equal(got, want) {
				// A budget past the log end: every batch from offset on.
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

// TestReadSlicesLeavesAnUpToInsideASegmentToRead: a bound inside a
// segment's batches is found only by reading their headers; ReadSlices
// says so instead of sending batches past it.
func TestReadSlicesLeavesAnUpToInsideASegmentToRead(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{})
	for range 5 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 100}))
	}
	if slices, ok, err := p.ReadSlices(0, 1<<20, 6); err != nil || ok || len(slices) != 0 {
		t.Fatalf("upTo inside the segment: %d slices, ok %v, %v; want none, not ok", len(slices), ok, err)
	}
}

// TestFileSliceRefusesATruncatedSegment: bytes located before a
// truncation are not sent after it, where the file may hold other batches
// (a new leader's, after an unclean cut), and a segment deleted meanwhile
// is not read through a closed descriptor.
func TestFileSliceRefusesATruncatedSegment(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{})
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
