package kafkatopic

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// DefaultThrottle is the replication throttle of a reassignment when the
// configuration sets none: 50 MiB/s per broker and side, a fraction of an
// EBS gp3 volume's or an instance's bandwidth, so clients keep most of it.
const DefaultThrottle int64 = 50 << 20

// The dynamic broker configs of the throttle's rates.
const (
	leaderRateConfig   = "leader.replication.throttled.rate"
	followerRateConfig = "follower.replication.throttled.rate"
)

// throttleCleanupTimeout bounds the removal of the throttle after a
// reassignment, which runs even when the apply's context is done.
const throttleCleanupTimeout = time.Minute

// throttle puts Kafka's replication throttle on a reassignment, as
// kafka-reassign-partitions --throttle does: each moved topic's
// leader.replication.throttled.replicas lists the current replicas of its
// moved partitions (the brokers copied from), its
// follower.replication.throttled.replicas the replicas being added (the
// brokers copied to), and every live broker gets the rate as both its
// leader and follower rate. Partitions not moved are not throttled. With
// a rate of 0 nothing is set.
func (a *Admin) throttle(ctx context.Context, adm *kadm.Client, md kadm.Metadata, targets map[string]map[int32][]int32) error {
	if a.Throttle <= 0 {
		return nil
	}
	// Only partitions that gain replicas copy anything.
	type lists struct{ leader, follower string }
	byTopic := map[string]lists{}
	for topic, parts := range targets {
		l, f := throttledReplicas(md.Topics[topic].Partitions, parts)
		if f != "" {
			byTopic[topic] = lists{l, f}
		}
	}
	if len(byTopic) == 0 {
		return nil
	}
	rate := strconv.FormatInt(a.Throttle, 10)
	var ids []int32
	for _, b := range md.Brokers {
		ids = append(ids, b.NodeID)
	}
	slices.Sort(ids)
	rs, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: leaderRateConfig, Value: &rate},
		{Op: kadm.SetConfig, Name: followerRateConfig, Value: &rate},
	}, ids...)
	if err := alterErr(rs, err, "setting the replication throttle rate on the brokers"); err != nil {
		return err
	}
	for _, topic := range slices.Sorted(maps.Keys(byTopic)) {
		l := byTopic[topic]
		rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: config.LeaderThrottledReplicas, Value: &l.leader},
			{Op: kadm.SetConfig, Name: config.FollowerThrottledReplicas, Value: &l.follower},
		}, topic)
		if err := alterErr(rs, err, "throttling the reassignment of topic "+topic); err != nil {
			return err
		}
	}
	a.log(ctx, "reassignment throttled", "bytes_per_second", a.Throttle, "brokers", ids, "topics", slices.Sorted(maps.Keys(byTopic)))
	return nil
}

// throttledReplicas are the two topic configs' values for the moved
// partitions of one topic: the current replicas, and the added ones.
func throttledReplicas(parts map[int32]kadm.PartitionDetail, targets map[int32][]int32) (leader, follower string) {
	var ls, fs []string
	for _, p := range slices.Sorted(maps.Keys(targets)) {
		current := parts[p].Replicas
		for _, r := range current {
			ls = append(ls, fmt.Sprintf("%d:%d", p, r))
		}
		for _, r := range targets[p] {
			if !slices.Contains(current, r) {
				fs = append(fs, fmt.Sprintf("%d:%d", p, r))
			}
		}
	}
	return strings.Join(ls, ","), strings.Join(fs, ",")
}

// EndThrottle removes the replication throttle of the reassignments
// once none runs (see endThrottle): what follows an async rebalance calls
// it when the rebalance has finished.
func (a *Admin) EndThrottle(ctx context.Context) error {
	adm, err := a.admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	return a.endThrottle(ctx, adm)
}

// endThrottle removes the throttle once no reassignment runs in the
// cluster: from every topic that has one and from every live broker. It
// runs after each reassignment, failed ones too, on its own context (the
// apply's may be done), and at the start of the next one for what an
// interrupted apply left behind. While a reassignment still runs (an
// apply that timed out, or an async rebalance) the throttle stays, so the
// copy keeps to the rate; the next apply removes it.
func (a *Admin) endThrottle(ctx context.Context, adm *kadm.Client) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), throttleCleanupTimeout)
	defer cancel()
	running, err := adm.ListPartitionReassignments(ctx, nil)
	if err != nil {
		return fmt.Errorf("listing the running reassignments of cluster %s: %w", a.Conn.ClusterID, err)
	}
	if n := countPartitions(running); n > 0 {
		a.log(ctx, "replication throttle left in place while partitions move; the next change removes it", "partitions_moving", n)
		return nil
	}
	return a.removeThrottle(ctx, adm)
}

func countPartitions(r kadm.ListPartitionReassignmentsResponses) int {
	n := 0
	for _, parts := range r {
		n += len(parts)
	}
	return n
}

// removeThrottle deletes the throttled-replicas configs from every topic
// that has them and the throttle rates from every live broker that has
// them, as kafka-reassign-partitions --verify does once a reassignment is
// done.
func (a *Admin) removeThrottle(ctx context.Context, adm *kadm.Client) error {
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("listing the topics of cluster %s: %w", a.Conn.ClusterID, err)
	}
	var throttled []string
	if names := topics.Names(); len(names) > 0 {
		rcs, err := adm.DescribeTopicConfigs(ctx, names...)
		if err != nil {
			return fmt.Errorf("reading the topic configs of cluster %s: %w", a.Conn.ClusterID, err)
		}
		for _, rc := range rcs {
			if rc.Err == nil && hasOwn(rc, config.LeaderThrottledReplicas, config.FollowerThrottledReplicas) {
				throttled = append(throttled, rc.Name)
			}
		}
	}
	var errs []error
	for _, topic := range throttled {
		rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
			{Op: kadm.DeleteConfig, Name: config.LeaderThrottledReplicas},
			{Op: kadm.DeleteConfig, Name: config.FollowerThrottledReplicas},
		}, topic)
		errs = append(errs, alterErr(rs, err, "removing the replication throttle of topic "+topic))
	}
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("reading the brokers of cluster %s: %w", a.Conn.ClusterID, err))...)
	}
	var brokers []int32
	for _, b := range md.Brokers {
		rcs, err := adm.DescribeBrokerConfigs(ctx, b.NodeID)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading the configs of broker %d: %w", b.NodeID, err))
			continue
		}
		for _, rc := range rcs {
			if rc.Err == nil && hasDynamic(rc, leaderRateConfig, followerRateConfig) {
				brokers = append(brokers, b.NodeID)
			}
		}
	}
	if len(brokers) > 0 {
		slices.Sort(brokers)
		rs, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{
			{Op: kadm.DeleteConfig, Name: leaderRateConfig},
			{Op: kadm.DeleteConfig, Name: followerRateConfig},
		}, brokers...)
		errs = append(errs, alterErr(rs, err, "removing the replication throttle rate from the brokers"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(throttled) > 0 || len(brokers) > 0 {
		a.log(ctx, "replication throttle removed", "topics", throttled, "brokers", brokers)
	}
	return nil
}

// hasOwn reports whether a topic sets one of names itself.
func hasOwn(rc kadm.ResourceConfig, names ...string) bool {
	for _, c := range rc.Configs {
		if slices.Contains(names, c.Key) && c.Source == kmsg.ConfigSourceDynamicTopicConfig {
			return true
		}
	}
	return false
}

// hasDynamic reports whether a broker has one of names set for itself.
func hasDynamic(rc kadm.ResourceConfig, names ...string) bool {
	for _, c := range rc.Configs {
		if slices.Contains(names, c.Key) && c.Source == kmsg.ConfigSourceDynamicBrokerConfig {
			return true
		}
	}
	return false
}

// alterErr folds an AlterConfigs call's error and its per-resource
// errors into one, with what the call was doing.
func alterErr(rs kadm.AlterConfigsResponses, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var problems []string
	for _, r := range rs {
		if r.Err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v%s", r.Name, r.Err, kafkaconn.ErrMessage(&r.ErrMessage)))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("%s: %s", what, strings.Join(problems, "; "))
	}
	return nil
}
