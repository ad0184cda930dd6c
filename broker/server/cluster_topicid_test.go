package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/storage"
)

// stopMember stops broker id as a crash would (its node first), keeping
// its data directory, and returns its configuration for restartMember.
func (c *inProcessCluster) stopMember(id int32) *config.Config {
	c.t.Helper()
	cfg := c.servers[id].Config()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.servers[id].node.Close()
	_ = c.servers[id].Shutdown(ctx)
	delete(c.servers, id)
	return cfg
}

// restartMember starts broker id again on its data directory and
// controller address (cfg from stopMember); it returns once the broker
// serves, its metadata caught up and its replicas reconciled with it.
func (c *inProcessCluster) restartMember(id int32, cfg *config.Config, edit ...func(*config.Config)) *Server {
	c.t.Helper()
	var voter string
	for _, v := range strings.Split(cfg.ControllerQuorumVoters, ",") {
		if addr, ok := strings.CutPrefix(v, fmt.Sprintf("%d@", id)); ok {
			voter = addr
		}
	}
	var ctlLn net.Listener
	waitCluster(c.t, 5*time.Second, func() error {
		var err error
		ctlLn, err = net.Listen("tcp", voter)
		return err
	})
	dir := cfg.DataDir
	edit = append(edit, func(cfg *config.Config) { cfg.DataDir = dir })
	srv, _, err := startClusterMember(c.t, id, cfg.ControllerQuorumVoters, ctlLn, listenLoopback(c.t), nil, edit...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.servers[id] = srv
	return srv
}

// produceVia produces n records of size bytes each, in one batch with
// acks=all, to partition 0 of topic through its leader as broker view
// sees it.
func (c *inProcessCluster) produceVia(view int32, topic string, n, size int) {
	c.t.Helper()
	waitCluster(c.t, 10*time.Second, func() error {
		p, ok := c.servers[view].lookupPartition(topic, 0)
		if !ok {
			return fmt.Errorf("%s-0 not in broker %d's view", topic, view)
		}
		s, ok := c.servers[p.leader]
		if !ok {
			return fmt.Errorf("%s-0 led by %d, not running", topic, p.leader)
		}
		req := kmsg.NewProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = 9, -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch(-1, -1, -1, n, size)
		rt.Partitions = []kmsg.ProduceRequestTopicPartition{rp}
		req.Topics = []kmsg.ProduceRequestTopic{rt}
		if code := roundTrip[*kmsg.ProduceResponse](c.t, s, &req).Topics[0].Partitions[0].ErrorCode; code != 0 {
			return fmt.Errorf("acks=all produce to %s-0 on %d: %w", topic, p.leader, kerr.ErrorForCode(code))
		}
		return nil
	})
}

// readLog reads a whole partition log.
func readLog(t *testing.T, p *storage.Partition) []byte {
	t.Helper()
	b, err := p.Read(p.LogStartOffset(), 1<<24, p.LogEndOffset())
	if err != nil {
		t.Fatalf("reading %s: %v", p.Dir(), err)
	}
	return b
}

// TestClusterTopicRecreatedWhileABrokerWasDown: broker 1 is down while its
// topic is deleted and created again under the same name, with other data
// and broker 1 among the new topic's replicas. Restarted on its data
// directory (where the old topic's log sits under the same directory
// name), it must hold the new topic's log from the moment it serves, and
// end with the new topic's records byte for byte as its leader has them
// and in the ISR; the old topic's records must not come back as the new
// topic's.
func TestClusterTopicRecreatedWhileABrokerWasDown(t *testing.T) {
	edit := func(cfg *config.Config) { cfg.LogSegmentDeleteDelay = 0 }
	c := startInProcessCluster(t, edit)
	c.createReplicated("reborn", 1)
	// More, larger records than the new topic gets: a replica that kept
	// the old log would be ahead of the new leader, and cut back to it
	// by the leader epochs, keep old bytes under new offsets.
	for range 3 {
		c.produceVia(1, "reborn", 5, 200)
	}
	oldID := c.servers[1].node.Controller.State().Topics["reborn"].ID
	cfg1 := c.stopMember(1)

	dreq := kmsg.NewDeleteTopicsRequest()
	dreq.Version, dreq.TopicNames = 4, []string{"reborn"}
	if code := roundTrip[*kmsg.DeleteTopicsResponse](t, c.servers[2], &dreq).Topics[0].ErrorCode; code != 0 {
		t.Fatalf("DeleteTopics: %v", kerr.ErrorForCode(code))
	}
	waitCluster(t, 10*time.Second, func() error {
		for id, s := range c.servers {
			if _, ok := s.store.Partition("reborn", 0); ok {
				return fmt.Errorf("broker %d still has the old reborn-0", id)
			}
		}
		return nil
	})
	creq := kmsg.NewCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "reborn", -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{2, 3, 1}
	ct.ReplicaAssignment = []kmsg.CreateTopicsRequestTopicReplicaAssignment{ra}
	creq.Topics, creq.Version = []kmsg.CreateTopicsRequestTopic{ct}, 7
	if code := roundTrip[*kmsg.CreateTopicsResponse](t, c.servers[2], &creq).Topics[0].ErrorCode; code != 0 {
		t.Fatalf("creating reborn again: %v", kerr.ErrorForCode(code))
	}
	newID := c.servers[2].node.Controller.State().Topics["reborn"].ID
	if newID == oldID {
		t.Fatal("the topic created again has the old id")
	}
	c.produceVia(2, "reborn", 3, 50)
	c.produceVia(2, "reborn", 2, 50)

	srv := c.restartMember(1, cfg1, edit)
	// Serving now: whatever log broker 1 holds for reborn-0 is the new
	// topic's.
	if p, ok := srv.store.Partition("reborn", 0); !ok {
		t.Fatal("restarted broker 1 opened no log for reborn-0, a replica of its")
	} else if got := p.TopicID(); got != storage.TopicID(newID) {
		t.Fatalf("restarted broker 1 serves reborn-0 from a log of topic id %s, want the new topic's %s (old %s)", got, newID, oldID)
	}
	var leaderLog, log1 []byte
	waitCluster(t, 20*time.Second, func() error {
		lp, ok := c.servers[2].lookupPartition("reborn", 0)
		if !ok || lp.leader < 0 {
			return fmt.Errorf("reborn-0 has no leader in broker 2's view")
		}
		if !slices.Contains(lp.isr, 1) {
			return fmt.Errorf("broker 1 not back in reborn-0's ISR %v", lp.isr)
		}
		leader, ok := c.servers[lp.leader].store.Partition("reborn", 0)
		if !ok {
			return fmt.Errorf("leader %d holds no reborn-0", lp.leader)
		}
		p1, ok := srv.store.Partition("reborn", 0)
		if !ok {
			return fmt.Errorf("broker 1 holds no reborn-0")
		}
		leaderLog, log1 = readLog(t, leader), readLog(t, p1)
		if leader.LogEndOffset() != 5 || p1.LogEndOffset() != 5 {
			return fmt.Errorf("reborn-0 ends at %d on the leader and %d on broker 1, want 5", leader.LogEndOffset(), p1.LogEndOffset())
		}
		if !bytes.Equal(leaderLog, log1) {
			return fmt.Errorf("broker 1's reborn-0 (%d bytes) differs from its leader's (%d bytes)", len(log1), len(leaderLog))
		}
		return nil
	})
}
