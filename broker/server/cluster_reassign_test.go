package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

// produceAcked produces n records to partition 0 of topic with acks=all
// through its leader.
func (c *inProcessCluster) produceAcked(topic string, n int) {
	c.t.Helper()
	waitCluster(c.t, 10*time.Second, func() error {
		leader, _ := c.leader(topic, 0)
		s, ok := c.servers[leader]
		if !ok {
			return fmt.Errorf("%s-0 led by %d, not running", topic, leader)
		}
		req := kmsg.NewProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = 9, -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch(-1, -1, -1, n, 100)
		rt.Partitions = []kmsg.ProduceRequestTopicPartition{rp}
		req.Topics = []kmsg.ProduceRequestTopic{rt}
		if code := roundTrip[*kmsg.ProduceResponse](c.t, s, &req).Topics[0].Partitions[0].ErrorCode; code != 0 {
			return fmt.Errorf("acks=all produce to %s-0 on %d: %w", topic, leader, kerr.ErrorForCode(code))
		}
		return nil
	})
}

// reassign moves partition 0 of topic to replicas through broker via.
func (c *inProcessCluster) reassign(via int32, topic string, replicas []int32) {
	c.t.Helper()
	req := kmsg.NewAlterPartitionAssignmentsRequest()
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	rp.Partition, rp.Replicas = 0, replicas
	rt.Partitions = []kmsg.AlterPartitionAssignmentsRequestTopicPartition{rp}
	req.Topics = []kmsg.AlterPartitionAssignmentsRequestTopic{rt}
	resp := roundTrip[*kmsg.AlterPartitionAssignmentsResponse](c.t, c.servers[via], &req)
	if resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		c.t.Fatalf("reassignment refused: %v / %v", kerr.ErrorForCode(resp.ErrorCode), kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode))
	}
}

// partitionDirs lists the directories of dir named for topic's partition
// 0, under its name or renamed for deletion.
func partitionDirs(t *testing.T, dir, topic string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() == topic+"-0" || strings.HasPrefix(e.Name(), topic+"-0.") {
			out = append(out, e.Name())
		}
	}
	return out
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestClusterRestartedBrokerDeletesItsStrayLog: broker 1 is down while a
// partition moves off it; restarted with its data, it deletes that log once
// its metadata has caught up, and keeps (the same directory, not a copy
// fetched again) the log of a partition still assigned to it.
func TestClusterRestartedBrokerDeletesItsStrayLog(t *testing.T) {
	edit := func(cfg *config.Config) { cfg.LogSegmentDeleteDelay = 0 }
	c := startInProcessCluster(t, edit)
	c.createReplicated("strayed", 1)
	c.createReplicated("kept", 1)
	c.produceAcked("strayed", 4)
	c.produceAcked("kept", 6)
	dir1 := c.servers[1].Config().DataDir
	keptIno := inode(t, filepath.Join(dir1, "kept-0"))

	cfg1 := c.stopMember(1)
	c.reassign(2, "strayed", []int32{2, 3})
	waitCluster(t, 20*time.Second, func() error {
		p, _ := c.servers[2].lookupPartition("strayed", 0)
		if len(p.replicas) != 2 {
			return fmt.Errorf("strayed-0 replicas %v", p.replicas)
		}
		return nil
	})
	if got := partitionDirs(t, dir1, "strayed"); len(got) != 1 {
		t.Fatalf("broker 1, down, holds %v for strayed-0", got)
	}

	srv := c.restartMember(1, cfg1, edit)
	waitCluster(t, 20*time.Second, func() error {
		if got := partitionDirs(t, dir1, "strayed"); len(got) != 0 {
			return fmt.Errorf("restarted broker 1 still holds %v", got)
		}
		return nil
	})
	if ino := inode(t, filepath.Join(dir1, "kept-0")); ino != keptIno {
		t.Fatal("kept-0 on broker 1 is a new directory after the restart: its log was deleted")
	}
	if p, ok := srv.store.Partition("kept", 0); !ok || p.LogEndOffset() != 6 {
		t.Fatal("broker 1 lost kept-0's records")
	}
	for _, id := range []int32{2, 3} {
		if p, ok := c.servers[id].store.Partition("strayed", 0); !ok || p.LogEndOffset() != 4 {
			t.Fatalf("broker %d: strayed-0 does not hold the 4 acknowledged records", id)
		}
	}
}

// TestClusterDeletesTheLogOfAPartitionMovedAway: a partition reassigned
// off broker 1 (AlterPartitionReassignments) leaves no directory there
// once the move completes (log.segment.delete.delay.ms 0), and the
// acknowledged records are whole on the replicas it moved to.
func TestClusterDeletesTheLogOfAPartitionMovedAway(t *testing.T) {
	c := startInProcessCluster(t, func(cfg *config.Config) { cfg.LogSegmentDeleteDelay = 0 })
	c.createReplicated("moving", 1)
	c.produceAcked("moving", 5)
	dir1 := c.servers[1].Config().DataDir
	if _, err := os.Stat(filepath.Join(dir1, "moving-0")); err != nil {
		t.Fatalf("broker 1 holds no directory for moving-0 before the move: %v", err)
	}
	c.reassign(1, "moving", []int32{2, 3})
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
