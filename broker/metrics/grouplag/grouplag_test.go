package grouplag

import (
	"slices"
	"testing"

	"github.com/tributary/tributary/broker/groups"
)

type fakeCoordinator struct {
	groups []groups.GroupSummary
	lag    map[string][]groups.PartitionLag
}

func (f *fakeCoordinator) Groups() []groups.GroupSummary { return f.groups }

func (f *fakeCoordinator) GroupLag(group string, end func(string, int32) (int64, bool)) ([]groups.PartitionLag, []groups.TopicLag, bool) {
	parts, ok := f.lag[group]
	if !ok {
		return nil, nil, false
	}
	var out []groups.PartitionLag
	for _, p := range parts {
		if hw, exists := end(p.Topic, p.Partition); exists {
			p.End, p.Lag = hw, max(hw-p.Committed, 0)
			out = append(out, p)
		}
	}
	return out, nil, true
}

func TestSourceAppliesMSKRules(t *testing.T) {
	c := &fakeCoordinator{
		groups: []groups.GroupSummary{
			{Name: "stable", State: "Stable"},
			{Name: "empty", State: "Empty"},
			{Name: "rebalancing", State: "PreparingRebalance"},
			{Name: "completing", State: "CompletingRebalance"},
			{Name: "app:v2", State: "Stable"},
			{Name: "gone", State: "Stable"}, // deleted between Groups and GroupLag
			{Name: "nothing-committed", State: "Empty"},
		},
		lag: map[string][]groups.PartitionLag{
			"stable":            {{Topic: "orders", Partition: 0, Committed: 10}, {Topic: "deleted", Partition: 0, Committed: 1}},
			"empty":             {{Topic: "orders", Partition: 1, Committed: 90}},
			"rebalancing":       {{Topic: "orders", Partition: 0, Committed: 1}},
			"completing":        {{Topic: "orders", Partition: 0, Committed: 1}},
			"app:v2":            {{Topic: "orders", Partition: 0, Committed: 1}},
			"nothing-committed": nil,
		},
	}
	end := func(topic string, p int32) (int64, bool) {
		if topic == "deleted" {
			return 0, false
		}
		return 100, true
	}
	got := Source(c, end)()
	var names []string
	for _, g := range got {
		names = append(names, g.Group)
	}
	if !slices.Equal(names, []string{"stable", "empty"}) {
		t.Fatalf("groups reported %v, want [stable empty]", names)
	}
	if p := got[0].Partitions; len(p) != 1 || p[0].Topic != "orders" || p[0].Lag != 90 || p[0].End != 100 {
		t.Errorf("stable: %+v", p)
	}
	if p := got[1].Partitions; len(p) != 1 || p[0].Lag != 10 {
		t.Errorf("empty: %+v", p)
	}
}
