package replica

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/storage/recordbatch"
)

func openStore(t *testing.T) *storage.Store {
	t.Helper()
	st, err := storage.Open(t.TempDir(), storage.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// produced builds a batch as a producer sends it (base offset 0).
func produced(t *testing.T, n int, pid int64, seq int32, tag string) []byte {
	t.Helper()
	var recs []byte
	for i := range n {
		recs = recordbatch.AppendNewRecord(recs, recordbatch.NewRecord{OffsetDelta: int32(i), Value: fmt.Appendf(nil, "%s-%d", tag, i)})
	}
	h := recordbatch.Header{LastOffsetDelta: int32(n - 1), ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq, RecordCount: int32(n), BaseTimestamp: 1000, MaxTimestamp: 1000}
	if pid < 0 {
		h.ProducerEpoch, h.BaseSequence = -1, -1
	}
	b, err := recordbatch.Encode(h, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStoragePartitionReplicatesExactly runs the follower path on the
// storage engine: leader batches (idempotent, several epochs, LogAppendTime)
// arrive in two fetches and the follower's bytes and epochs equal the
// leader's.
func TestStoragePartitionReplicatesExactly(t *testing.T) {
	ctx := context.Background()
	leaderStore, followerStore := openStore(t), openStore(t)
	leader, err := leaderStore.CreatePartition("t", 0, storage.TopicConfig{MessageTimestampType: storage.LogAppendTime})
	if err != nil {
		t.Fatal(err)
	}
	logs := StoreLogs{Store: followerStore, Config: func(map[string]string) storage.TopicConfig {
		return storage.TopicConfig{MessageTimestampType: storage.LogAppendTime}
	}}
	fl, err := logs.Open("t", 0, metadata.TopicID{1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, epoch := range []int32{1, 1, 2, 2, 4} {
		if _, err := leader.Append(ctx, produced(t, 3, 7, int32(i*3), fmt.Sprint("v", i)), storage.AppendOptions{LeaderEpoch: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	data, err := leader.Read(0, 1<<20, leader.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	// Replicate in two fetches, split at a batch boundary.
	cut := len(data) / 5 * 2
	if err := fl.AppendAsFollower(ctx, data[:cut]); err != nil {
		t.Fatal(err)
	}
	if err := fl.AppendAsFollower(ctx, data[cut:]); err != nil {
		t.Fatal(err)
	}
	got, err := fl.Read(0, 1<<20, fl.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("follower bytes differ from the leader's")
	}
	for _, e := range []int32{1, 2, 3, 4} {
		le, lo := leader.EndOffsetForLeaderEpoch(e)
		fe, fo := fl.EndOffsetForLeaderEpoch(e)
		if le != fe || lo != fo {
			t.Fatalf("epoch %d: leader (%d, %d), follower (%d, %d)", e, le, lo, fe, fo)
		}
	}
	// Same handle from the second Open.
	again, _ := logs.Open("t", 0, metadata.TopicID{1}, nil)
	if again.LogEndOffset() != 15 {
		t.Fatalf("reopened log ends at %d", again.LogEndOffset())
	}
}
