package server

// Metadata: v0-12
//
// Behaviour:
//   - Every unfenced registered broker with an endpoint for the listener
//     the request came in on, at that endpoint (Kafka's rule: a client is
//     only sent to the kind of port it connected to), and its rack; per
//     partition the leader (LEADER_NOT_AVAILABLE and -1 when none; -1 and
//     LISTENER_NOT_FOUND, before v6 LEADER_NOT_AVAILABLE, when the broker
//     list leaves it out), leader epoch, replicas, ISR and offline (fenced)
//     replicas from this broker's copy of the Raft metadata; ControllerID
//     is the active controller (-1 during an election; this broker while
//     the broker list leaves the controller out, as a KRaft broker names
//     an alive broker: a leader or controller named in an answer is one
//     the answer lists). A single broker is its own controller and leads
//     every partition, with replicas and ISR [this node].
//   - All topics: v0 with an empty list, v1+ with a null list. An empty
//     list at v1+ asks for brokers only.
//   - A missing topic is created when auto.create.topics.enable is on and
//     the request allows it (always before v4; AllowAutoTopicCreation from
//     v4), with num.partitions partitions and default.replication.factor
//     replicas; it is returned at once, with the leaders the controller
//     gave it at creation. Otherwise UNKNOWN_TOPIC_OR_PARTITION.
//   - Invalid names answer INVALID_TOPIC_EXCEPTION and are never created.
//   - Only topics the principal may DESCRIBE are listed; one asked for by
//     name or id without it answers TOPIC_AUTHORIZATION_FAILED (by id, the
//     name is not disclosed), whether it exists or not. Auto-creation also
//     needs CREATE on the cluster or on the topic, else
//     TOPIC_AUTHORIZATION_FAILED. The broker list is open to every
//     principal. The authorized-operations fields (v8+) hold the
//     operations the principal may do.
//   - Topics asked for by id (v12) that do not exist answer UNKNOWN_TOPIC_ID.
//   - A topic named twice (or asked for twice by id) is answered once, as
//     Kafka does.
//   - A topic asked for by name that this broker does not know is looked
//     for again once its metadata has caught up with the active
//     controller's (at most 500 ms, a round trip to the controller when
//     it is really unknown): a topic just created through another broker
//     is answered, not refused UNKNOWN_TOPIC_OR_PARTITION. Produce does
//     the same.
//
// Version notes:
//   - v1: rack, controller, IsInternal, null = all topics
//   - v2: ClusterID; v4: AllowAutoTopicCreation (KIP-204); v5: OfflineReplicas
//   - v7: LeaderEpoch (KIP-320); v8: authorized operations (KIP-430)
//   - v9: flexible; v10: TopicID (KIP-516); v11: cluster operations removed
//   - v12: topics by id, null names
//   - kafka-go uses v1 (v6 to auto-create): no floor above v0.

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/security/authz"
)

var metadataAPI = api{key: 3, min: 0, max: 12,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleMetadata(ctx, s.authFor(c, 3), r.(*kmsg.MetadataRequest)), nil
	}}

func (s *Server) handleMetadata(ctx context.Context, az reqAuth, req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	cfg := s.Config()
	brokers := s.brokers(az.rc.Listener)
	for _, bi := range brokers {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = bi.id, bi.host, bi.port
		if bi.rack != "" {
			rack := bi.rack
			b.Rack = &rack
		}
		resp.Brokers = append(resp.Brokers, b)
	}
	clusterID := s.ClusterID()
	resp.ClusterID = &clusterID
	resp.ControllerID = listedControllerID(s.controllerID(), s.nodeID, brokers)
	if req.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = az.authorizedOperations(ctx, kmsg.ACLResourceTypeCluster, authz.ClusterName, clusterOperations)
	}

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		// Only the topics the principal may describe; the others are
		// left out, not refused.
		topics := s.sortedTopics()
		names := make([]string, len(topics))
		for i, t := range topics {
			names[i] = t.name
		}
		denied := az.deniedQuietly(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, names)
		for _, t := range topics {
			if !denied[t.name] {
				resp.Topics = append(resp.Topics, s.metadataTopic(ctx, az, req, t, brokers))
			}
		}
		return resp
	}

	// Each topic once, as Kafka (which reads the names into a set): a
	// name of a few bytes asked for the whole partition list of a topic
	// each time it was repeated.
	asked := uniqueMetadataTopics(req.Topics)

	// The topics asked for, by name or (v12) by id, and which of them the
	// principal may describe.
	names := make([]string, 0, len(asked))
	for _, rt := range asked {
		if rt.Topic != nil {
			names = append(names, *rt.Topic)
		} else if t, ok := s.lookupTopicID(rt.TopicID); ok {
			names = append(names, t.name)
		}
	}
	denied := az.denied(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, names)
	s.awaitUnknownTopics(ctx, names, denied)
	autoCreate := cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	// Creating a missing topic needs CREATE on the cluster, else on the
	// topic; a principal allowed neither gets TOPIC_AUTHORIZATION_FAILED.
	var createDenied map[string]bool
	var createCtx context.Context // bounds the auto-creations, made at the first
	if autoCreate {
		var missing []string
		for _, rt := range asked {
			if rt.Topic == nil || denied[*rt.Topic] {
				continue
			}
			if _, ok := s.lookupTopic(*rt.Topic); !ok && validTopicName(*rt.Topic) == nil {
				missing = append(missing, *rt.Topic)
			}
		}
		if len(missing) > 0 && !az.allowedQuietly(ctx, kmsg.ACLOperationCreate, kmsg.ACLResourceTypeCluster, authz.ClusterName) {
			createDenied = az.denied(ctx, kmsg.ACLOperationCreate, kmsg.ACLResourceTypeTopic, missing)
		}
	}
	for _, rt := range asked {
		if rt.Topic == nil {
			t, ok := s.lookupTopicID(rt.TopicID)
			mt := kmsg.NewMetadataResponseTopic()
			mt.TopicID = rt.TopicID
			switch {
			case !ok:
				mt.ErrorCode = kerr.UnknownTopicID.Code
			case denied[t.name]:
				// The name is not disclosed.
				mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			default:
				mt = s.metadataTopic(ctx, az, req, t, brokers)
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		name := *rt.Topic
		if denied[name] || createDenied[name] {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = &name
			mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		t, ok := s.lookupTopic(name)
		if !ok && autoCreate {
			if createCtx == nil {
				// The request carries no timeout: its creations
				// share the broker's bound for such requests.
				var cancel context.CancelFunc
				createCtx, cancel = context.WithTimeout(ctx, requestTimeout(0))
				defer cancel()
			}
			var err error
			t, err = s.autoCreateTopic(createCtx, name)
			switch {
			case errors.Is(err, errTopicExists):
				t, ok = s.lookupTopic(name) // created concurrently
			case errors.Is(err, errReservedTopic):
				// Not created: unknown, as Kafka answers while its
				// controller refuses the creation.
			case err != nil:
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic = &name
				mt.ErrorCode = topicCreateErrorCode(err)
				resp.Topics = append(resp.Topics, mt)
				if mt.ErrorCode != kerr.InvalidTopicException.Code {
					s.log.Warn("auto-creating topic failed", "topic", name, "err", err)
				}
				continue
			default:
				ok = true
				s.audit.Changed(ctx, az.auditRequest(), "topic created", name)
			}
		}
		if !ok {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = &name
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if validTopicName(name) != nil {
				mt.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, s.metadataTopic(ctx, az, req, t, brokers))
	}
	return resp
}

// uniqueMetadataTopics drops the topics a request names again, by name or
// (named by id only) by id, keeping the first.
func uniqueMetadataTopics(ts []kmsg.MetadataRequestTopic) []kmsg.MetadataRequestTopic {
	names := make(map[string]bool, len(ts))
	ids := map[[16]byte]bool{}
	out := make([]kmsg.MetadataRequestTopic, 0, len(ts))
	for _, rt := range ts {
		if rt.Topic != nil {
			if names[*rt.Topic] {
				continue
			}
			names[*rt.Topic] = true
		} else {
			if ids[rt.TopicID] {
				continue
			}
			ids[rt.TopicID] = true
		}
		out = append(out, rt)
	}
	return out
}

// metadataTopic describes a topic to a client given brokers, the brokers
// with an endpoint for its listener.
func (s *Server) metadataTopic(ctx context.Context, az reqAuth, req *kmsg.MetadataRequest, t *topic, brokers []brokerInfo) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.name
	mt.Topic = &name
	mt.TopicID = t.id
	mt.IsInternal = isInternalTopic(t.name)
	if req.IncludeTopicAuthorizedOperations {
		mt.AuthorizedOperations = az.authorizedOperations(ctx, kmsg.ACLResourceTypeTopic, t.name, topicOperations)
	}
	// Sized at once: a topic of thousands of partitions grown by append
	// copied every partition again at each doubling (two thirds of the
	// time a full Metadata request took with one 5,000-partition topic).
	mt.Partitions = make([]kmsg.MetadataResponseTopicPartition, 0, len(t.partitions))
	for _, p := range t.partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.index
		mp.Leader, mp.ErrorCode = s.listedLeader(p, brokers, req.Version >= 6)
		mp.LeaderEpoch = p.leaderEpoch
		mp.Replicas = nonNil(p.replicas)
		mp.ISR = nonNil(p.isr)
		mp.OfflineReplicas = nonNil(p.offline)
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// listedLeader is p's leader as an answer listing brokers may name it,
// with the partition's error code. No leader elected (no in-sync replica
// alive; unclean election is off) is -1 and LEADER_NOT_AVAILABLE. A leader
// the list leaves out (no endpoint for the client's listener, or fenced
// since the topic view was built) is -1 too, as in Kafka, so that a client
// is never given a node it cannot find: LISTENER_NOT_FOUND when the leader
// is alive and the answer's version has that code (Metadata v6+),
// LEADER_NOT_AVAILABLE otherwise.
func (s *Server) listedLeader(p *partition, brokers []brokerInfo, listenerNotFound bool) (leader int32, code int16) {
	switch {
	case p.leader < 0:
		return -1, kerr.LeaderNotAvailable.Code
	case !slices.ContainsFunc(brokers, func(b brokerInfo) bool { return b.id == p.leader }):
		if listenerNotFound && s.hasLiveBroker(p.leader) {
			return -1, kerr.ListenerNotFound.Code
		}
		return -1, kerr.LeaderNotAvailable.Code
	}
	return p.leader, 0
}

// isInternalTopic reports Kafka's internal topics.
// nonNil returns ids, or an empty list for nil: some clients refuse a
// null array where Kafka always sends one.
func nonNil(ids []int32) []int32 {
	if ids == nil {
		return []int32{}
	}
	return ids
}

func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
}

// topicCreateErrorCode maps a topic creation error to its Kafka code.
func topicCreateErrorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errInvalidTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, errInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, errTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, errInvalidConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, errReplicationFactor):
		return kerr.InvalidReplicationFactor.Code
	case errors.Is(err, errReplicaAssignment):
		return kerr.InvalidReplicaAssignment.Code
	case errors.Is(err, errPolicyViolation):
		return kerr.PolicyViolation.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code // no metadata quorum reachable
	default:
		return kerr.KafkaStorageError.Code
	}
}

// unknownTopicWait bounds how long a request naming a topic this broker
// does not know waits for its metadata to catch up with the active
// controller's (awaitUnknownTopics).
const unknownTopicWait = 500 * time.Millisecond

// awaitUnknownTopics, when one of names (those in denied aside) is a valid
// topic name this broker does not know, catches this broker's metadata up
// with the active controller's (bounded by unknownTopicWait) and brings
// the topic view in line, so that the request's lookups that follow find
// a topic created just before it.
//
// A topic is created by the active controller and reaches each broker's
// metadata in its own time: a client that created one (or learnt of it)
// through another broker and asked this one first was answered
// UNKNOWN_TOPIC_OR_PARTITION, and franz-go then waited 250 ms, or its
// 5 s metadata.min.age when a metadata reload was already pending (1 of 30
// fresh topics at load 10, docs/benchmarks.md "A fresh producer's first
// acknowledgement"). Kafka answers the same refusal and leaves it to the
// client's retries. The catch-up is a read index: the controller answers
// the index it has applied (every creation it answered is at or below
// it), so a topic that does not exist costs one round trip to it, not the
// whole bound, and a broker whose metadata is current costs nothing else.
func (s *Server) awaitUnknownTopics(ctx context.Context, names []string, denied map[string]bool) {
	unknown := func(name string) bool {
		if denied[name] || validTopicName(name) != nil {
			return false
		}
		_, ok := s.lookupTopic(name)
		return !ok
	}
	if !slices.ContainsFunc(names, unknown) {
		return
	}
	s.catchUpWithController(ctx, s.unknownTopicBound(), func(st *metadata.State) bool {
		return slices.ContainsFunc(names, func(name string) bool {
			_, inState := st.Topic(name)
			return inState && unknown(name)
		})
	})
}

// unknownTopicBound is unknownTopicWait, or the tests' replacement.
func (s *Server) unknownTopicBound() time.Duration {
	if ns := s.unknownTopicWaitNs.Load(); ns != 0 {
		return time.Duration(ns)
	}
	return unknownTopicWait
}

// catchUpWithController waits, at most bound, until this broker's metadata
// has reached the active controller's applied index, then rebuilds the
// topic view if viewLacks reports that the metadata now holds something
// the view does not (the view follows the metadata in followCluster's own
// time).
func (s *Server) catchUpWithController(ctx context.Context, bound time.Duration, viewLacks func(*metadata.State) bool) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if err := s.node.Controller.WaitCaughtUpWithController(ctx); err != nil {
		s.log.Debug("answering with the metadata this broker has", "err", err)
	}
	if viewLacks(s.node.Controller.State()) {
		s.syncClusterTopics()
	}
}
