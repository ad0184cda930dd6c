package storage

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// wideZstdBatch is a batch of one keyed record per key, timestamps ts,
// ts+10, ..., in one zstd frame (raw blocks) whose window descriptor
// declares 1<<windowLog bytes, as levels 20-22 and --long declare theirs.
func wideZstdBatch(t *testing.T, ts int64, windowLog int, keys ...string) []byte {
	t.Helper()
	var recs []byte
	for i, k := range keys {
		recs = recordbatch.AppendNewRecord(recs, recordbatch.NewRecord{OffsetDelta: int32(i), TimestampDelta: int64(10 * i), Key: []byte(k), Value: []byte("v")})
	}
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(windowLog-10) << 3}
	if len(recs) >= 128<<10 {
		t.Fatal("records past one raw block")
	}
	bh := uint32(len(recs))<<3 | 1 // the last block, raw
	frame = append(append(frame, byte(bh), byte(bh>>8), byte(bh>>16)), recs...)
	n := int32(len(keys))
	plain, err := recordbatch.Encode(recordbatch.Header{LastOffsetDelta: n - 1, BaseTimestamp: ts, MaxTimestamp: ts + int64(10*(n-1)),
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: n}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := append(plain[:recordbatch.HeaderSize:recordbatch.HeaderSize], frame...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-recordbatch.LogOverhead)) // batch length
	binary.BigEndian.PutUint16(b[21:], recordbatch.CodecZstd)                 // attributes
	binary.BigEndian.PutUint32(b[17:], recordbatch.ComputeCRC(b))
	return b
}

// TestStoredWideZstdFrameStaysReadable: a compacted partition takes a zstd
// batch whose frame declares a 16 MiB window while
// tributary.zstd.max.window.bytes allows it; the bound then goes back to
// 8 MiB. ListOffsets by timestamp still finds the record inside the batch
// (not the batch's first offset), and the cleaner still cleans the
// partition (it stopped on the batch at every pass), removing the record
// a later batch superseded and keeping the batch's codec.
func TestStoredWideZstdFrameStaysReadable(t *testing.T) {
	t.Cleanup(func() { _ = recordbatch.SetZstdMaxWindow(recordbatch.DefaultZstdMaxWindow) })
	clock := &fakeClock{now: time.UnixMilli(1_700_000_000_000)}
	ts := clock.now.UnixMilli()
	st := openStore(t, t.TempDir(), Options{Now: clock.Now})
	p := mustCreate(t, st, "wide", 0, TopicConfig{CleanupPolicy: CleanupCompact, SegmentBytes: 4096, DeleteRetentionMs: time.Hour})

	if err := recordbatch.SetZstdMaxWindow(16 << 20); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, p, wideZstdBatch(t, ts, 24, "a", "b", "c")) // offsets 0-2, ts, ts+10, ts+20
	if err := recordbatch.SetZstdMaxWindow(recordbatch.DefaultZstdMaxWindow); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(context.Background(), wideZstdBatch(t, ts, 24, "d"), AppendOptions{}); err == nil {
		t.Fatal("a 16 MiB window produced at the 8 MiB bound was appended")
	}
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"b"}, valueSize: 10, timestamp: ts + 30})) // 3
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"roll"}, valueSize: 5000}))                // rolls
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"y"}, valueSize: 5000}))                   // rolls
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}

	off, rts, err := p.OffsetForTimestamp(ts + 15)
	if err != nil || off != 2 || rts != ts+20 {
		t.Errorf("ListOffsets at ts+15: offset %d, timestamp %d (%v), want 2 at ts+20", off, rts-ts, err)
	}
	if err := p.compact(context.Background()); err != nil {
		t.Fatalf("cleaner pass: %v", err)
	}
	latest := latestByKey(t, p)
	for k, want := range map[string]keyInfo{"a": {0, 1, false}, "b": {3, 1, false}, "c": {2, 1, false}} {
		if latest[k] != want {
			t.Fatalf("after the pass: key %s %+v, want %+v", k, latest[k], want)
		}
	}
	b, err := p.Read(0, 1<<20, p.HighWatermark())
	if err != nil {
		t.Fatal(err)
	}
	h, err := recordbatch.ParseHeader(b)
	if err != nil || h.BaseOffset != 0 || h.RecordCount != 2 || h.Codec() != recordbatch.CodecZstd {
		t.Fatalf("the cleaned batch %+v (%v), want 2 records of zstd at offset 0", h, err)
	}
}
