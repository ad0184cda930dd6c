package kafkatopic

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/tributary/tributary/broker/cluster/placement"
)

// sixBrokers is a topic of 6 partitions with 3 replicas spread over
// brokers 1-6 (racks a, b, c, a, b, c), each partition over the three
// racks, as a rebalance after a scale-out leaves them.
func sixBrokers() kadm.Metadata {
	rack := func(s string) *string { return &s }
	md := kadm.Metadata{Topics: kadm.TopicDetails{"t": {Topic: "t", Partitions: kadm.PartitionDetails{}}}}
	for id := int32(1); id <= 6; id++ {
		md.Brokers = append(md.Brokers, kadm.BrokerDetail{NodeID: id, Rack: rack(string(rune('a' + (id-1)%3)))})
	}
	for p := int32(0); p < 6; p++ {
		// Racks a, b, c in turn, alternating between the AZ's two brokers.
		off := 3 * (p % 2)
		r := []int32{1 + (p%3+0)%3 + off, 1 + (p%3+1)%3 + off, 1 + (p%3+2)%3 + (3 - off)}
		md.Topics["t"].Partitions[p] = kadm.PartitionDetail{Topic: "t", Partition: p, Replicas: r, Leader: r[0]}
	}
	return md
}

// TestPlanDrainEmptiesTheBrokersRackAware: draining brokers 4-6 moves
// every replica they hold onto brokers 1-3, each in its position (so the
// replicas left keep theirs), and every partition still spans the three
// racks, which on three brokers means each holds one replica of each.
func TestPlanDrainEmptiesTheBrokersRackAware(t *testing.T) {
	md := sixBrokers()
	drained := []int32{4, 5, 6}
	targets, err := planDrain(md, drained)
	if err != nil {
		t.Fatal(err)
	}
	rack := map[int32]int32{1: 0, 2: 1, 3: 2, 4: 0, 5: 1, 6: 2}
	moved := 0
	for p := int32(0); p < 6; p++ {
		before := md.Topics["t"].Partitions[p].Replicas
		after, ok := targets["t"][p]
		if !slices.ContainsFunc(before, func(r int32) bool { return r >= 4 }) {
			if ok {
				t.Errorf("partition %d on %v, off the drained brokers, is moved to %v", p, before, after)
			}
			continue
		}
		if !ok {
			t.Fatalf("partition %d on %v is not moved", p, before)
		}
		racks := map[int32]bool{}
		for i, r := range after {
			if r >= 4 {
				t.Errorf("partition %d: %v -> %v keeps a drained broker", p, before, after)
			}
			if before[i] < 4 && before[i] != r {
				t.Errorf("partition %d: %v -> %v moves a replica that was not drained", p, before, after)
			}
			if before[i] >= 4 {
				moved++
			}
			racks[rack[r]] = true
		}
		if len(racks) != 3 {
			t.Errorf("partition %d: %v -> %v spans %d racks, want 3", p, before, after, len(racks))
		}
	}
	if moved != 9 {
		t.Errorf("%d replicas moved, want the 9 on brokers 4-6", moved)
	}
}

// TestPlanDrainRefusesWhatTheRestCannotHold: a topic with 4 replicas
// cannot live on the 3 brokers left, and the refusal names it and plans
// nothing.
func TestPlanDrainRefusesWhatTheRestCannotHold(t *testing.T) {
	md := sixBrokers()
	md.Topics["wide"] = kadm.TopicDetail{Topic: "wide", Partitions: kadm.PartitionDetails{
		0: {Topic: "wide", Partition: 0, Replicas: []int32{1, 2, 3, 4}},
	}}
	targets, err := planDrain(md, []int32{4, 5, 6})
	if !errors.Is(err, placement.ErrNotEnoughBrokers) || !strings.Contains(err.Error(), "wide (partition 0 has 4 replicas)") {
		t.Fatalf("planDrain = %v, %v; want ErrNotEnoughBrokers naming topic wide", targets, err)
	}
	// Draining one broker leaves five: enough.
	if _, err := planDrain(md, []int32{6}); err != nil {
		t.Fatalf("draining broker 6 alone: %v", err)
	}
}

// TestPlanDrainOfAnEmptyBrokerIsNothing: a broker that holds nothing (or
// was drained already) needs no move, so a repeated drain is a no-op.
func TestPlanDrainOfAnEmptyBrokerIsNothing(t *testing.T) {
	targets, err := planDrain(threeToSix(), []int32{4, 5, 6})
	if err != nil || len(targets) != 0 {
		t.Fatalf("planDrain = %v, %v; want nothing to move", targets, err)
	}
}

// TestLoadFromMetadataAndLogDirs: replicas and leaderships are counted per
// broker over every topic, disk use is the sum of the broker's partitions,
// and a broker whose log directories did not answer says -1.
func TestLoadFromMetadataAndLogDirs(t *testing.T) {
	md := sixBrokers()
	for i := range md.Brokers {
		md.Brokers[i].Host, md.Brokers[i].Port = "127.0.0.1", 9092+md.Brokers[i].NodeID
	}
	dirs := kadm.DescribedAllLogDirs{
		1: {"/data": {Broker: 1, Dir: "/data", Topics: kadm.DescribedLogDirTopics{"t": {
			0: {Broker: 1, Dir: "/data", Topic: "t", Partition: 0, Size: 100},
			3: {Broker: 1, Dir: "/data", Topic: "t", Partition: 3, Size: 50},
		}}}},
	}
	load := loadFrom(md, dirs)
	if len(load) != 6 {
		t.Fatalf("%d brokers, want 6: %+v", len(load), load)
	}
	partitions, leaders := 0, 0
	for i, l := range load {
		if l.NodeID != int32(i+1) || l.Rack != string(rune('a'+i%3)) || l.Endpoint != fmt.Sprintf("127.0.0.1:%d", 9093+i) {
			t.Errorf("broker %d: %+v", i+1, l)
		}
		if l.Partitions != 3 || l.Leaders != 1 {
			t.Errorf("broker %d holds %d replicas and leads %d, want 3 and 1 (six partitions of three replicas over six brokers)", l.NodeID, l.Partitions, l.Leaders)
		}
		partitions += l.Partitions
		leaders += l.Leaders
	}
	if partitions != 18 || leaders != 6 {
		t.Errorf("%d replicas and %d leaders in all, want 18 and 6", partitions, leaders)
	}
	if load[0].DiskUsedBytes != 150 || load[1].DiskUsedBytes != -1 {
		t.Errorf("disk used %d and %d, want 150 (broker 1's two partitions) and -1 (broker 2 did not answer)", load[0].DiskUsedBytes, load[1].DiskUsedBytes)
	}
}

// TestNewReplicas counts what a move copies: the replicas of the target
// that the partition did not have.
func TestNewReplicas(t *testing.T) {
	for _, c := range []struct {
		before, after []int32
		want          int
	}{
		{[]int32{1, 2, 3}, []int32{1, 2, 3}, 0},
		{[]int32{1, 2, 3}, []int32{4, 2, 3}, 1},
		{[]int32{4, 5, 6}, []int32{1, 2, 3}, 3},
		{[]int32{1, 2}, []int32{1, 2, 3}, 1},
	} {
		if got := newReplicas(c.before, c.after); got != c.want {
			t.Errorf("newReplicas(%v, %v) = %d, want %d", c.before, c.after, got, c.want)
		}
	}
}

// TestDrainRespectsMaxBrokerPartitions: draining brokers 4-6 of sixBrokers
// (18 replicas, 3 on each broker) leaves 6 on each of brokers 1-3, which a
// max.broker.partitions of 6 takes and one of 5 refuses, naming the
// brokers with their counts; a broker over the limit already that the
// moves give nothing more is not refused (as the controller does).
func TestDrainRespectsMaxBrokerPartitions(t *testing.T) {
	md := sixBrokers()
	ids := []int32{4, 5, 6}
	targets, err := planDrain(md, ids)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkBrokerPartitions(md, targets, ids, 6); err != nil {
		t.Fatalf("limit 6: %v", err)
	}
	err = checkBrokerPartitions(md, targets, ids, 5)
	if !errors.Is(err, ErrBrokerPartitions) {
		t.Fatalf("limit 5: %v, want ErrBrokerPartitions", err)
	}
	for _, want := range []string{"18 partition replicas on the 3 brokers left", "broker 1 would hold 6 (3 now), broker 2 would hold 6 (3 now), broker 3 would hold 6 (3 now)",
		"over max.broker.partitions (5)", "POLICY_VIOLATION", "to at least 6"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if err := checkBrokerPartitions(md, nil, nil, 2); err != nil {
		t.Fatalf("brokers over the limit given nothing more: %v", err)
	}
	// Draining broker 6 alone keeps each partition's Availability Zones:
	// its 3 replicas all go to broker 3, the other broker of its rack, so
	// broker 3 alone passes a limit of 5.
	one, err := planDrain(md, []int32{6})
	if err != nil {
		t.Fatal(err)
	}
	err = checkBrokerPartitions(md, one, []int32{6}, 5)
	if !errors.Is(err, ErrBrokerPartitions) || !strings.Contains(err.Error(), "5 brokers left: broker 3 would hold 6 (3 now), over") {
		t.Fatalf("draining broker 6 with limit 5: %v, want broker 3 alone refused", err)
	}
	if err := checkBrokerPartitions(md, one, []int32{6}, 6); err != nil {
		t.Fatalf("draining broker 6 with limit 6: %v", err)
	}
}
