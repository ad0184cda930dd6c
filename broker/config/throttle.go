package config

import (
	"fmt"
	"strconv"
	"strings"
)

// The topic configs that name the replicas the replication throttle
// applies to (KIP-73).
const (
	LeaderThrottledReplicas   = "leader.replication.throttled.replicas"
	FollowerThrottledReplicas = "follower.replication.throttled.replicas"
)

const throttledReplicasAllowed = "empty, *, or partition:broker,... (non-negative ids)"

// ThrottledReplicas is the parsed value of a throttled-replicas topic
// config: every replica (All), or the listed partition:broker pairs.
type ThrottledReplicas struct {
	All   bool
	Pairs []ThrottledReplica
}

// ThrottledReplica is one partition:broker pair.
type ThrottledReplica struct {
	Partition int32
	Broker    int32
}

// Has reports whether the replica of partition on broker is throttled.
func (t ThrottledReplicas) Has(partition, broker int32) bool {
	if t.All {
		return true
	}
	for _, p := range t.Pairs {
		if p.Partition == partition && p.Broker == broker {
			return true
		}
	}
	return false
}

// String is the canonical spelling: "*", or the pairs joined by commas.
func (t ThrottledReplicas) String() string {
	if t.All {
		return "*"
	}
	parts := make([]string, len(t.Pairs))
	for i, p := range t.Pairs {
		parts[i] = fmt.Sprintf("%d:%d", p.Partition, p.Broker)
	}
	return strings.Join(parts, ",")
}

// ParseThrottledReplicas parses a throttled-replicas value as Kafka's
// ThrottledReplicaListValidator accepts it: empty, "*", or a comma list
// of partition:broker pairs, blanks around items ignored. A pair listed
// twice is kept once.
func ParseThrottledReplicas(v string) (ThrottledReplicas, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return ThrottledReplicas{}, nil
	}
	if v == "*" {
		return ThrottledReplicas{All: true}, nil
	}
	var out ThrottledReplicas
	seen := map[ThrottledReplica]bool{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "*" {
			return ThrottledReplicas{}, fmt.Errorf("must be * alone or partition:broker pairs, not both")
		}
		ps, bs, ok := strings.Cut(item, ":")
		if !ok {
			return ThrottledReplicas{}, fmt.Errorf("must be %s; %q is not partition:broker", throttledReplicasAllowed, item)
		}
		p, err1 := strconv.ParseInt(strings.TrimSpace(ps), 10, 32)
		b, err2 := strconv.ParseInt(strings.TrimSpace(bs), 10, 32)
		if err1 != nil || err2 != nil || p < 0 || b < 0 {
			return ThrottledReplicas{}, fmt.Errorf("must be %s; %q does not hold two non-negative ids", throttledReplicasAllowed, item)
		}
		r := ThrottledReplica{Partition: int32(p), Broker: int32(b)}
		if !seen[r] {
			seen[r] = true
			out.Pairs = append(out.Pairs, r)
		}
	}
	return out, nil
}

func canonicalThrottledReplicas(v string) (string, error) {
	t, err := ParseThrottledReplicas(v)
	if err != nil {
		return "", err
	}
	return t.String(), nil
}
