package server

// CreateTopics: v2-7
//
// Behaviour:
//   - NumPartitions -1 means num.partitions; ReplicationFactor -1 means
//     default.replication.factor. The controller places the replicas
//     across racks; a replication factor above the live brokers (above 1
//     on a single broker) answers INVALID_REPLICATION_FACTOR. A manual
//     assignment must name registered brokers, each once per partition,
//     with the same count for every partition (INVALID_REPLICA_ASSIGNMENT
//     otherwise).
//   - At most 9,999 partitions per topic (Kafka's 10,000 metadata records
//     per request: one for the topic, one per partition), and no broker
//     above max.broker.partitions replicas: POLICY_VIOLATION.
//   - Configs are validated against the topic configs we serve
//     (broker/config's topic-config table); an unknown name or bad value
//     answers INVALID_CONFIG.
//     Only explicitly given configs are stored; the rest follow the broker.
//   - ValidateOnly checks everything and creates nothing.
//   - TimeoutMillis (when positive, at most 15 s; else 8 s) bounds the
//     wait for this broker's previous topic change and for the metadata
//     quorum: past it the topic answers REQUEST_TIMED_OUT (retriable) and
//     may still be created, as in Kafka. Topics of one request share it.
//   - A name given twice in one request answers INVALID_REQUEST for it.
//   - The internal topics __consumer_offsets and __transaction_state, and
//     __cluster_metadata, are the broker's to create (reservedTopicError):
//     INVALID_REQUEST ("creation of internal topic ... is prohibited", as
//     Kafka refuses __cluster_metadata), TOPIC_ALREADY_EXISTS once they
//     exist. Kafka lets a client create the first two with its own
//     settings.
//   - A name equal to an existing topic's once '.' and '_' are equated
//     answers INVALID_TOPIC_EXCEPTION ("collides with existing topic"), as
//     in Kafka: their metric names would be the same.
//   - Needs CREATE on the cluster or on the topic (else
//     TOPIC_AUTHORIZATION_FAILED for it). The v5+ configs need
//     DESCRIBE_CONFIGS on the topic: without it they are left out and the
//     topic's config error is TOPIC_AUTHORIZATION_FAILED; it is created.
//   - v5+ responses describe the new topic's partitions, replication
//     factor and effective configs; v7 returns its topic id.
//
// Version notes:
//   - v1: ValidateOnly, error messages; v2: throttle (floor in Kafka 4, KIP-896)
//   - v4: defaults for partitions/replication (KIP-464); v5: flexible,
//     configs in the response (KIP-525); v7: topic id (KIP-516).

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster"
	"github.com/tributary/tributary/broker/cluster/placement"
	"github.com/tributary/tributary/broker/security/authz"
)

var createTopicsAPI = api{key: 19, min: 2, max: 7,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleCreateTopics(ctx, s.authFor(c, 19), r.(*kmsg.CreateTopicsRequest)), nil
	}}

func (s *Server) handleCreateTopics(ctx context.Context, az reqAuth, req *kmsg.CreateTopicsRequest) *kmsg.CreateTopicsResponse {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	names := make([]string, 0, len(req.Topics))
	for _, rt := range req.Topics {
		seen[rt.Topic]++
		names = append(names, rt.Topic)
	}
	// CREATE on the cluster, else on each topic; DESCRIBE_CONFIGS on each
	// topic to see its configs in the answer.
	var createDenied, configsDenied map[string]bool
	byCluster := len(names) > 0 && az.allowedQuietly(ctx, kmsg.ACLOperationCreate, kmsg.ACLResourceTypeCluster, authz.ClusterName)
	if !byCluster {
		createDenied = az.denied(ctx, kmsg.ACLOperationCreate, kmsg.ACLResourceTypeTopic, names)
	}
	if req.Version >= 5 {
		configsDenied = az.denied(ctx, kmsg.ACLOperationDescribeConfigs, kmsg.ACLResourceTypeTopic, names)
	}
	// timeout_ms bounds the wait for this broker's previous topic change
	// and for the metadata quorum (past it the topic answers
	// REQUEST_TIMED_OUT; it may still be created).
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		fail := func(code int16, msg string) {
			st.ErrorCode = code
			st.ErrorMessage = &msg
		}
		if seen[rt.Topic] > 1 {
			fail(kerr.InvalidRequest.Code, fmt.Sprintf("topic %s appears more than once in the request", rt.Topic))
			resp.Topics = append(resp.Topics, st)
			continue
		}
		if createDenied[rt.Topic] {
			fail(kerr.TopicAuthorizationFailed.Code, "not authorized to create topic "+rt.Topic)
			resp.Topics = append(resp.Topics, st)
			continue
		}
		if err := reservedTopicError(rt.Topic); err != nil {
			if _, exists := s.lookupTopic(rt.Topic); exists {
				fail(kerr.TopicAlreadyExists.Code, fmt.Sprintf("topic %s already exists", rt.Topic))
			} else {
				fail(kerr.InvalidRequest.Code, err.Error())
			}
			resp.Topics = append(resp.Topics, st)
			continue
		}
		showConfigs := func(configs map[string]string) {
			if configsDenied[rt.Topic] {
				st.ConfigErrorCode = kerr.TopicAuthorizationFailed.Code
				return
			}
			st.Configs = s.createTopicsResponseConfigs(configs)
		}
		configs, partitions, rf, assignment, err := s.validateCreateTopic(rt)
		if err != nil {
			fail(createTopicErrorCode(err), err.Error())
			resp.Topics = append(resp.Topics, st)
			continue
		}
		if req.ValidateOnly {
			if _, exists := s.lookupTopic(rt.Topic); exists {
				fail(kerr.TopicAlreadyExists.Code, fmt.Sprintf("topic %s already exists", rt.Topic))
			} else if err := validTopicName(rt.Topic); err != nil {
				fail(kerr.InvalidTopicException.Code, err.Error())
			} else if other := s.collidingTopic(rt.Topic); other != "" {
				fail(kerr.InvalidTopicException.Code, fmt.Sprintf("topic %s collides with existing topic %s", rt.Topic, other))
			} else if err := s.checkBrokerPartitions(partitions, rf, assignment); err != nil {
				fail(kerr.PolicyViolation.Code, err.Error())
			} else {
				st.NumPartitions, st.ReplicationFactor = partitions, rf
				showConfigs(configs)
			}
			resp.Topics = append(resp.Topics, st)
			continue
		}
		var t *topic
		if assignment != nil {
			t, err = s.createTopicAssigned(cctx, rt.Topic, assignment, configs)
		} else {
			t, err = s.createTopicRF(cctx, rt.Topic, partitions, rf, configs)
		}
		if err != nil {
			code := topicCreateErrorCode(err)
			if code == kerr.KafkaStorageError.Code {
				s.log.Error("creating topic", "topic", rt.Topic, "err", err)
			}
			fail(code, err.Error())
			resp.Topics = append(resp.Topics, st)
			continue
		}
		st.TopicID = t.id
		st.NumPartitions, st.ReplicationFactor = int32(len(t.partitions)), rf
		showConfigs(t.configs)
		if byCluster {
			// The decision named the cluster; this names the topic.
			s.audit.Changed(ctx, az.auditRequest(), "topic created", rt.Topic)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func createTopicErrorCode(err error) int16 {
	switch {
	case errors.Is(err, errReplicationFactor):
		return kerr.InvalidReplicationFactor.Code
	case errors.Is(err, errReplicaAssignment):
		return kerr.InvalidReplicaAssignment.Code
	}
	return topicCreateErrorCode(err)
}

// validateCreateTopic checks one topic of a CreateTopics request and
// returns its configs, partition count, replication factor and, when the
// request assigns replicas explicitly, the replicas of each partition.
func (s *Server) validateCreateTopic(rt kmsg.CreateTopicsRequestTopic) (map[string]string, int32, int16, [][]int32, error) {
	cfg := s.Config()
	partitions := rt.NumPartitions
	var (
		rf         int16
		assignment [][]int32
	)
	// The controller would place, and every broker apply, whatever count
	// is asked (up to 2^31-1): refused before anything is computed.
	if n := max(int64(rt.NumPartitions), int64(len(rt.ReplicaAssignment))); n >= cluster.MaxRecordsPerUserOp {
		return nil, 0, 0, nil, fmt.Errorf("%w: unable to perform excessively large batch operation: topic %s with %d partitions, at most %d per request", errPolicyViolation, rt.Topic, n, cluster.MaxRecordsPerUserOp-1)
	}
	if len(rt.ReplicaAssignment) > 0 {
		if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
			return nil, 0, 0, nil, fmt.Errorf("%w: give either an assignment or partitions and replication factor", errReplicaAssignment)
		}
		byPartition := map[int32][]int32{}
		for _, a := range rt.ReplicaAssignment {
			if _, dup := byPartition[a.Partition]; a.Partition < 0 || dup {
				return nil, 0, 0, nil, fmt.Errorf("%w: partition %d assigned twice or negative", errReplicaAssignment, a.Partition)
			}
			if len(a.Replicas) == 0 || rf != 0 && len(a.Replicas) != int(rf) {
				return nil, 0, 0, nil, fmt.Errorf("%w: every partition needs the same, non-zero number of replicas", errReplicaAssignment)
			}
			rf = int16(len(a.Replicas))
			byPartition[a.Partition] = a.Replicas
		}
		for i := range int32(len(byPartition)) {
			if _, ok := byPartition[i]; !ok {
				return nil, 0, 0, nil, fmt.Errorf("%w: partitions must be numbered 0..%d without gaps", errReplicaAssignment, len(byPartition)-1)
			}
			assignment = append(assignment, byPartition[i])
		}
		partitions = int32(len(byPartition))
	} else {
		if partitions == -1 {
			partitions = cfg.NumPartitions
		}
		if partitions < 1 {
			return nil, 0, 0, nil, fmt.Errorf("%w: %d partitions, need at least 1", errInvalidPartitions, partitions)
		}
		rf = rt.ReplicationFactor
		if rf == -1 {
			rf = cfg.DefaultReplicationFactor
		}
		if live := s.liveBrokerCount(); rf < 1 || int(rf) > live {
			return nil, 0, 0, nil, fmt.Errorf("%w: replication factor %d, %d live brokers", errReplicationFactor, rf, live)
		}
	}
	in := make(map[string]string, len(rt.Configs))
	for _, c := range rt.Configs {
		if c.Value == nil {
			continue // null: use the default
		}
		in[c.Name] = *c.Value
	}
	configs, err := validateTopicConfigs(in)
	if err != nil {
		return nil, 0, 0, nil, fmt.Errorf("%w: %v", errInvalidConfig, err)
	}
	return configs, partitions, rf, assignment, nil
}

// checkBrokerPartitions answers for a ValidateOnly request whether the
// active controller would refuse new partitions (placed on assignment, or
// as the controller places them) over max.broker.partitions, judged on
// this broker's metadata and setting as the controller judges them.
func (s *Server) checkBrokerPartitions(partitions int32, rf int16, assignment [][]int32) error {
	st := s.node.Controller.State()
	if assignment == nil {
		var err error
		if assignment, err = placement.Assign(placement.EligibleBrokers(st), int(partitions), int(rf), placement.LoadOf(st)); err != nil {
			return nil // the request itself answers this
		}
	}
	return cluster.CheckNewReplicas(st, assignment, cluster.BrokerPartitionLimit(st, s.static.MaxBrokerPartitions))
}

func (s *Server) createTopicsResponseConfigs(overrides map[string]string) []kmsg.CreateTopicsResponseTopicConfig {
	var out []kmsg.CreateTopicsResponseTopicConfig
	for _, d := range s.describeTopicConfigs(overrides, nil) {
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name = d.Name
		c.Value = d.Value
		c.Source = int8(d.Source)
		c.ReadOnly = d.ReadOnly
		out = append(out, c)
	}
	return out
}
