package kafkatopic

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
)

// threeToSix is a topic of 6 partitions with 3 replicas on brokers 1-3
// (racks a, b, c), and brokers 4-6 (racks a, b, c) that hold nothing.
func threeToSix() kadm.Metadata {
	rack := func(s string) *string { return &s }
	md := kadm.Metadata{Topics: kadm.TopicDetails{"t": {Topic: "t", Partitions: kadm.PartitionDetails{}}}}
	for id := int32(1); id <= 6; id++ {
		md.Brokers = append(md.Brokers, kadm.BrokerDetail{NodeID: id, Rack: rack(string(rune('a' + (id-1)%3)))})
	}
	for p := int32(0); p < 6; p++ {
		r := []int32{1 + p%3, 1 + (p+1)%3, 1 + (p+2)%3}
		md.Topics["t"].Partitions[p] = kadm.PartitionDetail{Topic: "t", Partition: p, Replicas: r}
	}
	return md
}

// TestPlanOntoNewBrokers: 18 replicas over 6 brokers is 3 each, so 9 move
// onto brokers 4-6, only from old brokers to new ones, and every partition
// still spans the three racks.
func TestPlanOntoNewBrokers(t *testing.T) {
	md := threeToSix()
	st, err := placementState(md)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := planOnto(st, []int32{4, 5, 6})
	if err != nil {
		t.Fatal(err)
	}
	rack := map[int32]int32{1: 0, 2: 1, 3: 2, 4: 0, 5: 1, 6: 2}
	held := map[int32]int{}
	moved := 0
	for p := int32(0); p < 6; p++ {
		replicas := md.Topics["t"].Partitions[p].Replicas
		if target, ok := targets["t"][p]; ok {
			for i, r := range target {
				if r != replicas[i] && r < 4 {
					t.Errorf("partition %d: %v -> %v moves a replica between old brokers", p, replicas, target)
				}
				if r >= 4 {
					moved++
				}
			}
			replicas = target
		}
		racks := map[int32]bool{}
		for _, r := range replicas {
			held[r]++
			racks[rack[r]] = true
		}
		if len(racks) != 3 {
			t.Errorf("partition %d on %v spans %d racks, want 3", p, replicas, len(racks))
		}
	}
	if moved != 9 {
		t.Errorf("%d replicas moved onto brokers 4-6, want 9 (targets %v)", moved, targets)
	}
	for id := int32(1); id <= 6; id++ {
		if held[id] != 3 {
			t.Errorf("broker %d holds %d replicas, want 3 (%v)", id, held[id], held)
		}
	}
}

func TestPlanOntoRefusesUnknownBroker(t *testing.T) {
	st, err := placementState(threeToSix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := planOnto(st, []int32{7}); err == nil {
		t.Fatal("planning onto broker 7, which the cluster does not list, succeeded")
	}
}
