package metadata

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/scram"
)

// machine wraps an FSM with a log index counter and keeps the entries it
// applied, so a test can replay them.
type machine struct {
	t       *testing.T
	f       *FSM
	entries [][]byte
}

func newMachine(t *testing.T) *machine {
	t.Helper()
	return &machine{t: t, f: New(slog.New(slog.DiscardHandler))}
}

func (m *machine) apply(c Command) *Result {
	m.t.Helper()
	b, err := Encode(c)
	if err != nil {
		m.t.Fatal(err)
	}
	return m.applyRaw(b)
}

func (m *machine) applyRaw(b []byte) *Result {
	m.entries = append(m.entries, b)
	return m.f.ApplyEntry(int64(len(m.entries)), b)
}

// must applies a command that has to succeed.
func (m *machine) must(c Command) any {
	m.t.Helper()
	r := m.apply(c)
	if r.Err != nil {
		m.t.Fatalf("%T: %v", c, r.Err)
	}
	return r.Value
}

func (m *machine) bytes() []byte {
	m.t.Helper()
	b, err := MarshalState(m.f.Current())
	if err != nil {
		m.t.Fatal(err)
	}
	return b
}

func (m *machine) partition(topic string, i int32) Partition {
	m.t.Helper()
	p, ok := m.f.Current().Partition(topic, i)
	if !ok {
		m.t.Fatalf("no partition %s-%d", topic, i)
	}
	return p
}

const lease = 6000

// cluster registers brokers 1..n in racks a, b, c, ... at time 1000.
func (m *machine) cluster(n int) map[int32]int64 {
	m.t.Helper()
	m.must(InitCluster{ClusterID: "c1"})
	epochs := map[int32]int64{}
	for i := int32(1); i <= int32(n); i++ {
		epochs[i] = m.must(RegisterBroker{NodeID: i, Rack: string(rune('a' + i - 1)), Listeners: []Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 9090 + i}}, NowMs: 1000, LeaseMs: lease}).(int64)
	}
	return epochs
}

func (m *machine) topic(name string, assignments ...[]int32) *Topic {
	m.t.Helper()
	id := TopicID{byte(len(m.entries) + 1), 1}
	return m.must(CreateTopic{Name: name, ID: id, Assignments: assignments}).(*Topic)
}

func TestInitCluster(t *testing.T) {
	m := newMachine(t)
	m.must(InitCluster{ClusterID: "abc"})
	m.must(InitCluster{ClusterID: "abc"})
	if r := m.apply(InitCluster{ClusterID: "other"}); !errors.Is(r.Err, ErrClusterIDMismatch) {
		t.Fatalf("second id: %v", r.Err)
	}
	if got := m.f.Current().ClusterID; got != "abc" {
		t.Fatalf("cluster id %q", got)
	}
}

func TestCreateTopicPlacesLeadersAndISR(t *testing.T) {
	m := newMachine(t)
	m.cluster(3)
	top := m.topic("orders", []int32{1, 2, 3}, []int32{2, 3, 1})
	if top.NumPartitions() != 2 || top.Partition(1).Leader != 2 || !slices.Equal(top.Partition(1).ISR, []int32{2, 3, 1}) {
		t.Fatalf("topic %+v", top)
	}
	tests := []struct {
		name string
		cmd  CreateTopic
		want error
	}{
		{"exists", CreateTopic{Name: "orders", ID: TopicID{9}, Assignments: [][]int32{{1}}}, ErrTopicExists},
		{"unknown broker", CreateTopic{Name: "x", ID: TopicID{9}, Assignments: [][]int32{{1, 7}}}, ErrInvalidReplicaAssignment},
		{"duplicate replica", CreateTopic{Name: "x", ID: TopicID{9}, Assignments: [][]int32{{1, 1}}}, ErrInvalidReplicaAssignment},
		{"uneven rf", CreateTopic{Name: "x", ID: TopicID{9}, Assignments: [][]int32{{1, 2}, {3}}}, ErrInvalidReplicaAssignment},
		{"no partitions", CreateTopic{Name: "x", ID: TopicID{9}}, ErrInvalidPartitions},
		{"no id", CreateTopic{Name: "x", Assignments: [][]int32{{1}}}, ErrInvalidRequest},
		{"id reused", CreateTopic{Name: "x", ID: top.ID, Assignments: [][]int32{{1}}}, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := m.bytes()
			r := m.apply(tt.cmd)
			if !errors.Is(r.Err, tt.want) {
				t.Fatalf("err %v, want %v", r.Err, tt.want)
			}
			if after := m.bytes(); !bytes.Equal(withoutIndex(t, before), withoutIndex(t, after)) {
				t.Fatal("a refused command changed the state")
			}
		})
	}
}

// TestCreateTopicCommittedTwice: the same creation (same name, same id)
// committed a second time, as a request retried after an unknown outcome
// is, answers the topic the first made and changes nothing; another id
// under the name is TOPIC_ALREADY_EXISTS.
func TestCreateTopicCommittedTwice(t *testing.T) {
	m := newMachine(t)
	m.cluster(3)
	cmd := CreateTopic{Name: "orders", ID: TopicID{7}, Assignments: [][]int32{{1, 2, 3}}}
	m.must(cmd)
	before := m.bytes()
	again := cmd
	again.Assignments = [][]int32{{2, 3, 1}} // placed again on the retry
	r := m.apply(again)
	if r.Err != nil {
		t.Fatalf("the same creation again: %v", r.Err)
	}
	if top, ok := r.Value.(*Topic); !ok || top.ID != cmd.ID || top.Partition(0).Leader != 1 {
		t.Fatalf("answer %+v, want the first creation's topic", r.Value)
	}
	if !bytes.Equal(withoutIndex(t, before), withoutIndex(t, m.bytes())) {
		t.Fatal("the repeated creation changed the state")
	}
	other := cmd
	other.ID = TopicID{8}
	if r := m.apply(other); !errors.Is(r.Err, ErrTopicExists) {
		t.Fatalf("another id under the name: %v", r.Err)
	}
}

// withoutIndex re-encodes a state with the index zeroed: refused commands
// advance only the index.
func withoutIndex(t *testing.T, b []byte) []byte {
	t.Helper()
	st, err := UnmarshalState(b)
	if err != nil {
		t.Fatal(err)
	}
	st.Index = 0
	out, err := MarshalState(st)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTopicLifecycle(t *testing.T) {
	m := newMachine(t)
	m.cluster(3)
	m.topic("t", []int32{1, 2})
	top := m.must(CreatePartitions{Name: "t", Assignments: [][]int32{{2, 3}, {3, 1}}}).(*Topic)
	if top.NumPartitions() != 3 || top.Partition(2).Leader != 3 {
		b, _ := json.Marshal(top)
		t.Fatalf("after CreatePartitions: %s", b)
	}
	if r := m.apply(CreatePartitions{Name: "t", Assignments: [][]int32{{1}}}); !errors.Is(r.Err, ErrInvalidReplicaAssignment) {
		t.Fatalf("rf mismatch: %v", r.Err)
	}
	top = m.must(SetTopicConfigs{Name: "t", Configs: map[string]string{"retention.ms": "1000"}}).(*Topic)
	if top.Configs["retention.ms"] != "1000" {
		t.Fatalf("configs %v", top.Configs)
	}
	m.must(DeleteTopic{Name: "t"})
	if _, ok := m.f.Current().Topic("t"); ok {
		t.Fatal("topic still there")
	}
	for _, c := range []Command{DeleteTopic{Name: "t"}, SetTopicConfigs{Name: "t"}, CreatePartitions{Name: "t", Assignments: [][]int32{{1}}}} {
		if r := m.apply(c); !errors.Is(r.Err, ErrUnknownTopicOrPartition) {
			t.Fatalf("%T on a deleted topic: %v", c, r.Err)
		}
	}
}

func TestBrokerConfigsAndProducerIDs(t *testing.T) {
	m := newMachine(t)
	m.must(SetBrokerConfigs{NodeID: ClusterDefault, Configs: map[string]string{"log.retention.ms": "5"}})
	m.must(SetBrokerConfigs{NodeID: 2, Configs: map[string]string{"a": "b"}})
	if got := m.f.Current().BrokerConfigs; got[ClusterDefault]["log.retention.ms"] != "5" || got[2]["a"] != "b" {
		t.Fatalf("broker configs %v", got)
	}
	m.must(SetBrokerConfigs{NodeID: 2})
	if _, ok := m.f.Current().BrokerConfigs[2]; ok {
		t.Fatal("empty configs should remove the entry")
	}
	first := m.must(AllocateProducerIDs{NodeID: 1, Count: 1000}).(int64)
	second := m.must(AllocateProducerIDs{NodeID: 2, Count: 10}).(int64)
	if first != 0 || second != 1000 || m.f.Current().NextProducerID != 1010 {
		t.Fatalf("blocks %d %d next %d", first, second, m.f.Current().NextProducerID)
	}
	for _, n := range []int64{0, -1, MaxProducerIDBlock + 1} {
		if r := m.apply(AllocateProducerIDs{NodeID: 1, Count: n}); !errors.Is(r.Err, ErrInvalidRequest) {
			t.Fatalf("count %d: %v", n, r.Err)
		}
	}
}

func TestHeartbeatAndLeaseExpiry(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(3)
	m.topic("t", []int32{1, 2, 3}, []int32{2, 3, 1}, []int32{3, 1, 2})

	// Brokers 2 and 3 renew; broker 1 does not.
	for _, id := range []int32{2, 3} {
		m.must(BrokerHeartbeat{NodeID: id, BrokerEpoch: epochs[id], NowMs: 5000, LeaseMs: lease})
	}
	if fenced := m.must(ExpireLeases{NowMs: 6999}).([]int32); len(fenced) != 0 {
		t.Fatalf("fenced %v before the lease ended", fenced)
	}
	fenced := m.must(ExpireLeases{NowMs: 7001}).([]int32)
	if !slices.Equal(fenced, []int32{1}) {
		t.Fatalf("fenced %v, want [1]", fenced)
	}
	p0 := m.partition("t", 0)
	if p0.Leader != 2 || p0.LeaderEpoch != 1 || !slices.Equal(p0.ISR, []int32{2, 3}) {
		t.Fatalf("partition led by the fenced broker: %+v", p0)
	}
	if p2 := m.partition("t", 2); p2.Leader != 3 || p2.LeaderEpoch != 0 || !slices.Equal(p2.ISR, []int32{3, 2}) {
		t.Fatalf("partition followed by the fenced broker: %+v", p2)
	}
	if r := m.apply(BrokerHeartbeat{NodeID: 1, BrokerEpoch: 999, NowMs: 8000, LeaseMs: lease}); !errors.Is(r.Err, ErrStaleBrokerEpoch) {
		t.Fatalf("stale heartbeat: %v", r.Err)
	}
	if r := m.apply(BrokerHeartbeat{NodeID: 9, BrokerEpoch: 1, NowMs: 8000, LeaseMs: lease}); !errors.Is(r.Err, ErrUnknownBroker) {
		t.Fatalf("unknown broker heartbeat: %v", r.Err)
	}
	// A heartbeat unfences it, but it only rejoins ISRs through the leader.
	m.must(BrokerHeartbeat{NodeID: 1, BrokerEpoch: epochs[1], NowMs: 8000, LeaseMs: lease})
	if m.f.Current().Brokers[1].Fenced {
		t.Fatal("still fenced after a heartbeat")
	}
	if p0 := m.partition("t", 0); slices.Contains(p0.ISR, 1) {
		t.Fatalf("unfenced broker back in the ISR without catching up: %+v", p0)
	}
	// The clock never goes backwards: an old leader time cannot revive leases.
	m.must(ExpireLeases{NowMs: 100})
	if m.f.Current().NowMs != 8000 {
		t.Fatalf("clock went to %d", m.f.Current().NowMs)
	}
}

func TestLastISRMemberFencedLeavesPartitionLeaderless(t *testing.T) {
	for _, unclean := range []bool{false, true} {
		t.Run(map[bool]string{false: "clean", true: "unclean"}[unclean], func(t *testing.T) {
			m := newMachine(t)
			epochs := m.cluster(2)
			m.topic("t", []int32{1, 2})
			if unclean {
				m.must(SetTopicConfigs{Name: "t", Configs: map[string]string{UncleanElectionConfig: "true"}})
			}
			p := m.partition("t", 0)
			m.must(AlterPartition{Topic: "t", LeaderID: 1, BrokerEpoch: epochs[1], LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: []int32{1}})
			m.must(BrokerHeartbeat{NodeID: 2, BrokerEpoch: epochs[2], NowMs: 5000, LeaseMs: lease})
			m.must(ExpireLeases{NowMs: 8000}) // broker 1 missed its lease
			p = m.partition("t", 0)
			if !unclean {
				if p.Leader != NoLeader || !slices.Equal(p.ISR, []int32{1}) {
					t.Fatalf("clean: want no leader and ISR [1], got %+v", p)
				}
				// The broker with the complete log returns and leads again.
				m.must(BrokerHeartbeat{NodeID: 1, BrokerEpoch: epochs[1], NowMs: 9000, LeaseMs: lease})
				if p = m.partition("t", 0); p.Leader != 1 || p.LeaderEpoch != 2 {
					t.Fatalf("returning last ISR member should lead at epoch 2: %+v", p)
				}
				return
			}
			if p.Leader != 2 || !slices.Equal(p.ISR, []int32{2}) || p.LeaderEpoch != 1 {
				t.Fatalf("unclean: want leader 2 alone, got %+v", p)
			}
		})
	}
}

func TestReRegistrationFencesOldIncarnation(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(3)
	m.topic("t", []int32{1, 2, 3})
	epoch := m.must(RegisterBroker{NodeID: 1, Rack: "a", NowMs: 2000, LeaseMs: lease}).(int64)
	if epoch == epochs[1] {
		t.Fatal("new incarnation kept the old epoch")
	}
	p := m.partition("t", 0)
	if p.Leader != 2 || slices.Contains(p.ISR, 1) {
		t.Fatalf("old incarnation still leads or is in sync: %+v", p)
	}
	if r := m.apply(BrokerHeartbeat{NodeID: 1, BrokerEpoch: epochs[1], NowMs: 2100, LeaseMs: lease}); !errors.Is(r.Err, ErrStaleBrokerEpoch) {
		t.Fatalf("heartbeat of the old incarnation: %v", r.Err)
	}
}

func TestControlledShutdown(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(3)
	m.topic("t", []int32{1, 2, 3}, []int32{1, 3, 2})
	m.topic("solo", []int32{1})
	// lagging-0's other replica is out of the ISR: it cannot take the
	// leadership yet, but could once it catches up.
	m.topic("lagging", []int32{1, 2})
	lp := m.partition("lagging", 0)
	m.must(AlterPartition{Topic: "lagging", LeaderID: 1, BrokerEpoch: epochs[1], LeaderEpoch: lp.LeaderEpoch, PartitionEpoch: lp.PartitionEpoch, NewISR: []int32{1}})
	left := m.must(ControlledShutdown{NodeID: 1, BrokerEpoch: epochs[1]}).(int)
	if left != 1 {
		t.Fatalf("leaderships left %d, want 1 (lagging-0; solo-0 has no other replica to wait for)", left)
	}
	if p := m.partition("lagging", 0); p.Leader != 1 {
		t.Fatalf("lagging-0 moved to a replica out of the ISR: %+v", p)
	}
	if p := m.partition("t", 0); p.Leader != 2 || slices.Contains(p.ISR, 1) || p.LeaderEpoch != 1 {
		t.Fatalf("t-0 %+v", p)
	}
	if p := m.partition("t", 1); p.Leader != 3 {
		t.Fatalf("t-1 %+v", p)
	}
	if p := m.partition("solo", 0); p.Leader != 1 || p.LeaderEpoch != 0 {
		t.Fatalf("solo-0 should stay with its only replica: %+v", p)
	}
	if !m.f.Current().Brokers[1].ShuttingDown {
		t.Fatal("not marked shutting down")
	}
	// A leaving broker may not be put back into an ISR.
	p := m.partition("t", 0)
	r := m.apply(AlterPartition{Topic: "t", LeaderID: 2, BrokerEpoch: epochs[2], LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: []int32{2, 3, 1}})
	if !errors.Is(r.Err, ErrIneligibleReplica) {
		t.Fatalf("ISR expansion to a leaving broker: %v", r.Err)
	}
	// Restarting clears the shutdown mark.
	m.must(RegisterBroker{NodeID: 1, NowMs: 3000, LeaseMs: lease})
	if m.f.Current().Brokers[1].ShuttingDown {
		t.Fatal("still shutting down after re-registering")
	}
}

func TestAlterPartitionChecks(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(3)
	m.topic("t", []int32{1, 2, 3})
	p := m.partition("t", 0)
	ok := AlterPartition{Topic: "t", LeaderID: 1, BrokerEpoch: epochs[1], LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: []int32{3, 1}}
	tests := []struct {
		name string
		edit func(*AlterPartition)
		want error
	}{
		{"unknown partition", func(a *AlterPartition) { a.Partition = 5 }, ErrUnknownTopicOrPartition},
		{"stale broker epoch", func(a *AlterPartition) { a.BrokerEpoch = 77 }, ErrStaleBrokerEpoch},
		{"not leader", func(a *AlterPartition) { a.LeaderID, a.BrokerEpoch = 2, epochs[2] }, ErrNotLeader},
		{"fenced epoch", func(a *AlterPartition) { a.LeaderEpoch = -1 }, ErrFencedLeaderEpoch},
		{"future epoch", func(a *AlterPartition) { a.LeaderEpoch = 5 }, ErrNotLeader},
		{"stale partition epoch", func(a *AlterPartition) { a.PartitionEpoch = 9 }, ErrInvalidUpdateVersion},
		{"leader left out", func(a *AlterPartition) { a.NewISR = []int32{2, 3} }, ErrInvalidRequest},
		{"not a replica", func(a *AlterPartition) { a.NewISR = []int32{1, 4} }, ErrInvalidRequest},
		{"duplicate", func(a *AlterPartition) { a.NewISR = []int32{1, 1} }, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			if r := m.apply(c); !errors.Is(r.Err, tt.want) {
				t.Fatalf("err %v, want %v", r.Err, tt.want)
			}
		})
	}
	got := m.must(ok).(Partition)
	if !slices.Equal(got.ISR, []int32{1, 3}) || got.PartitionEpoch != p.PartitionEpoch+1 {
		t.Fatalf("after shrink: %+v", got)
	}
	// The same request again is stale now.
	if r := m.apply(ok); !errors.Is(r.Err, ErrInvalidUpdateVersion) {
		t.Fatalf("replayed AlterPartition: %v", r.Err)
	}
}

func TestElectLeaders(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(3)
	m.topic("t", []int32{1, 2, 3}, []int32{2, 3, 1})
	m.must(ControlledShutdown{NodeID: 1, BrokerEpoch: epochs[1]})
	epochs[1] = m.must(RegisterBroker{NodeID: 1, NowMs: 2000, LeaseMs: lease}).(int64)

	res := m.must(ElectLeaders{Election: ElectPreferred, Partitions: []TopicPartition{{"t", 0}, {"t", 1}, {"t", 9}}}).([]ElectionResult)
	if !errors.Is(res[0].Err, ErrPreferredLeaderNotAvailable) || !errors.Is(res[1].Err, ErrElectionNotNeeded) || !errors.Is(res[2].Err, ErrUnknownTopicOrPartition) {
		t.Fatalf("before catch-up: %+v", res)
	}
	// Broker 1 catches up and the leader adds it back; now it can lead.
	p := m.partition("t", 0)
	m.must(AlterPartition{Topic: "t", LeaderID: p.Leader, BrokerEpoch: epochs[p.Leader], LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: []int32{1, 2, 3}})
	res = m.must(ElectLeaders{Election: ElectPreferred}).([]ElectionResult)
	if len(res) != 1 || res[0].Leader != 1 || res[0].Err != nil {
		t.Fatalf("all-partition preferred election: %+v", res)
	}
	if p := m.partition("t", 0); p.Leader != 1 || p.LeaderEpoch != 2 {
		t.Fatalf("t-0 %+v", p)
	}
	res = m.must(ElectLeaders{Election: ElectUnclean, Partitions: []TopicPartition{{"t", 0}}}).([]ElectionResult)
	if !errors.Is(res[0].Err, ErrElectionNotNeeded) {
		t.Fatalf("unclean with a leader: %+v", res)
	}
}

func TestUncleanElectionOnRequest(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(2)
	m.topic("t", []int32{1, 2})
	p := m.partition("t", 0)
	m.must(AlterPartition{Topic: "t", LeaderID: 1, BrokerEpoch: epochs[1], LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: []int32{1}})
	m.must(BrokerHeartbeat{NodeID: 2, BrokerEpoch: epochs[2], NowMs: 6000, LeaseMs: lease})
	m.must(ExpireLeases{NowMs: 7500})
	if p := m.partition("t", 0); p.Leader != NoLeader {
		t.Fatalf("want leaderless, got %+v", p)
	}
	res := m.must(ElectLeaders{Election: ElectUnclean, Partitions: []TopicPartition{{"t", 0}}}).([]ElectionResult)
	if res[0].Err != nil || res[0].Leader != 2 {
		t.Fatalf("unclean election: %+v", res)
	}
	if p := m.partition("t", 0); !slices.Equal(p.ISR, []int32{2}) {
		t.Fatalf("ISR after unclean election %v", p.ISR)
	}
}

func TestReassignment(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(4)
	m.topic("t", []int32{1, 2, 3})
	errs := m.must(ReassignPartitions{Reassignments: []Reassignment{{Topic: "t", Replicas: []int32{4, 2, 3}}, {Topic: "t", Partition: 3, Replicas: []int32{1}}}}).([]error)
	if errs[0] != nil || !errors.Is(errs[1], ErrUnknownTopicOrPartition) {
		t.Fatalf("errs %v", errs)
	}
	p := m.partition("t", 0)
	if !slices.Equal(p.Replicas, []int32{1, 2, 3, 4}) || !slices.Equal(p.AddingReplicas, []int32{4}) || !slices.Equal(p.RemovingReplicas, []int32{1}) {
		t.Fatalf("during reassignment: %+v", p)
	}
	// The leader (1, being removed) adds 4 to the ISR once it caught up.
	done := m.must(AlterPartition{Topic: "t", LeaderID: 1, BrokerEpoch: epochs[1], LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: []int32{1, 2, 3, 4}}).(Partition)
	if !slices.Equal(done.Replicas, []int32{4, 2, 3}) || done.Leader != 4 || !slices.Equal(done.ISR, []int32{4, 2, 3}) || done.AddingReplicas != nil || done.LeaderEpoch != 1 {
		t.Fatalf("completed reassignment: %+v", done)
	}

	// Cancel before completion restores the original replicas.
	m.must(ReassignPartitions{Reassignments: []Reassignment{{Topic: "t", Replicas: []int32{1, 2, 3}}}})
	m.must(ReassignPartitions{Reassignments: []Reassignment{{Topic: "t"}}})
	if p := m.partition("t", 0); !slices.Equal(p.Replicas, []int32{4, 2, 3}) || p.AddingReplicas != nil || p.Leader != 4 {
		t.Fatalf("after cancel: %+v", p)
	}
	// A pure reorder completes at once and changes the preferred leader.
	m.must(ReassignPartitions{Reassignments: []Reassignment{{Topic: "t", Replicas: []int32{2, 3, 4}}}})
	if p := m.partition("t", 0); !slices.Equal(p.Replicas, []int32{2, 3, 4}) || p.TargetReplicas != nil {
		t.Fatalf("after reorder: %+v", p)
	}
	errs = m.must(ReassignPartitions{Reassignments: []Reassignment{{Topic: "t"}}}).([]error)
	if !errors.Is(errs[0], ErrNoReassignmentInProgress) {
		t.Fatalf("cancel without reassignment: %v", errs)
	}
}

func TestUnregisterBroker(t *testing.T) {
	m := newMachine(t)
	m.cluster(3)
	m.topic("t", []int32{3, 1})
	m.must(UnregisterBroker{NodeID: 3})
	if _, ok := m.f.Current().Brokers[3]; ok {
		t.Fatal("broker 3 still registered")
	}
	if p := m.partition("t", 0); p.Leader != 1 {
		t.Fatalf("leadership not moved off the unregistered broker: %+v", p)
	}
	if r := m.apply(UnregisterBroker{NodeID: 3}); !errors.Is(r.Err, ErrUnknownBroker) {
		t.Fatalf("second unregister: %v", r.Err)
	}
}

func TestUnknownCommandHaltsAndIgnorableIsSkipped(t *testing.T) {
	m := newMachine(t)
	m.cluster(1)
	before := m.bytes()
	if r := m.applyRaw([]byte{byte(IgnorableFlag | 0x7f), '{', '}'}); r.Err != nil {
		t.Fatalf("ignorable unknown command: %v", r.Err)
	}
	if !bytes.Equal(withoutIndex(t, before), withoutIndex(t, m.bytes())) {
		t.Fatal("ignorable command changed the state")
	}
	// A known command with the ignorable bit is still applied.
	b, _ := Encode(AllocateProducerIDs{Count: 5})
	b[0] |= byte(IgnorableFlag)
	if r := m.applyRaw(b); r.Err != nil || r.Value.(int64) != 0 {
		t.Fatalf("flagged known command: %+v", r)
	}
	if r := m.applyRaw([]byte{0x7f, '{', '}'}); !errors.Is(r.Err, ErrUnknownCommand) {
		t.Fatalf("unknown command: %v", r.Err)
	}
	if r := m.apply(AllocateProducerIDs{Count: 5}); !errors.Is(r.Err, ErrHalted) {
		t.Fatalf("after halting: %v", r.Err)
	}
	if !errors.Is(m.f.Err(), ErrHalted) {
		t.Fatal("Err() should report the halt")
	}
	if _, err := m.f.Snapshot(); err == nil {
		t.Fatal("a halted machine must not snapshot")
	}
	if r := New(slog.New(slog.DiscardHandler)).ApplyEntry(1, nil); !errors.Is(r.Err, ErrHalted) {
		t.Fatalf("empty entry: %v", r.Err)
	}
}

func TestUndecodableCommandHalts(t *testing.T) {
	tests := map[string][]byte{
		"bad json":      append([]byte{byte(TypeCreateTopic)}, '{'),
		"unknown field": append([]byte{byte(TypeAllocateProducerIDs)}, `{"count":5,"added_in_a_later_version":true}`...),
		"trailing data": append([]byte{byte(TypeAllocateProducerIDs)}, `{"count":5}{"count":6}`...),
	}
	for name, entry := range tests {
		t.Run(name, func(t *testing.T) {
			m := newMachine(t)
			if r := m.applyRaw(entry); !errors.Is(r.Err, ErrHalted) || !errors.Is(r.Err, ErrBadCommand) {
				t.Fatalf("got %v", r.Err)
			}
			if m.f.Current().NextProducerID != 0 {
				t.Fatal("part of an undecodable command was applied")
			}
		})
	}
}

func TestSnapshotFromANewerVersionIsRefused(t *testing.T) {
	m := newMachine(t)
	err := m.f.Restore(io.NopCloser(bytes.NewReader([]byte(`{"format":1,"state":{"cluster_id":"x","brokers":{},"topics":{},"new_thing":1}}`))))
	if err == nil {
		t.Fatal("restored a snapshot with a field this version does not know")
	}
}

// history is a log touching every command type.
func history(m *machine) {
	epochs := m.cluster(4)
	m.must(SetBrokerConfigs{NodeID: ClusterDefault, Configs: map[string]string{"x": "1", "a": "2"}})
	m.topic("b", []int32{1, 2, 3}, []int32{2, 3, 4}, []int32{3, 4, 1})
	m.topic("a", []int32{4, 1})
	m.must(CreatePartitions{Name: "a", Assignments: [][]int32{{1, 2}}})
	m.must(SetTopicConfigs{Name: "a", Configs: map[string]string{"z": "1", "c": "3"}})
	m.must(AllocateProducerIDs{NodeID: 1, Count: 100})
	m.must(ImportFileMetadata{NodeID: 2, NextProducerID: 2000, Topics: []ImportedTopic{
		{Name: "imported", ID: TopicID{0xaa}, Configs: map[string]string{"q": "1", "b": "2"}, LeaderEpochs: []int32{4, 1}},
		{Name: "also", ID: TopicID{0xab}, LeaderEpochs: []int32{0}},
	}, BrokerConfigs: map[int32]map[string]string{2: {"k": "v", "j": "w"}, 1: {"m": "n"}}})
	for _, id := range []int32{1, 2, 3} {
		m.must(BrokerHeartbeat{NodeID: id, BrokerEpoch: epochs[id], NowMs: 5000, LeaseMs: lease})
	}
	m.must(ExpireLeases{NowMs: 7500})
	m.must(ControlledShutdown{NodeID: 3, BrokerEpoch: epochs[3]})
	m.must(ReassignPartitions{Reassignments: []Reassignment{{Topic: "b", Partition: 1, Replicas: []int32{1, 2}}}})
	m.must(ElectLeaders{Election: ElectPreferred})
	m.must(DeleteTopic{Name: "a"})
	m.must(UnregisterBroker{NodeID: 4})
	m.must(CreateACLs{ACLs: []ACL{
		{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "orders-", PatternType: kmsg.ACLResourcePatternTypePrefixed, Principal: "User:bob", Host: "*", Operation: kmsg.ACLOperationRead, Permission: kmsg.ACLPermissionTypeAllow},
		{ResourceType: kmsg.ACLResourceTypeGroup, ResourceName: "g", PatternType: kmsg.ACLResourcePatternTypeLiteral, Principal: "User:bob", Host: "10.0.0.1", Operation: kmsg.ACLOperationRead, Permission: kmsg.ACLPermissionTypeAllow},
		{ResourceType: kmsg.ACLResourceTypeCluster, ResourceName: "kafka-cluster", PatternType: kmsg.ACLResourcePatternTypeLiteral, Principal: "User:ops", Host: "*", Operation: kmsg.ACLOperationAlter, Permission: kmsg.ACLPermissionTypeAllow},
	}})
	m.must(DeleteACLs{Filters: []ACLFilter{{ResourceType: kmsg.ACLResourceTypeGroup, PatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}}})
}

func TestDeterminism(t *testing.T) {
	first := newMachine(t)
	history(first)
	want := first.bytes()
	for range 5 { // map iteration order differs run to run
		replay := newMachine(t)
		for _, e := range first.entries {
			replay.applyRaw(e)
		}
		if got := replay.bytes(); !bytes.Equal(got, want) {
			t.Fatalf("replaying the same log gave different state:\n%s\n%s", got, want)
		}
	}
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

func TestSnapshotRestore(t *testing.T) {
	m := newMachine(t)
	history(m)
	snap, err := m.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := m.bytes()
	// Later changes must not leak into the snapshot taken before them.
	m.must(AllocateProducerIDs{Count: 1})
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	restored := newMachine(t)
	if err := restored.f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := restored.bytes(); !bytes.Equal(got, want) {
		t.Fatalf("restored state differs:\n%s\n%s", got, want)
	}
	if err := restored.f.Restore(io.NopCloser(bytes.NewReader([]byte(`{"format":99,"state":{}}`)))); err == nil {
		t.Fatal("restored an unknown snapshot format")
	}
}

func TestChangedIsClosedOnApply(t *testing.T) {
	m := newMachine(t)
	ch := m.f.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any change")
	default:
	}
	m.must(InitCluster{ClusterID: "x"})
	select {
	case <-ch:
	default:
		t.Fatal("not closed after a change")
	}
}

func TestImportFileMetadata(t *testing.T) {
	imp := ImportFileMetadata{
		NodeID: 4,
		Topics: []ImportedTopic{
			{Name: "orders", ID: TopicID{1, 2}, Configs: map[string]string{"retention.ms": "1000"}, LeaderEpochs: []int32{3, 7}},
			{Name: "__consumer_offsets", ID: TopicID{3}, Configs: map[string]string{"cleanup.policy": "compact"}, LeaderEpochs: []int32{5}},
		},
		BrokerConfigs:  map[int32]map[string]string{ClusterDefault: {"max.connections": "50"}, 4: {"log.retention.ms": "99"}},
		NextProducerID: 3000,
	}
	t.Run("into an empty log, then the broker registers", func(t *testing.T) {
		m := newMachine(t)
		m.must(InitCluster{ClusterID: "c1"})
		if n := m.must(imp).(int); n != 2 {
			t.Fatalf("imported %d topics, want 2", n)
		}
		// Nobody registered yet: leaderless at the old epochs.
		if p := m.partition("orders", 1); p.Leader != NoLeader || p.LeaderEpoch != 7 || !slices.Equal(p.Replicas, []int32{4}) || !slices.Equal(p.ISR, []int32{4}) {
			t.Fatalf("orders-1 before registration: %+v", p)
		}
		m.must(RegisterBroker{NodeID: 4, Listeners: []Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 9092}}, NowMs: 1000, LeaseMs: lease})
		for _, tt := range []struct {
			topic string
			index int32
			epoch int32
		}{{"orders", 0, 4}, {"orders", 1, 8}, {"__consumer_offsets", 0, 6}} {
			if p := m.partition(tt.topic, tt.index); p.Leader != 4 || p.LeaderEpoch != tt.epoch {
				t.Errorf("%s-%d after registration: %+v, want led by 4 at epoch %d", tt.topic, tt.index, p, tt.epoch)
			}
		}
		st := m.f.Current()
		if top, _ := st.Topic("orders"); top.ID != (TopicID{1, 2}) || top.Configs["retention.ms"] != "1000" {
			t.Fatalf("orders imported as %+v", top)
		}
		if st.BrokerConfigs[ClusterDefault]["max.connections"] != "50" || st.BrokerConfigs[4]["log.retention.ms"] != "99" || st.NextProducerID != 3000 {
			t.Fatalf("broker configs %v, next producer id %d", st.BrokerConfigs, st.NextProducerID)
		}

		// The same import again (a crash before the file was retired)
		// changes nothing but the applied index.
		before := m.f.Current()
		if n := m.must(imp).(int); n != 0 {
			t.Fatalf("re-import added %d topics", n)
		}
		after := m.f.Current()
		a, b := *before, *after
		a.Index, b.Index = 0, 0
		ab, _ := MarshalState(&a)
		bb, _ := MarshalState(&b)
		if !bytes.Equal(ab, bb) {
			t.Fatalf("re-import changed the state:\n%s\n%s", ab, bb)
		}
	})
	t.Run("broker already registered, existing configs and producer ids win", func(t *testing.T) {
		m := newMachine(t)
		m.must(InitCluster{ClusterID: "c1"})
		m.must(RegisterBroker{NodeID: 4, NowMs: 1000, LeaseMs: lease})
		m.must(SetBrokerConfigs{NodeID: ClusterDefault, Configs: map[string]string{"max.connections": "7"}})
		m.must(AllocateProducerIDs{NodeID: 4, Count: 5000})
		m.must(imp)
		if p := m.partition("orders", 0); p.Leader != 4 || p.LeaderEpoch != 4 {
			t.Fatalf("orders-0 %+v", p)
		}
		st := m.f.Current()
		if st.BrokerConfigs[ClusterDefault]["max.connections"] != "7" || st.BrokerConfigs[4]["log.retention.ms"] != "99" || st.NextProducerID != 5000 {
			t.Fatalf("broker configs %v, next producer id %d", st.BrokerConfigs, st.NextProducerID)
		}
	})
	t.Run("refused imports change nothing", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			cmd  ImportFileMetadata
			want error
		}{
			{"name taken by another id", ImportFileMetadata{NodeID: 4, Topics: []ImportedTopic{{Name: "taken", ID: TopicID{9}, LeaderEpochs: []int32{0}}}}, ErrTopicExists},
			{"id taken by another name", ImportFileMetadata{NodeID: 4, Topics: []ImportedTopic{{Name: "other", ID: TopicID{8}, LeaderEpochs: []int32{0}}}}, ErrInvalidRequest},
			{"no partitions", ImportFileMetadata{NodeID: 4, Topics: []ImportedTopic{{Name: "x", ID: TopicID{7}}}}, ErrInvalidPartitions},
			{"no id", ImportFileMetadata{NodeID: 4, Topics: []ImportedTopic{{Name: "x", LeaderEpochs: []int32{0}}}}, ErrInvalidRequest},
			{"negative epoch", ImportFileMetadata{NodeID: 4, Topics: []ImportedTopic{{Name: "x", ID: TopicID{7}, LeaderEpochs: []int32{-2}}}}, ErrInvalidRequest},
			{"negative node", ImportFileMetadata{NodeID: -1}, ErrInvalidRequest},
		} {
			t.Run(tt.name, func(t *testing.T) {
				m := newMachine(t)
				m.cluster(1)
				m.must(CreateTopic{Name: "taken", ID: TopicID{8}, Assignments: [][]int32{{1}}})
				before := m.bytes()
				cmd := tt.cmd
				// A good topic first: it must not be imported either.
				cmd.Topics = append([]ImportedTopic{{Name: "good", ID: TopicID{6}, LeaderEpochs: []int32{1}}}, cmd.Topics...)
				if r := m.apply(cmd); !errors.Is(r.Err, tt.want) {
					t.Fatalf("got %v, want %v", r.Err, tt.want)
				}
				st := *m.f.Current()
				st.Index--
				after, _ := MarshalState(&st)
				if !bytes.Equal(before, after) {
					t.Fatalf("refused import changed the state:\n%s\n%s", before, after)
				}
			})
		}
	})
}

func TestOnlyLeasesDiffer(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(2)
	m.topic("a", []int32{1, 2})
	base := m.f.Current()
	m.must(BrokerHeartbeat{NodeID: 1, BrokerEpoch: epochs[1], NowMs: 2000, LeaseMs: lease})
	if hb := m.f.Current(); hb == base || !hb.OnlyLeasesDiffer(base) || !base.OnlyLeasesDiffer(hb) {
		t.Fatal("a heartbeat changed more than a lease")
	}
	for _, cmd := range []Command{
		CreateTopic{Name: "b", ID: TopicID{0xb}, Assignments: [][]int32{{2}}},
		SetBrokerConfigs{NodeID: ClusterDefault, Configs: map[string]string{"min.insync.replicas": "2"}},
		SetBrokerConfigs{NodeID: 1, Configs: map[string]string{"min.insync.replicas": "1"}},
		AllocateProducerIDs{NodeID: 1, Count: 10},
		CreateACLs{ACLs: []ACL{{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "*", PatternType: kmsg.ACLResourcePatternTypeLiteral, Principal: "User:*", Host: "*", Operation: kmsg.ACLOperationAll, Permission: kmsg.ACLPermissionTypeAllow}}},
		DeleteACLs{Filters: []ACLFilter{{ResourceType: kmsg.ACLResourceTypeAny, PatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}}},
		AlterScramCredentials{Users: []ScramUserAlteration{{User: "alice", Upsertions: []ScramRecord{scramRecord(t, scram.SHA512, "pw")}}}},
		AlterClientQuotas{Entries: []QuotaAlteration{{Entity: QuotaEntity{{Type: QuotaEntityUser}}, Set: map[string]float64{QuotaProducerByteRate: 1024}}}},
	} {
		before := m.f.Current()
		m.must(cmd)
		if m.f.Current().OnlyLeasesDiffer(before) {
			t.Errorf("%T counted as a lease change", cmd)
		}
	}
	// Every state and broker field but the lease, the index and the clock
	// matters; a field added later must be compared in OnlyLeasesDiffer
	// (and listed here).
	stateFields := map[string]bool{"ClusterID": true, "Index": false, "NowMs": false, "Brokers": true, "Topics": true, "BrokerConfigs": true, "NextProducerID": true, "ACLs": true, "Scram": true, "ClientQuotas": true}
	st := reflect.TypeOf(State{})
	for i := range st.NumField() {
		if _, ok := stateFields[st.Field(i).Name]; !ok {
			t.Errorf("State.%s: is it compared by OnlyLeasesDiffer? Add it there and here", st.Field(i).Name)
		}
	}
	changes := map[string]func(b *Broker){
		"NodeID":          nil, // the map key
		"LeaseExpiryMs":   nil, // the lease itself
		"Rack":            func(b *Broker) { b.Rack = "z" },
		"Listeners":       func(b *Broker) { b.Listeners = []Listener{{Name: "X"}} },
		"ReplicationAddr": func(b *Broker) { b.ReplicationAddr = "elsewhere:1" },
		"Epoch":           func(b *Broker) { b.Epoch++ },
		"Fenced":          func(b *Broker) { b.Fenced = !b.Fenced },
		"ShuttingDown":    func(b *Broker) { b.ShuttingDown = !b.ShuttingDown },
		"DiskFull":        func(b *Broker) { b.DiskFull = !b.DiskFull },
		"MetadataVersion": func(b *Broker) { b.MetadataVersion++ },
	}
	typ := reflect.TypeOf(Broker{})
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		change, ok := changes[name]
		if !ok {
			t.Errorf("Broker.%s: is it compared by OnlyLeasesDiffer? Add it there and here", name)
			continue
		}
		if change == nil {
			continue
		}
		st := base.shallowCopy()
		b := *st.Brokers[1]
		change(&b)
		st.Brokers[1] = &b
		if st.OnlyLeasesDiffer(base) {
			t.Errorf("a change of Broker.%s counted as a lease change", name)
		}
	}
}

// FenceBroker fences the incarnation it names at once, moving its
// leaderships; a stale incarnation or a fenced broker is left alone, and a
// heartbeat of the incarnation unfences it, as after a lapsed lease.
func TestFenceBroker(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(3)
	m.topic("t", []int32{2, 1, 3})
	if got := m.must(FenceBroker{NodeID: 2, BrokerEpoch: epochs[2] - 1}); got != false {
		t.Fatalf("stale incarnation: fenced %v", got)
	}
	if p := m.partition("t", 0); p.Leader != 2 {
		t.Fatalf("a stale fence moved the leader to %d", p.Leader)
	}
	if got := m.must(FenceBroker{NodeID: 2, BrokerEpoch: epochs[2]}); got != true {
		t.Fatalf("current incarnation: fenced %v", got)
	}
	p := m.partition("t", 0)
	if p.Leader == 2 || slices.Contains(p.ISR, 2) || !m.f.Current().Brokers[2].Fenced {
		t.Fatalf("after the fence: %+v, broker %+v", p, m.f.Current().Brokers[2])
	}
	if got := m.must(FenceBroker{NodeID: 2, BrokerEpoch: epochs[2]}); got != false {
		t.Fatalf("fenced twice: %v", got)
	}
	if r := m.apply(FenceBroker{NodeID: 9, BrokerEpoch: 1}); !errors.Is(r.Err, ErrUnknownBroker) {
		t.Fatalf("unknown broker: %v", r.Err)
	}
	m.must(BrokerHeartbeat{NodeID: 2, BrokerEpoch: epochs[2], NowMs: 2000, LeaseMs: lease})
	if m.f.Current().Brokers[2].Fenced {
		t.Fatal("a heartbeat of the fenced incarnation did not unfence it")
	}
}

// LeaderLogFailed moves the leadership to another eligible ISR member at a
// new leader epoch and takes the reporting leader out of the ISR; with no
// other ISR member able to lead, the leader leads on at a new epoch. A
// report about an epoch the partition has left is refused.
func TestLeaderLogFailed(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(3)
	m.topic("t", []int32{1, 2, 3})
	m.topic("one", []int32{1})
	before := m.partition("t", 0)
	got := m.must(LeaderLogFailed{Topic: "t", Partition: 0, LeaderID: 1, BrokerEpoch: epochs[1], LeaderEpoch: before.LeaderEpoch}).(Partition)
	if got.Leader != 2 || got.LeaderEpoch != before.LeaderEpoch+1 || got.PartitionEpoch != before.PartitionEpoch+1 || !slices.Equal(got.ISR, []int32{2, 3}) {
		t.Fatalf("after the report: %+v, want broker 2 leading at epoch %d with ISR [2 3]", got, before.LeaderEpoch+1)
	}
	if p := m.partition("t", 0); !reflect.DeepEqual(p, got) {
		t.Fatalf("state %+v, result %+v", p, got)
	}

	tests := []struct {
		name string
		cmd  LeaderLogFailed
		want error
	}{
		{"old epoch", LeaderLogFailed{Topic: "t", Partition: 0, LeaderID: 1, BrokerEpoch: epochs[1], LeaderEpoch: before.LeaderEpoch}, ErrFencedLeaderEpoch},
		{"not the leader", LeaderLogFailed{Topic: "t", Partition: 0, LeaderID: 3, BrokerEpoch: epochs[3], LeaderEpoch: got.LeaderEpoch}, ErrNotLeader},
		{"stale broker epoch", LeaderLogFailed{Topic: "t", Partition: 0, LeaderID: 2, BrokerEpoch: epochs[2] - 1, LeaderEpoch: got.LeaderEpoch}, ErrStaleBrokerEpoch},
		{"unknown partition", LeaderLogFailed{Topic: "t", Partition: 5, LeaderID: 2, BrokerEpoch: epochs[2], LeaderEpoch: got.LeaderEpoch}, ErrUnknownTopicOrPartition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := m.apply(tc.cmd); !errors.Is(r.Err, tc.want) {
				t.Fatalf("%+v: %v, want %v", tc.cmd, r.Err, tc.want)
			}
			if p := m.partition("t", 0); !reflect.DeepEqual(p, got) {
				t.Fatalf("a refused report changed the partition: %+v", p)
			}
		})
	}

	// A single replica: nobody else can lead, so it leads on at a new epoch.
	alone := m.partition("one", 0)
	got = m.must(LeaderLogFailed{Topic: "one", Partition: 0, LeaderID: 1, BrokerEpoch: epochs[1], LeaderEpoch: alone.LeaderEpoch}).(Partition)
	if got.Leader != 1 || got.LeaderEpoch != alone.LeaderEpoch+1 || !slices.Equal(got.ISR, []int32{1}) {
		t.Fatalf("single replica after the report: %+v, want broker 1 at epoch %d", got, alone.LeaderEpoch+1)
	}

	// An ISR member that is fenced may not take over.
	m.topic("u", []int32{2, 3})
	m.must(FenceBroker{NodeID: 3, BrokerEpoch: epochs[3]})
	u := m.partition("u", 0)
	got = m.must(LeaderLogFailed{Topic: "u", Partition: 0, LeaderID: 2, BrokerEpoch: epochs[2], LeaderEpoch: u.LeaderEpoch}).(Partition)
	if got.Leader != 2 || got.LeaderEpoch != u.LeaderEpoch+1 {
		t.Fatalf("with the other replica fenced: %+v, want broker 2 at epoch %d", got, u.LeaderEpoch+1)
	}
}

// ReplicaDiskFull takes a full replica out of the ISR: a leader hands over
// to the next eligible ISR member at a new leader epoch, a follower only
// leaves the ISR (below min.insync.replicas too: the leader then refuses
// acks=all at once). A leader nobody can replace is refused and nothing
// changes, so its retries bump no epochs; a reporter outside the ISR
// changes nothing, and a stale report is refused.
func TestReplicaDiskFull(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(3)
	m.topic("t", []int32{1, 2, 3})
	m.topic("others", []int32{1, 2, 3}, []int32{2, 1, 3})
	m.topic("alone", []int32{1})
	before := m.partition("t", 0)
	got := m.must(ReplicaDiskFull{Topic: "t", Partition: 0, BrokerID: 1, BrokerEpoch: epochs[1], LeaderEpoch: before.LeaderEpoch}).(Partition)
	if got.Leader != 2 || got.LeaderEpoch != before.LeaderEpoch+1 || got.PartitionEpoch != before.PartitionEpoch+1 || !slices.Equal(got.ISR, []int32{2, 3}) {
		t.Fatalf("after the leader's report: %+v, want broker 2 leading at epoch %d with ISR [2 3]", got, before.LeaderEpoch+1)
	}
	if p := m.partition("t", 0); !reflect.DeepEqual(p, got) {
		t.Fatalf("state %+v, result %+v", p, got)
	}
	// Its whole disk is full: it leaves every other ISR and hands over
	// every leadership another ISR member can take; alone, it keeps it.
	if p := m.partition("others", 0); p.Leader != 2 || !slices.Equal(p.ISR, []int32{2, 3}) {
		t.Fatalf("a partition the full broker led: %+v, want broker 2 leading with ISR [2 3]", p)
	}
	if p := m.partition("others", 1); p.Leader != 2 || !slices.Equal(p.ISR, []int32{2, 3}) {
		t.Fatalf("a partition the full broker followed: %+v, want ISR [2 3]", p)
	}
	if p := m.partition("alone", 0); p.Leader != 1 || !slices.Equal(p.ISR, []int32{1}) {
		t.Fatalf("a partition only the full broker holds: %+v, want it kept", p)
	}
	// The full broker is marked so: it may neither lead (the preferred
	// election included) nor join an ISR, so it cannot flap back.
	if st := m.f.Current(); !st.Brokers[1].DiskFull || st.EligibleBroker(1) {
		t.Fatalf("broker 1 after its report: %+v, want marked full and ineligible", st.Brokers[1])
	}
	if r := m.must(ElectLeaders{Election: ElectPreferred, Partitions: []TopicPartition{{Topic: "t", Partition: 0}}}).([]ElectionResult); !errors.Is(r[0].Err, ErrPreferredLeaderNotAvailable) {
		t.Fatalf("preferred election with the full broker out of the ISR: %+v", r)
	}
	if r := m.apply(AlterPartition{Topic: "t", Partition: 0, LeaderID: 2, BrokerEpoch: epochs[2], LeaderEpoch: got.LeaderEpoch, PartitionEpoch: got.PartitionEpoch, NewISR: []int32{1, 2, 3}}); !errors.Is(r.Err, ErrIneligibleReplica) {
		t.Fatalf("the full broker rejoining the ISR: %v, want %v", r.Err, ErrIneligibleReplica)
	}
	// Writable again: eligible, and it rejoins the ISR as any replica does.
	before1 := m.f.Current()
	if r := m.apply(BrokerDiskWritable{NodeID: 1, BrokerEpoch: epochs[1] - 1}); !errors.Is(r.Err, ErrStaleBrokerEpoch) {
		t.Fatalf("a stale incarnation's report: %v", r.Err)
	}
	if cleared := m.must(BrokerDiskWritable{NodeID: 1, BrokerEpoch: epochs[1]}); cleared != true {
		t.Fatalf("clearing the mark: %v", cleared)
	}
	if st := m.f.Current(); st.Brokers[1].DiskFull || !st.EligibleBroker(1) || st.OnlyLeasesDiffer(before1) {
		t.Fatalf("broker 1 after reporting its disk writable: %+v (a change followers must see)", st.Brokers[1])
	}
	if cleared := m.must(BrokerDiskWritable{NodeID: 1, BrokerEpoch: epochs[1]}); cleared != false {
		t.Fatalf("clearing twice: %v", cleared)
	}
	m.must(AlterPartition{Topic: "t", Partition: 0, LeaderID: 2, BrokerEpoch: epochs[2], LeaderEpoch: got.LeaderEpoch, PartitionEpoch: got.PartitionEpoch, NewISR: []int32{1, 2, 3}})
	got = m.partition("t", 0)

	// A follower leaves the ISR; the leader and its epoch stay.
	m.must(ReplicaDiskFull{Topic: "t", Partition: 0, BrokerID: 1, BrokerEpoch: epochs[1], LeaderEpoch: got.LeaderEpoch})
	got = m.must(ReplicaDiskFull{Topic: "t", Partition: 0, BrokerID: 3, BrokerEpoch: epochs[3], LeaderEpoch: got.LeaderEpoch}).(Partition)
	if got.Leader != 2 || got.LeaderEpoch != before.LeaderEpoch+1 || got.PartitionEpoch != before.PartitionEpoch+4 || !slices.Equal(got.ISR, []int32{2}) {
		t.Fatalf("after the followers' reports: %+v, want broker 2 at epoch %d with ISR [2]", got, before.LeaderEpoch+1)
	}

	// Not in the ISR any more: nothing changes, no epoch moves.
	if again := m.must(ReplicaDiskFull{Topic: "t", Partition: 0, BrokerID: 3, BrokerEpoch: epochs[3], LeaderEpoch: got.LeaderEpoch}).(Partition); !reflect.DeepEqual(again, got) {
		t.Fatalf("a report from outside the ISR changed %+v into %+v", got, again)
	}

	tests := []struct {
		name string
		cmd  ReplicaDiskFull
		want error
	}{
		{"the only ISR member leads", ReplicaDiskFull{Topic: "t", Partition: 0, BrokerID: 2, BrokerEpoch: epochs[2], LeaderEpoch: got.LeaderEpoch}, ErrEligibleLeadersNotAvailable},
		{"old epoch", ReplicaDiskFull{Topic: "t", Partition: 0, BrokerID: 2, BrokerEpoch: epochs[2], LeaderEpoch: before.LeaderEpoch}, ErrFencedLeaderEpoch},
		{"stale broker epoch", ReplicaDiskFull{Topic: "t", Partition: 0, BrokerID: 2, BrokerEpoch: epochs[2] - 1, LeaderEpoch: got.LeaderEpoch}, ErrStaleBrokerEpoch},
		{"unknown partition", ReplicaDiskFull{Topic: "t", Partition: 5, BrokerID: 2, BrokerEpoch: epochs[2], LeaderEpoch: got.LeaderEpoch}, ErrUnknownTopicOrPartition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := m.apply(tc.cmd); !errors.Is(r.Err, tc.want) {
				t.Fatalf("%+v: %v, want %v", tc.cmd, r.Err, tc.want)
			}
			if p := m.partition("t", 0); !reflect.DeepEqual(p, got) {
				t.Fatalf("a refused report changed the partition: %+v", p)
			}
		})
	}

	// An ISR member that is fenced may not take over either.
	m.topic("u", []int32{2, 3})
	m.must(FenceBroker{NodeID: 3, BrokerEpoch: epochs[3]})
	u := m.partition("u", 0)
	if r := m.apply(ReplicaDiskFull{Topic: "u", Partition: 0, BrokerID: 2, BrokerEpoch: epochs[2], LeaderEpoch: u.LeaderEpoch}); !errors.Is(r.Err, ErrEligibleLeadersNotAvailable) {
		t.Fatalf("with the other replica fenced: %v", r.Err)
	}
	if p := m.partition("u", 0); !reflect.DeepEqual(p, u) {
		t.Fatalf("a refused report changed %+v into %+v", u, p)
	}
}

// TestAlterPartitionCopiesNoOtherPartition checks that an ISR change of one
// partition of a large topic leaves the State published before it as it
// was and does not copy the other partitions' replica lists and ISRs: a
// broker rejoining a cluster makes one such change per partition, and a
// deep copy of the topic for each made that quadratic (10,000 allocations
// per change of a 5,000-partition topic).
func TestAlterPartitionCopiesNoOtherPartition(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(3)
	const partitions = 2000
	assignments := make([][]int32, partitions)
	for i := range assignments {
		assignments[i] = []int32{1, 2, 3}
	}
	m.topic("t", assignments...)
	before := m.f.Current()
	isr := []int32{1, 2}
	allocs := testing.AllocsPerRun(10, func() {
		p := m.partition("t", 7)
		m.must(AlterPartition{Topic: "t", Partition: 7, LeaderID: 1, BrokerEpoch: epochs[1], LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: isr})
		if len(isr) == 2 {
			isr = []int32{1, 2, 3}
		} else {
			isr = []int32{1, 2}
		}
	})
	if allocs > partitions/4 {
		t.Fatalf("an ISR change of one partition of a %d-partition topic made %.0f allocations", partitions, allocs)
	}
	if p, _ := before.Partition("t", 7); !slices.Equal(p.ISR, []int32{1, 2, 3}) || p.PartitionEpoch != 0 {
		t.Fatalf("the State published before the changes now has ISR %v at partition epoch %d", p.ISR, p.PartitionEpoch)
	}
	last := []int32{1, 2, 3} // the ISR of the last change made
	if len(isr) == 3 {
		last = []int32{1, 2}
	}
	if p := m.partition("t", 7); !slices.Equal(p.ISR, last) || p.PartitionEpoch != 11 {
		t.Fatalf("after 11 changes partition 7 has ISR %v at partition epoch %d, want %v at 11", p.ISR, p.PartitionEpoch, last)
	}
	for _, i := range []int32{0, 8, partitions - 1} {
		if p, q := m.partition("t", i), assignments[i]; !slices.Equal(p.ISR, q) || !slices.Equal(p.Replicas, q) {
			t.Fatalf("partition %d changed: %+v", i, p)
		}
	}
}

// A broker that is alive with every acknowledged record (its disk full, or
// shutting down) hands its leaderships to in-sync replicas only, even
// where unclean election is allowed: an out-of-sync replica elected in its
// place would drop the records only it has, while it still serves them.
// Once its lease lapses (the process gone), unclean election applies as
// for any lost leader.
//
// Below CleanHandOverVersion (a broker of an older binary registered) the
// hand-over is as older binaries apply it, unclean, so that the brokers of
// a rolling upgrade agree on the leader.
func TestLiveLeaderNeverHandsOverUnclean(t *testing.T) {
	for _, tc := range []struct {
		how   string
		older bool // broker 3 runs a binary of metadata version 2
	}{{"disk full", false}, {"controlled shutdown", false}, {"disk full", true}, {"controlled shutdown", true}} {
		how := tc.how
		name := how
		if tc.older {
			name += " with a version 2 broker"
		}
		t.Run(name, func(t *testing.T) {
			m := newMachine(t)
			epochs := m.cluster(3)
			m.reportVersion(1, epochs[1], CurrentMetadataVersion)
			m.reportVersion(2, epochs[2], CurrentMetadataVersion)
			m.reportVersion(3, epochs[3], map[bool]MetadataVersion{false: CurrentMetadataVersion, true: 2}[tc.older])
			m.topic("t", []int32{1, 2})
			m.topic("u", []int32{2, 1})
			m.must(SetTopicConfigs{Name: "t", Configs: map[string]string{UncleanElectionConfig: "true"}})
			p := m.partition("t", 0)
			// Broker 2 falls behind: broker 1 alone holds t-0's records.
			p = m.must(AlterPartition{Topic: "t", LeaderID: 1, BrokerEpoch: epochs[1], LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: []int32{1}}).(Partition)
			switch how {
			case "disk full":
				// Broker 1's write of u-0, which it follows, is refused:
				// its whole disk is taken offline.
				u := m.partition("u", 0)
				m.must(ReplicaDiskFull{Topic: "u", Partition: 0, BrokerID: 1, BrokerEpoch: epochs[1], LeaderEpoch: u.LeaderEpoch})
				if st := m.f.Current(); !st.Brokers[1].DiskFull {
					t.Fatalf("broker 1 not marked full: %+v", st.Brokers[1])
				}
			case "controlled shutdown":
				m.must(ControlledShutdown{NodeID: 1, BrokerEpoch: epochs[1]})
			}
			if tc.older {
				if got := m.partition("t", 0); got.Leader != 2 || !slices.Equal(got.ISR, []int32{2}) || got.LeaderEpoch != p.LeaderEpoch+1 {
					t.Fatalf("t-0 at metadata version 2: %+v, want broker 2 elected unclean at epoch %d, as version 2 binaries apply it", got, p.LeaderEpoch+1)
				}
				return
			}
			if got := m.partition("t", 0); !reflect.DeepEqual(got, p) {
				t.Fatalf("t-0 with unclean election on, led by its only in-sync replica: %+v, want it unchanged (%+v)", got, p)
			}
			m.must(BrokerHeartbeat{NodeID: 2, BrokerEpoch: epochs[2], NowMs: 5000, LeaseMs: lease})
			m.must(BrokerHeartbeat{NodeID: 3, BrokerEpoch: epochs[3], NowMs: 5000, LeaseMs: lease})
			m.must(ExpireLeases{NowMs: 8000}) // broker 1 missed its lease
			if got := m.partition("t", 0); got.Leader != 2 || !slices.Equal(got.ISR, []int32{2}) || got.LeaderEpoch != p.LeaderEpoch+1 {
				t.Fatalf("t-0 after broker 1's lease lapsed: %+v, want broker 2 elected unclean at epoch %d", got, p.LeaderEpoch+1)
			}
		})
	}
}

// While partition 0 is being reassigned, Replicas holds its original
// replicas and the added ones; CreatePartitions wants the target's count
// for the new partitions, not that sum (the move of t-0 from brokers 1-3
// to 4-6 made it want six). Below TargetReplicationFactorVersion (a
// broker of an older binary registered) it wants the sum, as those
// binaries apply it, so that every broker accepts and refuses the same
// command.
func TestCreatePartitionsDuringAReassignmentOfPartitionZero(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target []int32 // t-0's reassignment
		older  bool    // broker 6 runs a binary of metadata version 3
		want   int     // replicas a new partition must have
	}{
		{"moved to three others", []int32{4, 5, 6}, false, 3},
		{"one replica added", []int32{1, 2, 3, 4}, false, 4},
		{"moved to two others", []int32{4, 5}, false, 2},
		{"moved with a version 3 broker", []int32{4, 5, 6}, true, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t)
			epochs := m.cluster(6)
			for id, e := range epochs {
				v := CurrentMetadataVersion
				if tc.older && id == 6 {
					v = TargetReplicationFactorVersion - 1
				}
				m.reportVersion(id, e, v)
			}
			m.topic("t", []int32{1, 2, 3})
			errs := m.must(ReassignPartitions{Reassignments: []Reassignment{{Topic: "t", Partition: 0, Replicas: tc.target}}}).([]error)
			if errs[0] != nil {
				t.Fatal(errs[0])
			}
			st := m.f.Current()
			top, _ := st.Topic("t")
			if p := top.Partition(0); p.TargetReplicas == nil {
				t.Fatalf("t-0 not being reassigned: %+v", p)
			}
			if got := st.NewPartitionsReplicationFactor(top); got != tc.want {
				t.Fatalf("NewPartitionsReplicationFactor = %d, want %d", got, tc.want)
			}
			if got := top.ReplicationFactor(); got != len(tc.target) {
				t.Fatalf("ReplicationFactor = %d during the move to %v", got, tc.target)
			}
			// One replica more or fewer than wanted is refused and
			// changes nothing.
			for _, n := range []int{tc.want - 1, tc.want + 1} {
				if n > 6 {
					continue
				}
				as := []int32{1, 2, 3, 4, 5, 6}[:n]
				if r := m.apply(CreatePartitions{Name: "t", Assignments: [][]int32{as}}); !errors.Is(r.Err, ErrInvalidReplicaAssignment) {
					t.Fatalf("a new partition on %v: %v, want %v", as, r.Err, ErrInvalidReplicaAssignment)
				}
			}
			as := []int32{6, 5, 4, 3, 2, 1}[:tc.want]
			top = m.must(CreatePartitions{Name: "t", Assignments: [][]int32{as}}).(*Topic)
			if top.NumPartitions() != 2 || !slices.Equal(top.Partition(1).Replicas, as) {
				t.Fatalf("after CreatePartitions on %v: %d partitions, t-1 %+v", as, top.NumPartitions(), top.Partition(1))
			}
		})
	}
}

// TestCreatePartitionsErrorsNameThePartition: a refused assignment of
// CreatePartitions names the partition by its index in the topic (t-2 and
// t-3 for the first and second new ones of a two-partition topic), not by
// its place in the request.
func TestCreatePartitionsErrorsNameThePartition(t *testing.T) {
	m := newMachine(t)
	m.cluster(3)
	m.topic("t", []int32{1, 2, 3}, []int32{2, 3, 1})
	for _, tc := range []struct {
		assignments [][]int32
		want        string
	}{
		{[][]int32{{1, 2}}, "partition 2 has 2 replicas, want 3"},
		{[][]int32{{1, 2, 3}, {1, 2, 9}}, "partition 3 names unknown broker 9"},
		{[][]int32{{1, 2, 3}, {3, 3, 1}}, "partition 3 names broker 3 twice"},
	} {
		r := m.apply(CreatePartitions{Name: "t", Assignments: tc.assignments})
		if !errors.Is(r.Err, ErrInvalidReplicaAssignment) || !strings.Contains(r.Err.Error(), tc.want) {
			t.Errorf("CreatePartitions %v: %v, want %q", tc.assignments, r.Err, tc.want)
		}
	}
	if r := m.apply(CreateTopic{Name: "u", ID: TopicID{42}, Assignments: [][]int32{{1, 2, 3}, {1, 2}}}); r.Err == nil || !strings.Contains(r.Err.Error(), "partition 1 has 2 replicas") {
		t.Errorf("CreateTopic with a short second partition: %v", r.Err)
	}
}
