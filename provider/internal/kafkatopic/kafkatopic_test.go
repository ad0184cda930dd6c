package kafkatopic

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tributary/tributary/broker/chaos"
	"github.com/tributary/tributary/internal/testenv"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// startCluster runs three tributary-broker processes on loopback, in racks
// a, b and c, and returns an Admin of them.
func startCluster(t *testing.T) (*Admin, *chaos.Cluster, *logLines) {
	t.Helper()
	c, err := chaos.NewCluster(chaos.ClusterConfig{Binary: testenv.BrokerBinary(t), Dir: t.TempDir(), Nodes: 3,
		Settings: map[string]string{"default.replication.factor": "3", "min.insync.replicas": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var brokers []kafkaconn.Broker
	for _, n := range c.Nodes() {
		if err := c.WaitServing(ctx, n.ID); err != nil {
			t.Fatalf("broker %d: %v\n%s", n.ID, err, c.Log(n.ID, 2000))
		}
		brokers = append(brokers, kafkaconn.Broker{NodeID: n.ID, Addr: n.KafkaAddr()})
	}
	logs := &logLines{}
	a := &Admin{Conn: kafkaconn.New("test", brokers), Log: logs.add, PollInterval: 100 * time.Millisecond}
	return a, c, logs
}

// logLines records what an Admin logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(_ context.Context, msg string, attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(append([]any{msg}, attrs...)...))
}

func (l *logLines) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.lines, func(line string) bool { return strings.Contains(line, s) })
}

// TestAdminLifecycle runs every operation against real brokers: create,
// describe, grow, configure (set, change, remove back to the default),
// replication factor 1 -> 3 -> 2 by reassignment (rack-aware, every broker
// agreeing when it returns), list, delete.
func TestAdminLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes; skipped with -short")
	}
	a, _, logs := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	racks := map[int32]string{1: "a", 2: "b", 3: "c"}

	spec := Spec{Name: "orders", Partitions: 3, ReplicationFactor: 1, Config: map[string]string{"retention.ms": "3600000", "cleanup.policy": "delete,compact"}}
	if err := a.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := a.Create(ctx, spec); !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("Create again: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	got := describe(ctx, t, a, "orders")
	if len(got.Partitions) != 3 || got.ReplicationFactor(1) != 1 {
		t.Fatalf("created: %d partitions, replication factor %d; want 3 and 1", len(got.Partitions), got.ReplicationFactor(1))
	}
	if got.Config["retention.ms"] != "3600000" || got.Config["cleanup.policy"] != "compact,delete" || len(got.Config) != 2 {
		t.Fatalf("own configs %v, want retention.ms and cleanup.policy only", got.Config)
	}
	if got.Effective["segment.bytes"] == "" || got.Effective["min.insync.replicas"] != "1" {
		t.Fatalf("effective configs %v lack the inherited ones", got.Effective)
	}

	if err := a.AddPartitions(ctx, "orders", 6); err != nil {
		t.Fatalf("AddPartitions: %v", err)
	}
	if got := describe(ctx, t, a, "orders"); len(got.Partitions) != 6 {
		t.Fatalf("after growing: %d partitions, want 6", len(got.Partitions))
	}

	if err := a.AlterConfig(ctx, "orders", map[string]string{"retention.ms": "7200000", "max.message.bytes": "2097152"}, []string{"cleanup.policy"}); err != nil {
		t.Fatalf("AlterConfig: %v", err)
	}
	got = describe(ctx, t, a, "orders")
	if got.Config["retention.ms"] != "7200000" || got.Config["max.message.bytes"] != "2097152" || len(got.Config) != 2 {
		t.Fatalf("own configs after the change %v", got.Config)
	}
	if got.Effective["cleanup.policy"] != "delete" {
		t.Fatalf("cleanup.policy after its removal = %q, want the broker's default delete", got.Effective["cleanup.policy"])
	}
	err := a.AlterConfig(ctx, "orders", map[string]string{"retention.ms": "soon"}, nil)
	if err == nil || !strings.Contains(err.Error(), "retention.ms must be") {
		t.Fatalf("AlterConfig with a bad value: %v, want the broker's refusal", err)
	}

	a.Throttle = 10 << 20
	for _, rf := range []int{3, 2} {
		if err := a.SetReplicationFactor(ctx, "orders", rf); err != nil {
			t.Fatalf("SetReplicationFactor(%d): %v", rf, err)
		}
		// Every broker agrees when it returns: ask each one.
		for _, b := range a.Conn.Brokers {
			one := &Admin{Conn: kafkaconn.New("test", []kafkaconn.Broker{b})}
			got := describe(ctx, t, one, "orders")
			for i, p := range got.Partitions {
				used := map[string]bool{}
				for _, r := range p.Replicas {
					used[racks[r]] = true
				}
				if len(p.Replicas) != rf || len(used) != rf || !sameMembers(p.ISR, p.Replicas) {
					t.Fatalf("broker %d after rf %d: orders-%d replicas %v ISR %v; want %d replicas in %d racks, all in sync", b.NodeID, rf, i, p.Replicas, p.ISR, rf, rf)
				}
			}
		}
	}
	if !logs.contains("reassignment") || !logs.contains("reassignment throttled") || !logs.contains("replication throttle removed") {
		t.Errorf("the reassignment logged no progress, or no throttle set and removed: %v", logs.lines)
	}
	err = a.SetReplicationFactor(ctx, "orders", 4)
	if err == nil || !strings.Contains(err.Error(), "replication factor 4 needs 4 brokers") {
		t.Fatalf("SetReplicationFactor(4) on three brokers: %v", err)
	}

	if err := a.Create(ctx, Spec{Name: "audit", Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	all, err := a.List(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tp := range all {
		names = append(names, tp.Name)
	}
	if strings.Join(names, ",") != "audit,orders" {
		t.Fatalf("List = %v, want audit,orders", names)
	}

	if err := a.Delete(ctx, "orders"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := a.Describe(ctx, "orders"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Describe after Delete: %v, want ErrNotFound", err)
	}
	if err := a.Delete(ctx, "orders"); err != nil {
		t.Fatalf("Delete of a topic already gone: %v", err)
	}
	// Re-created at once under the same name: the delete waited for it.
	if err := a.Create(ctx, Spec{Name: "orders", Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
}

// TestAdminWaitsOnlyForLiveBrokers: a stopped broker does not hold a change
// up (it catches up from the metadata log when it returns).
func TestAdminWaitsOnlyForLiveBrokers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes; skipped with -short")
	}
	a, c, _ := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := a.Create(ctx, Spec{Name: "events", Partitions: 2, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.Terminate(3, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Wait until the cluster no longer lists broker 3.
	cl, err := a.Conn.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		ids, err := kafkaconn.LiveBrokers(ctx, cl)
		if err == nil && !slices.Contains(ids, 3) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("broker 3 still listed after it stopped: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := a.AlterConfig(ctx, "events", map[string]string{"retention.ms": "60000"}, nil); err != nil {
		t.Fatalf("AlterConfig with broker 3 stopped: %v", err)
	}
	if err := a.AddPartitions(ctx, "events", 4); err != nil {
		t.Fatalf("AddPartitions with broker 3 stopped: %v", err)
	}
}

func describe(ctx context.Context, t *testing.T, a *Admin, name string) *Topic {
	t.Helper()
	got, err := a.Describe(ctx, name)
	if err != nil {
		t.Fatalf("Describe(%s): %v", name, err)
	}
	return got
}

func TestReplicationFactorReportsDisagreement(t *testing.T) {
	tests := []struct {
		counts []int
		want   int
		result int
	}{
		{[]int{3, 3, 3}, 3, 3},
		{[]int{3, 3, 3}, 2, 3},
		{[]int{3, 2, 3}, 3, 2},
		{[]int{3, 4, 3}, 3, 4},
		{nil, 3, 3},
	}
	for _, tt := range tests {
		topic := &Topic{Name: "t"}
		for _, n := range tt.counts {
			topic.Partitions = append(topic.Partitions, Partition{Replicas: make([]int32, n)})
		}
		if got := topic.ReplicationFactor(tt.want); got != tt.result {
			t.Errorf("counts %v, want %d: ReplicationFactor = %d, want %d", tt.counts, tt.want, got, tt.result)
		}
	}
}

func TestPlanKeepsReplicasAndSpreadsRacks(t *testing.T) {
	rack := func(s string) *string { return &s }
	md := kadm.Metadata{
		Brokers: kadm.BrokerDetails{{NodeID: 1, Rack: rack("a")}, {NodeID: 2, Rack: rack("b")}, {NodeID: 3, Rack: rack("c")}, {NodeID: 4, Rack: rack("a")}},
		Topics: kadm.TopicDetails{
			"t": {Topic: "t", Partitions: kadm.PartitionDetails{
				0: {Partition: 0, Replicas: []int32{1}},
				1: {Partition: 1, Replicas: []int32{4, 2}},
				2: {Partition: 2, Replicas: []int32{3, 1, 2}},
			}},
		},
	}
	targets, err := plan(md, "t", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := targets[1]; ok {
		t.Errorf("partition 1 already has 2 replicas, yet it is reassigned to %v", targets[1])
	}
	if got := targets[0]; len(got) != 2 || got[0] != 1 || got[1] == 4 {
		t.Errorf("partition 0 -> %v, want broker 1 kept first and a replica outside rack a", got)
	}
	if got := targets[2]; len(got) != 2 || got[0] != 3 {
		t.Errorf("partition 2 -> %v, want the preferred leader 3 kept", got)
	}
	// A running reassignment's removed replicas are not counted as kept.
	running := map[int32]kadm.ListPartitionReassignmentsResponse{1: {Partition: 1, Replicas: []int32{4, 2, 3}, RemovingReplicas: []int32{2}}}
	md.Topics["t"].Partitions[1] = kadm.PartitionDetail{Partition: 1, Replicas: []int32{4, 2, 3}}
	targets, err = plan(md, "t", 2, running)
	if err != nil {
		t.Fatal(err)
	}
	if got := targets[1]; !sameMembers(got, []int32{4, 3}) {
		t.Errorf("partition 1 while moving off broker 2 -> %v, want [4 3] (the reassignment's own target)", got)
	}
}
