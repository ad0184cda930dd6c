package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/placement"
)

// TestMaxBrokerPartitionsOnTheController: the active controller refuses,
// with ErrPolicyViolation, a topic, new partitions or a reassignment that
// would put more than MaxBrokerPartitions replicas on a broker, whichever
// node the request came through; a reassignment that adds no replica to a
// full broker passes.
func TestMaxBrokerPartitionsOnTheController(t *testing.T) {
	const limit = 6
	tc := startTestCluster(t, &testCluster{t: t, dirs: map[int32]string{}, edit: func(c *Config) { c.MaxBrokerPartitions = limit }}, 3)
	tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	f := tc.follower()
	ctx := ctxT(t)
	if _, err := f.CreateTopicAssigned(ctx, "a", [][]int32{{1, 2}, {2, 1}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CreateTopic(ctx, "b", 5, 3, nil); !errors.Is(err, metadata.ErrPolicyViolation) || !strings.Contains(err.Error(), "broker 1 holds 2 partition replicas and this would add 5, over max.broker.partitions (6)") {
		t.Fatalf("5 more replicas on brokers holding 2 under a limit of %d: %v, want ErrPolicyViolation naming broker 1 and the limit", limit, err)
	}
	if _, err := f.CreateTopic(ctx, "b", 4, 3, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CreateTopicAssigned(ctx, "c", [][]int32{{3}, {3}}, nil); err != nil {
		t.Fatal(err)
	}
	full := func(st *metadata.State) error {
		if held := placement.LoadOf(st).Replicas; held[1] != limit || held[2] != limit || held[3] != limit {
			return fmt.Errorf("replicas per broker %v, want %d each", held, limit)
		}
		return nil
	}
	tc.waitForState("every broker full", full)
	if _, err := f.CreatePartitions(ctx, "b", 5, nil); !errors.Is(err, metadata.ErrPolicyViolation) {
		t.Fatalf("a partition more on full brokers: %v, want ErrPolicyViolation", err)
	}
	if _, err := f.CreateTopicAssigned(ctx, "d", [][]int32{{1}}, nil); !errors.Is(err, metadata.ErrPolicyViolation) {
		t.Fatalf("an assigned partition on a full broker: %v, want ErrPolicyViolation", err)
	}
	grow := []metadata.Reassignment{{Topic: "a", Partition: 0, Replicas: []int32{3, 1, 2}}}
	if _, err := f.Reassign(ctx, grow); !errors.Is(err, metadata.ErrPolicyViolation) || !strings.Contains(err.Error(), "broker 3 holds 6") {
		t.Fatalf("reassigning a-0 from [1 2] to [3 1 2]: %v, want ErrPolicyViolation naming broker 3", err)
	}
	swap := []metadata.Reassignment{{Topic: "a", Partition: 0, Replicas: []int32{2, 1}}}
	if errs, err := f.Reassign(ctx, swap); err != nil || len(errs) != 1 || errs[0] != nil {
		t.Fatalf("reordering a-0's replicas (none added): %v %v", err, errs)
	}
	if err := full(tc.waitForLeader().State()); err != nil {
		t.Errorf("after the refusals: %v", err)
	}
}

// TestUserOpRecordsBounded: one command a client's request makes carries
// at most MaxRecordsPerUserOp records, as Kafka's KRaft controller: a topic
// of 10,000 partitions (10,001 records) and 10,001 ACLs are refused with
// ErrPolicyViolation before anything is placed or proposed; 10,000 ACLs
// pass.
func TestUserOpRecordsBounded(t *testing.T) {
	tc := newTestCluster(t, 1)
	ctl := tc.waitForLeader()
	tc.waitForState("broker registered", registered(1))
	ctx := ctxT(t)
	if _, err := ctl.CreateTopic(ctx, "huge", MaxRecordsPerUserOp, 1, nil); !errors.Is(err, metadata.ErrPolicyViolation) || !strings.Contains(err.Error(), "excessively large") {
		t.Fatalf("a topic of %d partitions: %v, want ErrPolicyViolation", MaxRecordsPerUserOp, err)
	}
	if _, err := ctl.CreateTopic(ctx, "huge", 1<<31-1, 1, nil); !errors.Is(err, metadata.ErrPolicyViolation) {
		t.Fatalf("a topic of 2^31-1 partitions: %v, want ErrPolicyViolation", err)
	}
	if _, ok := ctl.State().Topic("huge"); ok {
		t.Fatal("huge was created")
	}
	acls := func(n int) []metadata.ACL {
		out := make([]metadata.ACL, n)
		for i := range out {
			out[i] = metadata.ACL{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: fmt.Sprintf("t%d", i), PatternType: kmsg.ACLResourcePatternTypeLiteral,
				Principal: "User:alice", Host: "*", Operation: kmsg.ACLOperationRead, Permission: kmsg.ACLPermissionTypeAllow}
		}
		return out
	}
	if _, err := ctl.CreateACLs(ctx, acls(MaxRecordsPerUserOp+1)); !errors.Is(err, metadata.ErrPolicyViolation) {
		t.Fatalf("%d ACLs in one request: %v, want ErrPolicyViolation", MaxRecordsPerUserOp+1, err)
	}
	if n := ctl.State().ACLs.Len(); n != 0 {
		t.Fatalf("%d ACLs after the refusal", n)
	}
	if _, err := ctl.CreateACLs(ctx, acls(MaxRecordsPerUserOp)); err != nil {
		t.Fatalf("%d ACLs in one request: %v", MaxRecordsPerUserOp, err)
	}
}

// TestMaxBrokerPartitionsIsClusterWide: brokers started with different
// max.broker.partitions (a rolling change of broker_config) answer alike
// once the cluster-wide dynamic value is set: whichever node is the active
// controller, before and after a failover, applies it, not its own static
// value. Lowering it below what the brokers hold is taken (they keep
// their replicas and refuse more), and raising it again lets them grow.
func TestMaxBrokerPartitionsIsClusterWide(t *testing.T) {
	tc := startTestCluster(t, &testCluster{t: t, dirs: map[int32]string{}, edit: func(c *Config) { c.MaxBrokerPartitions = 100 * int(c.NodeID) }}, 3)
	tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	ctx := ctxT(t)
	set := func(limit string) {
		t.Helper()
		if err := tc.follower().SetBrokerConfigs(ctx, metadata.ClusterDefault, map[string]string{MaxBrokerPartitionsConfig: limit}); err != nil {
			t.Fatal(err)
		}
		tc.waitForState("the cluster-wide limit", func(st *metadata.State) error {
			if got := BrokerPartitionLimit(st, 0); got != mustAtoi(t, limit) {
				return fmt.Errorf("limit %d, want %s", got, limit)
			}
			return nil
		})
	}
	set("6")
	if _, err := tc.follower().CreateTopic(ctx, "a", 4, 3, nil); err != nil {
		t.Fatal(err)
	}
	// Every node applied a: the one elected after the kill judges on
	// its own state.
	tc.waitForState("a on every node", func(st *metadata.State) error {
		if held := placement.LoadOf(st).Replicas; held[1] != 4 || held[2] != 4 || held[3] != 4 {
			return fmt.Errorf("replicas per broker %v, want 4 each", held)
		}
		return nil
	})
	// Placed on running nodes only: a killed one is fenced after its
	// lease, and placement would skip it.
	onRunning := func(partitions int) [][]int32 {
		var ids []int32
		for id := range tc.nodes {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		out := make([][]int32, partitions)
		for i := range out {
			out[i] = ids
		}
		return out
	}
	refused := func(who string) {
		t.Helper()
		_, err := tc.follower().CreateTopicAssigned(ctx, "b", onRunning(3), nil)
		if !errors.Is(err, metadata.ErrPolicyViolation) || !strings.Contains(err.Error(), "holds 4 partition replicas and this would add 3, over max.broker.partitions (6)") {
			t.Fatalf("%s: 3 more replicas on brokers holding 4 under a cluster-wide limit of 6: %v, want ErrPolicyViolation naming the limit", who, err)
		}
	}
	first := tc.waitForLeader()
	refused(fmt.Sprintf("active controller %d (static %d)", first.cfg.NodeID, first.cfg.MaxBrokerPartitions))
	tc.kill(first.cfg.NodeID)
	second := tc.waitForLeader()
	refused(fmt.Sprintf("active controller %d (static %d) after a failover", second.cfg.NodeID, second.cfg.MaxBrokerPartitions))

	// Lowered below the 4 each broker holds: taken; the brokers keep
	// their replicas, refuse one more, and take a reordering.
	set("2")
	if _, err := tc.follower().CreateTopicAssigned(ctx, "c", onRunning(1), nil); !errors.Is(err, metadata.ErrPolicyViolation) {
		t.Fatalf("a replica more on brokers over a lowered limit: %v, want ErrPolicyViolation", err)
	}
	st := second.State()
	p, _ := st.Partition("a", 0)
	swap := []metadata.Reassignment{{Topic: "a", Partition: 0, Replicas: append(p.Replicas[1:], p.Replicas[0])}}
	if errs, err := tc.follower().Reassign(ctx, swap); err != nil || len(errs) != 1 || errs[0] != nil {
		t.Fatalf("reordering a-0's replicas under a lowered limit (none added): %v %v", err, errs)
	}
	set("7")
	if _, err := tc.follower().CreateTopicAssigned(ctx, "b", onRunning(3), nil); err != nil {
		t.Fatalf("3 more replicas on brokers holding 4 under a raised limit of 7: %v", err)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTopicCollisionRefusedByTheController: the active controller refuses
// a topic whose name equals an existing one's once '.' and '_' are
// equated, with ErrTopicCollides naming it, whichever node asked (the
// error crosses the RPC), so that two brokers creating such a pair at once
// cannot both succeed; a name that equals none passes. Before, each broker
// checked only its own metadata and the controller created both.
func TestTopicCollisionRefusedByTheController(t *testing.T) {
	tc := startTestCluster(t, &testCluster{t: t, dirs: map[int32]string{}}, 3)
	leader := tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	ctx := ctxT(t)
	f := tc.follower()
	if _, err := f.CreateTopic(ctx, "orders.eu", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	for _, node := range []*Controller{f, leader} {
		_, err := node.CreateTopic(ctx, "orders_eu", 1, 1, nil)
		if !errors.Is(err, ErrTopicCollides) || !strings.Contains(err.Error(), "collides with existing topic orders.eu") {
			t.Errorf("orders_eu beside orders.eu through node %d: %v, want ErrTopicCollides naming orders.eu", node.NodeID(), err)
		}
	}
	if _, err := f.CreateTopicAssigned(ctx, "orders_eu", [][]int32{{1}}, nil); !errors.Is(err, ErrTopicCollides) {
		t.Errorf("orders_eu assigned beside orders.eu: %v, want ErrTopicCollides", err)
	}
	if _, err := f.CreateTopic(ctx, "orders_us", 1, 1, nil); err != nil {
		t.Errorf("orders_us: %v", err)
	}
	if _, ok := leader.State().Topic("orders_eu"); ok {
		t.Error("orders_eu was created")
	}
}
