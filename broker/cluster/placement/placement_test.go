package placement

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

func brokers(spec string) []Broker {
	// spec "ab c": one letter per broker, its rack; space = no rack.
	var out []Broker
	for i, r := range spec {
		rack := string(r)
		if r == ' ' {
			rack = ""
		}
		out = append(out, Broker{ID: int32(i + 1), Rack: rack})
	}
	return out
}

func TestAssign(t *testing.T) {
	tests := []struct {
		name          string
		brokers       string
		partitions    int
		rf            int
		wantRacks     int  // racks every partition must span
		balancedCount bool // replica counts within 1 of each other
	}{
		{"3 racks x 1, rf 3", "abc", 12, 3, 3, true},
		{"3 racks x 2, rf 3", "abcabc", 12, 3, 3, true},
		{"3 racks x 2, rf 2", "aabbcc", 9, 2, 2, true},
		{"3 racks x 2, rf 1", "abcabc", 7, 1, 1, true},
		{"uneven 2-1-1, rf 3", "aabc", 8, 3, 3, false},
		{"uneven 3-1, rf 2", "aaab", 8, 2, 2, false},
		{"two racks, rf 3", "abab", 8, 3, 2, true},
		{"one rack", "aaa", 6, 3, 1, true},
		{"no racks", "   ", 6, 2, 2, true},
		{"six brokers three racks rf 3 many", "abcabc", 100, 3, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := brokers(tt.brokers)
			got, err := Assign(bs, tt.partitions, tt.rf, Load{})
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Assign(bs, tt.partitions, tt.rf, Load{})
			if fmt.Sprint(got) != fmt.Sprint(again) {
				t.Fatalf("not deterministic:\n%v\n%v", got, again)
			}
			rack := map[int32]string{}
			for _, b := range bs {
				rack[b.ID] = rackOf(b)
			}
			leaders, replicas := map[int32]int{}, map[int32]int{}
			for p, reps := range got {
				if len(reps) != tt.rf {
					t.Fatalf("partition %d has %v", p, reps)
				}
				racks := map[string]bool{}
				for i, r := range reps {
					if slices.Contains(reps[:i], r) {
						t.Fatalf("partition %d repeats broker %d: %v", p, r, reps)
					}
					racks[rack[r]] = true
					replicas[r]++
				}
				if len(racks) != tt.wantRacks {
					t.Fatalf("partition %d spans %d racks (%v), want %d", p, len(racks), reps, tt.wantRacks)
				}
				leaders[reps[0]]++
			}
			if spread(leaders, bs) > 1 {
				t.Fatalf("leaders unbalanced: %v in %v", leaders, got)
			}
			if tt.balancedCount && spread(replicas, bs) > 1 {
				t.Fatalf("replicas unbalanced: %v in %v", replicas, got)
			}
		})
	}
}

func spread(counts map[int32]int, bs []Broker) int {
	lo, hi := 1<<30, 0
	for _, b := range bs {
		lo, hi = min(lo, counts[b.ID]), max(hi, counts[b.ID])
	}
	return hi - lo
}

func TestAssignErrorsAndExistingLoad(t *testing.T) {
	if _, err := Assign(brokers("ab"), 1, 3, Load{}); !errors.Is(err, ErrNotEnoughBrokers) {
		t.Fatalf("rf 3 on 2 brokers: %v", err)
	}
	if _, err := Assign(brokers("ab"), 1, 0, Load{}); !errors.Is(err, ErrNotEnoughBrokers) {
		t.Fatalf("rf 0: %v", err)
	}
	// Broker 1 already leads a lot: the new partitions' leaders go elsewhere.
	got, err := Assign(brokers("abc"), 2, 3, Load{Leaders: map[int32]int{1: 5}, Replicas: map[int32]int{1: 5}})
	if err != nil {
		t.Fatal(err)
	}
	for _, reps := range got {
		if reps[0] == 1 {
			t.Fatalf("loaded broker 1 chosen as leader: %v", got)
		}
	}
}

// state builds a metadata state through the state machine itself.
type state struct {
	t *testing.T
	f *metadata.FSM
	n int64
}

func newState(t *testing.T, racks string) *state {
	s := &state{t: t, f: metadata.New(slog.New(slog.DiscardHandler))}
	for i, r := range racks {
		s.must(metadata.RegisterBroker{NodeID: int32(i + 1), Rack: string(r), NowMs: 1, LeaseMs: 1 << 40})
	}
	return s
}

func (s *state) must(c metadata.Command) any {
	s.t.Helper()
	b, err := metadata.Encode(c)
	if err != nil {
		s.t.Fatal(err)
	}
	s.n++
	r := s.f.ApplyEntry(s.n, b)
	if r.Err != nil {
		s.t.Fatalf("%T: %v", c, r.Err)
	}
	return r.Value
}

func (s *state) topic(name string, partitions, rf int) {
	s.t.Helper()
	as, err := Assign(EligibleBrokers(s.f.Current()), partitions, rf, LoadOf(s.f.Current()))
	if err != nil {
		s.t.Fatal(err)
	}
	s.must(metadata.CreateTopic{Name: name, ID: metadata.TopicID{byte(s.n), 7}, Assignments: as})
}

func TestPreferredElectionsAfterBrokerReturns(t *testing.T) {
	s := newState(t, "abc")
	s.topic("t", 6, 3)
	if got := PreferredElections(s.f.Current()); len(got) != 0 {
		t.Fatalf("fresh topic needs no election: %v", got)
	}
	epoch := s.f.Current().Brokers[2].Epoch
	s.must(metadata.ControlledShutdown{NodeID: 2, BrokerEpoch: epoch})
	if got := PreferredElections(s.f.Current()); len(got) != 0 {
		t.Fatalf("broker 2 is away, nothing to elect: %v", got)
	}
	// Broker 2 restarts and its leaders re-admit it to their ISRs.
	newEpoch := s.must(metadata.RegisterBroker{NodeID: 2, Rack: "b", NowMs: 2, LeaseMs: 1 << 40}).(int64)
	_ = newEpoch
	st := s.f.Current()
	for _, name := range st.TopicNames() {
		for i, p := range st.Topics[name].Partitions() {
			leader := st.Brokers[p.Leader]
			s.must(metadata.AlterPartition{Topic: name, Partition: int32(i), LeaderID: p.Leader, BrokerEpoch: leader.Epoch, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: p.Replicas})
		}
	}
	want := 0
	for _, p := range s.f.Current().Topics["t"].Partitions() {
		if p.Replicas[0] == 2 {
			want++
		}
	}
	got := PreferredElections(s.f.Current())
	if len(got) != want || want == 0 {
		t.Fatalf("want %d elections for broker 2's partitions, got %v", want, got)
	}
	s.must(metadata.ElectLeaders{Election: metadata.ElectPreferred, Partitions: got})
	if got := PreferredElections(s.f.Current()); len(got) != 0 {
		t.Fatalf("still imbalanced: %v", got)
	}
}

func TestPlanDrain(t *testing.T) {
	s := newState(t, "abcabc")
	s.topic("t", 12, 3)
	plan, err := PlanDrain(s.f.Current(), 4) // broker 4 is in rack a
	if err != nil {
		t.Fatal(err)
	}
	st := s.f.Current()
	n := 0
	for _, p := range st.Topics["t"].Partitions() {
		if slices.Contains(p.Replicas, 4) {
			n++
		}
	}
	if len(plan) != n || n == 0 {
		t.Fatalf("plan moves %d partitions, broker 4 holds %d", len(plan), n)
	}
	for _, r := range plan {
		if slices.Contains(r.Replicas, 4) {
			t.Fatalf("plan keeps broker 4: %+v", r)
		}
		if !slices.Contains(r.Replicas, 1) {
			t.Fatalf("rack a should be kept by its other broker (1): %+v", r)
		}
	}
	again, _ := PlanDrain(st, 4)
	if fmt.Sprint(plan) != fmt.Sprint(again) {
		t.Fatal("PlanDrain is not deterministic")
	}
	if _, err := PlanDrain(newStateWithTopic(t), 1); !errors.Is(err, ErrNotEnoughBrokers) {
		t.Fatalf("drain with nowhere to go: %v", err)
	}
}

func newStateWithTopic(t *testing.T) *metadata.State {
	s := newState(t, "abc")
	s.topic("full", 3, 3)
	return s.f.Current()
}

func TestPlanAddBroker(t *testing.T) {
	s := newState(t, "abc")
	s.topic("t", 12, 3) // 36 replicas on 3 brokers
	s.must(metadata.RegisterBroker{NodeID: 4, Rack: "a", NowMs: 3, LeaseMs: 1 << 40})
	plan, err := PlanAddBroker(s.f.Current(), 4)
	if err != nil {
		t.Fatal(err)
	}
	// Every partition keeps one replica in each of racks a, b, c, so rack
	// a's 12 replicas are shared by brokers 1 and 4.
	if len(plan) != 6 {
		t.Fatalf("plan moves %d replicas, want 6: %+v", len(plan), plan)
	}
	leads := 0
	for _, r := range plan {
		if !slices.Contains(r.Replicas, 4) || slices.Contains(r.Replicas, 1) {
			// Broker 4 is in rack a: the only swap that keeps three racks
			// replaces rack a's other broker, 1.
			t.Fatalf("move %+v should swap broker 1 for 4", r)
		}
		if r.Replicas[0] == 4 {
			leads++
		}
	}
	if leads != 2 { // broker 1 was preferred leader of 4 partitions; half move
		t.Fatalf("broker 4 becomes preferred leader of %d partitions, want 2", leads)
	}
	// Adding a broker in a new rack d takes from everyone.
	s.must(metadata.RegisterBroker{NodeID: 5, Rack: "d", NowMs: 4, LeaseMs: 1 << 40})
	plan, err = PlanAddBroker(s.f.Current(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 36/5 {
		t.Fatalf("new-rack broker takes %d, want %d", len(plan), 36/5)
	}
	if _, err := PlanAddBroker(s.f.Current(), 9); err == nil {
		t.Fatal("plan for an unknown broker")
	}
}
