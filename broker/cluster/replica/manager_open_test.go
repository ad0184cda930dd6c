package replica

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster"
	"github.com/tributary/tributary/broker/cluster/metadata"
)

// gatedLogs is a disk whose opens of one topic's logs hang until the test
// lets them through, as creating thousands of partitions' files does.
type gatedLogs struct {
	memLogs
	topic   string
	opening chan struct{} // receives once per open of topic that waits
	release chan struct{} // closed: opens of topic go through
}

func (g *gatedLogs) Open(topic string, partition int32, id metadata.TopicID, configs map[string]string) (PartitionLog, error) {
	if topic == g.topic {
		g.opening <- struct{}{}
		<-g.release
	}
	return g.memLogs.Open(topic, partition, id, configs)
}

// TestLeaderLookupWhileLogsOpen checks that the lookup every produce and
// fetch makes (Manager.Leader) does not wait while the manager opens the
// logs of a new topic.
func TestLeaderLookupWhileLogsOpen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	kafka := newFakeLeader(t)
	t.Cleanup(kafka.close)
	ctl, err := cluster.Start(cluster.Config{
		NodeID: 1, Rack: "a", Voters: []cluster.Voter{{ID: 1, Addr: ln.Addr().String()}}, Listener: ln, Dir: t.TempDir(), ClusterID: "c",
		ReplicationAddr:   kafka.addr(),
		HeartbeatInterval: 200 * time.Millisecond, Lease: 3 * time.Second, RebalanceInterval: 500 * time.Millisecond,
		RaftHeartbeatTimeout: 500 * time.Millisecond, RaftElectionTimeout: 500 * time.Millisecond, RaftLeaderLease: 250 * time.Millisecond,
		Logger: logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl.Close() })
	logs := &gatedLogs{topic: "slow", opening: make(chan struct{}, 1), release: make(chan struct{})}
	mgr := StartManager(ManagerConfig{Control: ctl, Logs: logs, DefaultMinISR: 1, ISRInterval: 50 * time.Millisecond, Logger: logger(t)})
	t.Cleanup(mgr.Close)
	released := false
	t.Cleanup(func() {
		if !released {
			close(logs.release)
		}
	})

	create := func(name string) {
		t.Helper()
		checkFor(t, 10*time.Second, func() error {
			_, err := ctl.CreateTopic(context.Background(), name, 1, 1, nil)
			return err
		})
	}
	create("fast")
	checkFor(t, 10*time.Second, func() error {
		if _, _, ok := mgr.Leader("fast", 0); !ok {
			return errors.New("not leading yet")
		}
		return nil
	})

	create("slow")
	select {
	case <-logs.opening:
	case <-time.After(10 * time.Second):
		t.Fatal("the manager did not start opening the new topic's log")
	}
	looked := make(chan bool, 1)
	go func() {
		_, _, ok := mgr.Leader("fast", 0)
		looked <- ok
	}()
	select {
	case ok := <-looked:
		if !ok {
			t.Fatal("fast-0 is no longer led while slow-0's log opens")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Manager.Leader waited for a log being opened")
	}

	close(logs.release)
	released = true
	checkFor(t, 10*time.Second, func() error {
		if _, _, ok := mgr.Leader("slow", 0); !ok {
			return errors.New("not leading yet")
		}
		return nil
	})
}
