package groups

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage"
)

// TestCompactedOffsetsLogKeepsState runs the storage's log cleaner over
// __consumer_offsets and checks that the coordinator rebuilds the same state
// from what is left: the last commit per partition survives, a deleted
// group's records go, and its tombstones go too after delete.retention.ms.
func TestCompactedOffsetsLogKeepsState(t *testing.T) {
	ctx := testCtx(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	st, err := storage.Open(t.TempDir(), storage.Options{
		CheckpointInterval: 10 * time.Millisecond,
		Now:                clock,
		Logger:             slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg := OffsetsTopicConfig()
	cfg.SegmentBytes = 2048 // many segments, so most of the log is cleanable
	cfg.DeleteRetentionMs = time.Minute
	p, err := st.CreatePartition(OffsetsTopic, 0, cfg)
	if err != nil {
		t.Fatalf("creating the offsets partition: %v", err)
	}
	log := NewPartitionLog(p)

	c := newTestCoordinator(t, log)
	for round := range 60 {
		for part := range int32(5) {
			if r := c.OffsetCommit(ctx, commitReq(8, "g", "", -1, "t", part, int64(round))); r.Topics[0].Partitions[0].ErrorCode != 0 {
				t.Fatal("commit failed")
			}
		}
	}
	for part := range int32(3) {
		if r := c.OffsetCommit(ctx, commitReq(8, "doomed", "", -1, "t", part, 1)); r.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatal("commit failed")
		}
	}
	if r := c.DeleteGroups(ctx, deleteGroupsReq("doomed")); r.Groups[0].ErrorCode != 0 {
		t.Fatalf("DeleteGroups: %s", codeName(r.Groups[0].ErrorCode))
	}
	// Something after the tombstones, so they leave the active segment.
	for round := range 20 {
		if r := c.OffsetCommit(ctx, commitReq(8, "filler", "", -1, "f", 0, int64(round))); r.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatal("commit failed")
		}
	}
	_ = c.Close()

	type counts struct{ records, doomed, tombstones int }
	count := func() counts {
		var n counts
		err := log.Replay(ctx, func(r Record) error {
			n.records++
			d, err := decodeRecord(r)
			if err != nil {
				t.Fatalf("decoding a compacted record: %v", err)
			}
			if d.group == "doomed" {
				n.doomed++
				if d.offset == nil && d.meta == nil {
					n.tombstones++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Replay: %v", err)
		}
		return n
	}
	before := count()
	// Only tombstones left of the deleted group means the cleaner has seen
	// the tombstones' segment, and so stamped their delete horizon.
	waitFor(t, "the cleaner to compact the offsets log", 10*time.Second, func() bool {
		st.RunCleaner(ctx)
		n := count()
		return n.records < before.records/4 && n.doomed == n.tombstones
	})
	if n := count(); n.tombstones == 0 {
		t.Fatalf("tombstones gone before delete.retention.ms: %+v", n)
	}

	check := func() {
		t.Helper()
		c2 := newTestCoordinator(t, log)
		defer c2.Close()
		for part := range int32(5) {
			if off, _ := fetchOne(t, c2, "g", "t", part); off != 59 {
				t.Fatalf("t/%d after compaction = %d, want the last commit 59", part, off)
			}
		}
		if off, _ := fetchOne(t, c2, "doomed", "t", 0); off != -1 {
			t.Fatalf("deleted group's offset came back after compaction: %d", off)
		}
		if off, _ := fetchOne(t, c2, "filler", "f", 0); off != 19 {
			t.Fatalf("filler offset = %d, want 19", off)
		}
	}
	check()

	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	waitFor(t, "the cleaner to drop expired tombstones", 10*time.Second, func() bool {
		st.RunCleaner(ctx)
		return count().doomed == 0
	})
	check()
}
