package placement

import (
	"fmt"
	"slices"
)

// Resize returns the replica list of a partition changed to rf replicas,
// for a replication-factor change by reassignment. The replicas already
// there keep their order (the preferred leader stays first), so only the
// difference moves:
//
//   - growing adds, one at a time, the broker that puts the partition in a
//     rack it does not use yet (or the rack it uses least), then the one
//     holding the fewest replicas, ties going the rack-alternated way Assign
//     orders brokers;
//   - shrinking drops, one at a time and never the first replica, a replica
//     on a broker that is not among brokers (gone), else one whose rack
//     another replica also covers, else the one on the most loaded broker,
//     ties going to the later position.
//
// load (its Replicas may be nil) is updated with the change, so a caller
// resizing many partitions spreads them. brokers are the eligible brokers.
func Resize(brokers []Broker, replicas []int32, rf int, load *Load) ([]int32, error) {
	if rf < 1 {
		return nil, fmt.Errorf("%w: replication factor %d", ErrNotEnoughBrokers, rf)
	}
	if load.Replicas == nil {
		load.Replicas = map[int32]int{}
	}
	rack := map[int32]string{}
	for _, b := range brokers {
		rack[b.ID] = rackOf(b)
	}
	known := func(id int32) bool { _, ok := rack[id]; return ok }
	rackUse := func(ids []int32) map[string]int {
		out := map[string]int{}
		for _, id := range ids {
			if known(id) {
				out[rack[id]]++
			}
		}
		return out
	}
	out := slices.Clone(replicas)

	for len(out) > rf {
		used := rackUse(out)
		victim, best := -1, [3]int{}
		for i := 1; i < len(out); i++ {
			id := out[i]
			cost := [3]int{0, 0, load.Replicas[id]}
			if !known(id) {
				cost[0] = 1
			} else if used[rack[id]] > 1 {
				cost[1] = 1
			}
			if victim < 0 || cost[0] > best[0] ||
				(cost[0] == best[0] && (cost[1] > best[1] || (cost[1] == best[1] && cost[2] >= best[2]))) {
				victim, best = i, cost
			}
		}
		load.Replicas[out[victim]]--
		out = slices.Delete(out, victim, victim+1)
	}

	if len(out) < rf {
		var candidates []Broker
		for _, b := range rackAlternated(brokers) {
			if !slices.Contains(out, b.ID) {
				candidates = append(candidates, b)
			}
		}
		if len(out)+len(candidates) < rf {
			return nil, fmt.Errorf("%w: replication factor %d, %d brokers", ErrNotEnoughBrokers, rf, len(brokers))
		}
		for len(out) < rf {
			used := rackUse(out)
			var chosen []Broker
			for _, id := range out {
				chosen = append(chosen, Broker{ID: id})
			}
			next := pick(candidates, chosen, func(b Broker) [2]int { return [2]int{used[rackOf(b)], load.Replicas[b.ID]} })
			out = append(out, next.ID)
			load.Replicas[next.ID]++
		}
	}
	return out, nil
}
