package storage

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// TestCleanerStreamsABomb: a compacted topic holding a batch of a few
// hundred KB whose records inflate to more than 64 MiB (one value of
// zeros) is cleaned with a few MiB allocated per pass (inflating it whole
// took over 300 MB), and cleaned right: the superseded record goes, every
// key's last record stays with its value, the tombstone stays with a
// delete horizon and goes after delete.retention.ms, the batch keeps its
// codec and base offset.
func TestCleanerStreamsABomb(t *testing.T) {
	const size = 64<<20 + 1
	for _, codec := range []int{recordbatch.CodecGzip, recordbatch.CodecLz4, recordbatch.CodecZstd} {
		t.Run(fmtCodec(codec), func(t *testing.T) {
			clock := &fakeClock{now: time.UnixMilli(1_700_000_000_000)}
			ts := clock.now.UnixMilli()
			// Offsets 0-3 the bomb, 4 "b" again, 5 and 6 roll.
			_, p, bomb, recs := compactedBomb(t, clock, codec, []keyValue{{"a", make([]byte, size)}, {"b", []byte("old")}, {"c", []byte("kept")}, {"t", nil}})
			pass := func(what string) {
				t.Helper()
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				if err := p.compact(context.Background()); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				runtime.ReadMemStats(&after)
				n := after.TotalAlloc - before.TotalAlloc
				t.Logf("%s: %d bytes allocated for a %d-byte batch inflating to %d", what, n, len(bomb), len(recs))
				// What the codecs hold (lz4: a 4 MiB block in its decoder
				// and its encoder), the rewritten batch and the segment's
				// writer: 5-13 MB. A collection during the pass empties
				// the codec pools too, so a pass may build its codecs
				// again (lz4: 26.8 MB once at load 11, zwin18), as the
				// race detector's sync.Pool does on purpose (lz4: 22-26
				// MB). Half the records inflated once still tells a
				// streamed pass from one that inflates them.
				limit := uint64(size / 2) // 32 MiB
				if raceEnabled {
					limit = size
				}
				if n > limit {
					t.Fatalf("%s: %d bytes allocated for a %d-byte batch inflating to %d", what, n, len(bomb), len(recs))
				}
			}
			// first reads the log's first batch and its records.
			first := func() (recordbatch.Header, map[string][]byte) {
				t.Helper()
				b, err := p.Read(0, 1<<20, p.HighWatermark())
				if err != nil {
					t.Fatal(err)
				}
				h, err := recordbatch.ParseHeader(b)
				if err != nil {
					t.Fatal(err)
				}
				values := map[string][]byte{}
				if err := forEachRecordOf(&h, b[:h.Size()], func(r *recordbatch.Record) error {
					values[string(r.Key)] = bytes.Clone(r.Value)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				return h, values
			}

			pass("first pass")
			latest := latestByKey(t, p)
			for k, want := range map[string]keyInfo{"a": {0, 1, false}, "b": {4, 1, false}, "c": {2, 1, false}, "t": {3, 1, true}} {
				if latest[k] != want {
					t.Fatalf("first pass: key %s %+v, want %+v", k, latest[k], want)
				}
			}
			h, values := first()
			if h.BaseOffset != 0 || h.Codec() != codec || h.RecordCount != 3 || !h.HasDeleteHorizon() || h.BaseTimestamp != ts+time.Hour.Milliseconds() {
				t.Fatalf("first pass: rewritten batch %+v", h)
			}
			if len(values["a"]) != size || !bytes.Equal(values["a"], make([]byte, size)) || string(values["c"]) != "kept" || values["t"] != nil {
				t.Fatalf("first pass: values a %d bytes, c %q, t %q", len(values["a"]), values["c"], values["t"])
			}

			clock.now = clock.now.Add(2 * time.Hour)
			pass("pass past the delete horizon")
			latest = latestByKey(t, p)
			if _, ok := latest["t"]; ok || latest["a"] != (keyInfo{0, 1, false}) || latest["c"] != (keyInfo{2, 1, false}) {
				t.Fatalf("past the horizon: %v", latest)
			}
			h, values = first()
			if h.BaseOffset != 0 || h.Codec() != codec || h.RecordCount != 2 || h.HasDeleteHorizon() || h.BaseTimestamp != ts || len(values["a"]) != size {
				t.Fatalf("past the horizon: rewritten batch %+v, a %d bytes", h, len(values["a"]))
			}
		})
	}
}

func fmtCodec(codec int) string {
	return [...]string{"none", "gzip", "snappy", "lz4", "zstd"}[codec]
}

type keyValue struct {
	key   string
	value []byte // nil: a tombstone
}

// compactedBomb opens a store on clock with a compacted partition, appends
// records as one batch of codec at the clock's time, then key "b" again
// and two batches that each roll the segment, and checkpoints, so that
// the first segment can be cleaned. It returns the store, the partition,
// the batch and its records inflated.
func compactedBomb(t *testing.T, clock *fakeClock, codec int, records []keyValue) (*Store, *Partition, []byte, []byte) {
	t.Helper()
	st := openStore(t, t.TempDir(), Options{Now: clock.Now})
	p := mustCreate(t, st, "bombs", 0, TopicConfig{CleanupPolicy: CleanupCompact, SegmentBytes: 4096, DeleteRetentionMs: time.Hour})
	var recs []byte
	for i, r := range records {
		recs = recordbatch.AppendNewRecord(recs, recordbatch.NewRecord{OffsetDelta: int32(i), TimestampDelta: int64(i), Key: []byte(r.key), Value: r.value})
	}
	ts, last := clock.now.UnixMilli(), int32(len(records)-1)
	bomb, err := recordbatch.Encode(recordbatch.Header{Attributes: int16(codec), LastOffsetDelta: last, BaseTimestamp: ts, MaxTimestamp: ts + int64(last),
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: int32(len(records))}, recs)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, p, bomb)
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"b"}, valueSize: 10, timestamp: ts}))
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"roll"}, valueSize: 5000})) // rolls
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"y"}, valueSize: 5000}))    // rolls
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
	return st, p, bomb, recs
}
