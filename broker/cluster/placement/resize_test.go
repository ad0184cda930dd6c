package placement

import (
	"errors"
	"slices"
	"testing"
)

func TestResize(t *testing.T) {
	threeRacks := []Broker{{1, "a"}, {2, "b"}, {3, "c"}, {4, "a"}, {5, "b"}, {6, "c"}}
	tests := []struct {
		name     string
		brokers  []Broker
		replicas []int32
		rf       int
		load     map[int32]int
		want     []int32
	}{
		{name: "grow 1 to 3 takes one broker in each other rack",
			brokers: threeRacks, replicas: []int32{4}, rf: 3, want: []int32{4, 2, 3}},
		{name: "grow prefers the least loaded broker of a new rack",
			brokers: threeRacks, replicas: []int32{1}, rf: 2, load: map[int32]int{1: 1, 2: 5, 3: 5, 5: 1, 6: 2}, want: []int32{1, 5}},
		{name: "grow beyond the racks doubles up the least used rack",
			brokers: threeRacks, replicas: []int32{1, 2, 3}, rf: 4, load: map[int32]int{4: 2, 5: 1, 6: 3}, want: []int32{1, 2, 3, 5}},
		{name: "shrink drops a replica whose rack another covers",
			brokers: threeRacks, replicas: []int32{1, 4, 2}, rf: 2, want: []int32{1, 2}},
		{name: "shrink keeps the preferred leader even when loaded",
			brokers: threeRacks, replicas: []int32{1, 2, 3}, rf: 1, load: map[int32]int{1: 9, 2: 1, 3: 1}, want: []int32{1}},
		{name: "shrink drops the most loaded of equal racks",
			brokers: threeRacks, replicas: []int32{1, 2, 3}, rf: 2, load: map[int32]int{1: 1, 2: 7, 3: 2}, want: []int32{1, 3}},
		{name: "shrink with equal load drops the last",
			brokers: threeRacks, replicas: []int32{3, 1, 2}, rf: 2, want: []int32{3, 1}},
		{name: "shrink drops a replica on a broker that is gone first",
			brokers: threeRacks, replicas: []int32{1, 9, 2, 4}, rf: 2, want: []int32{1, 2}},
		{name: "same size is unchanged",
			brokers: threeRacks, replicas: []int32{2, 3, 1}, rf: 3, want: []int32{2, 3, 1}},
		{name: "brokers without racks count as their own",
			brokers: []Broker{{1, ""}, {2, ""}, {3, ""}}, replicas: []int32{2}, rf: 3, want: []int32{2, 1, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			load := Load{Replicas: map[int32]int{}}
			for id, n := range tt.load {
				load.Replicas[id] = n
			}
			before := map[int32]int{}
			for id, n := range load.Replicas {
				before[id] = n
			}
			got, err := Resize(tt.brokers, tt.replicas, tt.rf, &load)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Resize(%v, rf %d) = %v, want %v", tt.replicas, tt.rf, got, tt.want)
			}
			for _, id := range got {
				if !slices.Contains(tt.replicas, id) && load.Replicas[id] != before[id]+1 {
					t.Errorf("added broker %d: load %d, want %d", id, load.Replicas[id], before[id]+1)
				}
			}
			for _, id := range tt.replicas {
				if !slices.Contains(got, id) && load.Replicas[id] != before[id]-1 {
					t.Errorf("dropped broker %d: load %d, want %d", id, load.Replicas[id], before[id]-1)
				}
			}
		})
	}
}

func TestResizeSpreadsPartitions(t *testing.T) {
	brokers := []Broker{{1, "a"}, {2, "b"}, {3, "c"}, {4, "a"}, {5, "b"}, {6, "c"}}
	var load Load
	count := map[int32]int{}
	for p := range 6 {
		got, err := Resize(brokers, []int32{int32(p%6 + 1)}, 3, &load)
		if err != nil {
			t.Fatal(err)
		}
		racks := map[string]bool{}
		for _, id := range got {
			count[id]++
			racks[brokers[id-1].Rack] = true
		}
		if len(racks) != 3 {
			t.Errorf("partition %d: %v spans %d racks, want 3", p, got, len(racks))
		}
	}
	for id, n := range count {
		if n != 3 {
			t.Errorf("broker %d holds %d of 18 replicas, want 3 each: %v", id, n, count)
		}
	}
}

func TestResizeRefusesMoreReplicasThanBrokers(t *testing.T) {
	_, err := Resize([]Broker{{1, "a"}, {2, "b"}}, []int32{1}, 3, &Load{})
	if !errors.Is(err, ErrNotEnoughBrokers) {
		t.Fatalf("err = %v, want ErrNotEnoughBrokers", err)
	}
	if _, err := Resize([]Broker{{1, "a"}}, []int32{1}, 0, &Load{}); !errors.Is(err, ErrNotEnoughBrokers) {
		t.Fatalf("rf 0: err = %v, want ErrNotEnoughBrokers", err)
	}
}
