package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/placement"
)

// MaxRecordsPerUserOp bounds what one metadata command made for a client
// request may carry, counted as Kafka's KRaft controller counts records
// (QuorumController.MAX_RECORDS_PER_USER_OP, 10,000): a new topic is one
// record plus one per partition and per config, new partitions one each,
// and one per reassignment, ACL, ACL filter, quota entity or SCRAM user. Without it a principal with CREATE asked
// for 2^31-1 partitions and the active controller computed their placement
// (about 400 bytes a partition: 800 GiB) before anything refused it, and
// every broker would have applied the result.
const MaxRecordsPerUserOp = 10000

// userOpRecords counts the records of a command a client request made, as
// MaxRecordsPerUserOp does; 0 for the commands the brokers and the active
// controller make of their own accord, which are not bounded here.
func userOpRecords(cmd metadata.Command) int {
	switch c := cmd.(type) {
	case metadata.CreateTopic:
		return 1 + len(c.Assignments) + len(c.Configs)
	case metadata.CreatePartitions:
		return len(c.Assignments)
	case metadata.ReassignPartitions:
		return len(c.Reassignments)
	case metadata.CreateACLs:
		return len(c.ACLs)
	case metadata.DeleteACLs:
		return len(c.Filters)
	case metadata.AlterClientQuotas:
		return len(c.Entries)
	case metadata.AlterScramCredentials:
		return len(c.Users)
	}
	return 0
}

// userOpType reports whether userOpRecords counts a command type. Not
// ElectLeaders: the active controller proposes the preferred elections of
// every partition of the cluster itself, and a client's election of every
// partition (no partitions named, as in Kafka) is bounded by the
// cluster's partitions, which max.broker.partitions bounds.
func userOpType(t metadata.CommandType) bool {
	switch t {
	case metadata.TypeCreateTopic, metadata.TypeCreatePartitions, metadata.TypeReassignPartitions,
		metadata.TypeCreateACLs, metadata.TypeDeleteACLs, metadata.TypeAlterClientQuotas, metadata.TypeAlterScramCredentials:
		return true
	}
	return false
}

// errTooLarge is Kafka's answer to an operation over MaxRecordsPerUserOp
// (PolicyViolationException "Unable to perform excessively large batch
// operation."), naming what was asked.
func errTooLarge(what string, records int) error {
	return fmt.Errorf("%w: unable to perform excessively large batch operation: %s makes %d metadata records, at most %d per request", metadata.ErrPolicyViolation, what, records, MaxRecordsPerUserOp)
}

// checkPartitionCount refuses, before anything is placed, a topic of more
// partitions than one request may create (records counted as
// userOpRecords does).
func checkPartitionCount(name string, partitions int64, configs int) error {
	if n := 1 + partitions + int64(configs); n > MaxRecordsPerUserOp {
		return errTooLarge(fmt.Sprintf("topic %s with %d partitions", name, partitions), int(min(n, 1<<31-1)))
	}
	return nil
}

// userOpDecoders decode the commands userOpRecords counts.
var userOpDecoders = map[metadata.CommandType]func([]byte) (metadata.Command, error){
	metadata.TypeCreateTopic:           decodeCommand[metadata.CreateTopic],
	metadata.TypeCreatePartitions:      decodeCommand[metadata.CreatePartitions],
	metadata.TypeReassignPartitions:    decodeCommand[metadata.ReassignPartitions],
	metadata.TypeCreateACLs:            decodeCommand[metadata.CreateACLs],
	metadata.TypeDeleteACLs:            decodeCommand[metadata.DeleteACLs],
	metadata.TypeAlterClientQuotas:     decodeCommand[metadata.AlterClientQuotas],
	metadata.TypeAlterScramCredentials: decodeCommand[metadata.AlterScramCredentials],
}

// decodeUserOp decodes the commands userOpRecords counts; nil for others
// (which need no decoding here).
func decodeUserOp(b []byte) (metadata.Command, error) {
	decode, ok := userOpDecoders[metadata.CommandType(b[0])]
	if !ok {
		return nil, nil
	}
	return decode(b[1:])
}

// decodeCommand decodes a command's body as C.
func decodeCommand[C metadata.Command](body []byte) (metadata.Command, error) {
	var c C
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", metadata.ErrBadCommand, err)
	}
	return c, nil
}

// addedReplicas counts, per broker, the partition replicas a command would
// add to what st holds: every replica of a new topic or new partition, and
// each replica a reassignment names that the partition does not hold yet
// (a partition holds its old and new replicas until the move ends).
func addedReplicas(st *metadata.State, cmd metadata.Command) map[int32]int {
	add := map[int32]int{}
	switch c := cmd.(type) {
	case metadata.CreateTopic:
		for _, rs := range c.Assignments {
			for _, r := range rs {
				add[r]++
			}
		}
	case metadata.CreatePartitions:
		for _, rs := range c.Assignments {
			for _, r := range rs {
				add[r]++
			}
		}
	case metadata.ReassignPartitions:
		for _, ra := range c.Reassignments {
			p, ok := st.Partition(ra.Topic, ra.Partition)
			if !ok {
				continue // the state machine answers it per item
			}
			for _, r := range ra.Replicas {
				if !containsReplica(p.Replicas, r) {
					add[r]++
				}
			}
		}
	}
	return add
}

func containsReplica(rs []int32, r int32) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// checkBrokerPartitions refuses a command that would put more than limit
// partition replicas on a broker (max.broker.partitions, as Amazon MSK's
// partitions-per-broker limit, replicas included). A broker over the limit
// already (the limit lowered since) refuses only more.
func checkBrokerPartitions(st *metadata.State, cmd metadata.Command, limit int) error {
	if limit <= 0 {
		return nil
	}
	add := addedReplicas(st, cmd)
	if len(add) == 0 {
		return nil
	}
	held := placement.LoadOf(st).Replicas
	ids := make([]int32, 0, len(add))
	for id := range add {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if n := held[id] + add[id]; n > limit {
			return fmt.Errorf("%w: broker %d holds %d partition replicas and this would add %d, over max.broker.partitions (%d)", metadata.ErrPolicyViolation, id, held[id], add[id], limit)
		}
	}
	return nil
}

// MaxBrokerPartitionsConfig is the dynamic broker config, set at the
// cluster default, that holds the cluster's max.broker.partitions.
const MaxBrokerPartitionsConfig = "max.broker.partitions"

// BrokerPartitionLimit is max.broker.partitions as it applies on st: the
// cluster-wide dynamic value once one is set, so that every active
// controller answers alike while brokers roll to another broker_config,
// else static, the value this broker was started with. The brokers store
// the value as validated (1 .. 2^31-1); one that does not parse falls back
// to static rather than lifting the limit.
func BrokerPartitionLimit(st *metadata.State, static int) int {
	if v, ok := st.BrokerConfigs[metadata.ClusterDefault][MaxBrokerPartitionsConfig]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return static
}

// CheckNewReplicas is checkBrokerPartitions for new partitions placed on
// assignments, for a broker to answer a ValidateOnly request as the
// active controller would answer the request itself (on this broker's
// state, which may be behind, and limit: BrokerPartitionLimit).
func CheckNewReplicas(st *metadata.State, assignments [][]int32, limit int) error {
	return checkBrokerPartitions(st, metadata.CreatePartitions{Assignments: assignments}, limit)
}

// ErrTopicCollides means a new topic's name equals an existing topic's
// once '.' and '_' are equated, which Kafka refuses
// (INVALID_TOPIC_EXCEPTION, "collides with existing topic"): their metric
// names would be the same.
var ErrTopicCollides = errors.New("topic name collides with an existing topic")

// checkTopicCollision refuses a new topic whose name collides with one of
// st's. Each broker checks its own metadata before it asks; this check,
// on the state the command applies to and one user operation at a time,
// is the one that two brokers creating "a.b" and "a_b" at once cannot
// both pass.
func checkTopicCollision(st *metadata.State, cmd metadata.Command) error {
	ct, ok := cmd.(metadata.CreateTopic)
	if !ok || !strings.ContainsAny(ct.Name, "._") {
		return nil // a name without either collides only with itself
	}
	norm := strings.ReplaceAll(ct.Name, ".", "_")
	for name := range st.Topics {
		if name != ct.Name && strings.ReplaceAll(name, ".", "_") == norm {
			return fmt.Errorf("%w: topic %s collides with existing topic %s", ErrTopicCollides, ct.Name, name)
		}
	}
	return nil
}

// checkUserOp applies the bounds, and for a new topic the name collision
// check, to an encoded command about to be proposed by the active
// controller.
func (ctl *Controller) checkUserOp(st *metadata.State, b []byte) error {
	cmd, err := decodeUserOp(b)
	if err != nil || cmd == nil {
		return err
	}
	if n := userOpRecords(cmd); n > MaxRecordsPerUserOp {
		return errTooLarge(strings.TrimPrefix(fmt.Sprintf("%T", cmd), "metadata."), n)
	}
	if err := checkTopicCollision(st, cmd); err != nil {
		return err
	}
	return checkBrokerPartitions(st, cmd, BrokerPartitionLimit(st, ctl.cfg.MaxBrokerPartitions))
}
