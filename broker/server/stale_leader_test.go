package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/storage"
)

// TestStaleLeaderAppendRefusedOnceFollowing: a produce that looked up this
// broker's leadership just before it moved (producePartition takes the
// leader and its epoch, then appends) can reach the log after the broker
// follows the new leader and has copied records of the new epoch. Landing
// there, at offsets where the new leader has other records, it would be
// counted by the new leader as replicated once this replica fetches past
// it, so an acknowledged record would be missing from an in-sync replica
// (and lost if that replica leads again). Such an append is refused with
// NOT_LEADER_OR_FOLLOWER instead.
func TestStaleLeaderAppendRefusedOnceFollowing(t *testing.T) {
	c := startInProcessCluster(t)
	c.createReplicated("stale", 1)
	old, oldEpoch := c.leader("stale", 0)
	produceTo := func(id int32, tag string) {
		t.Helper()
		resp := roundTrip[*kmsg.ProduceResponse](t, c.servers[id], produceReq("stale", -1, batch(-1, -1, -1, 1, 10)))
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("%s: produce through broker %d: %v", tag, id, kerr.ErrorForCode(code))
		}
	}
	produceTo(old, "before the move")

	// Move the preferred replica slot away from the leader; the
	// controller's preferred elections (every 500 ms here) move the
	// leadership with it.
	p, _ := c.servers[1].lookupPartition("stale", 0)
	replicas := append(slices.DeleteFunc(slices.Clone(p.replicas), func(r int32) bool { return r == old }), old)
	req := kmsg.NewAlterPartitionAssignmentsRequest()
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = "stale"
	rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	rp.Partition, rp.Replicas = 0, replicas
	rt.Partitions = []kmsg.AlterPartitionAssignmentsRequestTopicPartition{rp}
	req.Topics = []kmsg.AlterPartitionAssignmentsRequestTopic{rt}
	resp := roundTrip[*kmsg.AlterPartitionAssignmentsResponse](t, c.servers[1], &req)
	if resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("reassignment refused: %v / %v", kerr.ErrorForCode(resp.ErrorCode), kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode))
	}
	newLeader := replicas[0]
	waitCluster(t, 20*time.Second, func() error {
		for id, s := range c.servers {
			p, ok := s.lookupPartition("stale", 0)
			if !ok || p.leader != newLeader || len(p.isr) != 3 {
				return fmt.Errorf("broker %d sees stale-0 led by %d, ISR %v; want %d and a full ISR", id, p.leader, p.isr, newLeader)
			}
		}
		if _, ok := c.nodes[old].Leader("stale", 0); ok {
			return fmt.Errorf("broker %d still leads stale-0", old)
		}
		return nil
	})
	produceTo(newLeader, "after the move")

	// The old leader has copied the new epoch's record.
	oldLog, ok := c.servers[old].store.Partition("stale", 0)
	if !ok {
		t.Fatalf("broker %d has no log of stale-0", old)
	}
	newLog, _ := c.servers[newLeader].store.Partition("stale", 0)
	waitCluster(t, 10*time.Second, func() error {
		if o, n := oldLog.LogEndOffset(), newLog.LogEndOffset(); o != n {
			return fmt.Errorf("broker %d's log ends at %d, the leader's at %d", old, o, n)
		}
		return nil
	})
	if e := oldLog.LatestEpoch(); e <= oldEpoch {
		t.Fatalf("broker %d's log's newest epoch is %d, want past %d", old, e, oldEpoch)
	}

	// The late append of a produce taken under the old leadership.
	end := oldLog.LogEndOffset()
	_, err := oldLog.Append(context.Background(), batch(-1, -1, -1, 1, 10), storage.AppendOptions{LeaderEpoch: oldEpoch})
	if err == nil {
		t.Fatalf("broker %d, following at a newer epoch, took a leader append at its old epoch %d at offset %d, where the leader will write other records", old, oldEpoch, end)
	}
	if !errors.Is(err, storage.ErrFencedLeaderEpoch) || storageErrorCode(err) != kerr.NotLeaderForPartition.Code {
		t.Fatalf("stale append refused with %v (code %d), want %v and NOT_LEADER_OR_FOLLOWER", err, storageErrorCode(err), storage.ErrFencedLeaderEpoch)
	}
	if got := oldLog.LogEndOffset(); got != end {
		t.Fatalf("the refused append moved the log end from %d to %d", end, got)
	}
}
