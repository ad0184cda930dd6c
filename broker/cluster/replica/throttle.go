package replica

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/quota"
)

// The dynamic broker configs of the replication throttle (KIP-73).
const (
	LeaderThrottledRateConfig   = "leader.replication.throttled.rate"
	FollowerThrottledRateConfig = "follower.replication.throttled.rate"
)

// ThrottleConfig is the replication throttle a broker starts with; the
// metadata's dynamic rates win over the two rates.
type ThrottleConfig struct {
	// LeaderRate and FollowerRate are bytes per second; 0 (unset) is no
	// limit, as math.MaxInt64 (the configs' default). The configs refuse
	// 0, so an unset field is never a configured rate.
	LeaderRate, FollowerRate int64
	// Windows measure both rates (replication.quota.window.num and
	// replication.quota.window.size.seconds).
	Windows quota.Config
}

// Throttle is a broker's replication throttle, as Kafka's
// ReplicationQuotaManager pair: the leader side limits what this broker
// sends to followers of throttled replicas that are not in the ISR, the
// follower side limits what it fetches for its throttled replicas while
// they are behind the leader's high watermark. Which replicas are
// throttled comes from the topics' leader.replication.throttled.replicas
// and follower.replication.throttled.replicas, each entry naming the broker
// whose side applies (the leader's for the first, the follower's for the
// second); the rates from the dynamic broker configs. Replication of every
// other partition is never held back and not counted.
type Throttle struct {
	id       int32
	static   ThrottleConfig
	Leader   *quota.Replication
	Follower *quota.Replication
	sets     atomic.Pointer[throttledSets]
}

// throttledSets are the partitions throttled on this broker, by side.
type throttledSets struct {
	leader, follower map[TopicPartition]bool
}

// NewThrottle returns broker id's throttle, with nothing throttled until
// Update.
func NewThrottle(id int32, cfg ThrottleConfig, now func() time.Time) *Throttle {
	t := &Throttle{id: id, static: cfg,
		Leader:   quota.NewReplication(cfg.Windows, now),
		Follower: quota.NewReplication(cfg.Windows, now)}
	t.sets.Store(&throttledSets{})
	t.Leader.SetBound(rateOrUnlimited(cfg.LeaderRate))
	t.Follower.SetBound(rateOrUnlimited(cfg.FollowerRate))
	return t
}

func rateOrUnlimited(r int64) int64 {
	if r <= 0 {
		return math.MaxInt64
	}
	return r
}

// Update puts a metadata state's throttle configs in force.
func (t *Throttle) Update(st *metadata.State) {
	t.Leader.SetBound(t.rate(st, LeaderThrottledRateConfig, t.static.LeaderRate))
	t.Follower.SetBound(t.rate(st, FollowerThrottledRateConfig, t.static.FollowerRate))
	sets := &throttledSets{}
	for name, topic := range st.Topics {
		for side, key := range map[*map[TopicPartition]bool]string{
			&sets.leader:   config.LeaderThrottledReplicas,
			&sets.follower: config.FollowerThrottledReplicas,
		} {
			v, ok := topic.Configs[key]
			if !ok {
				continue
			}
			// The broker stored the value after checking it; one that
			// does not parse throttles nothing rather than everything.
			tr, err := config.ParseThrottledReplicas(v)
			if err != nil {
				continue
			}
			for i := range topic.Partitions() {
				if tr.Has(int32(i), t.id) {
					if *side == nil {
						*side = map[TopicPartition]bool{}
					}
					(*side)[TopicPartition{name, int32(i)}] = true
				}
			}
		}
	}
	t.sets.Store(sets)
}

// rate is a throttle rate: this broker's dynamic value, then the
// cluster-wide one, then the one it started with.
func (t *Throttle) rate(st *metadata.State, name string, static int64) int64 {
	for _, layer := range []map[string]string{st.BrokerConfigs[t.id], st.BrokerConfigs[metadata.ClusterDefault]} {
		if v, ok := layer[name]; ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
				return n
			}
		}
	}
	return rateOrUnlimited(static)
}

// LeaderThrottled reports whether this broker's leader side throttles tp.
func (t *Throttle) LeaderThrottled(tp TopicPartition) bool {
	return t != nil && t.sets.Load().leader[tp]
}

// FollowerThrottled reports whether this broker's follower side throttles
// tp.
func (t *Throttle) FollowerThrottled(tp TopicPartition) bool {
	return t != nil && t.sets.Load().follower[tp]
}
