package replica

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/storage"
)

// staticControl is a control plane whose metadata never changes.
type staticControl struct {
	id int32
	st *metadata.State
}

func (c staticControl) NodeID() int32            { return c.id }
func (c staticControl) State() *metadata.State   { return c.st }
func (c staticControl) Changed() <-chan struct{} { return make(chan struct{}) }

// CaughtUp: the one state is the newest there is.
func (c staticControl) CaughtUp(*metadata.State) bool { return true }
func (c staticControl) AlterPartition(context.Context, string, int32, int32, int32, []int32) (metadata.Partition, error) {
	return metadata.Partition{}, context.DeadlineExceeded
}

// TestBecomingLeaderRecordsEpochStart: a broker that becomes leader at
// epoch 6 with a storage log written at epoch 4 answers a follower whose
// latest epoch is 5 (records of the previous leader it never got) with
// epoch 4 ending at its log end, in OffsetForLeaderEpoch and in a fetch's
// diverging epoch, before its first append at epoch 6. Without the epoch
// in its cache it answered UNDEFINED_EPOCH, on which the follower
// truncates to its own high watermark.
func TestBecomingLeaderRecordsEpochStart(t *testing.T) {
	store := openStore(t)
	logs := StoreLogs{Store: store}
	pl, err := logs.Open("t", 0, metadata.TopicID{1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := pl.(*storage.Partition).Append(context.Background(), produced(t, 2, -1, 0, "e4"), storage.AppendOptions{LeaderEpoch: 4}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	leo := pl.LogEndOffset()
	st := metadata.Empty()
	st.Index = 1
	st.Brokers[1] = &metadata.Broker{NodeID: 1, ReplicationAddr: "127.0.0.1:1"}
	st.Brokers[2] = &metadata.Broker{NodeID: 2, ReplicationAddr: "127.0.0.1:2"}
	st.Topics["t"] = metadata.NewTopic("t", metadata.TopicID{}, nil,
		metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 6, ISR: []int32{1, 2}, PartitionEpoch: 9},
	)
	mgr := StartManager(ManagerConfig{Control: staticControl{id: 1, st: st}, Logs: logs, ISRInterval: time.Hour, Logger: logger(t)})
	t.Cleanup(mgr.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mgr.WaitReconciled(ctx, st.Index); err != nil {
		t.Fatal(err)
	}
	l, log, ok := mgr.Leader("t", 0)
	if !ok {
		t.Fatal("broker 1 does not lead t-0")
	}
	if e, end := log.EndOffsetForLeaderEpoch(5); e != 4 || end != leo {
		t.Fatalf("OffsetForLeaderEpoch(5) on the new leader = (%d, %d), want (4, %d)", e, end, leo)
	}
	if got := log.LatestEpoch(); got != 6 {
		t.Fatalf("the new leader's latest epoch is %d, want 6", got)
	}
	// A follower whose log holds three more records at epoch 5 fetches.
	req := kmsg.NewFetchRequestTopicPartition()
	req.FetchOffset, req.LastFetchedEpoch, req.CurrentLeaderEpoch = leo+3, 5, 6
	rp := kmsg.NewFetchResponseTopicPartition()
	servePartition(2, l, log, &req, &rp, l.cfg.Now(), false, nil, nil)
	if rp.ErrorCode != 0 || rp.DivergingEpoch.Epoch != 4 || rp.DivergingEpoch.EndOffset != leo {
		t.Fatalf("fetch at %d with last fetched epoch 5: error %d, diverging epoch (%d, %d), want (4, %d)",
			leo+3, rp.ErrorCode, rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset, leo)
	}
}
