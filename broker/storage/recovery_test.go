package storage

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// crashCopy copies a live store directory as a kill -9 would leave it: all
// written bytes, no clean-shutdown marker, no final checkpoint.
func crashCopy(t testing.TB, src string) string {
	t.Helper()
	dst := memTempDir(t)
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if info.Name() == lockFile {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
	return dst
}

func lastSegmentPath(t testing.TB, partDir string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(partDir, "*"+logSuffix))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no segments in %s: %v", partDir, err)
	}
	return matches[len(matches)-1]
}

// TestRecoveryCutAtEveryByteOfLastBatch cuts the last segment at every byte
// of its last batch and checks the log comes back with exactly the batches
// before it and appends at the right offset, with the recovery point before
// the torn region, and inside the log.
func TestRecoveryCutAtEveryByteOfLastBatch(t *testing.T) {
	for _, tc := range []struct {
		name            string
		checkpointAfter int // batches appended before a checkpoint; -1 none
	}{
		{"no checkpoint since creation", -1},
		{"checkpoint mid-log", 3},
		{"checkpoint covering the torn batch", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := memTempDir(t)
			st := openStore(t, dir, Options{CheckpointInterval: 1 << 40})
			p := mustCreate(t, st, "cut", 0, TopicConfig{SegmentBytes: 700, IndexIntervalBytes: 100})
			var ends []int64 // log end offset after each batch
			// Five batches of 3 records, then a small last batch of 1 record
			// that is cut at each of its bytes.
			for i := 0; i < 6; i++ {
				n := 3
				if i == 5 {
					n = 1
				}
				mustAppend(t, p, makeBatch(t, batchSpec{records: n, valueSize: 40 / n, producerID: 7, producerEpoch: 0, baseSequence: int32(3 * i)}))
				ends = append(ends, p.LogEndOffset())
				if i+1 == tc.checkpointAfter {
					if err := p.checkpoint(); err != nil {
						t.Fatal(err)
					}
				}
			}
			base := crashCopy(t, dir)
			seg := lastSegmentPath(t, filepath.Join(base, "cut-0"))
			full, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			lastSize := int64(len(makeBatch(t, batchSpec{records: 1, valueSize: 40, producerID: 7, baseSequence: 15})))
			lastStart := int64(len(full)) - lastSize
			for cut := lastStart; cut <= int64(len(full)); cut++ {
				crashed := crashCopy(t, base)
				segPath := filepath.Join(crashed, "cut-0", filepath.Base(seg))
				if err := os.Truncate(segPath, cut); err != nil {
					t.Fatal(err)
				}
				st2, err := Open(crashed, Options{Logger: quietLogger()})
				if err != nil {
					t.Fatalf("cut at %d: Open: %v", cut, err)
				}
				p2, _ := st2.Partition("cut", 0)
				want := ends[4]
				if cut == int64(len(full)) {
					want = ends[5]
				}
				if got := p2.LogEndOffset(); got != want {
					t.Fatalf("cut at %d of %d: LogEndOffset %d, want %d", cut, len(full), got, want)
				}
				if got, wantBatches := len(readAll(t, p2, 0, want)), 5+int(want-ends[4]); got != wantBatches {
					t.Fatalf("cut at %d: read %d batches, want %d", cut, got, wantBatches)
				}
				if fi, _ := os.Stat(segPath); cut < int64(len(full)) && fi.Size() != lastStart {
					t.Fatalf("cut at %d: segment left at %d bytes, want the torn batch removed (%d)", cut, fi.Size(), lastStart)
				}
				// The producer's sequence continues from the surviving batches.
				seq := int32(want)
				res, err := p2.Append(t.Context(), makeBatch(t, batchSpec{records: 1, producerID: 7, producerEpoch: 0, baseSequence: seq}), AppendOptions{})
				if err != nil || res.BaseOffset != want || res.Duplicate {
					t.Fatalf("cut at %d: append after recovery: %+v, %v; want offset %d", cut, res, err, want)
				}
				if err := st2.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestRecoveryCorruptByteTruncatesFromThere(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{CheckpointInterval: 1 << 40})
	p := mustCreate(t, st, "flip", 0, TopicConfig{})
	for i := 0; i < 5; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 30}))
	}
	crashed := crashCopy(t, dir)
	seg := lastSegmentPath(t, filepath.Join(crashed, "flip-0"))
	b, _ := os.ReadFile(seg)
	size := len(b) / 5
	b[2*size+61+5] ^= 0xff // a record byte of batch 2
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	st2 := openStore(t, crashed, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	p2, _ := st2.Partition("flip", 0)
	if got := p2.LogEndOffset(); got != 4 {
		t.Fatalf("LogEndOffset after a corrupt batch 2 = %d, want 4", got)
	}
	warning := logs.String()
	for _, want := range []string{"level=WARN", "truncating torn or corrupt log tail", "file=" + seg, "offset=4", fmt.Sprintf("bytes_cut=%d", 3*size), "crc"} {
		if !strings.Contains(warning, want) {
			t.Errorf("recovery log lacks %q:\n%s", want, warning)
		}
	}
	after, _ := os.ReadFile(seg)
	if !bytes.Equal(after, b[:2*size]) {
		t.Fatalf("segment is %d bytes, want the first two batches (%d)", len(after), 2*size)
	}
}

// TestRecoveryPointOffBatchBoundary: a recovery point naming a position
// inside a batch must not cost data; checking starts at that batch.
func TestRecoveryPointOffBatchBoundary(t *testing.T) {
	dir := memTempDir(t)
	st := openStore(t, dir, Options{CheckpointInterval: 1 << 40})
	p := mustCreate(t, st, "rp", 0, TopicConfig{IndexIntervalBytes: 1})
	for i := 0; i < 6; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 30}))
	}
	crashed := crashCopy(t, dir)
	seg := lastSegmentPath(t, filepath.Join(crashed, "rp-0"))
	fi, _ := os.Stat(seg)
	batchSize := fi.Size() / 6
	if err := writeRecoveryPoint(filepath.Join(crashed, "rp-0"), recoveryPoint{offset: 6, segment: 0, position: 3*batchSize + 10}); err != nil {
		t.Fatal(err)
	}
	st2 := openStore(t, crashed, Options{})
	p2, _ := st2.Partition("rp", 0)
	if p2.LogEndOffset() != 12 || len(readAll(t, p2, 0, 12)) != 6 {
		t.Fatalf("after a misaligned recovery point: end %d, want all 12 records kept", p2.LogEndOffset())
	}
}

// TestRecoveryShortTailAfterRecoveryPoint: fewer bytes than a batch header
// after the recovery point are cut, not an error.
func TestRecoveryShortTailAfterRecoveryPoint(t *testing.T) {
	dir := memTempDir(t)
	st := openStore(t, dir, Options{CheckpointInterval: 1 << 40})
	p := mustCreate(t, st, "short", 0, TopicConfig{})
	for i := 0; i < 3; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1}))
	}
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
	crashed := crashCopy(t, dir)
	seg := lastSegmentPath(t, filepath.Join(crashed, "short-0"))
	f, err := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 30))
	f.Close()
	st2 := openStore(t, crashed, Options{})
	p2, _ := st2.Partition("short", 0)
	if p2.LogEndOffset() != 3 {
		t.Fatalf("end %d, want 3", p2.LogEndOffset())
	}
}

// TestRecoveryCorruptMiddleSegmentDropsLaterOnes: damage in a segment after
// the recovery point cuts there, and later segments go with it.
func TestRecoveryCorruptMiddleSegmentDropsLaterOnes(t *testing.T) {
	dir := memTempDir(t)
	st := openStore(t, dir, Options{CheckpointInterval: 1 << 40})
	p := mustCreate(t, st, "mid", 0, TopicConfig{SegmentBytes: 300})
	for i := 0; i < 12; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1, valueSize: 80}))
	}
	crashed := crashCopy(t, dir)
	segs, _ := filepath.Glob(filepath.Join(crashed, "mid-0", "*.log"))
	if len(segs) < 4 {
		t.Fatalf("want at least 4 segments, have %d", len(segs))
	}
	b, _ := os.ReadFile(segs[1])
	b[len(b)-5] ^= 0xff // last batch of the second segment
	if err := os.WriteFile(segs[1], b, 0o644); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(segs[0])
	perSeg := int64(len(first)) / int64(len(makeBatch(t, batchSpec{records: 1, valueSize: 80})))
	st2 := openStore(t, crashed, Options{})
	p2, _ := st2.Partition("mid", 0)
	if want := 2*perSeg - 1; p2.LogEndOffset() != want {
		t.Fatalf("end %d, want %d (cut at the damaged batch)", p2.LogEndOffset(), want)
	}
	left, _ := filepath.Glob(filepath.Join(crashed, "mid-0", "*.log"))
	if len(left) != 2 {
		t.Fatalf("%d segments left, want 2", len(left))
	}
	if res := mustAppend(t, p2, makeBatch(t, batchSpec{})); res.BaseOffset != 2*perSeg-1 {
		t.Fatalf("append at %d", res.BaseOffset)
	}
}

// TestRecoveryAfterInterruptedCompactionSwap: a crash mid-swap leaves
// ".cleaned" files and possibly no index for the segment; start-up deletes
// the leftovers and rebuilds the index from the log.
func TestRecoveryAfterInterruptedCompactionSwap(t *testing.T) {
	dir := memTempDir(t)
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "swap", 0, TopicConfig{SegmentBytes: 400, IndexIntervalBytes: 50})
	for i := 0; i < 12; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1, valueSize: 60}))
	}
	if err := p.checkpoint(); err != nil { // segment 0 is below the recovery point: trusted
		t.Fatal(err)
	}
	crashed := crashCopy(t, dir)
	part := filepath.Join(crashed, "swap-0")
	for _, name := range []string{segmentName(0) + logSuffix + cleanedSuffix, segmentName(0) + indexSuffix + cleanedSuffix} {
		if err := os.WriteFile(filepath.Join(part, name), []byte("half-written"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(part, segmentName(0)+indexSuffix)); err != nil {
		t.Fatal(err)
	}
	st2 := openStore(t, crashed, Options{})
	p2, _ := st2.Partition("swap", 0)
	if p2.LogEndOffset() != 12 || len(readAll(t, p2, 0, 12)) != 12 {
		t.Fatalf("after an interrupted swap: end %d", p2.LogEndOffset())
	}
	if left, _ := filepath.Glob(filepath.Join(part, "*"+cleanedSuffix)); len(left) != 0 {
		t.Fatalf("leftover files not removed: %v", left)
	}
	if _, err := os.Stat(filepath.Join(part, segmentName(0)+indexSuffix)); err != nil {
		t.Fatalf("index of the first segment not rebuilt: %v", err)
	}
}
