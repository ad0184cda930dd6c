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
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/placement"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// DrainResult says what draining brokers moved.
type DrainResult struct {
	// Moved is the number of replicas moved off the drained brokers.
	Moved int
	// Partitions is the number of partitions whose replicas changed.
	Partitions int
	// Leaders is the number of partitions whose leadership went to the
	// replica that took a drained broker's preferred-leader slot.
	Leaders int
	// Bytes is the size of the moved replicas as their leaders reported
	// it before the move (DescribeLogDirs): what the new replicas copied.
	Bytes int64
}

// drainRounds bounds how often Drain plans again: a topic created while
// the moves ran may have been placed on a broker being drained (the
// brokers do not know it is leaving), and the next round moves it too.
const drainRounds = 5

// ErrBrokerPartitions says a plan would put more partition replicas on a
// broker than max.broker.partitions, which the active controller refuses
// (POLICY_VIOLATION).
var ErrBrokerPartitions = errors.New("over max.broker.partitions")

// CheckDrain reports whether brokers ids can be drained: every partition
// of every topic (internal ones too) needs as many live brokers outside ids
// as it has replicas, and, when maxBrokerPartitions is above 0, the moves
// planned may put no broker left over that many partition replicas (the
// brokers' max.broker.partitions, which refuses the reassignment). It
// reads the cluster and changes nothing.
func (a *Admin) CheckDrain(ctx context.Context, ids []int32, maxBrokerPartitions int) error {
	adm, err := a.admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	md, err := adm.Metadata(ctx)
	if err != nil {
		return fmt.Errorf("reading the metadata of cluster %s: %w", a.Conn.ClusterID, err)
	}
	targets, err := a.planDrainConfirmed(ctx, md, ids)
	if err != nil || maxBrokerPartitions <= 0 {
		return err
	}
	return checkBrokerPartitions(md, targets, ids, maxBrokerPartitions)
}

// checkBrokerPartitions refuses targets (new replica lists by topic and
// partition, the others staying as md has them) when they leave a broker
// outside ids with more than limit partition replicas, and more than it
// holds now: the active controller refuses a reassignment that passes
// max.broker.partitions on a broker, and one over it already (the limit
// lowered since) only when it would get more.
func checkBrokerPartitions(md kadm.Metadata, targets map[string]map[int32][]int32, ids []int32, limit int) error {
	before, after := map[int32]int{}, map[int32]int{}
	for name, td := range md.Topics {
		for _, p := range td.Partitions {
			for _, r := range p.Replicas {
				before[r]++
			}
			replicas := p.Replicas
			if t, ok := targets[name][p.Partition]; ok {
				replicas = t
			}
			for _, r := range replicas {
				after[r]++
			}
		}
	}
	var over []string
	for _, id := range slices.Sorted(maps.Keys(after)) {
		if slices.Contains(ids, id) || after[id] <= limit || after[id] <= before[id] {
			continue
		}
		over = append(over, fmt.Sprintf("broker %d would hold %d (%d now)", id, after[id], before[id]))
	}
	if len(over) == 0 {
		return nil
	}
	total := 0
	for _, n := range before {
		total += n
	}
	left := len(md.Brokers) - len(ids)
	return fmt.Errorf("%w: the cluster's %d partition replicas on the %d brokers left: %s, over max.broker.partitions (%d), "+
		"and the brokers would refuse the moves with POLICY_VIOLATION; raise max.broker.partitions in broker_config to at least %d "+
		"(it may change in the same apply: the brokers that stay roll before the drain), delete topics or lower their "+
		"replication_factor, or keep more brokers", ErrBrokerPartitions, total, left, strings.Join(over, ", "), limit, slices.Max(slices.Collect(maps.Values(after))))
}

// planDrainConfirmed is planDrain whose topics are confirmed with every
// live broker: md is one broker's answer, and each broker applies the
// metadata log in its own time. One that has not applied a topic's
// deletion yet (outside Terraform a moment ago, or by the apply before)
// still lists the topic: its replicas would refuse the drain when the
// brokers left are too few for them, and otherwise be planned as moves
// that the brokers refuse (UNKNOWN_TOPIC_OR_PARTITION), failing the
// drain, or that take a place a live topic's replica should have had. A
// broker asked for a topic by name that it does not know catches up with
// the controller before it answers that the topic does not exist, so that
// answer is the cluster's: the topics with a replica on ids that some live
// broker does not know are left out, and the drain planned again without
// them. When the brokers cannot all be asked, a refusal stands and moves
// go ahead as planned (the brokers refuse a deleted topic's moves, and the
// next apply drains again).
func (a *Admin) planDrainConfirmed(ctx context.Context, md kadm.Metadata, ids []int32) (map[string]map[int32][]int32, error) {
	targets, err := planDrain(md, ids)
	refused := errors.Is(err, placement.ErrNotEnoughBrokers)
	if err != nil && !refused {
		return targets, err
	}
	names := topicsOn(md, ids)
	if len(names) == 0 {
		return targets, err
	}
	gone, gerr := a.unknownTopics(ctx, names)
	if gerr != nil {
		if refused {
			a.log(ctx, "drain: could not ask every broker whether the topics still exist; refused on one broker's metadata", "error", gerr.Error())
		} else {
			a.log(ctx, "drain: could not ask every broker whether the topics to move still exist; moving them as one broker listed them", "error", gerr.Error())
		}
		return targets, err
	}
	if len(gone) == 0 {
		return targets, err
	}
	a.log(ctx, "drain: topics a broker still listed are deleted", "topics", gone)
	md.Topics = maps.Clone(md.Topics)
	for _, name := range gone {
		delete(md.Topics, name)
	}
	return planDrain(md, ids)
}

// topicsOn lists, in order, the topics of md with a replica on one of ids.
func topicsOn(md kadm.Metadata, ids []int32) []string {
	var names []string
	for name, td := range md.Topics {
		if slices.ContainsFunc(td.Partitions.Sorted(), func(p kadm.PartitionDetail) bool {
			return slices.ContainsFunc(p.Replicas, func(r int32) bool { return slices.Contains(ids, r) })
		}) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// unknownTopics asks every live broker for the topics by name and returns
// those some broker answers it does not know.
func (a *Admin) unknownTopics(ctx context.Context, names []string) ([]string, error) {
	cl, err := a.Conn.Client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ids, err := kafkaconn.LiveBrokers(ctx, cl)
	if err != nil {
		return nil, err
	}
	gone := map[string]bool{}
	for _, id := range ids {
		req := kmsg.NewPtrMetadataRequest()
		req.AllowAutoTopicCreation = false
		for _, name := range names {
			t := kmsg.NewMetadataRequestTopic()
			t.Topic = kmsg.StringPtr(name)
			req.Topics = append(req.Topics, t)
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := req.RequestWith(rctx, cl.Broker(int(id)))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("asking broker %d for the topics: %w", id, err)
		}
		for _, t := range resp.Topics {
			if t.Topic != nil && t.ErrorCode == kerr.UnknownTopicOrPartition.Code {
				gone[*t.Topic] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(gone)), nil
}

// Drain moves every replica off the brokers ids (brokers about to be
// removed) onto the others, rack-aware, with broker/cluster/placement's
// PlanDrain: each replica is replaced in its position by the remaining
// broker that keeps the most Availability Zones in use and holds the
// fewest replicas, so a drained preferred leader's slot goes to its
// replacement. The moves go to the brokers as one
// AlterPartitionAssignments; it waits until every live broker sees each
// moved partition on its new replicas, all in sync (so no partition's ISR
// is short when the drained brokers stop), runs a preferred-leader
// election where a drained broker was the preferred leader, and plans
// again until nothing is left on ids. It refuses, before moving anything,
// when the other brokers cannot hold some partition's replicas. The copy
// runs under the replication throttle (Throttle), removed once it is done
// or has failed with nothing left moving. A reassignment already running is
// waited for first.
func (a *Admin) Drain(ctx context.Context, ids []int32) (res DrainResult, err error) {
	adm, err := a.admin()
	if err != nil {
		return res, err
	}
	defer adm.Close()
	defer func() { err = errors.Join(err, a.endThrottle(ctx, adm)) }()
	for round := 1; ; round++ {
		if err := a.waitNoReassignment(ctx, adm); err != nil {
			return res, err
		}
		md, err := adm.Metadata(ctx)
		if err != nil {
			return res, fmt.Errorf("reading the metadata of cluster %s: %w", a.Conn.ClusterID, err)
		}
		targets, err := a.planDrainConfirmed(ctx, md, ids)
		if err != nil {
			return res, err
		}
		if len(targets) == 0 {
			a.log(ctx, "drain: nothing left on the brokers", "brokers", ids)
			return res, nil
		}
		if round > drainRounds {
			return res, fmt.Errorf("brokers %v still hold replicas after %d rounds of moves (topics created on them while they drained?): %s",
				ids, drainRounds, describeAll(targets))
		}
		var req kadm.AlterPartitionAssignmentsReq
		moved, partitions := 0, 0
		for _, topic := range slices.Sorted(maps.Keys(targets)) {
			for _, p := range slices.Sorted(maps.Keys(targets[topic])) {
				req.Assign(topic, p, targets[topic][p])
				partitions++
				for _, r := range md.Topics[topic].Partitions[p].Replicas {
					if slices.Contains(ids, r) {
						moved++
					}
				}
			}
		}
		res.Bytes += a.movedBytes(ctx, adm, md, targets, newReplicas)
		// Each round's throttle replaces the last's (and one an
		// interrupted apply left): it names this round's moves.
		if err := a.endThrottle(ctx, adm); err != nil {
			return res, err
		}
		if err := a.throttle(ctx, adm, md, targets); err != nil {
			return res, err
		}
		a.log(ctx, "drain: moving replicas off the brokers to remove",
			"brokers", ids, "replicas", moved, "partitions", partitions, "round", round, "throttle_bytes_per_second", a.Throttle)
		resps, err := alterAssignments(ctx, adm, req)
		if err != nil {
			return res, fmt.Errorf("reassigning partitions off brokers %v: %w", ids, err)
		}
		var problems []string
		resps.Each(func(r kadm.AlterPartitionAssignmentsResponse) {
			if r.Err != nil {
				problems = append(problems, fmt.Sprintf("%s-%d: %v%s", r.Topic, r.Partition, r.Err, kafkaconn.ErrMessage(&r.ErrMessage)))
			}
		})
		if len(problems) > 0 {
			slices.Sort(problems)
			return res, fmt.Errorf("reassigning partitions off brokers %v: %s", ids, strings.Join(problems, "; "))
		}
		res.Moved += moved
		res.Partitions += partitions
		for _, topic := range slices.Sorted(maps.Keys(targets)) {
			if err := a.waitReassigned(ctx, topic, targets[topic]); err != nil {
				return res, err
			}
		}
		set := kadm.TopicsSet{}
		for topic, parts := range targets {
			for p, replicas := range parts {
				if slices.Contains(ids, md.Topics[topic].Partitions[p].Replicas[0]) && replicas[0] != md.Topics[topic].Partitions[p].Leader {
					set.Add(topic, p)
				}
			}
		}
		n, err := a.electPreferred(ctx, adm, set)
		if err != nil {
			return res, err
		}
		res.Leaders += n
	}
}

// planDrain returns the new replica list of every partition with a replica
// on ids, by topic: the brokers of ids are taken out of the candidates (as
// brokers shutting down are), then drained one after the other, each plan
// seeing the moves before it. A partition with more replicas than the
// other live brokers is refused, naming the topic and its replication
// factor, with nothing planned.
func planDrain(md kadm.Metadata, ids []int32) (map[string]map[int32][]int32, error) {
	st, err := placementState(md)
	if err != nil {
		return nil, err
	}
	remaining := 0
	for id, b := range st.Brokers {
		if slices.Contains(ids, id) {
			b.ShuttingDown = true
			continue
		}
		remaining++
	}
	var short []string
	for _, name := range st.TopicNames() {
		for i, p := range st.Topics[name].Partitions() {
			if !slices.ContainsFunc(p.Replicas, func(r int32) bool { return slices.Contains(ids, r) }) {
				continue
			}
			if len(p.Replicas) > remaining {
				short = append(short, fmt.Sprintf("%s (partition %d has %d replicas)", name, i, len(p.Replicas)))
				break
			}
		}
	}
	if len(short) > 0 {
		return nil, fmt.Errorf("%w: without brokers %v the cluster has %d live brokers, too few for the replicas of topics %s; "+
			"lower their replication factor first, or keep more brokers", placement.ErrNotEnoughBrokers, ids, remaining, strings.Join(short, ", "))
	}
	targets := map[string]map[int32][]int32{}
	for _, id := range slices.Sorted(slices.Values(ids)) {
		plan, err := placement.PlanDrain(st, id)
		if err != nil {
			return nil, fmt.Errorf("planning the moves off broker %d: %w", id, err)
		}
		applyMoves(st, plan, targets)
	}
	return targets, nil
}

// movedBytes sums the sizes, as each partition's leader reports them with
// DescribeLogDirs, of the partitions of targets, each times copies(topic,
// partition): the number of its replicas the moves create. A broker that
// cannot say counts nothing: the figure is reported, never acted on.
func (a *Admin) movedBytes(ctx context.Context, adm *kadm.Client, md kadm.Metadata, targets map[string]map[int32][]int32, copies func(before, after []int32) int) int64 {
	set := kadm.TopicsSet{}
	for topic, parts := range targets {
		for p := range parts {
			set.Add(topic, p)
		}
	}
	dirs, err := adm.DescribeAllLogDirs(ctx, set)
	if err != nil {
		a.log(ctx, "could not read the moved partitions' sizes", "error", err.Error())
	}
	var total int64
	for topic, parts := range targets {
		for p, after := range parts {
			pd := md.Topics[topic].Partitions[p]
			if lp, ok := dirs[pd.Leader].LookupPartition(topic, p); ok {
				total += lp.Size * int64(copies(pd.Replicas, after))
			}
		}
	}
	return total
}

// newReplicas counts the replicas of after that before does not have.
func newReplicas(before, after []int32) int {
	n := 0
	for _, r := range after {
		if !slices.Contains(before, r) {
			n++
		}
	}
	return n
}

// electPreferred runs a preferred-leader election on the partitions of set
// and returns how many changed leader. Refusals are logged, not failed:
// the replicas moved, and a leader that stayed where it was only leaves
// the load less even until the brokers' own preferred elections run.
func (a *Admin) electPreferred(ctx context.Context, adm *kadm.Client, set kadm.TopicsSet) (int, error) {
	if len(set) == 0 {
		return 0, nil
	}
	elected, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, set)
	if err != nil {
		return 0, fmt.Errorf("electing the preferred leaders of the moved partitions: %w", err)
	}
	n := 0
	var refused []string
	for _, parts := range elected {
		for _, r := range parts {
			switch {
			case r.Err == nil:
				n++
			case errors.Is(r.Err, kerr.ElectionNotNeeded):
			default:
				refused = append(refused, fmt.Sprintf("%s-%d: %v%s", r.Topic, r.Partition, r.Err, kafkaconn.ErrMessage(&r.ErrMessage)))
			}
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		a.log(ctx, "some preferred-leader elections were refused", "partitions", strings.Join(refused, "; "))
	}
	return n, nil
}

// describeAll lists the partitions of targets with their new replicas.
func describeAll(targets map[string]map[int32][]int32) string {
	var parts []string
	for _, topic := range slices.Sorted(maps.Keys(targets)) {
		parts = append(parts, describeTargets(topic, targets[topic]))
	}
	return strings.Join(parts, " ")
}

// Unregister forgets brokers that left the cluster for good with
// UnregisterBroker (Kafka API 64), once they have stopped: a broker the
// cluster no longer knows (BROKER_ID_NOT_REGISTERED) was unregistered
// already, so a repeated call succeeds.
func (a *Admin) Unregister(ctx context.Context, ids []int32) error {
	cl, err := a.Conn.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	for _, id := range ids {
		req := kmsg.NewPtrUnregisterBrokerRequest()
		req.BrokerID = id
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("unregistering broker %d: %w", id, err)
		}
		switch err := kerr.ErrorForCode(resp.ErrorCode); {
		case err == nil:
			a.log(ctx, "broker unregistered from the cluster metadata", "broker", id)
		case errors.Is(err, kerr.BrokerIDNotRegistered):
			a.log(ctx, "broker was unregistered already", "broker", id)
		default:
			return fmt.Errorf("unregistering broker %d: %w%s", id, err, kafkaconn.ErrMessage(resp.ErrorMessage))
		}
	}
	return nil
}
