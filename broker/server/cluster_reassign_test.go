package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

// TestClusterDeletesTheLogOfAPartitionMovedAway: a partition reassigned
// off broker 1 (AlterPartitionReassignments) leaves no directory there
// once the move completes (log.segment.delete.delay.ms 0), and the
// acknowledged records are whole on the replicas it moved to.
func TestClusterDeletesTheLogOfAPartitionMovedAway(t *testing.T) {
	c := startInProcessCluster(t, func(cfg *config.Config) { cfg.LogSegmentDeleteDelay = 0 })
	c.createReplicated("moving", 1)
	leader, _ := c.leader("moving", 0)
	preq := kmsg.NewProduceRequest()
	preq.Version, preq.Acks, preq.TimeoutMillis = 9, -1, 10000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "moving"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = batch(-1, -1, -1, 5, 100)
	pt.Partitions = []kmsg.ProduceRequestTopicPartition{pp}
	preq.Topics = []kmsg.ProduceRequestTopic{pt}
	if code := roundTrip[*kmsg.ProduceResponse](t, c.servers[leader], &preq).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("acks=all produce on leader %d: %v", leader, kerr.ErrorForCode(code))
	}
	dir1 := c.servers[1].Config().DataDir
	if _, err := os.Stat(filepath.Join(dir1, "moving-0")); err != nil {
		t.Fatalf("broker 1 holds no directory for moving-0 before the move: %v", err)
	}

	req := kmsg.NewAlterPartitionAssignmentsRequest()
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = "moving"
	rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	rp.Partition, rp.Replicas = 0, []int32{2, 3}
	rt.Partitions = []kmsg.AlterPartitionAssignmentsRequestTopicPartition{rp}
	req.Topics = []kmsg.AlterPartitionAssignmentsRequestTopic{rt}
	resp := roundTrip[*kmsg.AlterPartitionAssignmentsResponse](t, c.servers[1], &req)
	if resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("reassignment refused: %v / %v", kerr.ErrorForCode(resp.ErrorCode), kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode))
	}
	waitCluster(t, 20*time.Second, func() error {
		if _, ok := c.servers[1].store.Partition("moving", 0); ok {
			return errors.New("broker 1 still holds moving-0")
		}
		entries, err := os.ReadDir(dir1)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "moving-0") {
				return fmt.Errorf("broker 1 still has %s", e.Name())
			}
		}
		return nil
	})
	var want []byte
	for _, id := range []int32{2, 3} {
		p, ok := c.servers[id].store.Partition("moving", 0)
		if !ok {
			t.Fatalf("broker %d lost its replica of moving-0", id)
		}
		got, err := p.Read(0, 1<<20, p.LogEndOffset())
		if err != nil {
			t.Fatalf("broker %d: reading moving-0: %v", id, err)
		}
		if p.LogEndOffset() != 5 {
			t.Fatalf("broker %d: moving-0 ends at %d, want the 5 acknowledged records", id, p.LogEndOffset())
		}
		if want == nil {
			want = got
		} else if !bytes.Equal(got, want) {
			t.Fatalf("brokers 2 and 3 hold different bytes for moving-0")
		}
	}
}
