// Package placement decides where partition replicas live: rack-aware
// assignment of new partitions (replicas spread across racks, leaders and
// replicas balanced across brokers), the preferred-leader elections worth
// running after a broker returns, and reassignment plans to fill a new
// broker, drain one that is leaving, or change a partition's replication
// factor.
//
// Every function is deterministic: the same input gives the same answer,
// so a plan can be computed on any node, reviewed and replayed. Ties are
// broken by broker id, never by map order.
package placement

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// ErrNotEnoughBrokers means the replication factor exceeds the brokers
// available (Kafka's INVALID_REPLICATION_FACTOR).
var ErrNotEnoughBrokers = errors.New("replication factor larger than the available brokers")

// Broker is a placement candidate.
type Broker struct {
	ID   int32
	Rack string // empty means "no rack": every such broker counts as its own rack
}

// Load counts what each broker already carries, so new partitions go where
// there is least.
type Load struct {
	Replicas map[int32]int
	Leaders  map[int32]int
}

// LoadOf counts the replicas and preferred leaderships of a state.
func LoadOf(st *metadata.State) Load {
	l := Load{Replicas: map[int32]int{}, Leaders: map[int32]int{}}
	for _, t := range st.Topics {
		for _, p := range t.Partitions() {
			for i, r := range p.Replicas {
				l.Replicas[r]++
				if i == 0 {
					l.Leaders[r]++
				}
			}
		}
	}
	return l
}

// EligibleBrokers lists the brokers that may take new replicas (registered,
// unfenced, not shutting down), sorted by id.
func EligibleBrokers(st *metadata.State) []Broker {
	var out []Broker
	for _, id := range st.BrokerIDs() {
		if b := st.Brokers[id]; b.Eligible() {
			out = append(out, Broker{ID: id, Rack: b.Rack})
		}
	}
	return out
}

func rackOf(b Broker) string {
	if b.Rack == "" {
		return fmt.Sprintf("\x00broker-%d", b.ID) // its own rack
	}
	return b.Rack
}

// Assign places partitions new partitions of rf replicas each. The first
// replica of each is its preferred leader. Rules, in priority order:
// replicas of one partition are on distinct brokers; they use as many racks
// as possible; leaders go to the brokers leading least; the other replicas
// to the brokers holding least. load (may be zero) is the existing load and
// is not modified.
func Assign(brokers []Broker, partitions, rf int, load Load) ([][]int32, error) {
	if rf < 1 {
		return nil, fmt.Errorf("%w: replication factor %d", ErrNotEnoughBrokers, rf)
	}
	if rf > len(brokers) {
		return nil, fmt.Errorf("%w: replication factor %d, %d brokers", ErrNotEnoughBrokers, rf, len(brokers))
	}
	order := rackAlternated(brokers)
	replicas := map[int32]int{}
	leaders := map[int32]int{}
	for id, n := range load.Replicas {
		replicas[id] = n
	}
	for id, n := range load.Leaders {
		leaders[id] = n
	}
	out := make([][]int32, 0, partitions)
	for p := range partitions {
		// Rotate the tie-break order per partition, as Kafka does with its
		// start index, so equal loads still spread.
		rotated := append(slices.Clone(order[p%len(order):]), order[:p%len(order)]...)
		leader := pick(rotated, nil, func(b Broker) [2]int { return [2]int{leaders[b.ID], replicas[b.ID]} })
		chosen := []Broker{leader}
		for len(chosen) < rf {
			next := pick(rotated, chosen, func(b Broker) [2]int {
				sameRack := 0
				for _, c := range chosen {
					if rackOf(c) == rackOf(b) {
						sameRack++
					}
				}
				return [2]int{sameRack, replicas[b.ID]}
			})
			chosen = append(chosen, next)
		}
		ids := make([]int32, len(chosen))
		for i, b := range chosen {
			ids[i] = b.ID
			replicas[b.ID]++
		}
		leaders[leader.ID]++
		out = append(out, ids)
	}
	return out, nil
}

// pick returns the broker not in exclude with the smallest cost, the
// earliest in order on ties.
func pick(order, exclude []Broker, cost func(Broker) [2]int) Broker {
	var best Broker
	var bestCost [2]int
	found := false
	for _, b := range order {
		if slices.ContainsFunc(exclude, func(e Broker) bool { return e.ID == b.ID }) {
			continue
		}
		c := cost(b)
		if !found || c[0] < bestCost[0] || (c[0] == bestCost[0] && c[1] < bestCost[1]) {
			best, bestCost, found = b, c, true
		}
	}
	return best
}

// rackAlternated orders brokers a1, b1, c1, a2, b2, ... (racks sorted, ids
// sorted within a rack), Kafka's rack-alternated list: consecutive brokers
// are in different racks whenever possible.
func rackAlternated(brokers []Broker) []Broker {
	byRack := map[string][]Broker{}
	for _, b := range brokers {
		byRack[rackOf(b)] = append(byRack[rackOf(b)], b)
	}
	racks := make([]string, 0, len(byRack))
	for r, bs := range byRack {
		racks = append(racks, r)
		sort.Slice(bs, func(i, j int) bool { return bs[i].ID < bs[j].ID })
	}
	sort.Strings(racks)
	var out []Broker
	for i := 0; len(out) < len(brokers); i++ {
		for _, r := range racks {
			if i < len(byRack[r]) {
				out = append(out, byRack[r][i])
			}
		}
	}
	return out
}

// PreferredElections lists the partitions whose preferred leader (first
// replica) does not lead but could: it is eligible and in the ISR. Running
// ElectLeaders on them restores the balance Assign chose, e.g. after a
// broker came back.
func PreferredElections(st *metadata.State) []metadata.TopicPartition {
	var out []metadata.TopicPartition
	for _, name := range st.TopicNames() {
		for i, p := range st.Topics[name].Partitions() {
			pref := p.Replicas[0]
			if p.Leader != pref && slices.Contains(p.ISR, pref) && st.EligibleBroker(pref) {
				out = append(out, metadata.TopicPartition{Topic: name, Partition: int32(i)})
			}
		}
	}
	return out
}

// racksOf returns the racks used by the replicas, by broker id lookup.
func racksOf(replicas []int32, rack map[int32]string) map[string]int {
	out := map[string]int{}
	for _, r := range replicas {
		out[rack[r]]++
	}
	return out
}

func rackMap(st *metadata.State) map[int32]string {
	m := map[int32]string{}
	for id, b := range st.Brokers {
		m[id] = rackOf(Broker{ID: id, Rack: b.Rack})
	}
	return m
}

// PlanDrain moves every replica off broker id: each is replaced, in place
// (so a drained preferred leader's slot goes to its replacement), by the
// eligible broker not already a replica that keeps the most racks in use and
// holds the fewest replicas. Applying the plan with ReassignPartitions
// empties the broker once the new replicas catch up.
func PlanDrain(st *metadata.State, id int32) ([]metadata.Reassignment, error) {
	load := LoadOf(st)
	rack := rackMap(st)
	var candidates []Broker
	for _, b := range EligibleBrokers(st) {
		if b.ID != id {
			candidates = append(candidates, b)
		}
	}
	var plan []metadata.Reassignment
	for _, name := range st.TopicNames() {
		for i, p := range st.Topics[name].Partitions() {
			pos := slices.Index(p.Replicas, id)
			if pos < 0 {
				continue
			}
			others := slices.Delete(slices.Clone(p.Replicas), pos, pos+1)
			used := racksOf(others, rack)
			var best Broker
			bestCost := [2]int{}
			found := false
			for _, c := range candidates {
				if slices.Contains(p.Replicas, c.ID) {
					continue
				}
				cost := [2]int{used[rackOf(c)], load.Replicas[c.ID]}
				if !found || cost[0] < bestCost[0] || (cost[0] == bestCost[0] && cost[1] < bestCost[1]) {
					best, bestCost, found = c, cost, true
				}
			}
			if !found {
				return nil, fmt.Errorf("%w: no broker can take %s-%d from broker %d", ErrNotEnoughBrokers, name, i, id)
			}
			target := slices.Clone(p.Replicas)
			target[pos] = best.ID
			load.Replicas[best.ID]++
			load.Replicas[id]--
			plan = append(plan, metadata.Reassignment{Topic: name, Partition: int32(i), Replicas: target})
		}
	}
	return plan, nil
}

// PlanAddBroker moves replicas onto broker id (new or empty) until it holds
// its fair share (total replicas / eligible brokers, rounded down) or no
// broker holding at least two more replicas can give one. It takes replicas
// from the most loaded brokers first, and only where the swap does not
// reduce the number of racks the partition spans (so a new broker in a rack
// that already has one shares that rack's replicas with it). Replicas keep their
// positions, so the new broker also becomes preferred leader of a fair share
// of the partitions it takes from leaders' slots.
func PlanAddBroker(st *metadata.State, id int32) ([]metadata.Reassignment, error) {
	b, ok := st.Brokers[id]
	if !ok || !b.Eligible() {
		return nil, fmt.Errorf("broker %d is not registered and eligible", id)
	}
	eligible := EligibleBrokers(st)
	load := LoadOf(st)
	total := 0
	for _, e := range eligible {
		total += load.Replicas[e.ID]
	}
	fair := total / len(eligible)
	rack := rackMap(st)
	newRack := rackOf(Broker{ID: id, Rack: b.Rack})
	var plan []metadata.Reassignment
	moved := map[metadata.TopicPartition]bool{}
	for load.Replicas[id] < fair {
		// Take from the most loaded broker that has a movable replica.
		donors := slices.Clone(eligible)
		sort.SliceStable(donors, func(i, j int) bool { return load.Replicas[donors[i].ID] > load.Replicas[donors[j].ID] })
		progress := false
		for _, d := range donors {
			// Moving from a broker only one ahead would just swap roles.
			if d.ID == id || load.Replicas[d.ID]-load.Replicas[id] <= 1 {
				continue
			}
			tp, target, ok := movable(st, d.ID, id, newRack, rack, moved)
			if !ok {
				continue
			}
			moved[tp] = true
			load.Replicas[d.ID]--
			load.Replicas[id]++
			plan = append(plan, metadata.Reassignment{Topic: tp.Topic, Partition: tp.Partition, Replicas: target})
			progress = true
			break
		}
		if !progress {
			break // nothing more can move without hurting rack spread
		}
	}
	return plan, nil
}

// movable finds the first partition (by name and index) where donor's
// replica can be replaced by id without losing a rack.
func movable(st *metadata.State, donor, id int32, newRack string, rack map[int32]string, moved map[metadata.TopicPartition]bool) (metadata.TopicPartition, []int32, bool) {
	for _, name := range st.TopicNames() {
		for i, p := range st.Topics[name].Partitions() {
			tp := metadata.TopicPartition{Topic: name, Partition: int32(i)}
			pos := slices.Index(p.Replicas, donor)
			if moved[tp] || pos < 0 || slices.Contains(p.Replicas, id) {
				continue
			}
			before := len(racksOf(p.Replicas, rack))
			target := slices.Clone(p.Replicas)
			target[pos] = id
			rack[id] = newRack
			if len(racksOf(target, rack)) < before {
				continue
			}
			return tp, target, true
		}
	}
	return metadata.TopicPartition{}, nil, false
}
