package metadata

import (
	"bytes"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// historySnapshot is MarshalState of history()'s state as written when
// Topic.Partitions was an exported []Partition field: snapshots written
// before the partitions were kept as pointers must decode, and the
// encoding must not change (equal states give equal bytes across
// versions, and the Raft snapshots of a mixed cluster must agree).
const historySnapshot = `{"format":1,"state":{"cluster_id":"c1","index":23,"now_ms":7500,"brokers":{"1":{"node_id":1,"rack":"a","listeners":[{"name":"PLAINTEXT","host":"127.0.0.1","port":9091}],"epoch":2,"lease_expiry_ms":11000,"fenced":false},"2":{"node_id":2,"rack":"b","listeners":[{"name":"PLAINTEXT","host":"127.0.0.1","port":9092}],"epoch":3,"lease_expiry_ms":11000,"fenced":false},"3":{"node_id":3,"rack":"c","listeners":[{"name":"PLAINTEXT","host":"127.0.0.1","port":9093}],"epoch":4,"lease_expiry_ms":11000,"fenced":false,"shutting_down":true}},"topics":{"also":{"name":"also","id":"qwAAAAAAAAAAAAAAAAAAAA","partitions":[{"replicas":[2],"leader":2,"leader_epoch":1,"isr":[2],"partition_epoch":1}]},"b":{"name":"b","id":"BwEAAAAAAAAAAAAAAAAAAA","partitions":[{"replicas":[1,2,3],"leader":1,"leader_epoch":0,"isr":[1,2],"partition_epoch":1},{"replicas":[2,3,4,1],"leader":2,"leader_epoch":0,"isr":[2],"partition_epoch":3,"adding_replicas":[1],"removing_replicas":[3,4],"target_replicas":[1,2]},{"replicas":[3,4,1],"leader":1,"leader_epoch":1,"isr":[1],"partition_epoch":2}]},"imported":{"name":"imported","id":"qgAAAAAAAAAAAAAAAAAAAA","configs":{"b":"2","q":"1"},"partitions":[{"replicas":[2],"leader":2,"leader_epoch":5,"isr":[2],"partition_epoch":1},{"replicas":[2],"leader":2,"leader_epoch":2,"isr":[2],"partition_epoch":1}]}},"broker_configs":{"-1":{"a":"2","x":"1"},"1":{"m":"n"},"2":{"j":"w","k":"v"}},"next_producer_id":2000,"acls":[{"resource_type":"TOPIC","resource_name":"orders-","pattern_type":"PREFIXED","principal":"User:bob","host":"*","operation":"READ","permission":"ALLOW"},{"resource_type":"CLUSTER","resource_name":"kafka-cluster","pattern_type":"LITERAL","principal":"User:ops","host":"*","operation":"ALTER","permission":"ALLOW"}]}}`

func TestTopicEncodingUnchanged(t *testing.T) {
	m := newMachine(t)
	history(m)
	if got := m.bytes(); string(got) != historySnapshot {
		t.Fatalf("history's snapshot changed encoding:\n got %s\nwant %s", got, historySnapshot)
	}
	st, err := UnmarshalState([]byte(historySnapshot))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := MarshalState(st); err != nil || string(b) != historySnapshot {
		t.Fatalf("decoding and encoding the old snapshot: %v\n got %s\nwant %s", err, b, historySnapshot)
	}
	b := st.Topics["b"]
	if b.NumPartitions() != 3 || b.Partition(1).TargetReplicas == nil {
		t.Fatalf("topic b decoded as %d partitions, partition 1 %+v", b.NumPartitions(), b.Partition(1))
	}
}

func TestTopicDecodingRefusesWhatItCannotRepresent(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		// A newer version's field in a topic or a partition: refused, as
		// a field it adds to the state is (UnmarshalState).
		{"unknown topic field", `"name":"b",`, `"name":"b","new_thing":1,`, "new_thing"},
		{"unknown partition field", `"partition_epoch":`, `"new_thing":1,"partition_epoch":`, "new_thing"},
		{"null partition", `"partitions":[`, `"partitions":[null,`, "partition 0 is null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(historySnapshot, tc.from) {
				t.Fatalf("snapshot has no %s", tc.from)
			}
			_, err := UnmarshalState([]byte(strings.Replace(historySnapshot, tc.from, tc.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// TestCommandsLeavePublishedStatesAlone keeps every state the machine
// published while history() ran, with its encoding at the time, and checks
// after the whole log that none changed: a command that wrote through a
// partition pointer it shares with the published state (instead of
// storing its own clone) would change an earlier state here.
func TestCommandsLeavePublishedStatesAlone(t *testing.T) {
	m := newMachine(t)
	var states []*State
	var encoded [][]byte
	record := func() {
		st := m.f.Current()
		if len(states) > 0 && states[len(states)-1] == st {
			return
		}
		b, err := MarshalState(st)
		if err != nil {
			t.Fatal(err)
		}
		states, encoded = append(states, st), append(encoded, b)
	}
	epochs := m.cluster(4)
	record()
	m.topic("t", []int32{1, 2, 3}, []int32{2, 3, 4}, []int32{3, 4, 1}, []int32{4, 1, 2})
	record()
	steps := []Command{
		AlterPartition{Topic: "t", Partition: 0, LeaderID: 1, BrokerEpoch: epochs[1], LeaderEpoch: 0, PartitionEpoch: 0, NewISR: []int32{1, 2}},
		AlterPartition{Topic: "t", Partition: 0, LeaderID: 1, BrokerEpoch: epochs[1], LeaderEpoch: 0, PartitionEpoch: 1, NewISR: []int32{1, 2, 3}},
		CreatePartitions{Name: "t", Assignments: [][]int32{{1, 2, 3}}},
		ReassignPartitions{Reassignments: []Reassignment{{Topic: "t", Partition: 1, Replicas: []int32{1, 3, 4}}}},
		ControlledShutdown{NodeID: 2, BrokerEpoch: epochs[2]},
		ElectLeaders{Election: ElectPreferred},
		FenceBroker{NodeID: 3, BrokerEpoch: epochs[3]},
		LeaderLogFailed{Topic: "t", Partition: 3, LeaderID: 4, BrokerEpoch: epochs[4]},
		UnregisterBroker{NodeID: 2},
	}
	for _, c := range steps {
		if r := m.apply(c); r.Err != nil {
			t.Logf("%T: %v", c, r.Err) // a refused command publishes nothing; the rest still run
		}
		record()
	}
	if len(states) < len(steps) {
		t.Fatalf("only %d of %d commands changed the state", len(states)-2, len(steps))
	}
	for i, st := range states {
		b, err := MarshalState(st)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, encoded[i]) {
			t.Fatalf("state %d (index %d) changed after it was published:\nthen %s\nnow  %s", i, st.Index, encoded[i], b)
		}
	}
}

// TestAlterPartitionCopiesNoPartitionList pins what BenchmarkAlterPartitionOf5000
// measures: an ISR change of one partition of a 5,000-partition topic
// allocated 691 KB (the topic's partition list, copied) on every broker;
// with the list a list of pointers it is about 40 KB.
func TestAlterPartitionCopiesNoPartitionList(t *testing.T) {
	if testing.Short() {
		t.Skip("creates a 5,000-partition topic")
	}
	f := New(slog.New(slog.DiscardHandler))
	next, apply := alterPartitionOf5000(t, f)
	for range 10 { // warm up
		apply(next())
	}
	const changes = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range changes {
		apply(next())
	}
	runtime.ReadMemStats(&after)
	perChange := (after.TotalAlloc - before.TotalAlloc) / changes
	t.Logf("%d bytes allocated per ISR change", perChange)
	if perChange > 150_000 {
		t.Fatalf("an ISR change of one partition of 5,000 allocated %d bytes; the partition list is %d bytes of values", perChange, 5000*unsafe.Sizeof(Partition{}))
	}
}
