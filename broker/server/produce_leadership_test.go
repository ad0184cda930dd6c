package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/node"
	"github.com/tributary/tributary/broker/cluster/replica"
)

// gatedLogs holds the opening of one topic's logs until release.
type gatedLogs struct {
	replica.Logs
	topic string
	gate  <-chan struct{}
}

func (g gatedLogs) Open(topic string, partition int32, id metadata.TopicID, configs map[string]string) (replica.PartitionLog, error) {
	if topic == g.topic {
		<-g.gate
	}
	return g.Logs.Open(topic, partition, id, configs)
}

// A produce that reaches a broker whose metadata makes it a partition's
// leader before its replica manager has taken the leadership up (it is
// still opening the log: a new topic, a leadership just moved here) waits
// for it instead of being refused NOT_LEADER_OR_FOLLOWER: franz-go waits
// up to its metadata.min.age (5 s) before it asks again, which is how a
// fresh producer's first records were acknowledged after 5 s.
func TestProduceWaitsForALeadershipBeingTakenUp(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	s := startServerWithOptions(t, nil, Options{Node: func(o *node.Options) {
		o.Logs = func(l replica.Logs) replica.Logs { return gatedLogs{Logs: l, topic: "opening", gate: gate} }
	}})
	t.Cleanup(release) // before the server's shutdown

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	created := make(chan error, 1)
	go func() {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "opening", 1, 1
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(context.Background(), cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
		}
		created <- err
	}()
	// The metadata has the topic, led by this broker; the replica
	// manager is held opening its log.
	waitCluster(t, 10*time.Second, func() error {
		p, ok := s.lookupPartition("opening", 0)
		if !ok || p.leader != s.nodeID {
			return fmt.Errorf("the topic view does not make broker %d the leader yet", s.nodeID)
		}
		return nil
	})
	if _, ok := s.node.Leader("opening", 0); ok {
		t.Fatal("the replica manager leads a partition whose log it has not opened")
	}

	c := dial(t, s)
	corr := c.send(produceReq("opening", -1, batch(-1, -1, -1, 3, 10)))
	// Refused at once without the wait; with it, nothing comes until
	// the log is open.
	if body, err := c.readFrame(300 * time.Millisecond); err == nil {
		t.Fatalf("answered while the leadership was being taken up (%d-byte response)", len(body))
	}
	release()
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	c.recv(resp, corr)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("produce once the log opened: %v, base offset %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if err := <-created; err != nil {
		t.Fatalf("creating the topic: %v", err)
	}
}
