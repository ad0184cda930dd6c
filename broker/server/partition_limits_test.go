package server

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster"
	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/placement"
	"github.com/tributary/tributary/broker/config"
)

func createTopicsBatch(validateOnly bool, topics ...kmsg.CreateTopicsRequestTopic) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version, req.TimeoutMillis, req.ValidateOnly = 7, 30000, validateOnly
	req.Topics = topics
	return req
}

func newTopicReq(name string, partitions int32) kmsg.CreateTopicsRequestTopic {
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
	return rt
}

func createPartitionsReq(topic string, count int32) *kmsg.CreatePartitionsRequest {
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.Version, req.TimeoutMillis = 3, 30000
	req.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: topic, Count: count}}
	return req
}

// TestCreateTopicsPartitionCountBounded: a principal with CREATE and ALTER
// on its topics (no right on the cluster) asked for up to 2^31-1
// partitions, and the active controller computed a placement of that
// size (1e6 partitions of 3 replicas: 4.2 s and 402 MiB allocated) before
// every broker applied it. At most 9,999 partitions of a topic per request
// now, as Kafka's 10,000 records per user operation, with its
// POLICY_VIOLATION; ValidateOnly answers the same; a topic the principal
// may not create is still TOPIC_AUTHORIZATION_FAILED first.
func TestCreateTopicsPartitionCountBounded(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		for k, v := range map[string]string{"allow.everyone.if.no.acl.found": "false", "max.broker.partitions": "2147483647"} {
			if err := c.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
	})
	setACLs(t, s, allow(kmsg.ACLResourceTypeTopic, "huge", kmsg.ACLOperationCreate), allow(kmsg.ACLResourceTypeTopic, "huge", kmsg.ACLOperationAlter),
		allow(kmsg.ACLResourceTypeTopic, "huge", kmsg.ACLOperationDescribeConfigs))
	policy := func(what string, codes []int16, msg *string) {
		t.Helper()
		if len(codes) != 1 || codes[0] != kerr.PolicyViolation.Code || msg == nil || !strings.Contains(*msg, "excessively large") {
			// Fatal: a broker without the bound would go on to the
			// unbounded requests below.
			t.Fatalf("%s: codes %v (%v), want POLICY_VIOLATION naming an excessively large batch", what, codes, msg)
		}
		if _, ok := s.lookupTopic("huge"); ok && !strings.HasPrefix(what, "CreatePartitions") {
			t.Fatalf("%s: topic created", what)
		}
	}
	// 10,000 first: a broker without the bound creates them in seconds
	// (and fails here) rather than trying 2^31-1.
	for _, n := range []int32{10000, 1 << 20, 1<<31 - 1} {
		for _, validate := range []bool{false, true} {
			resp := exchange(t, s, createTopicsBatch(validate, newTopicReq("huge", n))).(*kmsg.CreateTopicsResponse)
			policy("CreateTopics of "+strconv.Itoa(int(n))+" partitions", []int16{resp.Topics[0].ErrorCode}, resp.Topics[0].ErrorMessage)
		}
	}
	// An explicit assignment of 10,000 partitions, as large a request.
	assigned := kmsg.NewCreateTopicsRequestTopic()
	assigned.Topic, assigned.NumPartitions, assigned.ReplicationFactor = "huge", -1, -1
	for p := range int32(10000) {
		assigned.ReplicaAssignment = append(assigned.ReplicaAssignment, kmsg.CreateTopicsRequestTopicReplicaAssignment{Partition: p, Replicas: []int32{s.Config().NodeID}})
	}
	resp := exchange(t, s, createTopicsBatch(false, assigned)).(*kmsg.CreateTopicsResponse)
	policy("CreateTopics of 10,000 assigned partitions", []int16{resp.Topics[0].ErrorCode}, resp.Topics[0].ErrorMessage)

	// Authorization comes first: a topic the principal may not create.
	resp = exchange(t, s, createTopicsBatch(false, newTopicReq("other", 1<<31-1))).(*kmsg.CreateTopicsResponse)
	if resp.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("CreateTopics of a topic without CREATE: %v, want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}

	// CreatePartitions: at most 10,000 new partitions per request (one
	// record each).
	resp = exchange(t, s, createTopicsBatch(false, newTopicReq("huge", 2))).(*kmsg.CreateTopicsResponse)
	if resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("CreateTopics of 2 partitions: %v", kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	for _, n := range []int32{10003, 1<<31 - 1} {
		pr := exchange(t, s, createPartitionsReq("huge", n)).(*kmsg.CreatePartitionsResponse)
		policy("CreatePartitions to "+strconv.Itoa(int(n)), []int16{pr.Topics[0].ErrorCode}, pr.Topics[0].ErrorMessage)
	}
	if got, _ := s.lookupTopic("huge"); len(got.partitions) != 2 {
		t.Errorf("huge has %d partitions, want 2", len(got.partitions))
	}
}

// TestMaxBrokerPartitions: max.broker.partitions bounds the partition
// replicas the controller puts on a broker, as Amazon MSK's
// partitions-per-broker limit: CreateTopics and CreatePartitions that
// would pass it answer POLICY_VIOLATION naming the broker and the limit,
// and create nothing, with ValidateOnly too; up to the limit they succeed.
func TestMaxBrokerPartitions(t *testing.T) {
	const limit = 8
	s := startServer(t, func(c *config.Config) {
		for k, v := range map[string]string{"allow.everyone.if.no.acl.found": "false", "max.broker.partitions": strconv.Itoa(limit)} {
			if err := c.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
	})
	setACLs(t, s, allow(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLOperationCreate), allow(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLOperationAlter))
	if held := placement.LoadOf(s.node.Controller.State()).Replicas[s.Config().NodeID]; held != 0 {
		t.Fatalf("the broker holds %d replicas before the test", held)
	}
	create := func(name string, n int32) (int16, string) {
		t.Helper()
		r := exchange(t, s, createTopicsBatch(false, newTopicReq(name, n))).(*kmsg.CreateTopicsResponse).Topics[0]
		msg := ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		return r.ErrorCode, msg
	}
	if code, msg := create("a", 5); code != 0 {
		t.Fatalf("5 partitions under a limit of %d: %v %s", limit, kerr.ErrorForCode(code), msg)
	}
	code, msg := create("b", 4)
	if code != kerr.PolicyViolation.Code || !strings.Contains(msg, "max.broker.partitions (8)") || !strings.Contains(msg, "holds 5") {
		t.Fatalf("5 + 4 partitions under a limit of %d: %v %q, want POLICY_VIOLATION naming the limit", limit, kerr.ErrorForCode(code), msg)
	}
	if _, ok := s.lookupTopic("b"); ok {
		t.Fatal("b was created over the limit")
	}
	pr := exchange(t, s, createPartitionsReq("a", 9)).(*kmsg.CreatePartitionsResponse).Topics[0]
	if pr.ErrorCode != kerr.PolicyViolation.Code {
		t.Fatalf("growing a to 9 partitions under a limit of %d: %v, want POLICY_VIOLATION", limit, kerr.ErrorForCode(pr.ErrorCode))
	}
	// ValidateOnly answers as the request would, and creates nothing.
	for n, want := range map[int32]int16{4: kerr.PolicyViolation.Code, 3: 0} {
		r := exchange(t, s, createTopicsBatch(true, newTopicReq("b", n))).(*kmsg.CreateTopicsResponse).Topics[0]
		if r.ErrorCode != want {
			t.Errorf("ValidateOnly of b with %d partitions: %v, want %v", n, kerr.ErrorForCode(r.ErrorCode), kerr.ErrorForCode(want))
		}
	}
	for n, want := range map[int32]int16{9: kerr.PolicyViolation.Code, 8: 0} {
		vr := createPartitionsReq("a", n)
		vr.ValidateOnly = true
		if r := exchange(t, s, vr).(*kmsg.CreatePartitionsResponse).Topics[0]; r.ErrorCode != want {
			t.Errorf("ValidateOnly of a to %d partitions: %v, want %v", n, kerr.ErrorForCode(r.ErrorCode), kerr.ErrorForCode(want))
		}
	}
	if _, ok := s.lookupTopic("b"); ok {
		t.Fatal("ValidateOnly created b")
	}
	if code, msg := create("b", 3); code != 0 {
		t.Fatalf("5 + 3 partitions under a limit of %d: %v %s", limit, kerr.ErrorForCode(code), msg)
	}
	if code, _ := create("c", 1); code != kerr.PolicyViolation.Code {
		t.Fatalf("one partition past a full broker: %v, want POLICY_VIOLATION", kerr.ErrorForCode(code))
	}
	if got := placement.LoadOf(s.node.Controller.State()).Replicas[s.Config().NodeID]; got != limit {
		t.Errorf("the broker holds %d replicas, want %d", got, limit)
	}
}

// TestCreateACLsBounded: a principal with ALTER on the cluster grew the
// replicated ACLs by as many as one request holds (socket.request.max.bytes:
// about two million). At most 10,000 per request now (Kafka's records per
// user operation): POLICY_VIOLATION for each, none created. Kafka bounds
// the ACLs of a cluster no more than that, nor does Tributary.
func TestCreateACLsBounded(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("allow.everyone.if.no.acl.found", "false"); err != nil {
			t.Fatal(err)
		}
	})
	setACLs(t, s, clusterACL(kmsg.ACLOperationAlter))
	req := kmsg.NewPtrCreateACLsRequest()
	req.Version = 3
	for i := range 10001 {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, "t"+strconv.Itoa(i), kmsg.ACLResourcePatternTypeLiteral
		c.Principal, c.Host, c.Operation, c.PermissionType = "User:alice", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
		req.Creations = append(req.Creations, c)
	}
	resp := exchange(t, s, req).(*kmsg.CreateACLsResponse)
	if len(resp.Results) != 10001 || resp.Results[0].ErrorCode != kerr.PolicyViolation.Code || resp.Results[10000].ErrorCode != kerr.PolicyViolation.Code {
		t.Fatalf("10,001 ACLs in one request: %d results, first %v, want POLICY_VIOLATION", len(resp.Results), kerr.ErrorForCode(resp.Results[0].ErrorCode))
	}
	if n := s.node.Controller.State().ACLs.Len(); n != 1 {
		t.Fatalf("%d ACLs after the refusal, want the 1 the test set", n)
	}
}

// TestProducerIDExpiration: any principal with WRITE on a topic writes
// with producer ids of its choosing, and each partition kept each id's
// state for a fixed 24 hours (124 bytes a partition and id: 5,000 ids in
// 0.24 s held 0.59 MiB). producer.id.expiration.ms, Kafka's setting, now
// sets it: an id idle past it is dropped at the partition's next
// checkpoint, one still writing is kept.
func TestProducerIDExpiration(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("producer.id.expiration.ms", "2000"); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := s.createTopic("p", 1, nil); err != nil {
		t.Fatal(err)
	}
	produce := func(pid int64, seq int32) {
		t.Helper()
		if c := errorCodes(exchange(t, s, produceReq("p", -1, batch(pid, 0, seq, 1, 10)))); c[0] != 0 {
			t.Fatalf("producing as %d: %v", pid, kerr.ErrorForCode(c[0]))
		}
	}
	ids := func() map[int64]bool {
		top, _ := s.lookupTopic("p")
		out := map[int64]bool{}
		for _, ps := range top.partitions[0].log.Producers() {
			out[ps.ProducerID] = true
		}
		return out
	}
	produce(1000, 0)
	// 2000 writes every 200 ms: never idle past the 2 s, kept.
	deadline := time.Now().Add(20 * time.Second)
	for seq := int32(0); ; seq++ {
		produce(2000, seq)
		got := ids()
		if !got[1000] && got[2000] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("producers %v 20 s after 1000 went idle with producer.id.expiration.ms of 2 s, want 2000 only", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// alterBrokerResource sends IncrementalAlterConfigs SET name=value on one
// broker resource ("" for the cluster default) and returns its answer.
func alterBrokerResource(t *testing.T, s *Server, resource, name, value string, validateOnly bool) (int16, string) {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = validateOnly
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, resource
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name, cfg.Value = name, kmsg.StringPtr(value)
	rr.Configs = append(rr.Configs, cfg)
	req.Resources = append(req.Resources, rr)
	r := exchange(t, s, req).(*kmsg.IncrementalAlterConfigsResponse).Resources[0]
	msg := ""
	if r.ErrorMessage != nil {
		msg = *r.ErrorMessage
	}
	return r.ErrorCode, msg
}

// TestMaxBrokerPartitionsIsDynamic: max.broker.partitions is set for the
// whole cluster with IncrementalAlterConfigs on the cluster default, which
// needs ALTER_CONFIGS on the cluster (a principal without it is refused
// and changes nothing), and not on one broker's resource. The controller
// and ValidateOnly apply the dynamic value over the static one; lowering
// it below what the broker holds is taken, and only more is refused.
func TestMaxBrokerPartitionsIsDynamic(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("allow.everyone.if.no.acl.found", "false"); err != nil {
			t.Fatal(err)
		}
	})
	topics := []metadata.ACL{allow(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLOperationCreate), allow(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLOperationAlter)}
	setACLs(t, s, topics...)
	limit := func() int {
		return cluster.BrokerPartitionLimit(s.node.Controller.State(), s.static.MaxBrokerPartitions)
	}
	if code, _ := alterBrokerResource(t, s, "", "max.broker.partitions", "3", false); code != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("setting max.broker.partitions without ALTER_CONFIGS on the cluster: %v, want CLUSTER_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	if got := limit(); got != 10000 {
		t.Fatalf("after the refused change the limit is %d, want the static 10000", got)
	}
	setACLs(t, s, append(topics, clusterACL(kmsg.ACLOperationAlterConfigs))...)
	node := strconv.Itoa(int(s.Config().NodeID))
	if code, msg := alterBrokerResource(t, s, node, "max.broker.partitions", "3", false); code != kerr.InvalidConfig.Code || !strings.Contains(msg, "cluster-wide") {
		t.Fatalf("setting max.broker.partitions on broker %s: %v %q, want INVALID_CONFIG saying it is cluster-wide", node, kerr.ErrorForCode(code), msg)
	}
	for _, bad := range []string{"0", "x"} {
		if code, _ := alterBrokerResource(t, s, "", "max.broker.partitions", bad, false); code != kerr.InvalidConfig.Code {
			t.Fatalf("max.broker.partitions=%s: %v, want INVALID_CONFIG", bad, kerr.ErrorForCode(code))
		}
	}
	if code, msg := alterBrokerResource(t, s, "", "max.broker.partitions", "3", false); code != 0 {
		t.Fatalf("setting max.broker.partitions on the cluster default: %v %s", kerr.ErrorForCode(code), msg)
	}
	create := func(name string, n int32, validateOnly bool) (int16, string) {
		t.Helper()
		r := exchange(t, s, createTopicsBatch(validateOnly, newTopicReq(name, n))).(*kmsg.CreateTopicsResponse).Topics[0]
		msg := ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		return r.ErrorCode, msg
	}
	for _, validateOnly := range []bool{true, false} {
		if code, msg := create("a", 4, validateOnly); code != kerr.PolicyViolation.Code || !strings.Contains(msg, "over max.broker.partitions (3)") {
			t.Fatalf("4 partitions under a cluster-wide limit of 3 (ValidateOnly %v): %v %q, want POLICY_VIOLATION naming the limit", validateOnly, kerr.ErrorForCode(code), msg)
		}
	}
	if code, msg := create("a", 3, false); code != 0 {
		t.Fatalf("3 partitions under a limit of 3: %v %s", kerr.ErrorForCode(code), msg)
	}
	if code, msg := alterBrokerResource(t, s, "", "max.broker.partitions", "1", false); code != 0 {
		t.Fatalf("lowering max.broker.partitions below the 3 the broker holds: %v %s, want it taken", kerr.ErrorForCode(code), msg)
	}
	if code, msg := create("b", 1, false); code != kerr.PolicyViolation.Code || !strings.Contains(msg, "holds 3") || !strings.Contains(msg, "(1)") {
		t.Fatalf("a partition more on a broker over the lowered limit: %v %q, want POLICY_VIOLATION", kerr.ErrorForCode(code), msg)
	}
	if got, _ := s.lookupTopic("a"); len(got.partitions) != 3 {
		t.Fatalf("a has %d partitions after the limit was lowered, want 3", len(got.partitions))
	}
}
