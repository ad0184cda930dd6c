package groups

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/tributary/tributary/broker/storage"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// offsetLogKind opens the same durable log again after a simulated broker
// restart; each kind runs the same scenarios.
type offsetLogKind struct {
	name string
	// open returns the log for this "boot" of the broker and a function
	// that shuts it down.
	open func(t *testing.T) (OffsetLog, func())
}

func offsetLogKinds(t *testing.T) []offsetLogKind {
	t.Helper()
	mem := NewMemoryLog()
	dir, replicatedDir := t.TempDir(), t.TempDir()
	return []offsetLogKind{
		{"memory", func(*testing.T) (OffsetLog, func()) { return mem, func() {} }},
		{"partition", func(t *testing.T) (OffsetLog, func()) {
			t.Helper()
			st, err := storage.Open(dir, storage.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
			if err != nil {
				t.Fatalf("opening store: %v", err)
			}
			l, err := OpenPartitionLog(st)
			if err != nil {
				_ = st.Close()
				t.Fatalf("OpenPartitionLog: %v", err)
			}
			closed := false
			closeStore := func() {
				if !closed {
					closed = true
					if err := st.Close(); err != nil {
						t.Errorf("closing store: %v", err)
					}
				}
			}
			t.Cleanup(closeStore)
			return l, closeStore
		}},
		{"replicated", func(t *testing.T) (OffsetLog, func()) {
			t.Helper()
			st, err := storage.Open(replicatedDir, storage.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
			if err != nil {
				t.Fatalf("opening store: %v", err)
			}
			p, err := st.CreatePartition(OffsetsTopic, 0, OffsetsTopicConfig())
			if err != nil {
				_ = st.Close()
				t.Fatal(err)
			}
			// The write path a cluster uses: the coordinator hands the
			// encoded batch to the replica manager, which appends it.
			l := NewReplicatedPartitionLog(p, func(ctx context.Context, batch []byte) error {
				_, err := p.Append(ctx, batch, storage.AppendOptions{LeaderEpoch: 3})
				return err
			}, trustingTxnWrite(p))
			closed := false
			closeStore := func() {
				if !closed {
					closed = true
					if err := st.Close(); err != nil {
						t.Errorf("closing store: %v", err)
					}
				}
			}
			t.Cleanup(closeStore)
			return l, closeStore
		}},
	}
}

// trustingTxnWrite writes a transactional batch as the server does once
// the transaction coordinator confirmed the partition is in the
// transaction (these tests have no coordinator: every write is confirmed).
func trustingTxnWrite(p *storage.Partition) func(context.Context, TxnWrite, []byte) error {
	return func(ctx context.Context, txn TxnWrite, batch []byte) error {
		guard := p.StartTxnVerification(txn.ProducerID, txn.ProducerEpoch, -1)
		_, err := p.Append(ctx, batch, storage.AppendOptions{LeaderEpoch: 3, VerificationGuard: guard, FromCoordinator: true})
		return err
	}
}

// TestReplicatedPartitionLogWriteError: a failed replicated write fails the
// Append (the coordinator then answers with an error, not a lost commit).
func TestReplicatedPartitionLogWriteError(t *testing.T) {
	st, err := storage.Open(t.TempDir(), storage.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := st.CreatePartition(OffsetsTopic, 0, OffsetsTopicConfig())
	if err != nil {
		t.Fatal(err)
	}
	l := NewReplicatedPartitionLog(p, func(context.Context, []byte) error { return fmt.Errorf("not the leader: %w", ErrLogClosed) }, nil)
	err = l.Append(testCtx(t), []Record{{Key: []byte("k"), Value: []byte("v")}})
	if appendErrorCode(err) != kerr.NotCoordinator.Code {
		t.Fatalf("Append: %v, want an error answered NOT_COORDINATOR", err)
	}
	if end := p.LogEndOffset(); end != 0 {
		t.Fatalf("log end %d after a failed write, want 0", end)
	}
}

func TestOffsetLogsRestartScenario(t *testing.T) {
	for _, kind := range offsetLogKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			ctx := testCtx(t)
			log1, shutdown := kind.open(t)
			c1 := newTestCoordinator(t, log1)
			a := newTestMember(t, c1, "g", "a")
			joinAll(t, ctx, a)
			for p := range int32(20) {
				if code := a.commit(ctx, "t", p, int64(100+p)); code != 0 {
					t.Fatalf("commit: %s", codeName(code))
				}
			}
			if code := a.commit(ctx, "t", 3, 1000); code != 0 {
				t.Fatalf("commit: %s", codeName(code))
			}
			for _, p := range []int32{0, 1} {
				if r := c1.OffsetCommit(ctx, commitReq(8, "doomed", "", -1, "t", p, 5)); r.Topics[0].Partitions[0].ErrorCode != 0 {
					t.Fatal("commit failed")
				}
			}
			if err := c1.DeleteTopicOffsets(ctx, "never-there"); err != nil {
				t.Fatalf("DeleteTopicOffsets: %v", err)
			}
			del := c1.DeleteGroups(ctx, deleteGroupsReq("doomed"))
			if del.Groups[0].ErrorCode != 0 {
				t.Fatalf("DeleteGroups: %s", codeName(del.Groups[0].ErrorCode))
			}
			_ = c1.Close()
			shutdown()

			log2, _ := kind.open(t)
			c2 := newTestCoordinator(t, log2)
			for p := range int32(20) {
				want := int64(100 + p)
				if p == 3 {
					want = 1000
				}
				if off, _ := fetchOne(t, c2, "g", "t", p); off != want {
					t.Fatalf("t/%d after restart = %d, want %d", p, off, want)
				}
			}
			if off, _ := fetchOne(t, c2, "doomed", "t", 0); off != -1 {
				t.Fatalf("deleted group's offset after restart = %d", off)
			}
			a.c = c2
			if code := a.heartbeat(); code != 0 {
				t.Fatalf("member heartbeat after restart = %s", codeName(code))
			}
		})
	}
}

func TestPartitionLogRecordEncoding(t *testing.T) {
	dir := t.TempDir()
	st, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	l, err := OpenPartitionLog(st)
	if err != nil {
		t.Fatalf("OpenPartitionLog: %v", err)
	}
	if got := l.Partition().Config().CleanupPolicy; got != storage.CleanupCompact {
		t.Fatalf("offsets topic cleanup.policy = %q, want compact", got)
	}
	ctx := context.Background()
	var want []Record
	for i := range 50 {
		batch := []Record{
			{Key: []byte(fmt.Sprintf("key-%d", i)), Value: bytes.Repeat([]byte{byte(i)}, i*40)},
			{Key: []byte(fmt.Sprintf("gone-%d", i))}, // tombstone
			{Key: []byte(fmt.Sprintf("empty-%d", i)), Value: []byte{}},
		}
		if err := l.Append(ctx, batch); err != nil {
			t.Fatalf("Append: %v", err)
		}
		want = append(want, batch...)
	}
	if err := l.Append(ctx, nil); err != nil {
		t.Fatalf("empty Append: %v", err)
	}
	var got []Record
	if err := l.Replay(ctx, func(r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("replayed %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value) || (got[i].Value == nil) != (want[i].Value == nil) {
			t.Fatalf("record %d = %q/%q (nil %v), want %q/%q (nil %v)", i, got[i].Key, got[i].Value, got[i].Value == nil, want[i].Key, want[i].Value, want[i].Value == nil)
		}
	}
}

func deleteGroupsReq(groups ...string) *kmsg.DeleteGroupsRequest {
	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Version = 2
	req.Groups = groups
	return req
}

func TestPartitionLogErrorsMapToKafkaCodes(t *testing.T) {
	ctx := testCtx(t)
	st, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	cfg := OffsetsTopicConfig()
	cfg.MaxMessageBytes = 1024
	p, err := st.CreatePartition(OffsetsTopic, 0, cfg)
	if err != nil {
		t.Fatalf("creating partition: %v", err)
	}
	c := newTestCoordinator(t, NewPartitionLog(p))

	big := commitReq(8, "g", "", -1, "t", 0, 1)
	for part := int32(1); part < 50; part++ {
		big.Topics[0].Partitions = append(big.Topics[0].Partitions, kmsg.OffsetCommitRequestTopicPartition{Partition: part, Offset: 1, LeaderEpoch: -1})
	}
	resp := c.OffsetCommit(ctx, big)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidCommitOffsetSize.Code {
		t.Fatalf("commit larger than a batch = %s, want INVALID_COMMIT_OFFSET_SIZE", codeName(code))
	}
	if r := c.OffsetCommit(ctx, commitReq(8, "g", "", -1, "t", 0, 1)); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("small commit = %s", codeName(r.Topics[0].Partitions[0].ErrorCode))
	}

	if err := st.Close(); err != nil {
		t.Fatalf("closing store: %v", err)
	}
	if r := c.OffsetCommit(ctx, commitReq(8, "g", "", -1, "t", 0, 2)); r.Topics[0].Partitions[0].ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("commit after the store closed = %s, want NOT_COORDINATOR", codeName(r.Topics[0].Partitions[0].ErrorCode))
	}
}
