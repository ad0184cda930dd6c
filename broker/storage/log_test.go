package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

func TestAppendRejectsBadBatches(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "bad", 0, TopicConfig{MaxMessageBytes: 2000})
	good := func() []byte { return makeBatch(t, batchSpec{records: 2, valueSize: 10}) }
	for _, tc := range []struct {
		name   string
		mutate func([]byte) []byte
		want   error
	}{
		{"empty", func([]byte) []byte { return nil }, ErrInvalidRecord},
		{"crc flipped", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, ErrCorruptMessage},
		{"magic 1", func(b []byte) []byte { b[16] = 1; return b }, ErrUnsupportedMessageFormat},
		{"truncated", func(b []byte) []byte { return b[:len(b)-3] }, ErrCorruptMessage},
		{"trailing garbage", func(b []byte) []byte { return append(b, 1, 2, 3) }, ErrCorruptMessage},
		{"length too small", func(b []byte) []byte { b[11] = 5; b[10], b[9], b[8] = 0, 0, 0; return b }, ErrCorruptMessage},
		{"too large", func([]byte) []byte { return makeBatch(t, batchSpec{records: 1, valueSize: 3000}) }, ErrRecordTooLarge},
		{"count mismatch", func(b []byte) []byte {
			h, _ := recordbatch.ParseHeader(b)
			h.RecordCount = 3
			h.LastOffsetDelta = 2
			nb, _ := recordbatch.Encode(h, b[recordbatch.HeaderSize:])
			return nb
		}, ErrInvalidRecord},
		{"control batch", func(b []byte) []byte {
			h, _ := recordbatch.ParseHeader(b)
			h.Attributes |= recordbatch.ControlBit
			nb, _ := recordbatch.Encode(h, b[recordbatch.HeaderSize:])
			return nb
		}, ErrInvalidRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Append(context.Background(), tc.mutate(good()), AppendOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Append: err %v, want %v", err, tc.want)
			}
			if p.LogEndOffset() != 0 || p.Size() != 0 {
				t.Fatalf("a rejected batch changed the log: end %d, size %d", p.LogEndOffset(), p.Size())
			}
		})
	}
}

func TestAllCodecsAcceptedAndKeysChecked(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "codecs", 0, TopicConfig{CleanupPolicy: CleanupCompact})
	for codec := recordbatch.CodecNone; codec <= recordbatch.CodecZstd; codec++ {
		res, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 5, valueSize: 200, codec: codec}), AppendOptions{})
		if err != nil {
			t.Fatalf("codec %d: %v", codec, err)
		}
		if res.LastOffset-res.BaseOffset != 4 {
			t.Fatalf("codec %d: offsets %+v", codec, res)
		}
		_, err = p.Append(context.Background(), makeBatch(t, batchSpec{records: 2, codec: codec, keys: []string{"a", keyNull}}), AppendOptions{})
		if !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("codec %d: keyless record on a compacted topic: err %v, want ErrInvalidRecord", codec, err)
		}
	}
}

func TestLogAppendTimeRewritesTimestampAndCRC(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_800_000_000_000)}
	st := openStore(t, t.TempDir(), Options{Now: clock.Now})
	p := mustCreate(t, st, "lat", 0, TopicConfig{MessageTimestampType: LogAppendTime})
	res := mustAppend(t, p, makeBatch(t, batchSpec{records: 3}))
	if res.LogAppendTime != clock.now.UnixMilli() {
		t.Fatalf("LogAppendTime = %d, want %d", res.LogAppendTime, clock.now.UnixMilli())
	}
	hs := readAll(t, p, 0, p.HighWatermark()) // readAll checks the CRC
	if !hs[0].IsLogAppendTime() || hs[0].MaxTimestamp != clock.now.UnixMilli() {
		t.Fatalf("stored batch: LogAppendTime %v, maxTimestamp %d", hs[0].IsLogAppendTime(), hs[0].MaxTimestamp)
	}
}

func TestIdempotentProducer(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "idem", 0, TopicConfig{})
	send := func(epoch int16, seq int32, n int) (AppendResult, error) {
		return p.Append(context.Background(), makeBatch(t, batchSpec{records: n, producerID: 42, producerEpoch: epoch, baseSequence: seq}), AppendOptions{})
	}
	steps := []struct {
		name     string
		epoch    int16
		seq      int32
		n        int
		wantErr  error
		wantBase int64
		wantDup  bool
	}{
		{"unknown producer must start at 0", 0, 5, 1, ErrUnknownProducerID, 0, false},
		{"first batch", 0, 0, 3, nil, 0, false},
		{"second batch", 0, 3, 2, nil, 3, false},
		{"duplicate of the first", 0, 0, 3, nil, 0, true},
		{"duplicate of the second", 0, 3, 2, nil, 3, true},
		{"gap", 0, 9, 1, ErrOutOfOrderSequence, 0, false},
		{"next in order", 0, 5, 1, nil, 5, false},
		{"new epoch must start at 0", 1, 6, 1, ErrOutOfOrderSequence, 0, false},
		{"new epoch", 1, 0, 1, nil, 6, false},
		{"old epoch fenced", 0, 6, 1, ErrInvalidProducerEpoch, 0, false},
	}
	for _, s := range steps {
		res, err := send(s.epoch, s.seq, s.n)
		if !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: err %v, want %v", s.name, err, s.wantErr)
		}
		if err == nil && (res.BaseOffset != s.wantBase || res.Duplicate != s.wantDup) {
			t.Fatalf("%s: %+v, want base %d duplicate %v", s.name, res, s.wantBase, s.wantDup)
		}
	}
	if p.LogEndOffset() != 7 {
		t.Fatalf("LogEndOffset = %d, want 7 (duplicates write nothing)", p.LogEndOffset())
	}
	// Producer state survives a clean restart and a crash.
	dir := st.Dir()
	crashed := crashCopy(t, dir)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, crashed} {
		st2, err := Open(d, Options{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		p2, _ := st2.Partition("idem", 0)
		res, err := p2.Append(context.Background(), makeBatch(t, batchSpec{records: 1, producerID: 42, producerEpoch: 1, baseSequence: 0}), AppendOptions{})
		if err != nil || !res.Duplicate || res.BaseOffset != 6 {
			t.Fatalf("%s: resend after restart: %+v, %v; want duplicate at 6", d, res, err)
		}
		if _, err := p2.Append(context.Background(), makeBatch(t, batchSpec{records: 1, producerID: 42, producerEpoch: 1, baseSequence: 1}), AppendOptions{}); err != nil {
			t.Fatalf("%s: next sequence after restart: %v", d, err)
		}
		st2.Close()
	}
}

func TestDuplicateWindowIsFiveBatches(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "win", 0, TopicConfig{})
	for i := 0; i < 7; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1, producerID: 9, producerEpoch: 0, baseSequence: int32(i)}))
	}
	res, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 1, producerID: 9, producerEpoch: 0, baseSequence: 2}), AppendOptions{})
	if err != nil || !res.Duplicate || res.BaseOffset != 2 {
		t.Fatalf("resend of the 5th-newest batch: %+v, %v; want duplicate at 2", res, err)
	}
	if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 1, producerID: 9, producerEpoch: 0, baseSequence: 1}), AppendOptions{}); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("resend older than the window: err %v, want ErrOutOfOrderSequence", err)
	}
}

func TestRollAndIndexLookups(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_700_000_000_000)}
	st := openStore(t, t.TempDir(), Options{Now: clock.Now})
	p := mustCreate(t, st, "roll", 0, TopicConfig{SegmentBytes: 1500, IndexIntervalBytes: 200, SegmentMs: time.Hour})
	for i := 0; i < 40; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 30, timestamp: 1_700_000_000_000 + int64(i)*1000}))
	}
	segs := segmentCount(t, p)
	if segs < 4 {
		t.Fatalf("%d segments after 40 batches with segment.bytes=1500, want several", segs)
	}
	clock.now = clock.now.Add(2 * time.Hour)
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1}))
	if got := segmentCount(t, p); got != segs+1 {
		t.Fatalf("segment.ms did not roll: %d segments, want %d", got, segs+1)
	}
	// Every offset reads back from the batch that holds it.
	for off := int64(0); off < 80; off++ {
		b, err := p.Read(off, 1, p.HighWatermark())
		if err != nil {
			t.Fatal(err)
		}
		h, _ := recordbatch.ParseHeader(b)
		if h.BaseOffset > off || h.LastOffset() < off || len(b) != h.Size() {
			t.Fatalf("Read(%d) gave batch [%d,%d] of %d bytes", off, h.BaseOffset, h.LastOffset(), len(b))
		}
	}
	// Timestamps: batch i holds records at base+i*1000 and base+i*1000+1.
	for _, tc := range []struct{ ts, wantOff, wantTs int64 }{
		{1_700_000_000_000, 0, 1_700_000_000_000},
		{1_700_000_000_001, 1, 1_700_000_000_001},
		{1_700_000_000_002, 2, 1_700_000_001_000},
		{1_700_000_025_000, 50, 1_700_000_025_000},
		{1_700_000_039_001, 79, 1_700_000_039_001},
		{1_800_000_000_000, -1, -1},
	} {
		off, ts, err := p.OffsetForTimestamp(tc.ts)
		if err != nil || off != tc.wantOff || ts != tc.wantTs {
			t.Errorf("OffsetForTimestamp(%d) = %d, %d, %v; want %d, %d", tc.ts, off, ts, err, tc.wantOff, tc.wantTs)
		}
	}
	if off, _, _ := p.OffsetForTimestamp(-2); off != 0 {
		t.Errorf("earliest = %d", off)
	}
	if off, _, _ := p.OffsetForTimestamp(-1); off != 81 {
		t.Errorf("latest = %d, want 81", off)
	}
}

func segmentCount(t *testing.T, p *Partition) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(p.Dir(), "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestRetention(t *testing.T) {
	t.Run("by time", func(t *testing.T) {
		clock := &fakeClock{now: time.UnixMilli(1_700_000_000_000)}
		st := openStore(t, t.TempDir(), Options{Now: clock.Now})
		p := mustCreate(t, st, "rt", 0, TopicConfig{SegmentBytes: 500, RetentionMs: time.Hour})
		for i := 0; i < 10; i++ {
			mustAppend(t, p, makeBatch(t, batchSpec{records: 1, valueSize: 200, timestamp: clock.now.UnixMilli()}))
		}
		clock.now = clock.now.Add(30 * time.Minute)
		for i := 0; i < 4; i++ {
			mustAppend(t, p, makeBatch(t, batchSpec{records: 1, valueSize: 200, timestamp: clock.now.UnixMilli()}))
		}
		clock.now = clock.now.Add(45 * time.Minute) // first 10 are 75 min old, last 4 are 45
		st.RunCleaner(context.Background())
		if got := p.LogStartOffset(); got != 10 {
			t.Fatalf("log start after time retention = %d, want 10", got)
		}
		if _, err := p.Read(9, 100, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read of a retained-away offset: %v", err)
		}
		clock.now = clock.now.Add(time.Hour)
		st.RunCleaner(context.Background())
		if p.Size() != 0 || p.LogStartOffset() != 14 || p.LogEndOffset() != 14 {
			t.Fatalf("all expired: size %d start %d end %d, want 0, 14, 14", p.Size(), p.LogStartOffset(), p.LogEndOffset())
		}
		if res := mustAppend(t, p, makeBatch(t, batchSpec{})); res.BaseOffset != 14 {
			t.Fatalf("append after full expiry at %d, want 14", res.BaseOffset)
		}
	})
	t.Run("by size", func(t *testing.T) {
		st := openStore(t, t.TempDir(), Options{})
		p := mustCreate(t, st, "rs", 0, TopicConfig{SegmentBytes: 1000, RetentionBytes: 2500, RetentionMs: -1})
		for i := 0; i < 30; i++ {
			mustAppend(t, p, makeBatch(t, batchSpec{records: 1, valueSize: 200}))
		}
		st.RunCleaner(context.Background())
		// As Kafka: a segment goes only if the rest still holds
		// retention.bytes, so what stays is within one segment above it.
		if size := p.Size(); size < 2500 || size >= 2500+1000 {
			t.Fatalf("size after retention.bytes=2500: %d", size)
		}
		if got := readAll(t, p, p.LogStartOffset(), p.HighWatermark()); int64(len(got)) != 30-p.LogStartOffset() {
			t.Fatalf("read %d batches from %d", len(got), p.LogStartOffset())
		}
	})
}

func TestDeleteRecordsBefore(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "dr", 0, TopicConfig{SegmentBytes: 600})
	for i := 0; i < 20; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 50}))
	}
	if _, err := p.DeleteRecordsBefore(41); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("delete past the high watermark: %v", err)
	}
	start, err := p.DeleteRecordsBefore(25)
	if err != nil || start != 25 {
		t.Fatalf("DeleteRecordsBefore(25) = %d, %v", start, err)
	}
	if _, err := p.Read(24, 100, 40); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the new start: %v", err)
	}
	b, err := p.Read(25, 1, 40)
	if err != nil || len(b) == 0 {
		t.Fatalf("read at the new start: %d bytes, %v", len(b), err)
	}
	if h, _ := recordbatch.ParseHeader(b); h.BaseOffset != 24 {
		t.Fatalf("read at 25 returned batch %d, want the batch [24,25] holding it", h.BaseOffset)
	}
	if segmentCount(t, p) >= 10 {
		t.Fatalf("segments below the start were not deleted")
	}
	crashed := crashCopy(t, dir)
	st.Close()
	for _, d := range []string{dir, crashed} {
		st2 := openStore(t, d, Options{})
		p2, _ := st2.Partition("dr", 0)
		if p2.LogStartOffset() != 25 {
			t.Fatalf("%s: log start after restart = %d, want 25", d, p2.LogStartOffset())
		}
		st2.Close()
	}
}

func TestLeaderEpochs(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "ep", 0, TopicConfig{})
	for _, step := range []struct {
		epoch int32
		n     int
	}{{0, 3}, {2, 2}, {5, 4}} {
		for i := 0; i < step.n; i++ {
			if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 2}), AppendOptions{LeaderEpoch: step.epoch}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Epoch 0 starts at 0, epoch 2 at 6, epoch 5 at 10; LEO 18.
	check := func(p *Partition, label string) {
		t.Helper()
		for _, tc := range []struct {
			req       int32
			wantEpoch int32
			wantEnd   int64
		}{{0, 0, 6}, {1, 0, 6}, {2, 2, 10}, {4, 2, 10}, {5, 5, 18}, {6, -1, -1}, {-1, -1, -1}} {
			e, end := p.EndOffsetForLeaderEpoch(tc.req)
			if e != tc.wantEpoch || end != tc.wantEnd {
				t.Errorf("%s: EndOffsetForLeaderEpoch(%d) = %d, %d; want %d, %d", label, tc.req, e, end, tc.wantEpoch, tc.wantEnd)
			}
		}
	}
	check(p, "live")
	crashed := crashCopy(t, dir)
	st2 := openStore(t, crashed, Options{})
	p2, _ := st2.Partition("ep", 0)
	check(p2, "after crash")
	// Truncation for a diverged follower drops epoch 5 entirely.
	if err := p2.TruncateTo(10); err != nil {
		t.Fatal(err)
	}
	if p2.LogEndOffset() != 10 {
		t.Fatalf("LEO after TruncateTo(10) = %d", p2.LogEndOffset())
	}
	if e, end := p2.EndOffsetForLeaderEpoch(2); e != 2 || end != 10 {
		t.Fatalf("after truncation, epoch 2 -> %d, %d; want 2, 10 (the latest epoch ends at the log end)", e, end)
	}
	if e, end := p2.EndOffsetForLeaderEpoch(5); e != -1 || end != -1 {
		t.Fatalf("after truncation, epoch 5 -> %d, %d; want -1, -1 (unknown, as Kafka)", e, end)
	}
	if res, err := p2.Append(context.Background(), makeBatch(t, batchSpec{}), AppendOptions{LeaderEpoch: 7}); err != nil || res.BaseOffset != 10 {
		t.Fatalf("append after truncation: %+v %v", res, err)
	}
}

func TestTruncateToInsideBatchAndAcrossSegments(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "tr", 0, TopicConfig{SegmentBytes: 400})
	for i := 0; i < 12; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 3, valueSize: 20, producerID: 5, producerEpoch: 0, baseSequence: int32(3 * i)}))
	}
	if err := p.TruncateTo(7); err != nil { // inside batch [6,8]: it goes whole
		t.Fatal(err)
	}
	if p.LogEndOffset() != 6 || p.HighWatermark() != 6 {
		t.Fatalf("after TruncateTo(7): end %d, hw %d; want 6", p.LogEndOffset(), p.HighWatermark())
	}
	if got := len(readAll(t, p, 0, 6)); got != 2 {
		t.Fatalf("%d batches left, want 2", got)
	}
	// Producer state was rebuilt: sequence 6 is next again.
	if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 1, producerID: 5, producerEpoch: 0, baseSequence: 6}), AppendOptions{}); err != nil {
		t.Fatalf("append after truncation: %v", err)
	}
}

func TestCompaction(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_700_000_000_000)}
	dir := t.TempDir()
	st := openStore(t, dir, Options{Now: clock.Now})
	p := mustCreate(t, st, "cmp", 0, TopicConfig{CleanupPolicy: CleanupCompact, SegmentBytes: 600, DeleteRetentionMs: time.Hour})
	// 3 rounds writing keys a..e; round 2 deletes "b"; all with various codecs.
	keys := []string{"a", "b", "c", "d", "e"}
	for round := 0; round < 3; round++ {
		for i, k := range keys {
			spec := batchSpec{records: 1, keys: []string{k}, valueSize: 20, codec: (round + i) % 5, timestamp: clock.now.UnixMilli()}
			if round == 2 && k == "b" {
				spec.tombstones = map[int]bool{0: true}
			}
			mustAppend(t, p, makeBatch(t, spec))
		}
	}
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"z"}, valueSize: 600})) // roll, so the rounds are cleanable
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"y"}}))
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
	before := p.Size()
	st.RunCleaner(context.Background())
	latest := latestByKey(t, p)
	// Only round 2 survives for a..e; offsets are preserved.
	for i, k := range keys {
		want := int64(10 + i)
		if latest[k].offset != want || latest[k].count != 1 {
			t.Fatalf("key %s: latest at %d seen %d times, want once at %d", k, latest[k].offset, latest[k].count, want)
		}
	}
	if !latest["b"].tombstone {
		t.Fatal("tombstone for b removed before delete.retention.ms")
	}
	if p.Size() >= before {
		t.Fatalf("compaction did not shrink the log: %d -> %d", before, p.Size())
	}
	if p.LogEndOffset() != 17 {
		t.Fatalf("compaction changed the log end: %d", p.LogEndOffset())
	}
	// A second round supersedes keys whose latest record is in the
	// already-cleaned part (the next pass maps only the new segments).
	mustAppend(t, p, makeBatch(t, batchSpec{records: 2, keys: []string{"a", "c"}, valueSize: 300})) // offsets 17, 18
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"x"}, valueSize: 600}))      // 19, rolls
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"w"}}))                      // 20, rolls
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
	st.RunCleaner(context.Background())
	latest = latestByKey(t, p)
	if latest["a"].offset != 17 || latest["a"].count != 1 || latest["c"].offset != 18 || latest["c"].count != 1 || latest["d"].offset != 13 {
		t.Fatalf("second pass: a %+v c %+v d %+v", latest["a"], latest["c"], latest["d"])
	}
	// Past the delete horizon the tombstone goes.
	clock.now = clock.now.Add(2 * time.Hour)
	st.RunCleaner(context.Background())
	if _, ok := latestByKey(t, p)["b"]; ok {
		t.Fatal("tombstone for b kept past delete.retention.ms")
	}
	// The compacted log survives a crash and reads the same.
	crashed := crashCopy(t, dir)
	st2 := openStore(t, crashed, Options{Now: clock.Now})
	p2, _ := st2.Partition("cmp", 0)
	got := latestByKey(t, p2)
	if len(got) != 8 || got["a"].offset != 17 || got["e"].offset != 14 {
		t.Fatalf("after crash: %v", got)
	}
	if res := mustAppend(t, p2, makeBatch(t, batchSpec{records: 1, keys: []string{"q"}})); res.BaseOffset != 21 {
		t.Fatalf("append after compaction and crash at %d, want 21", res.BaseOffset)
	}
}

type keyInfo struct {
	offset    int64
	count     int
	tombstone bool
}

func latestByKey(t *testing.T, p *Partition) map[string]keyInfo {
	t.Helper()
	out := map[string]keyInfo{}
	b, err := p.Read(p.LogStartOffset(), 1<<20, p.HighWatermark())
	if err != nil {
		t.Fatal(err)
	}
	prev := int64(-1)
	for len(b) > 0 {
		h, err := recordbatch.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := recordbatch.Check(&h, b[:h.Size()]); err != nil {
			t.Fatalf("compacted batch at %d fails its check: %v", h.BaseOffset, err)
		}
		err = forEachRecordOf(&h, b[:h.Size()], func(r *recordbatch.Record) error {
			off := h.BaseOffset + int64(r.OffsetDelta)
			if off <= prev {
				return fmt.Errorf("offsets not increasing: %d after %d", off, prev)
			}
			prev = off
			ki := out[string(r.Key)]
			out[string(r.Key)] = keyInfo{offset: off, count: ki.count + 1, tombstone: r.Value == nil}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		b = b[h.Size():]
	}
	return out
}

// TestDeleteTopicFreesDisk: with file.delete.delay.ms=0 the directories go
// at once. (With a delay: TestDeleteTopicWaitsForTheDelay.)
func TestDeleteTopicFreesDisk(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	for i := int32(0); i < 3; i++ {
		p := mustCreate(t, st, "gone", i, TopicConfig{FileDeleteDelay: NoFileDeleteDelay})
		mustAppend(t, p, makeBatch(t, batchSpec{records: 10, valueSize: 100}))
	}
	keep := mustCreate(t, st, "kept", 0, TopicConfig{})
	if err := st.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(st.Dir())
	for _, e := range entries {
		if e.IsDir() && e.Name() != "kept-0" {
			t.Fatalf("directory %s left after DeleteTopic", e.Name())
		}
	}
	if _, ok := st.Partition("gone", 0); ok {
		t.Fatal("deleted partition still listed")
	}
	if !errors.Is(st.DeleteTopic("gone"), ErrUnknownTopicOrPartition) {
		t.Fatal("deleting twice should report an unknown topic")
	}
	mustAppend(t, keep, makeBatch(t, batchSpec{}))
	// Re-creating the topic starts an empty log that survives a restart.
	again := mustCreate(t, st, "gone", 0, TopicConfig{})
	if again.LogEndOffset() != 0 {
		t.Fatalf("re-created partition starts at %d", again.LogEndOffset())
	}
	mustAppend(t, again, makeBatch(t, batchSpec{records: 2}))
	dir := st.Dir()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := openStore(t, dir, Options{})
	if p, ok := st2.Partition("gone", 0); !ok || p.LogEndOffset() != 2 {
		t.Fatal("re-created partition lost at restart")
	}
	if _, ok := st2.Partition("gone", 1); ok {
		t.Fatal("a deleted partition came back at restart")
	}
}

// TestConcurrentAppendsAndReads runs producers on several partitions and
// readers that must only ever see whole, CRC-valid batches below the high
// watermark. Run with -race.
func TestConcurrentAppendsAndReads(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	const partitions, producers, batches = 3, 4, 40
	template := makeBatch(t, batchSpec{records: 2, valueSize: 64})
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for pi := int32(0); pi < partitions; pi++ {
		p := mustCreate(t, st, "conc", pi, TopicConfig{SegmentBytes: 4000})
		for w := 0; w < producers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < batches; i++ {
					if _, err := p.Append(ctx, bytes.Clone(template), AppendOptions{}); err != nil {
						t.Errorf("append: %v", err)
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := int64(0)
			deadline := time.Now().Add(20 * time.Second)
			for next < producers*batches*2 && time.Now().Before(deadline) {
				hw := p.HighWatermark()
				b, err := p.Read(next, 1500, hw)
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				if len(b) == 0 {
					select {
					case <-p.Wait(ctx, next):
					case <-time.After(time.Second):
					}
					continue
				}
				for len(b) > 0 {
					h, err := recordbatch.ParseHeader(b)
					if err != nil || recordbatch.Check(&h, b[:h.Size()]) != nil || h.BaseOffset != next || h.LastOffset() >= hw {
						t.Errorf("reader saw a bad batch at %d (hw %d): %v", next, hw, err)
						return
					}
					next = h.LastOffset() + 1
					b = b[h.Size():]
				}
			}
			if next != producers*batches*2 {
				t.Errorf("reader reached %d, want %d", next, producers*batches*2)
			}
		}()
	}
	wg.Wait()
}

func TestFlushPolicies(t *testing.T) {
	for _, policy := range []FlushPolicy{FlushGroup, FlushInterval, FlushNone} {
		t.Run(string(policy), func(t *testing.T) {
			dir := t.TempDir()
			st := openStore(t, dir, Options{FlushPolicy: policy, FlushInterval: 10 * time.Millisecond})
			p := mustCreate(t, st, "fp", 0, TopicConfig{})
			mustAppend(t, p, makeBatch(t, batchSpec{records: 4}))
			if p.HighWatermark() != 4 {
				t.Fatalf("high watermark after an acknowledged append = %d, want 4", p.HighWatermark())
			}
			if policy == FlushInterval {
				deadline := time.Now().Add(5 * time.Second)
				for p.durable.Load() < 4 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if p.durable.Load() < 4 {
					t.Fatal("interval flusher never fsynced")
				}
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			st2 := openStore(t, dir, Options{FlushPolicy: policy})
			p2, _ := st2.Partition("fp", 0)
			if p2.LogEndOffset() != 4 {
				t.Fatalf("after reopen: end %d", p2.LogEndOffset())
			}
		})
	}
	if _, err := ParseFlushPolicy("sometimes"); err == nil {
		t.Fatal("ParseFlushPolicy accepted nonsense")
	}
}

func TestOpenTwiceIsRefused(t *testing.T) {
	dir := t.TempDir()
	openStore(t, dir, Options{})
	if _, err := Open(dir, Options{Logger: quietLogger()}); err == nil {
		t.Fatal("a second Open of the same directory succeeded")
	}
}

// TestFsyncFailure: under group the unacknowledged tail is cut and its
// appends fail; under interval acknowledged data is kept.
func TestFsyncFailure(t *testing.T) {
	injected := errors.New("injected EIO")
	t.Run("group", func(t *testing.T) {
		st := openStore(t, t.TempDir(), Options{})
		p := mustCreate(t, st, "eio", 0, TopicConfig{})
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2}))
		st.syncData = func(*os.File) error { return injected }
		if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 3}), AppendOptions{}); !errors.Is(err, ErrStorage) {
			t.Fatalf("append with failing fsync: err %v, want ErrStorage", err)
		}
		if p.LogEndOffset() != 2 || p.HighWatermark() != 2 {
			t.Fatalf("after the failed fsync: end %d hw %d, want 2", p.LogEndOffset(), p.HighWatermark())
		}
		st.syncData = (*os.File).Sync
		if res := mustAppend(t, p, makeBatch(t, batchSpec{records: 1})); res.BaseOffset != 2 {
			t.Fatalf("append after fsync recovered at %d, want 2", res.BaseOffset)
		}
		if got := len(readAll(t, p, 0, 3)); got != 2 {
			t.Fatalf("%d batches, want 2", got)
		}
	})
	t.Run("interval", func(t *testing.T) {
		st := openStore(t, t.TempDir(), Options{FlushPolicy: FlushInterval, FlushInterval: time.Hour})
		p := mustCreate(t, st, "eio", 0, TopicConfig{})
		st.syncData = func(*os.File) error { return injected }
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2}))
		if err := p.waitDurable(context.Background(), 2, p.writeGen.Load()); !errors.Is(err, ErrStorage) {
			t.Fatalf("flush with failing fsync: %v, want ErrStorage", err)
		}
		if p.LogEndOffset() != 2 {
			t.Fatalf("acknowledged data was cut: end %d", p.LogEndOffset())
		}
		st.syncData = (*os.File).Sync
	})
}

// TestCompactionKeepsProducerLastBatch: a producer's last batch emptied by
// compaction stays as an empty batch, so its sequence survives a rebuild of
// producer state from the log alone.
func TestCompactionKeepsProducerLastBatch(t *testing.T) {
	dir := memTempDir(t)
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "pk", 0, TopicConfig{CleanupPolicy: CleanupCompact, SegmentBytes: 200})
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"k"}, producerID: 5, producerEpoch: 0, baseSequence: 0}))
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"k"}, valueSize: 200}))
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"j"}, valueSize: 200}))
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
	st.RunCleaner(context.Background())
	hs := readAll(t, p, 0, p.HighWatermark())
	if len(hs) != 3 || hs[0].RecordCount != 0 || hs[0].ProducerID != 5 || hs[0].LastOffsetDelta != 0 {
		t.Fatalf("after compaction: %d batches, first %+v; want the producer's batch kept empty", len(hs), hs[0])
	}
	crashed := crashCopy(t, dir)
	if err := os.Remove(filepath.Join(crashed, "pk-0", producerStateFile)); err != nil {
		t.Fatal(err)
	}
	st2 := openStore(t, crashed, Options{})
	p2, _ := st2.Partition("pk", 0)
	if _, err := p2.Append(context.Background(), makeBatch(t, batchSpec{records: 1, keys: []string{"k"}, producerID: 5, producerEpoch: 0, baseSequence: 1}), AppendOptions{}); err != nil {
		t.Fatalf("producer's next sequence after compaction and a rebuild from the log: %v", err)
	}
}

func TestWaitWakesOnNewData(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "wait", 0, TopicConfig{})
	ch := p.Wait(context.Background(), 0)
	select {
	case <-ch:
		t.Fatal("Wait fired before any data")
	default:
	}
	batch := makeBatch(t, batchSpec{})
	go func() {
		if _, err := p.Append(context.Background(), batch, AppendOptions{}); err != nil {
			t.Errorf("append: %v", err)
		}
	}()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not fire after an append")
	}
	if p.HighWatermark() != 1 {
		t.Fatalf("woken with high watermark %d", p.HighWatermark())
	}
	select {
	case <-p.Wait(context.Background(), 0):
	default:
		t.Fatal("Wait below the high watermark must fire at once")
	}
	ch = p.Wait(context.Background(), 1)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not fire when the store closed")
	}
}

func TestReadByteLimitsAcrossSegments(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "rl", 0, TopicConfig{SegmentBytes: 500})
	size := len(makeBatch(t, batchSpec{records: 1, valueSize: 100}))
	for i := 0; i < 12; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1, valueSize: 100}))
	}
	for _, tc := range []struct {
		offset   int64
		maxBytes int32
		upTo     int64
		want     int // batches
	}{
		{0, int32(12 * size), 12, 12}, // whole log, across segments
		{0, int32(5*size + size/2), 12, 5},
		{0, 1, 12, 1},              // KIP-74: at least one batch
		{3, int32(4 * size), 6, 3}, // stops at upTo
		{5, 0, 5, 0},               // nothing at or past upTo
		{11, int32(10 * size), 12, 1},
	} {
		b, err := p.Read(tc.offset, tc.maxBytes, tc.upTo)
		if err != nil {
			t.Fatalf("Read(%d, %d, %d): %v", tc.offset, tc.maxBytes, tc.upTo, err)
		}
		if len(b) != tc.want*size {
			t.Errorf("Read(%d, %d, %d) = %d bytes, want %d batches (%d bytes)", tc.offset, tc.maxBytes, tc.upTo, len(b), tc.want, tc.want*size)
		}
	}
}

func TestOffsetForTimestampInsideCompressedBatches(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "tsz", 0, TopicConfig{})
	// Records at base, base+1, ... base+9 (makeBatch uses delta = index).
	mustAppend(t, p, makeBatch(t, batchSpec{records: 10, codec: recordbatch.CodecZstd, timestamp: 5000}))
	mustAppend(t, p, makeBatch(t, batchSpec{records: 10, codec: recordbatch.CodecGzip, timestamp: 6000}))
	for _, tc := range []struct{ ts, off, rts int64 }{{5000, 0, 5000}, {5004, 4, 5004}, {5010, 10, 6000}, {6009, 19, 6009}, {6010, -1, -1}} {
		off, rts, err := p.OffsetForTimestamp(tc.ts)
		if err != nil || off != tc.off || rts != tc.rts {
			t.Errorf("OffsetForTimestamp(%d) = %d, %d, %v; want %d, %d", tc.ts, off, rts, err, tc.off, tc.rts)
		}
	}
}

func TestSetConfigAppliesAndPersists(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "cfg", 0, TopicConfig{})
	p.SetConfig(TopicConfig{RetentionBytes: 1234, CleanupPolicy: CleanupCompactDelete})
	if c := p.Config(); c.RetentionBytes != 1234 || c.SegmentBytes != DefaultSegmentBytes || !c.compact() || !c.delete() {
		t.Fatalf("config after SetConfig: %+v", c)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := openStore(t, dir, Options{})
	p2, _ := st2.Partition("cfg", 0)
	if c := p2.Config(); c.RetentionBytes != 1234 || c.CleanupPolicy != CleanupCompactDelete {
		t.Fatalf("config after restart: %+v", c)
	}
	if p2.Topic() != "cfg" || p2.PartitionIndex() != 0 {
		t.Fatalf("identity after restart: %s-%d", p2.Topic(), p2.PartitionIndex())
	}
	if _, err := st2.CreatePartition("cfg", 0, TopicConfig{CleanupPolicy: "sometimes"}); err == nil {
		t.Fatal("an invalid cleanup.policy was accepted")
	}
}

func TestSetHighWatermarkBoundsReads(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "hw", 0, TopicConfig{})
	for i := 0; i < 4; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2}))
	}
	p.SetHighWatermark(4)
	if p.HighWatermark() != 4 {
		t.Fatalf("high watermark %d, want 4", p.HighWatermark())
	}
	if got := len(readAll(t, p, 0, p.HighWatermark())); got != 2 {
		t.Fatalf("read %d batches below the high watermark, want 2", got)
	}
	if _, err := p.DeleteRecordsBefore(6); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("DeleteRecords past the high watermark: %v", err)
	}
	if start, err := p.DeleteRecordsBefore(-1); err != nil || start != 4 {
		t.Fatalf("DeleteRecords to the high watermark: %d, %v", start, err)
	}
	p.SetHighWatermark(100)
	if p.HighWatermark() != 8 {
		t.Fatalf("high watermark above the log end: %d, want it capped at 8", p.HighWatermark())
	}
	if p.LatestEpoch() != 0 {
		t.Fatalf("latest epoch %d", p.LatestEpoch())
	}
}

func TestStartCleanerRunsInBackground(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{RetentionCheckInterval: 10 * time.Millisecond})
	p := mustCreate(t, st, "bg", 0, TopicConfig{SegmentBytes: 300, RetentionBytes: 1, RetentionMs: -1})
	for i := 0; i < 10; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1, valueSize: 200}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st.StartCleaner(ctx)
	st.StartCleaner(ctx) // a second call changes nothing
	deadline := time.Now().Add(10 * time.Second)
	for p.LogStartOffset() < 9 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if p.LogStartOffset() < 9 {
		t.Fatalf("background retention did not run: log start %d", p.LogStartOffset())
	}
}

// TestCleanerConcurrentWithAppendsAndReads runs compaction, retention and
// checkpoints while producers append and a reader follows the log: the
// reader must only ever see whole, CRC-valid batches with increasing
// offsets, and a restart must find the same log. Run with -race.
func TestCleanerConcurrentWithAppendsAndReads(t *testing.T) {
	dir := memTempDir(t)
	clock := &syncClock{now: time.UnixMilli(1_700_000_000_000)}
	st := openStore(t, dir, Options{Now: clock.Now})
	p := mustCreate(t, st, "mix", 0, TopicConfig{CleanupPolicy: CleanupCompactDelete, SegmentBytes: 2000,
		RetentionBytes: 30000, RetentionMs: -1, DeleteRetentionMs: time.Millisecond, MinCleanableDirtyRatio: 0.01})
	var templates [][]byte
	for k := 0; k < 20; k++ {
		spec := batchSpec{records: 2, keys: []string{fmt.Sprintf("k%d", k), fmt.Sprintf("k%d", (k+7)%20)}, valueSize: 40, codec: k % 5}
		if k%6 == 0 {
			spec.tombstones = map[int]bool{1: true}
		}
		templates = append(templates, makeBatch(t, spec))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				if _, err := p.Append(ctx, bytes.Clone(templates[(i+w)%len(templates)]), AppendOptions{}); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	appendsDone := make(chan struct{})
	go func() { wg.Wait(); close(appendsDone) }()
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { // cleaner and checkpoints
		defer bg.Done()
		// A few passes more once the appends are done: on a loaded machine
		// the appends can all finish before a pass found a segment to
		// clean ("compaction never ran" below, seen once in CI).
		after := 0
		for {
			select {
			case <-appendsDone:
				if after++; after > 3 {
					return
				}
			default:
			}
			clock.advance(time.Millisecond)
			if err := p.checkpoint(); err != nil {
				t.Errorf("checkpoint: %v", err)
				return
			}
			st.RunCleaner(ctx)
		}
	}()
	go func() { // reader
		defer bg.Done()
		for {
			select {
			case <-appendsDone:
				return
			default:
			}
			from := p.LogStartOffset()
			b, err := p.Read(from, 8000, p.HighWatermark())
			if errors.Is(err, ErrOffsetOutOfRange) {
				continue // retention moved the start between the two calls
			}
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
			prev := int64(-1)
			for len(b) > 0 {
				h, err := recordbatch.ParseHeader(b)
				if err != nil || h.Size() > len(b) || recordbatch.Check(&h, b[:h.Size()]) != nil || h.BaseOffset <= prev {
					t.Errorf("reader saw a bad batch at offset %d (previous %d): %v", h.BaseOffset, prev, err)
					return
				}
				prev = h.LastOffset()
				b = b[h.Size():]
			}
		}
	}()
	<-appendsDone
	bg.Wait()
	if p.LogEndOffset() != 3*300*2 {
		t.Fatalf("log end %d, want %d", p.LogEndOffset(), 3*300*2)
	}
	before := latestByKey(t, p)
	records := 0
	for _, h := range readAll(t, p, p.LogStartOffset(), p.HighWatermark()) {
		records += int(h.RecordCount)
	}
	if span := p.LogEndOffset() - p.LogStartOffset(); int64(records) >= span {
		t.Fatalf("%d records in %d offsets: compaction never ran", records, span)
	}
	crashed := crashCopy(t, dir)
	st2 := openStore(t, crashed, Options{Now: clock.Now})
	p2, _ := st2.Partition("mix", 0)
	after := latestByKey(t, p2)
	if len(after) != len(before) || p2.LogEndOffset() != p.LogEndOffset() {
		t.Fatalf("after a crash: %d keys, end %d; before: %d keys, end %d", len(after), p2.LogEndOffset(), len(before), p.LogEndOffset())
	}
	for k, v := range before {
		if after[k].offset != v.offset {
			t.Fatalf("key %s at %d before the crash, %d after", k, v.offset, after[k].offset)
		}
	}
}

// syncClock is a settable clock safe for concurrent use.
type syncClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *syncClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *syncClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestLeaderEpochStartsOnBecomingLeader: a replica that becomes leader at
// epoch 6 with a log written at epochs 0 and 4 records epoch 6 at its log
// end before any append, so a follower whose latest epoch is 5 (records of
// the previous leader this one never got) learns that the logs agree up
// to that offset, not UNDEFINED_EPOCH (on which it would truncate to its
// high watermark). The entry survives a clean restart and the first
// append at epoch 6 keeps it.
func TestLeaderEpochStartsOnBecomingLeader(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "lead", 0, TopicConfig{})
	for _, epoch := range []int32{0, 0, 4} {
		if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 2}), AppendOptions{LeaderEpoch: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	if e, end := p.EndOffsetForLeaderEpoch(5); e != -1 || end != -1 {
		t.Fatalf("before becoming leader, epoch 5 -> %d, %d; want -1, -1", e, end)
	}
	p.AssignLeaderEpochStart(6)
	p.AssignLeaderEpochStart(3) // older: ignored
	check := func(p *Partition, label string) {
		t.Helper()
		for _, tc := range []struct {
			req       int32
			wantEpoch int32
			wantEnd   int64
		}{{5, 4, 6}, {4, 4, 6}, {6, 6, p.LogEndOffset()}, {0, 0, 4}} {
			if e, end := p.EndOffsetForLeaderEpoch(tc.req); e != tc.wantEpoch || end != tc.wantEnd {
				t.Errorf("%s: EndOffsetForLeaderEpoch(%d) = %d, %d; want %d, %d", label, tc.req, e, end, tc.wantEpoch, tc.wantEnd)
			}
		}
		if got := p.LatestEpoch(); got != 6 {
			t.Errorf("%s: latest epoch %d, want 6", label, got)
		}
	}
	check(p, "leading, nothing appended")
	if res, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 2}), AppendOptions{LeaderEpoch: 6}); err != nil || res.BaseOffset != 6 {
		t.Fatalf("append at epoch 6: %+v %v", res, err)
	}
	check(p, "after the first append")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := openStore(t, dir, Options{})
	p2, _ := st2.Partition("lead", 0)
	check(p2, "after a restart")
}

// TestTruncateAtLogEndDropsEpochsWithoutRecords: a replica that took
// leaderships and wrote nothing in them (AssignLeaderEpochStart) and then
// follows a leader that never had those epochs is told to truncate at its
// log end; the truncation drops those epochs, so its last fetched epoch is
// one the leader knows and the fetch goes on.
func TestTruncateAtLogEndDropsEpochsWithoutRecords(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "phantom", 0, TopicConfig{})
	if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 3}), AppendOptions{LeaderEpoch: 2}); err != nil {
		t.Fatal(err)
	}
	p.AssignLeaderEpochStart(7)
	p.AssignLeaderEpochStart(9)
	if got := p.LatestEpoch(); got != 9 {
		t.Fatalf("latest epoch %d, want 9", got)
	}
	if err := p.TruncateTo(p.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if got, leo := p.LatestEpoch(), p.LogEndOffset(); got != 2 || leo != 3 {
		t.Fatalf("after truncating at the log end: latest epoch %d, log end %d; want 2, 3", got, leo)
	}
	if e, end := p.EndOffsetForLeaderEpoch(2); e != 2 || end != 3 {
		t.Fatalf("epoch 2 -> %d, %d; want 2, 3", e, end)
	}
}

// bombBatch is a batch of one record (key, nil for none) whose value is
// size zero bytes, gzip-compressed: about a thousandth of size as sent.
func bombBatch(t *testing.T, key []byte, size int) []byte {
	t.Helper()
	b, err := recordbatch.Encode(recordbatch.Header{Attributes: recordbatch.CodecGzip, BaseTimestamp: 1_700_000_000_000,
		MaxTimestamp: 1_700_000_000_000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: 1},
		recordbatch.AppendNewRecord(nil, recordbatch.NewRecord{Key: key, Value: make([]byte, size)}))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCompressionBombsAreStreamed: a compacted topic's key check and a
// lookup by timestamp walk a batch inflating to 64 MiB without holding
// it: each allocates a few MiB (Decompress allocated the 64 MiB, and more
// for each batch of a request). The key check still refuses a keyless one.
func TestCompressionBombsAreStreamed(t *testing.T) {
	const size = 64 << 20
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "bombs", 0, TopicConfig{CleanupPolicy: CleanupCompact, MaxMessageBytes: 1 << 20})
	keyed, keyless := bombBatch(t, []byte("k"), size), bombBatch(t, nil, size)
	measure := func(what string, fn func() error) error {
		t.Helper()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := fn()
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
			t.Errorf("%s: %d bytes allocated for a %d-byte batch inflating to %d", what, n, len(keyed), size)
		}
		return err
	}
	if err := measure("keyed bomb", func() error {
		_, err := p.Append(context.Background(), bytes.Clone(keyed), AppendOptions{})
		return err
	}); err != nil {
		t.Fatalf("keyed bomb: %v", err)
	}
	if err := measure("keyless bomb", func() error {
		_, err := p.Append(context.Background(), bytes.Clone(keyless), AppendOptions{})
		return err
	}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("keyless bomb: err %v, want ErrInvalidRecord", err)
	}
	var off, ts int64
	if err := measure("lookup by timestamp", func() (err error) {
		off, ts, err = p.OffsetForTimestamp(1_700_000_000_000)
		return err
	}); err != nil || off != 0 || ts != 1_700_000_000_000 {
		t.Fatalf("OffsetForTimestamp: %d %d %v", off, ts, err)
	}
}

// TestCompressedBatchesAreReadBeforeTheLogTakesThem: on a topic that is
// not compacted, a compressed batch whose CRC is right but whose records
// do not inflate, do not parse, count other than the header says or skip
// an offset delta is refused, in every codec, and the log is unchanged; a
// good one is taken. Stored unread, such a batch failed every consumer
// of the partition.
func TestCompressedBatchesAreReadBeforeTheLogTakesThem(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	recordsOf := func(n int, delta func(i int) int32) []byte {
		var recs []byte
		for i := range n {
			recs = recordbatch.AppendNewRecord(recs, recordbatch.NewRecord{OffsetDelta: delta(i), Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 100)})
		}
		return recs
	}
	batch := func(codec, count int, recs []byte) []byte {
		b, err := recordbatch.Encode(recordbatch.Header{PartitionLeaderEpoch: -1, Attributes: int16(codec), LastOffsetDelta: int32(count - 1),
			BaseTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
			RecordCount: int32(count)}, recs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	inOrder := func(i int) int32 { return int32(i) }
	for codec := recordbatch.CodecGzip; codec <= recordbatch.CodecZstd; codec++ {
		p := mustCreate(t, st, fmt.Sprintf("codec-%d", codec), 0, TopicConfig{})
		for _, tc := range []struct {
			name  string
			batch []byte
			want  []error // any of
		}{
			{"garbage compressed with a right CRC", func() []byte {
				b := batch(codec, 3, recordsOf(3, inOrder))
				for i := recordbatch.HeaderSize; i < len(b); i++ {
					b[i] = byte(i*131 + 7)
				}
				binary.BigEndian.PutUint32(b[17:], recordbatch.ComputeCRC(b))
				return b
			}(), []error{ErrCorruptMessage, ErrInvalidRecord}},
			{"fewer records than the header says", batch(codec, 4, recordsOf(3, inOrder)), []error{ErrInvalidRecord}},
			{"more records than the header says", batch(codec, 2, recordsOf(3, inOrder)), []error{ErrInvalidRecord}},
			{"an offset delta skipped", batch(codec, 3, recordsOf(3, func(i int) int32 { return int32(2 * i) })), []error{ErrInvalidRecord}},
		} {
			_, err := p.Append(context.Background(), tc.batch, AppendOptions{})
			if !slices.ContainsFunc(tc.want, func(w error) bool { return errors.Is(err, w) }) {
				t.Errorf("codec %d, %s: Append err %v, want one of %v", codec, tc.name, err, tc.want)
			}
			if p.LogEndOffset() != 0 || p.Size() != 0 {
				t.Fatalf("codec %d, %s: a refused batch changed the log: end %d, size %d", codec, tc.name, p.LogEndOffset(), p.Size())
			}
		}
		if res, err := p.Append(context.Background(), batch(codec, 3, recordsOf(3, inOrder)), AppendOptions{}); err != nil || res.LastOffset != 2 {
			t.Fatalf("codec %d: a good batch: %+v, %v", codec, res, err)
		}
	}
}
