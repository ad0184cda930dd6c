package recordbatch

import (
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// zstdRawFrame is a zstd frame holding src in raw blocks, whose window
// descriptor declares 1<<windowLog bytes (as levels 20-22 and --long
// declare theirs). Raw blocks need no encoder, so any window costs
// nothing to write.
func zstdRawFrame(src []byte, windowLog int) []byte {
	f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(windowLog-10) << 3}
	for {
		n := min(len(src), 128<<10)
		last := n == len(src)
		bh := uint32(n) << 3 // block type 0: raw
		if last {
			bh |= 1
		}
		f = append(f, byte(bh), byte(bh>>8), byte(bh>>16))
		f = append(f, src[:n]...)
		if src = src[n:]; last {
			return f
		}
	}
}

// windowBatch is a batch of keyed records k0, k1, ... with timestamps
// 1000, 1010, ..., in one zstd frame declaring 1<<windowLog bytes of
// window.
func windowBatch(n, windowLog int) []byte {
	var recs []byte
	for i := range n {
		recs = AppendNewRecord(recs, NewRecord{OffsetDelta: int32(i), TimestampDelta: int64(10 * i), Key: []byte{'k', byte('0' + i)}, Value: []byte("v")})
	}
	body := zstdRawFrame(recs, windowLog)
	b := make([]byte, HeaderSize+len(body))
	copy(b[HeaderSize:], body)
	putHeader(b, Header{PartitionLeaderEpoch: -1, Attributes: CodecZstd, LastOffsetDelta: int32(n - 1), BaseTimestamp: 1000,
		MaxTimestamp: 1000 + int64(10*(n-1)), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: int32(n)})
	return b
}

// TestStoredFramesOverTheBoundAreRead: a stored zstd frame declaring a
// 16 MiB window, over the default bound, is refused by the produce path
// (ScanRecords) and read whole by the readers of stored data: ListOffsets'
// (ScanStoredRecords) and the log cleaner's (ScanKeys, RewriteRecords
// inflating it again). A frame over MaxZstdMaxWindow (256 MiB), which no
// bound ever allowed, is refused by all of them.
func TestStoredFramesOverTheBoundAreRead(t *testing.T) {
	if ZstdMaxWindow() != DefaultZstdMaxWindow {
		t.Fatalf("bound %d, want the default", ZstdMaxWindow())
	}
	b := windowBatch(3, 24)
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(&h, b); err != nil {
		t.Fatal(err)
	}
	if err := ScanRecords(&h, b, nil); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "16777216-byte window, over the 8388608 bytes tributary.zstd.max.window.bytes allows") {
		t.Fatalf("produce path: %v, want ErrCorrupt naming the window and the setting", err)
	}
	var deltas []int64
	if err := ScanStoredRecords(&h, b, func(r *RecordInfo) error {
		deltas = append(deltas, r.TimestampDelta)
		return nil
	}); err != nil || len(deltas) != 3 || deltas[2] != 20 {
		t.Fatalf("ListOffsets' read: %v, timestamp deltas %v", err, deltas)
	}
	keys := 0
	if err := ScanKeys(&h, b, io.Discard, nil, func(r *RecordInfo) error {
		keys++
		return nil
	}); err != nil || keys != 3 {
		t.Fatalf("cleaner's key scan: %v, %d keys", err, keys)
	}
	nh := h
	nh.RecordCount = 2
	out, err := RewriteRecords(&h, b, nil, nh, func(r *RecordInfo) (bool, int64, error) {
		return r.OffsetDelta != 1, r.TimestampDelta, nil
	})
	if err != nil {
		t.Fatalf("cleaner's rewrite: %v", err)
	}
	oh, err := ParseHeader(out)
	if err != nil || oh.RecordCount != 2 || oh.Codec() != CodecZstd {
		t.Fatalf("rewritten batch %+v, %v", oh, err)
	}

	over := windowBatch(3, 28)
	oh, _ = ParseHeader(over)
	if err := ScanStoredRecords(&oh, over, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ListOffsets' read of a 256 MiB window: %v, want ErrCorrupt", err)
	}
	if err := ScanKeys(&oh, over, io.Discard, nil, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("cleaner's read of a 256 MiB window: %v, want ErrCorrupt", err)
	}
}

// TestWideStoredStreamsGoOneAtATime: a stored frame over the bound is read
// only while its reader holds the one wide slot, and a reader waiting for
// it holds no stream slot meanwhile (the produce path's streams go on); a
// stored frame within the bound does not wait for it.
func TestWideStoredStreamsGoOneAtATime(t *testing.T) {
	var inUse atomic.Int32
	streamHook = func(delta int) { inUse.Add(int32(delta)) }
	t.Cleanup(func() { streamHook = nil })
	wideSlot <- struct{}{} // another wide stream is being read
	held := true
	t.Cleanup(func() {
		if held {
			<-wideSlot
		}
	})

	narrow := windowBatch(3, 20)
	nh, _ := ParseHeader(narrow)
	if err := ScanStoredRecords(&nh, narrow, nil); err != nil {
		t.Fatalf("a 1 MiB window, the wide slot taken: %v", err)
	}

	wide := windowBatch(3, 24)
	wh, _ := ParseHeader(wide)
	done := make(chan error, 1)
	go func() { done <- ScanStoredRecords(&wh, wide, nil) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("a 16 MiB window read while the wide slot was taken (%v)", err)
	default:
	}
	if n := inUse.Load(); n != 0 || len(streamSlots) != 0 {
		t.Fatalf("%d stream slots held (%d taken) while waiting for the wide slot", n, len(streamSlots))
	}
	if err := ScanRecords(&nh, narrow, nil); err != nil {
		t.Fatalf("the produce path beside the waiting stream: %v", err)
	}
	<-wideSlot
	held = false
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the wide stream did not run once the slot was free")
	}
	if n := inUse.Load(); n != 0 || len(wideSlot) != 0 {
		t.Fatalf("%d stream slots, %d wide slots held after the reads", n, len(wideSlot))
	}
}

// TestStoredSingleSegmentFrameOverTheBoundIsRead: a single-segment zstd
// frame (what a producer compressing a batch in one call, librdkafka's
// way, writes) has no window descriptor: its window is its content size,
// which the streaming decoder checks against the bound. One of 16 MiB is
// refused by the produce path at the default bound and read by the
// readers of stored data.
func TestStoredSingleSegmentFrameOverTheBoundIsRead(t *testing.T) {
	if ZstdMaxWindow() != DefaultZstdMaxWindow {
		t.Fatalf("bound %d, want the default", ZstdMaxWindow())
	}
	recs := AppendNewRecord(nil, NewRecord{Key: []byte("k"), Value: make([]byte, 16<<20)})
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithSingleSegment(true))
	if err != nil {
		t.Fatal(err)
	}
	body := enc.EncodeAll(recs, nil)
	var fh zstd.Header
	if err := fh.Decode(body); err != nil || !fh.SingleSegment || fh.FrameContentSize != uint64(len(recs)) {
		t.Fatalf("frame header %+v (%v), want a single segment of %d bytes", fh, err, len(recs))
	}
	b := make([]byte, HeaderSize+len(body))
	copy(b[HeaderSize:], body)
	h := Header{PartitionLeaderEpoch: -1, Attributes: CodecZstd, BaseTimestamp: 1000, MaxTimestamp: 1000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: 1}
	putHeader(b, h)
	if err := ScanRecords(&h, b, nil); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "tributary.zstd.max.window.bytes") {
		t.Fatalf("produce path: %v, want ErrCorrupt naming the setting", err)
	}
	n := 0
	if err := ScanStoredRecords(&h, b, func(*RecordInfo) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("ListOffsets' read: %v, %d records", err, n)
	}
	if err := ScanKeys(&h, b, io.Discard, nil, nil); err != nil {
		t.Fatalf("cleaner's key scan: %v", err)
	}
}
