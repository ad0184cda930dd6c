package cluster

import (
	"errors"
	"slices"
	"testing"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// TestMalformedCommandNeverReachesTheLog: a command forwarded to the
// active controller that a replica could not decode (bad JSON, a field
// this binary does not know, an unknown type) is refused by the
// controller, and nothing reaches the log: an entry that halts one
// replica halts all of them, and the cluster's metadata with them. An
// unknown ignorable type is proposed (every replica skips it). The
// metadata goes on applying.
func TestMalformedCommandNeverReachesTheLog(t *testing.T) {
	tc := newTestCluster(t, 3)
	leader := tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	from := leader.raft.LastIndex()
	acl, err := metadata.Encode(metadata.CreateACLs{})
	if err != nil {
		t.Fatal(err)
	}
	for name, cmd := range map[string][]byte{
		"not JSON":      append([]byte{acl[0]}, "{not json"...),
		"unknown field": append([]byte{acl[0]}, `{"acls":[],"from_a_newer_binary":1}`...),
		"data after":    append(slices.Clone(acl), " {}"...),
		"unknown type":  {0x7e, '{', '}'},
		"empty":         {},
	} {
		_, err := leader.handleLocal(ctxT(t), rpcRequest{Op: opApply, Command: cmd})
		if !errors.Is(err, metadata.ErrBadCommand) && !errors.Is(err, metadata.ErrUnknownCommand) {
			t.Errorf("%s: %v, want ErrBadCommand or ErrUnknownCommand", name, err)
		}
	}
	if types, _, _ := commandsSince(t, leader, from); len(types) != 0 {
		t.Fatalf("refused commands reached the log: %v", types)
	}
	if _, err := leader.handleLocal(ctxT(t), rpcRequest{Op: opApply, Command: []byte{0x7e | byte(metadata.IgnorableFlag), '{', '}'}}); err != nil {
		t.Fatalf("an unknown ignorable command: %v", err)
	}
	if _, err := leader.CreateTopic(ctxT(t), "after", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range tc.nodes {
		if err := c.fsm.Err(); err != nil {
			t.Fatalf("node %d's state machine: %v", c.NodeID(), err)
		}
	}
}
