package cluster

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// raftMembers lists the node ids of a controller's Raft configuration.
func raftMembers(c *Controller) ([]raft.ServerID, error) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var ids []raft.ServerID
	for _, s := range f.Configuration().Servers {
		ids = append(ids, s.ID)
	}
	return ids, nil
}

// TestUnregisterBrokerForgetsAStoppedNonVoter: a non-voter that stopped is
// unregistered through a follower (forwarded to the active controller): no
// node's metadata lists it any more and the Raft configuration no longer
// holds it. A repeated request says the broker is unknown, and a voter is
// refused and stays.
func TestUnregisterBrokerForgetsAStoppedNonVoter(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.waitForLeader()
	four := tc.addNonVoter(4)
	if err := four.WaitRegistered(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	tc.waitForState("four brokers", registered(1, 2, 3, 4))
	checkFor(t, 10*time.Second, func() error {
		ids, err := raftMembers(tc.waitForLeader())
		if err != nil || !slices.Contains(ids, serverID(4)) {
			return fmt.Errorf("raft configuration %v (%v) without node 4", ids, err)
		}
		return nil
	})
	tc.kill(4)

	via := tc.follower()
	if err := via.UnregisterBroker(ctxT(t), 4); err != nil {
		t.Fatalf("unregistering broker 4: %v", err)
	}
	tc.waitForState("broker 4 forgotten", func(st *metadata.State) error {
		if _, ok := st.Brokers[4]; ok {
			return errors.New("broker 4 still registered")
		}
		return nil
	})
	checkFor(t, 10*time.Second, func() error {
		ids, err := raftMembers(tc.waitForLeader())
		if err != nil || slices.Contains(ids, serverID(4)) || len(ids) != 3 {
			return fmt.Errorf("raft configuration %v (%v), want the three voters only", ids, err)
		}
		return nil
	})
	if err := via.UnregisterBroker(ctxT(t), 4); !errors.Is(err, metadata.ErrUnknownBroker) {
		t.Fatalf("unregistering broker 4 again: %v, want ErrUnknownBroker", err)
	}
	for _, c := range []*Controller{via, tc.waitForLeader()} {
		if err := c.UnregisterBroker(ctxT(t), 2); !errors.Is(err, metadata.ErrInvalidRequest) {
			t.Fatalf("unregistering voter 2 through node %d: %v, want ErrInvalidRequest", c.NodeID(), err)
		}
	}
	// The refusal happens before the leader is asked; the leader refuses
	// a forwarded request for a voter too.
	leader := tc.waitForLeader()
	if _, err := leader.onLeader(ctxT(t), rpcRequest{Op: opUnregister, NodeID: 2}); !errors.Is(err, metadata.ErrInvalidRequest) {
		t.Fatalf("the active controller asked to unregister voter 2: %v, want ErrInvalidRequest", err)
	}
	tc.waitForState("voter 2 kept", registered(1, 2, 3))
}
