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

	"github.com/tributary/tributary/broker/cluster/node"
	"github.com/tributary/tributary/broker/cluster/replica"
)

// A consumer's fetch that reaches a broker whose metadata makes it a
// partition's leader before its replica manager has taken the leadership
// up (still opening the log) waits for it, within the fetch's MaxWait,
// instead of being refused NOT_LEADER_OR_FOLLOWER and backing off for a
// metadata refresh; a fetch whose MaxWait passes first is answered then,
// not held longer than it asked. ListOffsets waits the same way.
func TestFetchWaitsForALeadershipBeingTakenUp(t *testing.T) {
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

	fetch := func(maxWait int32) *kmsg.FetchRequest {
		f := fetchReq("opening", 0, 1<<20, 1<<20)
		f.MaxWaitMillis, f.MinBytes = maxWait, 0
		return f
	}
	c := dial(t, s)

	// A short MaxWait: answered when it passes, refused as before.
	start := time.Now()
	corr := c.send(fetch(300))
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 12
	c.recv(resp, corr)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("fetch with the log held past its MaxWait: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(code))
	}
	if took := time.Since(start); took < 250*time.Millisecond || took > 3*time.Second {
		t.Fatalf("a fetch with MaxWait 300 ms was answered after %v", took)
	}

	// A long MaxWait: nothing until the log is open, then the read.
	// ListOffsets, which has no wait of its own, waits the same way
	// within the server's bound (10 s here).
	s.unknownTopicWaitNs.Store(int64(10 * time.Second))
	corr = c.send(fetch(10000))
	list := listOffsetsReq("opening", 0, timestampEarliest)
	lc := dial(t, s)
	listCorr := lc.send(list)
	if body, err := c.readFrame(300 * time.Millisecond); err == nil {
		t.Fatalf("answered while the leadership was being taken up (%d-byte response)", len(body))
	}
	if body, err := lc.readFrame(50 * time.Millisecond); err == nil {
		t.Fatalf("ListOffsets answered while the leadership was being taken up (%d-byte response)", len(body))
	}
	release()
	lresp := kmsg.NewPtrListOffsetsResponse()
	lresp.Version = list.Version
	lc.recv(lresp, listCorr)
	if p := lresp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 0 {
		t.Fatalf("ListOffsets once the log opened: %v, offset %d", kerr.ErrorForCode(p.ErrorCode), p.Offset)
	}
	resp = kmsg.NewPtrFetchResponse()
	resp.Version = 12
	c.recv(resp, corr)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.HighWatermark != 0 {
		t.Fatalf("fetch once the log opened: %v, high watermark %d", kerr.ErrorForCode(p.ErrorCode), p.HighWatermark)
	}
	if err := <-created; err != nil {
		t.Fatalf("creating the topic: %v", err)
	}
}
