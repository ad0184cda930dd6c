package groups

import (
	"context"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/storage"
)

func txnCommitReq(group string, pid int64, epoch int16, generation int32, member string, topic string, partition int32, offset int64) *kmsg.TxnOffsetCommitRequest {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version = 3
	req.TransactionalID = "tx-" + group
	req.Group = group
	req.ProducerID, req.ProducerEpoch = pid, epoch
	req.Generation, req.MemberID = generation, member
	t := kmsg.NewTxnOffsetCommitRequestTopic()
	t.Topic = topic
	p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset, p.LeaderEpoch = partition, offset, -1
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return req
}

func txnCommit(t *testing.T, c *Coordinator, req *kmsg.TxnOffsetCommitRequest) int16 {
	t.Helper()
	resp := c.TxnOffsetCommit(testCtx(t), req)
	return resp.Topics[0].Partitions[0].ErrorCode
}

// fetchOne returns a partition's committed offset and error, with or
// without require_stable.
func fetchTxnOne(t *testing.T, c *Coordinator, group, topic string, partition int32, stable bool) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 7
	req.Group = group
	req.RequireStable = stable
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{partition}
	req.Topics = append(req.Topics, rt)
	resp := c.OffsetFetch(req)
	if resp.ErrorCode != 0 {
		t.Fatalf("OffsetFetch: group error %s", codeName(resp.ErrorCode))
	}
	p := resp.Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

func wantOffset(t *testing.T, c *Coordinator, group, topic string, partition int32, want int64) {
	t.Helper()
	if got, code := fetchTxnOne(t, c, group, topic, partition, false); got != want || code != 0 {
		t.Fatalf("%s %s[%d]: offset %d (%s), want %d", group, topic, partition, got, codeName(code), want)
	}
}

// txnLog is an offsets log that can also write markers, as WriteTxnMarkers
// does on the offsets partition.
type txnLog struct {
	name   string
	log    OffsetLog
	marker func(t *testing.T, pid int64, epoch int16, commit bool)
	reopen func(t *testing.T) OffsetLog
}

func txnLogKinds(t *testing.T) []txnLog {
	mem := NewMemoryLog()
	st, err := storage.Open(t.TempDir(), storage.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	p, err := st.CreatePartition(OffsetsTopic, 0, OffsetsTopicConfig())
	if err != nil {
		t.Fatal(err)
	}
	replicated := func() OffsetLog {
		return NewReplicatedPartitionLog(p, func(ctx context.Context, batch []byte) error {
			_, err := p.Append(ctx, batch, storage.AppendOptions{LeaderEpoch: 3})
			return err
		}, trustingTxnWrite(p))
	}
	return []txnLog{
		{name: "memory", log: mem,
			marker: func(_ *testing.T, pid int64, _ int16, commit bool) { mem.AppendMarker(pid, commit) },
			reopen: func(*testing.T) OffsetLog { return mem }},
		{name: "partition", log: replicated(),
			marker: func(t *testing.T, pid int64, epoch int16, commit bool) {
				t.Helper()
				if _, err := p.AppendTxnMarker(context.Background(), storage.TxnMarker{ProducerID: pid, ProducerEpoch: epoch, Commit: commit}, storage.AppendOptions{LeaderEpoch: 3}); err != nil {
					t.Fatal(err)
				}
			},
			reopen: func(*testing.T) OffsetLog { return replicated() }},
	}
}

// TestTxnOffsetsVisibleOnlyAtCommit: offsets committed in a transaction
// stay invisible (and unstable for require_stable readers) until the
// COMMIT marker, are dropped by ABORT, lose to a later plain commit, and
// come back the same from the log after a restart, pending ones included.
func TestTxnOffsetsVisibleOnlyAtCommit(t *testing.T) {
	for _, kind := range txnLogKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			c := newTestCoordinator(t, kind.log)
			const g = "etl"
			if code := txnCommit(t, c, txnCommitReq(g, 10, 0, -1, "", "in", 0, 5)); code != 0 {
				t.Fatalf("txn commit: %s", codeName(code))
			}
			wantOffset(t, c, g, "in", 0, -1)
			if _, code := fetchTxnOne(t, c, g, "in", 0, true); code != kerr.UnstableOffsetCommit.Code {
				t.Fatalf("require_stable with a pending transaction: %s, want UNSTABLE_OFFSET_COMMIT", codeName(code))
			}
			kind.marker(t, 10, 0, true)
			c.CompleteTxn(10, true)
			wantOffset(t, c, g, "in", 0, 5)
			if _, code := fetchTxnOne(t, c, g, "in", 0, true); code != 0 {
				t.Fatalf("require_stable after the commit: %s", codeName(code))
			}

			// An aborted transaction leaves the offset where it was.
			if code := txnCommit(t, c, txnCommitReq(g, 11, 0, -1, "", "in", 0, 9)); code != 0 {
				t.Fatal(codeName(code))
			}
			kind.marker(t, 11, 0, false)
			c.CompleteTxn(11, false)
			wantOffset(t, c, g, "in", 0, 5)

			// A plain commit written after the transactional one wins.
			if code := txnCommit(t, c, txnCommitReq(g, 12, 0, -1, "", "in", 1, 7)); code != 0 {
				t.Fatal(codeName(code))
			}
			ctx := testCtx(t)
			oc := kmsg.NewPtrOffsetCommitRequest()
			oc.Version, oc.Group, oc.Generation = 8, g, -1
			ot := kmsg.NewOffsetCommitRequestTopic()
			ot.Topic = "in"
			op := kmsg.NewOffsetCommitRequestTopicPartition()
			op.Partition, op.Offset = 1, 8
			ot.Partitions = append(ot.Partitions, op)
			oc.Topics = append(oc.Topics, ot)
			if code := c.OffsetCommit(ctx, oc).Topics[0].Partitions[0].ErrorCode; code != 0 {
				t.Fatal(codeName(code))
			}
			kind.marker(t, 12, 0, true)
			c.CompleteTxn(12, true)
			wantOffset(t, c, g, "in", 1, 8)

			// One more left open across a restart.
			if code := txnCommit(t, c, txnCommitReq(g, 13, 2, -1, "", "in", 2, 3)); code != 0 {
				t.Fatal(codeName(code))
			}
			_ = c.Close()
			c = newTestCoordinator(t, kind.reopen(t))
			wantOffset(t, c, g, "in", 0, 5)
			wantOffset(t, c, g, "in", 1, 8)
			wantOffset(t, c, g, "in", 2, -1)
			if _, code := fetchTxnOne(t, c, g, "in", 2, true); code != kerr.UnstableOffsetCommit.Code {
				t.Fatalf("pending transaction after restart: %s, want UNSTABLE_OFFSET_COMMIT", codeName(code))
			}
			kind.marker(t, 13, 2, true)
			c.CompleteTxn(13, true)
			wantOffset(t, c, g, "in", 2, 3)

			// And the decided ones replay the same.
			_ = c.Close()
			c = newTestCoordinator(t, kind.reopen(t))
			wantOffset(t, c, g, "in", 0, 5)
			wantOffset(t, c, g, "in", 1, 8)
			wantOffset(t, c, g, "in", 2, 3)
		})
	}
}

// TestTxnOffsetCommitGroupMetadata: KIP-447's fencing of consumers that
// lost their generation.
func TestTxnOffsetCommitGroupMetadata(t *testing.T) {
	c := newTestCoordinator(t, NewMemoryLog())
	ctx := testCtx(t)
	m := newTestMember(t, c, "g", "c1")
	joinAll(t, ctx, m)
	syncAll(t, ctx, m)
	for _, tc := range []struct {
		name       string
		generation int32
		member     string
		want       int16
	}{
		{"current member and generation", m.generation, m.id, 0},
		{"old generation", m.generation - 1, m.id, kerr.IllegalGeneration.Code},
		{"unknown member", m.generation, "ghost", kerr.UnknownMemberID.Code},
		{"no group metadata (v0-v2 producers)", -1, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := txnCommit(t, c, txnCommitReq("g", 20, 0, tc.generation, tc.member, "t", 0, 1)); code != tc.want {
				t.Fatalf("got %s, want %s", codeName(code), codeName(tc.want))
			}
		})
	}
	bad := txnCommitReq("g", -1, 0, -1, "", "t", 0, 1)
	if code := txnCommit(t, c, bad); code != kerr.InvalidRequest.Code {
		t.Fatalf("no producer id: %s", codeName(code))
	}
}

// TestTxnOffsetCommitWriteRefused: a refusal by the transaction's checks
// (the offsets partition not in the transaction) is the answer, and
// nothing is pending.
func TestTxnOffsetCommitWriteRefused(t *testing.T) {
	st, err := storage.Open(t.TempDir(), storage.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	p, err := st.CreatePartition(OffsetsTopic, 0, OffsetsTopicConfig())
	if err != nil {
		t.Fatal(err)
	}
	log := NewReplicatedPartitionLog(p, func(ctx context.Context, batch []byte) error {
		_, err := p.Append(ctx, batch, storage.AppendOptions{})
		return err
	}, func(ctx context.Context, txn TxnWrite, batch []byte) error {
		return kerr.InvalidTxnState
	})
	c := newTestCoordinator(t, log)
	if code := txnCommit(t, c, txnCommitReq("g", 30, 0, -1, "", "t", 0, 1)); code != kerr.InvalidTxnState.Code {
		t.Fatalf("refused write answered %s", codeName(code))
	}
	if _, code := fetchTxnOne(t, c, "g", "t", 0, true); code != 0 {
		t.Fatalf("a refused commit left a pending offset (%s)", codeName(code))
	}
}
