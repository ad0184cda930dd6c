package kafkatopic

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/placement"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// RebalanceResult says what a rebalance moved.
type RebalanceResult struct {
	// Moved is the number of replicas moved onto the new brokers.
	Moved int
	// Partitions is the number of partitions whose replicas changed.
	Partitions int
	// Leaders is the number of partitions whose leadership moved to a new
	// broker by the preferred-leader election that follows.
	Leaders int
	// Bytes is the size of the moved partitions as their leaders reported
	// it before the move (DescribeLogDirs), once per new replica: what the
	// new replicas copy.
	Bytes int64
}

// RebalanceOnto moves replicas of the cluster's existing partitions onto the
// brokers onto (brokers a scale-out added, which hold nothing yet) until
// each holds its fair share, with broker/cluster/placement's PlanAddBroker
// (rack-aware: a move never lowers the number of Availability Zones a
// partition spans; replicas keep their positions, so a new broker that takes
// a preferred leader's slot becomes that partition's preferred leader). The
// moves go to the brokers as one AlterPartitionReassignments; it waits,
// logging progress, until every live broker sees every moved partition on
// its new replicas, all in sync, and then runs a preferred-leader election
// on the moved partitions so leadership follows. The copy runs under the
// replication throttle (Throttle), removed once it is done. A reassignment
// already running is waited for first: the plan counts every replica where
// it ends up.
func (a *Admin) RebalanceOnto(ctx context.Context, onto []int32) (RebalanceResult, error) {
	return a.rebalanceOnto(ctx, onto, true)
}

// StartRebalanceOnto is RebalanceOnto that returns once the brokers
// accepted the moves: the copy goes on in the cluster, which
// MovingPartitions follows, and leadership follows the preferred replicas
// by the brokers' own periodic preferred-leader elections. The throttle
// stays while the copy runs; EndThrottle removes it once nothing moves. A
// reassignment already running is still waited for first, as the plan
// needs to know where every replica ends up.
func (a *Admin) StartRebalanceOnto(ctx context.Context, onto []int32) (RebalanceResult, error) {
	return a.rebalanceOnto(ctx, onto, false)
}

// MovingPartitions lists the partitions the cluster is reassigning, as
// topic-partition names in order.
func (a *Admin) MovingPartitions(ctx context.Context) ([]string, error) {
	adm, err := a.admin()
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	running, err := adm.ListPartitionReassignments(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("listing the running reassignments of cluster %s: %w", a.Conn.ClusterID, err)
	}
	var names []string
	for topic, parts := range running {
		for p := range parts {
			names = append(names, fmt.Sprintf("%s-%d", topic, p))
		}
	}
	slices.Sort(names)
	return names, nil
}

func (a *Admin) rebalanceOnto(ctx context.Context, onto []int32, wait bool) (res RebalanceResult, err error) {
	adm, err := a.admin()
	if err != nil {
		return res, err
	}
	defer adm.Close()
	if err := a.waitNoReassignment(ctx, adm); err != nil {
		return res, err
	}
	// Ends a throttle an interrupted apply left, and this one's (unless
	// the copy still runs: see endThrottle).
	if err := a.endThrottle(ctx, adm); err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, a.endThrottle(ctx, adm)) }()
	md, err := a.metadataListing(ctx, adm, onto)
	if err != nil {
		return res, err
	}
	targets, err := a.planOntoConfirmed(ctx, md, onto)
	if err != nil {
		return res, err
	}
	if len(targets) == 0 {
		a.log(ctx, "rebalance: nothing to move onto the new brokers", "brokers", onto)
		return res, nil
	}
	var req kadm.AlterPartitionAssignmentsReq
	for _, topic := range slices.Sorted(maps.Keys(targets)) {
		for _, p := range slices.Sorted(maps.Keys(targets[topic])) {
			req.Assign(topic, p, targets[topic][p])
			res.Partitions++
			for _, r := range targets[topic][p] {
				if slices.Contains(onto, r) {
					res.Moved++
				}
			}
		}
	}
	res.Bytes = a.movedBytes(ctx, adm, md, targets, newReplicas)
	if err := a.throttle(ctx, adm, md, targets); err != nil {
		return res, err
	}
	a.log(ctx, "rebalance: moving replicas onto the new brokers",
		"brokers", onto, "replicas", res.Moved, "partitions", res.Partitions, "throttle_bytes_per_second", a.Throttle)
	resps, err := alterAssignments(ctx, adm, req)
	if err != nil {
		return res, fmt.Errorf("reassigning partitions onto brokers %v: %w", onto, err)
	}
	var problems []string
	resps.Each(func(r kadm.AlterPartitionAssignmentsResponse) {
		if r.Err != nil {
			problems = append(problems, fmt.Sprintf("%s-%d: %v%s", r.Topic, r.Partition, r.Err, kafkaconn.ErrMessage(&r.ErrMessage)))
		}
	})
	if len(problems) > 0 {
		slices.Sort(problems)
		return res, fmt.Errorf("reassigning partitions onto brokers %v: %s", onto, strings.Join(problems, "; "))
	}
	if !wait {
		a.log(ctx, "rebalance started; the brokers copy the moved replicas on their own", "brokers", onto, "replicas", res.Moved, "partitions", res.Partitions)
		return res, nil
	}
	for _, topic := range slices.Sorted(maps.Keys(targets)) {
		if err := a.waitReassigned(ctx, topic, targets[topic]); err != nil {
			return res, err
		}
	}
	set := kadm.TopicsSet{}
	for topic, parts := range targets {
		for p, replicas := range parts {
			if slices.Contains(onto, replicas[0]) {
				set.Add(topic, p)
			}
		}
	}
	if res.Leaders, err = a.electPreferred(ctx, adm, set); err != nil {
		return res, err
	}
	a.log(ctx, "rebalance done", "brokers", onto, "replicas", res.Moved, "partitions", res.Partitions, "leaders", res.Leaders)
	return res, nil
}

// planOntoConfirmed plans the moves onto the brokers onto from md, one
// broker's answer, and confirms the topics it would move with every live
// broker, as planDrainConfirmed does: a topic deleted a moment ago that
// this broker still lists would be asked to move (the brokers refuse it as
// unknown, failing the rebalance) and would count in the fair shares. The
// topics some live broker does not know are left out and the moves planned
// again without them; when not every broker can be asked, the plan stands.
func (a *Admin) planOntoConfirmed(ctx context.Context, md kadm.Metadata, onto []int32) (map[string]map[int32][]int32, error) {
	plan := func(md kadm.Metadata) (map[string]map[int32][]int32, error) {
		st, err := placementState(md)
		if err != nil {
			return nil, err
		}
		return planOnto(st, onto)
	}
	targets, err := plan(md)
	if err != nil || len(targets) == 0 {
		return targets, err
	}
	gone, gerr := a.unknownTopics(ctx, slices.Sorted(maps.Keys(targets)))
	if gerr != nil {
		a.log(ctx, "rebalance: could not ask every broker whether the topics to move still exist; moving them as one broker listed them", "error", gerr.Error())
		return targets, nil
	}
	if len(gone) == 0 {
		return targets, nil
	}
	a.log(ctx, "rebalance: topics a broker still listed are deleted", "topics", gone)
	md.Topics = maps.Clone(md.Topics)
	for _, name := range gone {
		delete(md.Topics, name)
	}
	return plan(md)
}

// joinPatience bounds the wait for every broker asked to list the new
// brokers: a broker learns of another's registration from the metadata log
// a moment after that one serves.
const joinPatience = time.Minute

// metadataListing reads the cluster's metadata from a broker that lists
// every broker of ids, waiting for that up to joinPatience.
func (a *Admin) metadataListing(ctx context.Context, adm *kadm.Client, ids []int32) (kadm.Metadata, error) {
	deadline := time.Now().Add(joinPatience)
	for {
		md, err := adm.Metadata(ctx)
		var missing []int32
		if err == nil {
			for _, id := range ids {
				if !slices.ContainsFunc(md.Brokers, func(b kadm.BrokerDetail) bool { return b.NodeID == id }) {
					missing = append(missing, id)
				}
			}
			if len(missing) == 0 {
				return md, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return md, fmt.Errorf("reading the metadata of cluster %s: %w", a.Conn.ClusterID, err)
			}
			return md, fmt.Errorf("the cluster's metadata still does not list brokers %v after %s", missing, joinPatience)
		}
		select {
		case <-ctx.Done():
		case <-time.After(a.interval()):
		}
	}
}

// waitNoReassignment waits until the cluster runs no reassignment.
func (a *Admin) waitNoReassignment(ctx context.Context, adm *kadm.Client) error {
	told := false
	for {
		running, err := adm.ListPartitionReassignments(ctx, nil)
		if err != nil {
			return fmt.Errorf("listing the running reassignments of cluster %s: %w", a.Conn.ClusterID, err)
		}
		var names []string
		for topic, parts := range running {
			for p := range parts {
				names = append(names, fmt.Sprintf("%s-%d", topic, p))
			}
		}
		if len(names) == 0 {
			return nil
		}
		slices.Sort(names)
		if !told {
			a.log(ctx, "rebalance: waiting for the running reassignments to finish", "partitions", strings.Join(names, " "))
			told = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("partitions %s were still being reassigned when the wait ended: %w", strings.Join(names, " "), ctx.Err())
		case <-time.After(a.interval()):
		}
	}
}

// placementState is the part of the cluster's metadata placement reads:
// the live brokers with their racks and each partition's replicas.
func placementState(md kadm.Metadata) (*metadata.State, error) {
	st := metadata.Empty()
	for _, b := range md.Brokers {
		rack := ""
		if b.Rack != nil {
			rack = *b.Rack
		}
		st.Brokers[b.NodeID] = &metadata.Broker{NodeID: b.NodeID, Rack: rack}
	}
	for name, td := range md.Topics {
		if td.Err != nil {
			return nil, fmt.Errorf("topic %s: %w", name, td.Err)
		}
		parts := make([]metadata.Partition, len(td.Partitions))
		for _, p := range td.Partitions.Sorted() {
			if int(p.Partition) >= len(parts) {
				return nil, fmt.Errorf("topic %s lists partition %d of %d", name, p.Partition, len(td.Partitions))
			}
			parts[p.Partition].Replicas = slices.Clone(p.Replicas)
		}
		st.Topics[name] = metadata.NewTopic(name, metadata.TopicID{}, nil, parts...)
	}
	return st, nil
}

// planOnto plans, broker by broker, the moves that give each broker of onto
// its fair share, each plan seeing the moves before it, and returns the new
// replica list of every partition that changes, by topic.
func planOnto(st *metadata.State, onto []int32) (map[string]map[int32][]int32, error) {
	targets := map[string]map[int32][]int32{}
	for _, id := range slices.Sorted(slices.Values(onto)) {
		if _, ok := st.Brokers[id]; !ok {
			return nil, fmt.Errorf("broker %d is not among the cluster's live brokers", id)
		}
		plan, err := placement.PlanAddBroker(st, id)
		if err != nil {
			return nil, fmt.Errorf("planning the moves onto broker %d: %w", id, err)
		}
		applyMoves(st, plan, targets)
	}
	return targets, nil
}

// applyMoves records a plan's new replica lists in st, so the next broker's
// plan starts from them, and in targets, the reassignments to ask for.
func applyMoves(st *metadata.State, plan []metadata.Reassignment, targets map[string]map[int32][]int32) {
	for _, r := range plan {
		t := st.Topics[r.Topic]
		p := t.Partition(r.Partition)
		p.Replicas = slices.Clone(r.Replicas)
		st.Topics[r.Topic] = t.WithPartition(r.Partition, p)
		if targets[r.Topic] == nil {
			targets[r.Topic] = map[int32][]int32{}
		}
		targets[r.Topic][r.Partition] = p.Replicas
	}
}
