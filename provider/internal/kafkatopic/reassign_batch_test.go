package kafkatopic

import (
	"slices"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster"
)

// TestReassignmentBoundIsTheBrokers keeps the provider's bound on the
// reassignments of one request equal to the one the brokers enforce.
func TestReassignmentBoundIsTheBrokers(t *testing.T) {
	if maxReassignmentsPerRequest != cluster.MaxRecordsPerUserOp {
		t.Fatalf("maxReassignmentsPerRequest is %d, the brokers' MaxRecordsPerUserOp %d", maxReassignmentsPerRequest, cluster.MaxRecordsPerUserOp)
	}
}

// TestAlterAssignmentsKeepsToTheBound: with the bound lowered to 2 and
// kfake refusing, as the brokers do, every partition of a request that
// carries more (POLICY_VIOLATION), the 5 reassignments of two topics go
// as requests of 2, 2 and 1, and each partition is answered without
// error. One request of 5, as before, is refused whole.
func TestAlterAssignmentsKeepsToTheBound(t *testing.T) {
	defer func(n int) { maxReassignmentsPerRequest = n }(maxReassignmentsPerRequest)
	maxReassignmentsPerRequest = 2
	c, _, adm, ctx := kfakeAdmin(t)
	for name, partitions := range map[string]int32{"a": 3, "b": 2} {
		if _, err := adm.CreateTopic(ctx, partitions, 1, nil, name); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var sizes []int
	c.ControlKey(int16(kmsg.AlterPartitionAssignments), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.AlterPartitionAssignmentsRequest)
		n := 0
		for _, t := range req.Topics {
			n += len(t.Partitions)
		}
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
		if n <= 2 {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
		resp.SetVersion(req.GetVersion())
		for _, rt := range req.Topics {
			st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.PolicyViolation.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	var req kadm.AlterPartitionAssignmentsReq
	for name, partitions := range map[string]int32{"a": 3, "b": 2} {
		for p := range partitions {
			req.Assign(name, p, []int32{0})
		}
	}
	resps, err := alterAssignments(ctx, adm, req)
	if err != nil {
		t.Fatal(err)
	}
	answered := 0
	resps.Each(func(r kadm.AlterPartitionAssignmentsResponse) {
		answered++
		if r.Err != nil {
			t.Errorf("%s-%d: %v", r.Topic, r.Partition, r.Err)
		}
	})
	mu.Lock()
	got := slices.Clone(sizes)
	mu.Unlock()
	if answered != 5 || !slices.Equal(got, []int{2, 2, 1}) {
		t.Fatalf("%d partitions answered, requests of %v; want 5 answered, requests of [2 2 1]", answered, got)
	}
	// The bound is what the fake enforces: one request of all 5 is refused.
	whole, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil || whole.Error() == nil {
		t.Fatalf("one request of 5: %v, %v; want POLICY_VIOLATION", whole, err)
	}
}
