package metadata

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/scram"
)

// fuzzBase is a realistic state built by applying real commands: four
// brokers (one fenced by a lapsed lease, one shutting down), topics with
// one and three replicas, a reassignment under way, an imported topic,
// broker configs, ACLs, a SCRAM credential and a client quota. It returns
// the broker epochs too, for seeds that must name the current incarnation.
func fuzzBase(tb testing.TB) (*State, map[int32]int64) {
	tb.Helper()
	f := New(slog.New(slog.DiscardHandler))
	var index int64
	must := func(c Command) any {
		tb.Helper()
		b, err := Encode(c)
		if err != nil {
			tb.Fatal(err)
		}
		index++
		r := f.ApplyEntry(index, b)
		if r.Err != nil {
			tb.Fatalf("%T: %v", c, r.Err)
		}
		return r.Value
	}
	must(InitCluster{ClusterID: "c1"})
	epochs := map[int32]int64{}
	for i := int32(1); i <= 4; i++ {
		epochs[i] = must(RegisterBroker{NodeID: i, Rack: string(rune('a' + i - 1)), Listeners: []Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 9090 + i}}, ReplicationAddr: "127.0.0.1:9100", NowMs: 1000, LeaseMs: lease}).(int64)
	}
	must(SetBrokerConfigs{NodeID: ClusterDefault, Configs: map[string]string{"min.insync.replicas": "2"}})
	must(SetBrokerConfigs{NodeID: 2, Configs: map[string]string{"log.retention.ms": "1000"}})
	must(CreateTopic{Name: "b", ID: TopicID{0xb}, Assignments: [][]int32{{1, 2, 3}, {2, 3, 4}, {3, 4, 1}}})
	must(CreateTopic{Name: "a", ID: TopicID{0xa}, Configs: map[string]string{UncleanElectionConfig: "true"}, Assignments: [][]int32{{4}, {1}}})
	must(CreatePartitions{Name: "a", Assignments: [][]int32{{2}}})
	must(ImportFileMetadata{NodeID: 2, NextProducerID: 500, Topics: []ImportedTopic{{Name: "imported", ID: TopicID{0xaa}, LeaderEpochs: []int32{3, 0}}}})
	must(AllocateProducerIDs{NodeID: 1, Count: 100})
	// Brokers 1-3 renew; 4's lease lapses and it is fenced.
	for _, id := range []int32{1, 2, 3} {
		must(BrokerHeartbeat{NodeID: id, BrokerEpoch: epochs[id], NowMs: 5000, LeaseMs: lease})
	}
	must(ExpireLeases{NowMs: 7500})
	// b-0 moves from {1,2,3} to {1,2}... and to 4, which is fenced and so
	// cannot join: the reassignment stays under way.
	must(ReassignPartitions{Reassignments: []Reassignment{{Topic: "b", Partition: 0, Replicas: []int32{1, 2, 4}}}})
	must(ControlledShutdown{NodeID: 3, BrokerEpoch: epochs[3]})
	must(CreateACLs{ACLs: []ACL{
		{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "orders-", PatternType: kmsg.ACLResourcePatternTypePrefixed, Principal: "User:bob", Host: "*", Operation: kmsg.ACLOperationRead, Permission: kmsg.ACLPermissionTypeAllow},
		{ResourceType: kmsg.ACLResourceTypeGroup, ResourceName: "g", PatternType: kmsg.ACLResourcePatternTypeLiteral, Principal: "User:bob", Host: "10.0.0.1", Operation: kmsg.ACLOperationRead, Permission: kmsg.ACLPermissionTypeAllow},
	}})
	cred, err := scram.NewCredential(scram.SHA256, "pw", scram.MinIterations)
	if err != nil {
		tb.Fatal(err)
	}
	rec, err := cred.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	must(AlterScramCredentials{Users: []ScramUserAlteration{{User: "alice", Upsertions: []ScramRecord{{Mechanism: scram.SHA256.String(), Record: rec}}}}})
	alice := "alice"
	must(AlterClientQuotas{Entries: []QuotaAlteration{{Entity: QuotaEntity{{Type: QuotaEntityUser, Name: &alice}}, Set: map[string]float64{QuotaProducerByteRate: 1 << 20}}}})
	return f.Current(), epochs
}

// fuzzSeeds is one valid command of every type against fuzzBase, plus a
// few at the edges (out-of-range partitions, duplicate replicas).
func fuzzSeeds(tb testing.TB, base *State, epochs map[int32]int64) [][]byte {
	tb.Helper()
	bob := "bob"
	b1, _ := base.Partition("b", 1)
	// A follower in b-0's ISR reports a full disk (the leader could only
	// if another member could take over).
	b0, _ := base.Partition("b", 0)
	full := b0.Leader
	for _, r := range b0.ISR {
		if r != b0.Leader {
			full = r
		}
	}
	cmds := []Command{
		InitCluster{ClusterID: "c1"},
		RegisterBroker{NodeID: 5, Listeners: []Listener{{Name: "PLAINTEXT", Host: "h", Port: 1}}, NowMs: 8000, LeaseMs: lease},
		BrokerHeartbeat{NodeID: 4, BrokerEpoch: epochs[4], NowMs: 8000, LeaseMs: lease},
		ExpireLeases{NowMs: 20000},
		ControlledShutdown{NodeID: 1, BrokerEpoch: epochs[1]},
		UnregisterBroker{NodeID: 4},
		CreateTopic{Name: "new", ID: TopicID{0xc}, Configs: map[string]string{"k": "v"}, Assignments: [][]int32{{1, 2}, {2, 1}}},
		DeleteTopic{Name: "a", ID: TopicID{0xa}},
		CreatePartitions{Name: "a", Assignments: [][]int32{{1}, {2}}},
		SetTopicConfigs{Name: "b", Configs: map[string]string{"retention.ms": "1"}},
		SetBrokerConfigs{NodeID: 1, Configs: map[string]string{"x": "y"}},
		AllocateProducerIDs{NodeID: 2, Count: 10},
		AlterPartition{Topic: "b", Partition: 1, LeaderID: b1.Leader, BrokerEpoch: epochs[b1.Leader], LeaderEpoch: b1.LeaderEpoch, PartitionEpoch: b1.PartitionEpoch, NewISR: []int32{b1.Leader}},
		ElectLeaders{Election: ElectPreferred},
		ElectLeaders{Election: ElectUnclean, Partitions: []TopicPartition{{Topic: "a", Partition: 0}, {Topic: "a", Partition: -1}, {Topic: "a", Partition: 1 << 30}}},
		ReassignPartitions{Reassignments: []Reassignment{{Topic: "b", Partition: 0}, {Topic: "b", Partition: 2, Replicas: []int32{1, 1}}, {Topic: "b", Partition: -5, Replicas: []int32{1}}}},
		ImportFileMetadata{NodeID: 1, NextProducerID: 9000, Topics: []ImportedTopic{{Name: "more", ID: TopicID{0xee}, LeaderEpochs: []int32{0, 1}}}, BrokerConfigs: map[int32]map[string]string{1: {"a": "b"}}},
		CreateACLs{ACLs: []ACL{{ResourceType: kmsg.ACLResourceTypeCluster, ResourceName: "kafka-cluster", PatternType: kmsg.ACLResourcePatternTypeLiteral, Principal: "User:ops", Host: "*", Operation: kmsg.ACLOperationAlter, Permission: kmsg.ACLPermissionTypeAllow}}},
		DeleteACLs{Filters: []ACLFilter{{ResourceType: kmsg.ACLResourceTypeAny, PatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}}},
		FenceBroker{NodeID: 2, BrokerEpoch: epochs[2]},
		LeaderLogFailed{Topic: "b", Partition: 1, LeaderID: b1.Leader, BrokerEpoch: epochs[b1.Leader], LeaderEpoch: b1.LeaderEpoch},
		ReplicaDiskFull{Topic: "b", Partition: 0, BrokerID: full, BrokerEpoch: epochs[full], LeaderEpoch: b0.LeaderEpoch},
		BrokerDiskWritable{NodeID: 1, BrokerEpoch: epochs[1]},
		BrokerMetadataVersion{NodeID: 1, BrokerEpoch: epochs[1], MetadataVersion: MetadataVersionBaseline + 1},
		AlterClientQuotas{Entries: []QuotaAlteration{{Entity: QuotaEntity{{Type: QuotaEntityUser, Name: &bob}}, Set: map[string]float64{QuotaConsumerByteRate: 10}}}},
		AlterScramCredentials{Users: []ScramUserAlteration{{User: "alice", Deletions: []string{scram.SHA256.String()}}}},
	}
	seen := map[CommandType]bool{}
	var out [][]byte
	for _, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			tb.Fatal(err)
		}
		seen[c.Type()&^IgnorableFlag] = true
		out = append(out, b)
	}
	// A command type added later gets a seed here too.
	for typ := range handlers {
		if !seen[typ] {
			tb.Errorf("no fuzz seed for command type %d", typ)
		}
	}
	return out
}

// FuzzApplyEntry applies one fuzzed log entry to a realistic state. An
// entry that decodes but that an apply function mishandles (a panic, a
// refusal that changed the state, a result that depends on map order)
// would stop or split every replica alike, since all apply the same
// entry: the controller's CheckDecodes cannot catch it. Checks: no panic;
// the state machine halts exactly on what CheckDecodes refuses; a refused
// command changes nothing but the index; the published base state is never
// written through; applying twice gives equal bytes; the snapshot
// round-trips.
func FuzzApplyEntry(f *testing.F) {
	rich, epochs := fuzzBase(f)
	// The empty state too: a fresh cluster's first entries, and a state
	// whose maps (ACLs, credentials, quotas) were never made.
	bases := []*State{rich, Empty()}
	baseBytes := make([][]byte, len(bases))
	for i, b := range bases {
		var err error
		if baseBytes[i], err = MarshalState(b); err != nil {
			f.Fatal(err)
		}
	}
	for _, s := range fuzzSeeds(f, rich, epochs) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for i, base := range bases {
			checkApply(t, base, baseBytes[i], data)
		}
	})
}

// checkApply applies data to base in a new state machine, twice, and
// checks what FuzzApplyEntry promises. It returns the state after the
// entry, or nil when the machine halted.
func checkApply(t *testing.T, base *State, baseBytes, data []byte) *State {
	t.Helper()
	apply := func() (*FSM, *Result) {
		m := New(slog.New(slog.DiscardHandler))
		m.state.Store(base)
		return m, m.ApplyEntry(base.Index+1, data)
	}
	m, r := apply()
	halted := errors.Is(r.Err, ErrHalted)
	if checkErr := CheckDecodes(data); (checkErr != nil) != halted {
		t.Fatalf("CheckDecodes says %v, applying says %v", checkErr, r.Err)
	}
	if halted {
		return nil
	}
	after, err := MarshalState(m.Current())
	if err != nil {
		t.Fatalf("state after the entry does not encode: %v", err)
	}
	if now, _ := MarshalState(base); !bytes.Equal(now, baseBytes) {
		t.Fatalf("applying changed the published state it started from:\n%s\n%s", baseBytes, now)
	}
	if r.Err != nil {
		st := *m.Current()
		st.Index = base.Index
		got, _ := MarshalState(&st)
		if !bytes.Equal(got, baseBytes) {
			t.Fatalf("refused command (%v) changed the state:\n%s\n%s", r.Err, baseBytes, got)
		}
	}
	m2, r2 := apply()
	if again, _ := MarshalState(m2.Current()); !bytes.Equal(again, after) || (r.Err == nil) != (r2.Err == nil) {
		t.Fatalf("the same entry applied twice gave different states or answers (%v, %v):\n%s\n%s", r.Err, r2.Err, after, again)
	}
	st, err := UnmarshalState(after)
	if err != nil {
		t.Fatalf("snapshot of the state does not restore: %v\n%s", err, after)
	}
	if round, _ := MarshalState(st); !bytes.Equal(round, after) {
		t.Fatalf("snapshot does not round-trip:\n%s\n%s", after, round)
	}
	return m.Current()
}

// FuzzApplySequence applies up to eight fuzzed entries, separated by
// newlines (Encode writes none), one after another from the realistic
// state, with FuzzApplyEntry's checks at each: a crash that needs a state
// only some commands reach (a partition added, then reassigned, then its
// broker unregistered) is out of FuzzApplyEntry's reach.
func FuzzApplySequence(f *testing.F) {
	rich, epochs := fuzzBase(f)
	seeds := fuzzSeeds(f, rich, epochs)
	for i := range seeds {
		f.Add(bytes.Join([][]byte{seeds[i], seeds[(i+7)%len(seeds)], seeds[(i+13)%len(seeds)]}, []byte("\n")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st := rich
		for n, entry := range bytes.Split(data, []byte("\n")) {
			if n == 8 {
				return
			}
			stBytes, err := MarshalState(st)
			if err != nil {
				t.Fatal(err)
			}
			if st = checkApply(t, st, stBytes, entry); st == nil {
				return
			}
		}
	})
}
