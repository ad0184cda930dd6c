package kafkatopic

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/cluster/placement"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// SetReplicationFactor changes the replica count of every partition of a
// topic to rf with AlterPartitionReassignments, and waits until the
// reassignment is complete: every new replica in sync, removed replicas
// gone, as every live broker sees it. Replicas are chosen rack-aware by
// broker/cluster/placement (Resize): existing replicas stay, new ones go to
// the Availability Zones the partition does not use yet, then to the
// brokers holding the fewest replicas. Progress is logged as partitions
// complete. New replicas copy under the replication throttle (Throttle),
// removed afterwards (see endThrottle), and a throttle an interrupted
// apply left behind is removed first when nothing moves.
func (a *Admin) SetReplicationFactor(ctx context.Context, name string, rf int) (err error) {
	adm, err := a.admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	md, err := adm.Metadata(ctx)
	if err != nil {
		return fmt.Errorf("reading the metadata of cluster %s: %w", a.Conn.ClusterID, err)
	}
	td, ok := md.Topics[name]
	if !ok || td.Err != nil {
		return fmt.Errorf("topic %s: %w", name, errors.Join(ErrNotFound, td.Err))
	}
	// The request names partitions: a topic without any lists nothing.
	partitions := map[int32]struct{}{}
	for p := range td.Partitions {
		partitions[p] = struct{}{}
	}
	running, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{name: partitions})
	if err != nil {
		return fmt.Errorf("listing the reassignments of topic %s: %w", name, err)
	}
	if err := a.endThrottle(ctx, adm); err != nil {
		return err
	}
	targets, err := plan(md, name, rf, running[name])
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return nil
	}
	defer func() { err = errors.Join(err, a.endThrottle(ctx, adm)) }()
	if err := a.throttle(ctx, adm, md, map[string]map[int32][]int32{name: targets}); err != nil {
		return err
	}
	var req kadm.AlterPartitionAssignmentsReq
	for _, p := range slices.Sorted(maps.Keys(targets)) {
		req.Assign(name, p, targets[p])
	}
	a.log(ctx, "reassigning partitions", "topic", name, "replication_factor", rf, "partitions", len(targets), "targets", describeTargets(name, targets))
	resps, err := alterAssignments(ctx, adm, req)
	if err != nil {
		return fmt.Errorf("reassigning topic %s to replication factor %d: %w", name, rf, err)
	}
	var problems []string
	resps.Each(func(r kadm.AlterPartitionAssignmentsResponse) {
		if r.Err != nil {
			problems = append(problems, fmt.Sprintf("%s-%d: %v%s", r.Topic, r.Partition, r.Err, kafkaconn.ErrMessage(&r.ErrMessage)))
		}
	})
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("reassigning topic %s to replication factor %d: %s", name, rf, strings.Join(problems, "; "))
	}
	return a.waitReassigned(ctx, name, targets)
}

// plan returns the new replica list of each partition whose count is not
// rf, from its current replicas (the target of a reassignment already
// running: the replicas it is not removing).
func plan(md kadm.Metadata, name string, rf int, running map[int32]kadm.ListPartitionReassignmentsResponse) (map[int32][]int32, error) {
	var brokers []placement.Broker
	live := map[int32]bool{}
	for _, b := range md.Brokers {
		rack := ""
		if b.Rack != nil {
			rack = *b.Rack
		}
		brokers = append(brokers, placement.Broker{ID: b.NodeID, Rack: rack})
		live[b.NodeID] = true
	}
	if rf > len(brokers) {
		return nil, fmt.Errorf("replication factor %d needs %d brokers, and cluster lists %d live: %w", rf, rf, len(brokers), placement.ErrNotEnoughBrokers)
	}
	load := placement.Load{Replicas: map[int32]int{}}
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			for _, r := range p.Replicas {
				load.Replicas[r]++
			}
		}
	}
	td := md.Topics[name]
	targets := map[int32][]int32{}
	for _, p := range td.Partitions.Sorted() {
		current := slices.Clone(p.Replicas)
		if r, ok := running[p.Partition]; ok {
			current = slices.DeleteFunc(current, func(id int32) bool { return slices.Contains(r.RemovingReplicas, id) })
		}
		if len(current) == rf && len(current) == len(p.Replicas) {
			continue
		}
		target, err := placement.Resize(brokers, current, rf, &load)
		if err != nil {
			return nil, fmt.Errorf("placing %d replicas of %s-%d: %w", rf, name, p.Partition, err)
		}
		targets[p.Partition] = target
	}
	return targets, nil
}

func describeTargets(topic string, targets map[int32][]int32) string {
	var parts []string
	for _, p := range slices.Sorted(maps.Keys(targets)) {
		parts = append(parts, fmt.Sprintf("%s-%d->%v", topic, p, targets[p]))
	}
	const show = 12
	if len(parts) > show {
		return strings.Join(parts[:show], " ") + fmt.Sprintf(" and %d more", len(parts)-show)
	}
	return strings.Join(parts, " ")
}

// waitReassigned waits until every live broker sees each partition on
// exactly its target replicas with all of them in sync, and logs how many
// partitions are done as that grows.
func (a *Admin) waitReassigned(ctx context.Context, name string, targets map[int32][]int32) error {
	what := fmt.Sprintf("the reassignment of topic %s (%d partitions) to complete", name, len(targets))
	reported := -1
	return a.waitEachBroker(ctx, what, func(ctx context.Context, b *kgo.Broker, id int32) (string, bool) {
		t, err := topicFromBroker(ctx, b, name)
		if err != nil {
			return fmt.Sprintf("broker %d: %v", id, err), false
		}
		if t == nil {
			return fmt.Sprintf("broker %d does not list topic %s", id, name), false
		}
		done, pending := reassignmentProgress(t, targets)
		if pending == "" {
			return "", true
		}
		if done != reported {
			reported = done
			a.log(ctx, "reassignment progress", "topic", name, "partitions_done", done, "partitions", len(targets), "next", pending)
		}
		return fmt.Sprintf("broker %d: %d of %d partitions done; %s", id, done, len(targets), pending), false
	})
}

// reassignmentProgress counts the partitions already on their target
// replicas, all in sync, and describes the first that is not.
func reassignmentProgress(t *Topic, targets map[int32][]int32) (done int, pending string) {
	for _, p := range slices.Sorted(maps.Keys(targets)) {
		want := targets[p]
		if int(p) >= len(t.Partitions) {
			if pending == "" {
				pending = fmt.Sprintf("%s-%d not listed", t.Name, p)
			}
			continue
		}
		got := t.Partitions[p]
		var missing []int32
		for _, r := range want {
			if !slices.Contains(got.ISR, r) {
				missing = append(missing, r)
			}
		}
		switch {
		case len(missing) > 0:
			if pending == "" {
				pending = fmt.Sprintf("%s-%d: replicas %v catching up (replicas %v, ISR %v)", t.Name, p, missing, got.Replicas, got.ISR)
			}
		case !sameMembers(got.Replicas, want):
			if pending == "" {
				pending = fmt.Sprintf("%s-%d: replicas %v, removing down to %v", t.Name, p, got.Replicas, want)
			}
		default:
			done++
		}
	}
	return done, pending
}

func sameMembers(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// maxReassignmentsPerRequest is the brokers' bound on the reassignments one
// AlterPartitionAssignments carries (broker/cluster.MaxRecordsPerUserOp,
// Kafka's MAX_RECORDS_PER_USER_OP, since f518156): past it every partition
// of the request is answered POLICY_VIOLATION. A variable for the test.
var maxReassignmentsPerRequest = 10000

// alterAssignments sends req in requests of at most
// maxReassignmentsPerRequest partitions, in topic and partition order,
// and returns every partition's answer. A drain of more than 10,000
// partitions, or a replication factor change of a topic of more, would
// otherwise be refused whole. The requests go one after the other: when
// one fails, those before it stand (their moves run on the brokers), as a
// refused partition's do within one request; the callers' next apply
// plans again from what the brokers hold.
func alterAssignments(ctx context.Context, adm *kadm.Client, req kadm.AlterPartitionAssignmentsReq) (kadm.AlterPartitionAssignmentsResponses, error) {
	all := kadm.AlterPartitionAssignmentsResponses{}
	batch, n := kadm.AlterPartitionAssignmentsReq{}, 0
	send := func() error {
		if n == 0 {
			return nil
		}
		resps, err := adm.AlterPartitionAssignments(ctx, batch)
		if err != nil {
			return err
		}
		for topic, parts := range resps {
			if all[topic] == nil {
				all[topic] = map[int32]kadm.AlterPartitionAssignmentsResponse{}
			}
			maps.Copy(all[topic], parts)
		}
		batch, n = kadm.AlterPartitionAssignmentsReq{}, 0
		return nil
	}
	for _, topic := range slices.Sorted(maps.Keys(req)) {
		for _, p := range slices.Sorted(maps.Keys(req[topic])) {
			batch.Assign(topic, p, req[topic][p])
			if n++; n == maxReassignmentsPerRequest {
				if err := send(); err != nil {
					return all, err
				}
			}
		}
	}
	return all, send()
}
