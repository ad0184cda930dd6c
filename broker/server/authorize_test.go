package server

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/security/authz"
)

// allow is an ACL letting every principal (the test's clients are
// User:ANONYMOUS) do op on a resource.
func allow(typ kmsg.ACLResourceType, name string, op kmsg.ACLOperation) metadata.ACL {
	if typ == kmsg.ACLResourceTypeCluster {
		name = authz.ClusterName
	}
	return metadata.ACL{ResourceType: typ, ResourceName: name, PatternType: kmsg.ACLResourcePatternTypeLiteral,
		Principal: authz.WildcardPrincipal, Host: authz.WildcardHost, Operation: op, Permission: kmsg.ACLPermissionTypeAllow}
}

// denyACL is allow's DENY.
func denyACL(typ kmsg.ACLResourceType, name string, op kmsg.ACLOperation) metadata.ACL {
	a := allow(typ, name, op)
	a.Permission = kmsg.ACLPermissionTypeDeny
	return a
}

// offsetFetchLists checks whether an OffsetFetch answer for every topic
// of a group (any version) lists topic.
func offsetFetchLists(topic string, want bool) func(kmsg.Response) error {
	return func(r kmsg.Response) error {
		resp := r.(*kmsg.OffsetFetchResponse)
		var names []string
		for _, t := range resp.Topics {
			names = append(names, t.Topic)
		}
		for _, g := range resp.Groups {
			for _, t := range g.Topics {
				names = append(names, t.Topic)
			}
		}
		if slices.Contains(names, topic) != want {
			return fmt.Errorf("topics listed %v; want %s listed: %v", names, topic, want)
		}
		return nil
	}
}

func topicACL(name string, op kmsg.ACLOperation) metadata.ACL {
	return allow(kmsg.ACLResourceTypeTopic, name, op)
}

func groupACL(name string, op kmsg.ACLOperation) metadata.ACL {
	return allow(kmsg.ACLResourceTypeGroup, name, op)
}

func clusterACL(op kmsg.ACLOperation) metadata.ACL {
	return allow(kmsg.ACLResourceTypeCluster, "", op)
}

// errorCodes collects every ErrorCode field of a response, at any depth.
func errorCodes(resp kmsg.Response) []int16 {
	var out []int16
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Struct:
			for i := range v.NumField() {
				f := v.Type().Field(i)
				if f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 {
					out = append(out, int16(v.Field(i).Int()))
					continue
				}
				walk(v.Field(i))
			}
		}
	}
	walk(reflect.ValueOf(resp))
	return out
}

var authorizationCodes = []int16{
	kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Code,
	kerr.TransactionalIDAuthorizationFailed.Code, kerr.DelegationTokenAuthorizationFailed.Code,
}

// apiCase is one request of an API, answered once without any ACL and
// once with grant.
type apiCase struct {
	name string
	req  func() kmsg.Request
	// grant lets the request through.
	grant []metadata.ACL
	// deny is the code the request gets without an ACL, and with only
	// partial: it must be answered, and be the only error in the response.
	// 0 for requests whose denial leaves things out instead (check denied
	// then).
	deny int16
	// partial is not enough: the request gets partialDeny (deny when 0),
	// or, when partialLists is set, an answer it accepts (a listing that
	// leaves out what partial does not allow).
	partial      []metadata.ACL
	partialDeny  int16
	partialLists func(kmsg.Response) error
	// denied and allowed check more of each answer, when set.
	denied, allowed func(kmsg.Response) error
}

// at sets a request to the newest version served.
func at[R kmsg.Request](r R) R {
	a, _ := apiByKey(r.Key())
	r.SetVersion(a.max)
	return r
}

// producerEpoch is a transactional producer's id and epoch.
type producerEpoch struct {
	id    int64
	epoch int16
}

// initTransactionalID gets a producer id for a transactional id from its
// coordinator, waiting while __transaction_state is created and loaded.
func initTransactionalID(t *testing.T, s *Server, id string) producerEpoch {
	t.Helper()
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.Version, find.CoordinatorType, find.CoordinatorKeys = 4, coordinatorTxn, []string{id}
	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version, init.TransactionalID, init.TransactionTimeoutMillis = 4, kmsg.StringPtr(id), 60000
	for deadline := time.Now().Add(20 * time.Second); ; {
		code := exchange(t, s, find).(*kmsg.FindCoordinatorResponse).Coordinators[0].ErrorCode
		if code == 0 {
			r := exchange(t, s, init).(*kmsg.InitProducerIDResponse)
			if code = r.ErrorCode; code == 0 {
				return producerEpoch{r.ProducerID, r.ProducerEpoch}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("InitProducerId for %s: %v", id, kerr.ErrorForCode(code))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func authorizationCases(s *Server, txns map[string]producerEpoch) map[int16][]apiCase {
	const topic, group = "t", "g"
	fetch := func(replica int32) func() kmsg.Request {
		return func() kmsg.Request {
			f := at(fetchReq(topic, 0, 1<<20, 1<<20))
			if t, ok := s.lookupTopic(topic); ok {
				f.Topics[0].TopicID = t.id
			}
			f.MaxWaitMillis = 1
			f.ReplicaID, f.ReplicaState.ID = replica, replica
			return f
		}
	}
	metadataReq := func(names ...string) func() kmsg.Request {
		return func() kmsg.Request {
			r := at(kmsg.NewPtrMetadataRequest())
			r.AllowAutoTopicCreation = true
			r.IncludeTopicAuthorizedOperations = true
			for _, n := range names {
				rt := kmsg.NewMetadataRequestTopic()
				rt.Topic = kmsg.StringPtr(n)
				r.Topics = append(r.Topics, rt)
			}
			if names == nil {
				r.Topics = nil
			}
			return r
		}
	}
	listsTopic := func(want bool) func(kmsg.Response) error {
		return func(r kmsg.Response) error {
			var names []string
			for _, t := range r.(*kmsg.MetadataResponse).Topics {
				names = append(names, *t.Topic)
			}
			if slices.Contains(names, topic) != want {
				return fmt.Errorf("topics listed: %v; want %s listed: %v", names, topic, want)
			}
			return nil
		}
	}
	groupReq := func(key int16) func() kmsg.Request {
		return func() kmsg.Request {
			r := at(kmsg.RequestForKey(key))
			switch r := r.(type) {
			case *kmsg.JoinGroupRequest:
				r.Group, r.ProtocolType, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = "joiner", "consumer", 10000, 10000
				r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0}}}
			case *kmsg.HeartbeatRequest:
				r.Group, r.MemberID, r.Generation = "joiner", "m", 1
			case *kmsg.LeaveGroupRequest:
				r.Group = "joiner"
				r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}
			case *kmsg.SyncGroupRequest:
				r.Group, r.MemberID, r.Generation = "joiner", "m", 1
			}
			return r
		}
	}
	read := kmsg.ACLOperationRead
	describe := kmsg.ACLOperationDescribe
	write := kmsg.ACLOperationWrite
	txnACL := func(id string, op kmsg.ACLOperation) metadata.ACL {
		return allow(kmsg.ACLResourceTypeTransactionalId, id, op)
	}
	etl := txns["etl"]
	addPartitions := func(version int16) func() kmsg.Request {
		return func() kmsg.Request {
			r := kmsg.NewPtrAddPartitionsToTxnRequest()
			r.Version = version
			if version < 4 {
				r.TransactionalID, r.ProducerID, r.ProducerEpoch = "etl", etl.id, etl.epoch
				r.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: topic, Partitions: []int32{0}}}
				return r
			}
			rt := kmsg.NewAddPartitionsToTxnRequestTransaction()
			rt.TransactionalID, rt.ProducerID, rt.ProducerEpoch, rt.VerifyOnly = "etl", etl.id, etl.epoch, true
			rt.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: topic, Partitions: []int32{0}}}
			r.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{rt}
			return r
		}
	}
	txnOffsetCommit := func() kmsg.Request {
		r := at(kmsg.NewPtrTxnOffsetCommitRequest())
		r.TransactionalID, r.Group, r.ProducerID, r.ProducerEpoch, r.Generation = "etl", group, etl.id, etl.epoch, -1
		r.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}
		return r
	}
	noErrors := func(r kmsg.Response) error {
		for _, c := range errorCodes(r) {
			if c != 0 {
				return fmt.Errorf("%v", kerr.ErrorForCode(c))
			}
		}
		return nil
	}
	describeTxn := func(r kmsg.Response) (kmsg.DescribeTransactionsResponseTransactionState, error) {
		ts := r.(*kmsg.DescribeTransactionsResponse).TransactionStates[0]
		if ts.ErrorCode != 0 || ts.State != "Ongoing" || ts.ProducerID != etl.id {
			return ts, fmt.Errorf("described %+v, want etl's ongoing transaction", ts)
		}
		return ts, nil
	}
	listedTxns := func(want ...string) func(kmsg.Response) error {
		return func(r kmsg.Response) error {
			var ids []string
			for _, ts := range r.(*kmsg.ListTransactionsResponse).TransactionStates {
				ids = append(ids, ts.TransactionalID)
			}
			if !slices.Equal(ids, want) {
				return fmt.Errorf("listed %v, want %v", ids, want)
			}
			return nil
		}
	}
	return map[int16][]apiCase{
		0: {{req: func() kmsg.Request { return at(produceReq(topic, -1, batch(-1, -1, -1, 1, 10))) },
			grant: []metadata.ACL{topicACL(topic, kmsg.ACLOperationWrite)}, deny: kerr.TopicAuthorizationFailed.Code},
			{name: "transactional", req: func() kmsg.Request {
				r := at(produceReq(topic, -1, txnRecords(etl.id, etl.epoch)))
				r.TransactionID = kmsg.StringPtr("etl")
				return r
			}, grant: []metadata.ACL{txnACL("etl", write), topicACL(topic, write)}, deny: kerr.TransactionalIDAuthorizationFailed.Code,
				partial: []metadata.ACL{topicACL(topic, write)}},
			{name: "transactional records, no transactional id", req: func() kmsg.Request { return at(produceReq(topic, -1, txnRecords(etl.id, etl.epoch))) },
				deny: kerr.TransactionalIDAuthorizationFailed.Code, partial: []metadata.ACL{topicACL(topic, write), txnACL("*", write)}},
		},
		1: {
			{name: "consumer", req: fetch(-1), grant: []metadata.ACL{topicACL(topic, read)}, deny: kerr.TopicAuthorizationFailed.Code},
			{name: "follower", req: fetch(2), grant: []metadata.ACL{clusterACL(kmsg.ACLOperationClusterAction)}, deny: kerr.TopicAuthorizationFailed.Code,
				allowed: func(r kmsg.Response) error {
					if c := r.(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode; c != kerr.NotLeaderForPartition.Code {
						return fmt.Errorf("follower fetch on the client listener: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(c))
					}
					return nil
				}},
		},
		2: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrListOffsetsRequest())
			r.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: topic, Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, Timestamp: -1, CurrentLeaderEpoch: -1}}}}
			return r
		}, grant: []metadata.ACL{topicACL(topic, describe)}, deny: kerr.TopicAuthorizationFailed.Code}},
		3: {
			{name: "named", req: metadataReq(topic), grant: []metadata.ACL{topicACL(topic, describe)}, deny: kerr.TopicAuthorizationFailed.Code,
				allowed: func(r kmsg.Response) error {
					ops := r.(*kmsg.MetadataResponse).Topics[0].AuthorizedOperations
					if ops != 1<<int(describe) {
						return fmt.Errorf("authorized operations %b, want DESCRIBE only", ops)
					}
					return nil
				}},
			{name: "all topics", req: metadataReq(), grant: []metadata.ACL{topicACL(topic, describe)}, denied: listsTopic(false), allowed: listsTopic(true)},
			{name: "auto-create", req: metadataReq("auto"), grant: []metadata.ACL{topicACL("auto", describe), topicACL("auto", kmsg.ACLOperationCreate)},
				partial: []metadata.ACL{topicACL("auto", describe)}, deny: kerr.TopicAuthorizationFailed.Code},
		},
		8: {{name: "group", req: func() kmsg.Request {
			r := at(kmsg.NewPtrOffsetCommitRequest())
			r.Group, r.Generation = group, -1
			r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}
			return r
		}, grant: []metadata.ACL{groupACL(group, read), topicACL(topic, read)}, deny: kerr.GroupAuthorizationFailed.Code},
			{name: "topic", req: func() kmsg.Request {
				r := at(kmsg.NewPtrOffsetCommitRequest())
				r.Group, r.Generation = group, -1
				r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}
				return r
			}, grant: []metadata.ACL{groupACL(group, read), topicACL(topic, read)}, deny: kerr.GroupAuthorizationFailed.Code,
				partial: []metadata.ACL{groupACL(group, read)}, partialDeny: kerr.TopicAuthorizationFailed.Code}},
		9: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrOffsetFetchRequest())
			r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{0}}}}}
			return r
		}, grant: []metadata.ACL{groupACL(group, describe), topicACL(topic, describe)}, deny: kerr.GroupAuthorizationFailed.Code,
			partial: []metadata.ACL{groupACL(group, describe)}, partialDeny: kerr.TopicAuthorizationFailed.Code,
			allowed: func(r kmsg.Response) error {
				if p := r.(*kmsg.OffsetFetchResponse).Groups[0].Topics[0].Partitions[0]; p.Offset != 1 {
					return fmt.Errorf("committed offset %d, want 1", p.Offset)
				}
				return nil
			}},
			{name: "all topics", req: func() kmsg.Request {
				r := at(kmsg.NewPtrOffsetFetchRequest())
				r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group}}
				return r
			}, grant: []metadata.ACL{groupACL(group, describe), topicACL(topic, describe)}, deny: kerr.GroupAuthorizationFailed.Code,
				allowed: offsetFetchLists(topic, true), partialLists: offsetFetchLists(topic, false), partial: []metadata.ACL{groupACL(group, describe)}},
			// v7 and before: one group, its own code paths.
			{name: "v7", req: func() kmsg.Request {
				r := kmsg.NewPtrOffsetFetchRequest()
				r.Version, r.Group = 7, group
				r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{0}}}
				return r
			}, grant: []metadata.ACL{groupACL(group, describe), topicACL(topic, describe)}, deny: kerr.GroupAuthorizationFailed.Code,
				partial: []metadata.ACL{groupACL(group, describe)}, partialDeny: kerr.TopicAuthorizationFailed.Code},
			{name: "v7, all topics", req: func() kmsg.Request {
				r := kmsg.NewPtrOffsetFetchRequest()
				r.Version, r.Group = 7, group
				return r
			}, grant: []metadata.ACL{groupACL(group, describe), topicACL(topic, describe)}, deny: kerr.GroupAuthorizationFailed.Code,
				allowed: offsetFetchLists(topic, true), partialLists: offsetFetchLists(topic, false), partial: []metadata.ACL{groupACL(group, describe)}},
		},
		10: {
			{name: "group", req: func() kmsg.Request {
				r := at(kmsg.NewPtrFindCoordinatorRequest())
				r.CoordinatorKeys = []string{group}
				return r
			}, grant: []metadata.ACL{groupACL(group, describe)}, deny: kerr.GroupAuthorizationFailed.Code},
			{name: "transaction", req: func() kmsg.Request {
				r := at(kmsg.NewPtrFindCoordinatorRequest())
				r.CoordinatorType, r.CoordinatorKeys = coordinatorTxn, []string{"tx"}
				return r
			}, grant: []metadata.ACL{allow(kmsg.ACLResourceTypeTransactionalId, "tx", describe)}, deny: kerr.TransactionalIDAuthorizationFailed.Code},
		},
		11: {{req: groupReq(11), grant: []metadata.ACL{groupACL("joiner", read)}, deny: kerr.GroupAuthorizationFailed.Code}},
		12: {{req: groupReq(12), grant: []metadata.ACL{groupACL("joiner", read)}, deny: kerr.GroupAuthorizationFailed.Code}},
		13: {{req: groupReq(13), grant: []metadata.ACL{groupACL("joiner", read)}, deny: kerr.GroupAuthorizationFailed.Code}},
		14: {{req: groupReq(14), grant: []metadata.ACL{groupACL("joiner", read)}, deny: kerr.GroupAuthorizationFailed.Code}},
		15: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrDescribeGroupsRequest())
			r.Groups, r.IncludeAuthorizedOperations = []string{group}, true
			return r
		}, grant: []metadata.ACL{groupACL(group, describe)}, deny: kerr.GroupAuthorizationFailed.Code}},
		16: {{req: func() kmsg.Request { return at(kmsg.NewPtrListGroupsRequest()) }, grant: []metadata.ACL{groupACL(group, describe)},
			denied: func(r kmsg.Response) error {
				if gs := r.(*kmsg.ListGroupsResponse).Groups; len(gs) != 0 {
					return fmt.Errorf("listed %+v without DESCRIBE", gs)
				}
				return nil
			},
			allowed: func(r kmsg.Response) error {
				if gs := r.(*kmsg.ListGroupsResponse).Groups; len(gs) != 1 || gs[0].Group != group {
					return fmt.Errorf("listed %+v, want %s", gs, group)
				}
				return nil
			}}},
		// The SASL APIs are served before authentication: nothing to
		// deny. On a listener without SASL they are ILLEGAL_SASL_STATE.
		17: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrSASLHandshakeRequest())
			r.Mechanism = "SCRAM-SHA-512"
			return r
		}, denied: illegalSaslState}},
		36: {{req: func() kmsg.Request { return at(kmsg.NewPtrSASLAuthenticateRequest()) }, denied: illegalSaslState}},
		18: {{req: func() kmsg.Request { return at(kmsg.NewPtrApiVersionsRequest()) }, denied: func(kmsg.Response) error { return nil }}},
		19: {
			{name: "topic ACL", req: func() kmsg.Request { return createTopicsReq("new1") }, grant: []metadata.ACL{topicACL("new1", kmsg.ACLOperationCreate), topicACL("new1", kmsg.ACLOperationDescribeConfigs)},
				deny: kerr.TopicAuthorizationFailed.Code},
			{name: "cluster ACL", req: func() kmsg.Request { return createTopicsReq("new2") }, grant: []metadata.ACL{clusterACL(kmsg.ACLOperationCreate)},
				deny: kerr.TopicAuthorizationFailed.Code, allowed: func(r kmsg.Response) error {
					// Created, but its configs are not the principal's to see.
					if t := r.(*kmsg.CreateTopicsResponse).Topics[0]; t.ErrorCode != 0 || t.ConfigErrorCode != kerr.TopicAuthorizationFailed.Code || t.Configs != nil {
						return fmt.Errorf("created without DESCRIBE_CONFIGS: %+v", t)
					}
					return nil
				}},
		},
		20: {
			// By id, DELETE is not enough where DESCRIBE is denied: the
			// name is not the principal's to learn. No grant: the case
			// after it deletes the topic.
			{name: "by id", req: func() kmsg.Request {
				r := at(kmsg.NewPtrDeleteTopicsRequest())
				dt := kmsg.NewDeleteTopicsRequestTopic()
				if t, ok := s.lookupTopic("doomed"); ok {
					dt.TopicID = t.id
				}
				r.Topics = []kmsg.DeleteTopicsRequestTopic{dt}
				return r
			}, deny: kerr.TopicAuthorizationFailed.Code, partial: []metadata.ACL{topicACL("doomed", kmsg.ACLOperationDelete), denyACL(kmsg.ACLResourceTypeTopic, "doomed", describe)},
				denied: func(r kmsg.Response) error {
					if t := r.(*kmsg.DeleteTopicsResponse).Topics[0]; t.Topic != nil {
						return fmt.Errorf("the refusal names the topic %q", *t.Topic)
					}
					return nil
				}},
			{req: func() kmsg.Request {
				r := at(kmsg.NewPtrDeleteTopicsRequest())
				r.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("doomed")}}
				return r
			}, grant: []metadata.ACL{topicACL("doomed", kmsg.ACLOperationDelete)}, deny: kerr.TopicAuthorizationFailed.Code},
		},
		21: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrDeleteRecordsRequest())
			r.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: topic, Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: -1}}}}
			return r
		}, grant: []metadata.ACL{topicACL(topic, kmsg.ACLOperationDelete)}, deny: kerr.TopicAuthorizationFailed.Code}},
		22: {
			{name: "idempotent, cluster ACL", req: func() kmsg.Request { return at(kmsg.NewPtrInitProducerIDRequest()) },
				grant: []metadata.ACL{clusterACL(kmsg.ACLOperationIdempotentWrite)}, deny: kerr.ClusterAuthorizationFailed.Code},
			{name: "idempotent, WRITE on a topic", req: func() kmsg.Request { return at(kmsg.NewPtrInitProducerIDRequest()) },
				grant: []metadata.ACL{topicACL("anything", kmsg.ACLOperationWrite)}, deny: kerr.ClusterAuthorizationFailed.Code},
			{name: "transactional", req: func() kmsg.Request {
				r := at(kmsg.NewPtrInitProducerIDRequest())
				r.TransactionalID = kmsg.StringPtr("tx")
				return r
			}, grant: []metadata.ACL{allow(kmsg.ACLResourceTypeTransactionalId, "tx", kmsg.ACLOperationWrite)}, deny: kerr.TransactionalIDAuthorizationFailed.Code},
		},
		23: {
			{name: "consumer", req: offsetForLeaderEpochReq(topic), grant: []metadata.ACL{topicACL(topic, describe)}, deny: kerr.TopicAuthorizationFailed.Code},
			{name: "broker", req: offsetForLeaderEpochReq(topic), grant: []metadata.ACL{clusterACL(kmsg.ACLOperationClusterAction)}, deny: kerr.TopicAuthorizationFailed.Code},
		},
		24: {
			{name: "producer", req: addPartitions(3), grant: []metadata.ACL{txnACL("etl", write), topicACL(topic, write)},
				deny: kerr.TransactionalIDAuthorizationFailed.Code, partial: []metadata.ACL{txnACL("etl", write)}, partialDeny: kerr.TopicAuthorizationFailed.Code,
				allowed: noErrors},
			// Even with ALL on every topic: the offsets partition joins a
			// transaction through AddOffsetsToTxn only.
			{name: "internal topic", req: func() kmsg.Request {
				r := addPartitions(3)().(*kmsg.AddPartitionsToTxnRequest)
				r.Topics = append(r.Topics, kmsg.AddPartitionsToTxnRequestTopic{Topic: offsetsTopic, Partitions: []int32{0}})
				return r
			}, deny: kerr.TransactionalIDAuthorizationFailed.Code, partial: []metadata.ACL{txnACL("etl", write), topicACL("*", kmsg.ACLOperationAll)},
				partialDeny: kerr.TopicAuthorizationFailed.Code},
			{name: "broker verification", req: addPartitions(4), grant: []metadata.ACL{clusterACL(kmsg.ACLOperationClusterAction)},
				deny: kerr.ClusterAuthorizationFailed.Code, partial: []metadata.ACL{txnACL("etl", write), topicACL(topic, write)}, allowed: noErrors},
		},
		25: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrAddOffsetsToTxnRequest())
			r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Group = "etl", etl.id, etl.epoch, group
			return r
		}, grant: []metadata.ACL{txnACL("etl", write), groupACL(group, read)}, deny: kerr.TransactionalIDAuthorizationFailed.Code,
			partial: []metadata.ACL{txnACL("etl", write)}, partialDeny: kerr.GroupAuthorizationFailed.Code, allowed: noErrors}},
		26: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrEndTxnRequest())
			r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit = "ended", txns["ended"].id, txns["ended"].epoch, true
			return r
		}, grant: []metadata.ACL{txnACL("ended", write)}, deny: kerr.TransactionalIDAuthorizationFailed.Code,
			partial: []metadata.ACL{txnACL("ended", describe)}, allowed: noErrors}},
		27: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrWriteTxnMarkersRequest())
			// A partition that does not exist: the marker is refused after
			// the authorization, and nothing is written.
			r.Markers = []kmsg.WriteTxnMarkersRequestMarker{{ProducerID: etl.id, ProducerEpoch: etl.epoch, Committed: false,
				Topics: []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: topic, Partitions: []int32{7}}}}}
			return r
		}, grant: []metadata.ACL{clusterACL(kmsg.ACLOperationClusterAction)}, deny: kerr.ClusterAuthorizationFailed.Code,
			partial: []metadata.ACL{topicACL(topic, kmsg.ACLOperationAll), clusterACL(kmsg.ACLOperationAlter)},
			allowed: func(r kmsg.Response) error {
				if c := r.(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode; c != kerr.UnknownTopicOrPartition.Code {
					return fmt.Errorf("marker on a partition that does not exist: %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(c))
				}
				return nil
			}}},
		28: {
			{name: "group", req: txnOffsetCommit, grant: []metadata.ACL{txnACL("etl", write), groupACL(group, read), topicACL(topic, read)},
				deny: kerr.TransactionalIDAuthorizationFailed.Code, partial: []metadata.ACL{txnACL("etl", write), topicACL(topic, read)},
				partialDeny: kerr.GroupAuthorizationFailed.Code, allowed: noErrors},
			{name: "topic", req: txnOffsetCommit, grant: []metadata.ACL{txnACL("etl", write), groupACL(group, read), topicACL(topic, read)},
				deny: kerr.TransactionalIDAuthorizationFailed.Code, partial: []metadata.ACL{txnACL("etl", write), groupACL(group, read)},
				partialDeny: kerr.TopicAuthorizationFailed.Code, allowed: noErrors},
		},
		29: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrDescribeACLsRequest())
			r.ResourceType, r.ResourcePatternType, r.Operation, r.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
			return r
		}, grant: []metadata.ACL{clusterACL(describe)}, deny: kerr.ClusterAuthorizationFailed.Code,
			allowed: func(r kmsg.Response) error {
				if rs := r.(*kmsg.DescribeACLsResponse).Resources; len(rs) != 1 || rs[0].ResourceType != kmsg.ACLResourceTypeCluster {
					return fmt.Errorf("described %+v, want the one cluster ACL", rs)
				}
				return nil
			}}},
		30: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrCreateACLsRequest())
			r.Creations = []kmsg.CreateACLsRequestCreation{{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "x", ResourcePatternType: kmsg.ACLResourcePatternTypeLiteral,
				Principal: "User:x", Host: "*", Operation: read, PermissionType: kmsg.ACLPermissionTypeAllow}}
			return r
		}, grant: []metadata.ACL{clusterACL(kmsg.ACLOperationAlter)}, deny: kerr.ClusterAuthorizationFailed.Code}},
		31: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrDeleteACLsRequest())
			r.Filters = []kmsg.DeleteACLsRequestFilter{{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: kmsg.StringPtr("x"), ResourcePatternType: kmsg.ACLResourcePatternTypeAny,
				Operation: kmsg.ACLOperationAny, PermissionType: kmsg.ACLPermissionTypeAny}}
			return r
		}, grant: []metadata.ACL{clusterACL(kmsg.ACLOperationAlter)}, deny: kerr.ClusterAuthorizationFailed.Code}},
		32: {
			{name: "topic", req: describeConfigsReq(kmsg.ConfigResourceTypeTopic, topic), grant: []metadata.ACL{topicACL(topic, kmsg.ACLOperationDescribeConfigs)}, deny: kerr.TopicAuthorizationFailed.Code},
			{name: "broker", req: describeConfigsReq(kmsg.ConfigResourceTypeBroker, ""), grant: []metadata.ACL{clusterACL(kmsg.ACLOperationDescribeConfigs)}, deny: kerr.ClusterAuthorizationFailed.Code},
		},
		33: {
			{name: "topic", req: func() kmsg.Request {
				r := at(kmsg.NewPtrAlterConfigsRequest())
				r.ValidateOnly = true
				r.Resources = []kmsg.AlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: topic,
					Configs: []kmsg.AlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: kmsg.StringPtr("60000")}}}}
				return r
			}, grant: []metadata.ACL{topicACL(topic, kmsg.ACLOperationAlterConfigs)}, deny: kerr.TopicAuthorizationFailed.Code},
			{name: "broker", req: func() kmsg.Request {
				r := at(kmsg.NewPtrAlterConfigsRequest())
				r.ValidateOnly = true
				r.Resources = []kmsg.AlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "",
					Configs: []kmsg.AlterConfigsRequestResourceConfig{{Name: "message.max.bytes", Value: kmsg.StringPtr("2000000")}}}}
				return r
			}, grant: []metadata.ACL{clusterACL(kmsg.ACLOperationAlterConfigs)}, deny: kerr.ClusterAuthorizationFailed.Code},
		},
		35: {{req: func() kmsg.Request { return at(kmsg.NewPtrDescribeLogDirsRequest()) }, grant: []metadata.ACL{clusterACL(describe)}, deny: kerr.ClusterAuthorizationFailed.Code}},
		37: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrCreatePartitionsRequest())
			r.ValidateOnly, r.TimeoutMillis = true, 5000
			r.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: topic, Count: 2}}
			return r
		}, grant: []metadata.ACL{topicACL(topic, kmsg.ACLOperationAlter)}, deny: kerr.TopicAuthorizationFailed.Code}},
		42: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrDeleteGroupsRequest())
			r.Groups = []string{"empty"}
			return r
		}, grant: []metadata.ACL{groupACL("empty", kmsg.ACLOperationDelete)}, deny: kerr.GroupAuthorizationFailed.Code}},
		43: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrElectLeadersRequest())
			r.TimeoutMillis = 5000
			r.Topics = []kmsg.ElectLeadersRequestTopic{{Topic: topic, Partitions: []int32{0}}}
			return r
		}, grant: []metadata.ACL{clusterACL(kmsg.ACLOperationAlter)}, deny: kerr.ClusterAuthorizationFailed.Code}},
		44: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrIncrementalAlterConfigsRequest())
			r.ValidateOnly = true
			r.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: topic,
				Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Op: kmsg.IncrementalAlterConfigOpSet, Value: kmsg.StringPtr("60000")}}}}
			return r
		}, grant: []metadata.ACL{topicACL(topic, kmsg.ACLOperationAlterConfigs)}, deny: kerr.TopicAuthorizationFailed.Code},
			// The replication throttle is set as any other config: its
			// rates on the cluster, its replicas on the topic.
			{name: "throttle rate", req: func() kmsg.Request {
				r := at(kmsg.NewPtrIncrementalAlterConfigsRequest())
				r.ValidateOnly = true
				r.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "",
					Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "leader.replication.throttled.rate", Op: kmsg.IncrementalAlterConfigOpSet, Value: kmsg.StringPtr("1048576")}}}}
				return r
			}, grant: []metadata.ACL{clusterACL(kmsg.ACLOperationAlterConfigs)}, deny: kerr.ClusterAuthorizationFailed.Code},
			{name: "throttled replicas", req: func() kmsg.Request {
				r := at(kmsg.NewPtrIncrementalAlterConfigsRequest())
				r.ValidateOnly = true
				r.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: topic,
					Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "follower.replication.throttled.replicas", Op: kmsg.IncrementalAlterConfigOpSet, Value: kmsg.StringPtr("0:1")}}}}
				return r
			}, grant: []metadata.ACL{topicACL(topic, kmsg.ACLOperationAlterConfigs)}, deny: kerr.TopicAuthorizationFailed.Code},
		},
		45: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrAlterPartitionAssignmentsRequest())
			r.TimeoutMillis = 5000
			r.Topics = []kmsg.AlterPartitionAssignmentsRequestTopic{{Topic: topic, Partitions: []kmsg.AlterPartitionAssignmentsRequestTopicPartition{{Partition: 0, Replicas: []int32{1}}}}}
			return r
		}, grant: []metadata.ACL{clusterACL(kmsg.ACLOperationAlter)}, deny: kerr.ClusterAuthorizationFailed.Code}},
		46: {{req: func() kmsg.Request { return at(kmsg.NewPtrListPartitionReassignmentsRequest()) }, grant: []metadata.ACL{clusterACL(describe)}, deny: kerr.ClusterAuthorizationFailed.Code}},
		47: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrOffsetDeleteRequest())
			r.Group = group
			r.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "other", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
			return r
		}, grant: []metadata.ACL{groupACL(group, kmsg.ACLOperationDelete), topicACL("other", read)}, deny: kerr.GroupAuthorizationFailed.Code,
			// DELETE on the group alone: READ on each topic is the
			// second check.
			partial: []metadata.ACL{groupACL(group, kmsg.ACLOperationDelete)}, partialDeny: kerr.TopicAuthorizationFailed.Code}},
		60: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrDescribeClusterRequest())
			r.IncludeClusterAuthorizedOperations, r.EndpointType = true, 1
			return r
		}, grant: []metadata.ACL{clusterACL(kmsg.ACLOperationAlter)},
			denied: func(r kmsg.Response) error {
				if resp := r.(*kmsg.DescribeClusterResponse); len(resp.Brokers) != 1 || resp.ClusterAuthorizedOperations != 0 {
					return fmt.Errorf("brokers %d, authorized operations %b: want the broker list and no operation", len(resp.Brokers), resp.ClusterAuthorizedOperations)
				}
				return nil
			},
			allowed: func(r kmsg.Response) error {
				if ops := r.(*kmsg.DescribeClusterResponse).ClusterAuthorizedOperations; ops != 1<<int(kmsg.ACLOperationAlter)|1<<int(describe) {
					return fmt.Errorf("authorized operations %b, want ALTER and the DESCRIBE it implies", ops)
				}
				return nil
			}}},
		48: {{req: func() kmsg.Request { return at(kmsg.NewPtrDescribeClientQuotasRequest()) },
			grant: []metadata.ACL{clusterACL(kmsg.ACLOperationDescribeConfigs)}, deny: kerr.ClusterAuthorizationFailed.Code}},
		49: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrAlterClientQuotasRequest())
			e := kmsg.NewAlterClientQuotasRequestEntry()
			e.Entity = []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "user", Name: kmsg.StringPtr("quota-user")}}
			e.Ops = []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1 << 20}}
			r.Entries = []kmsg.AlterClientQuotasRequestEntry{e}
			return r
		}, grant: []metadata.ACL{clusterACL(kmsg.ACLOperationAlterConfigs)}, deny: kerr.ClusterAuthorizationFailed.Code,
			allowed: func(r kmsg.Response) error {
				if res := r.(*kmsg.AlterClientQuotasResponse).Entries; len(res) != 1 || res[0].ErrorCode != 0 {
					return fmt.Errorf("entries %+v, want quota-user's quota stored", res)
				}
				return nil
			}}},
		50: {{req: func() kmsg.Request { return at(kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()) },
			grant: []metadata.ACL{clusterACL(describe)}, deny: kerr.ClusterAuthorizationFailed.Code}},
		51: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrAlterUserSCRAMCredentialsRequest())
			u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
			u.Name, u.Mechanism, u.Iterations, u.Salt, u.SaltedPassword = "scram-user", 2, 4096, []byte("salt"), make([]byte, 64)
			r.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{u}
			return r
		}, grant: []metadata.ACL{clusterACL(kmsg.ACLOperationAlter)}, deny: kerr.ClusterAuthorizationFailed.Code,
			allowed: func(r kmsg.Response) error {
				if res := r.(*kmsg.AlterUserSCRAMCredentialsResponse).Results; len(res) != 1 || res[0].ErrorCode != 0 {
					return fmt.Errorf("results %+v, want scram-user's credential stored", res)
				}
				return nil
			}}},
		61: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrDescribeProducersRequest())
			r.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: topic, Partitions: []int32{0}}}
			return r
		}, grant: []metadata.ACL{topicACL(topic, read)}, deny: kerr.TopicAuthorizationFailed.Code,
			partial: []metadata.ACL{topicACL(topic, describe)}, allowed: func(r kmsg.Response) error {
				// ended's COMMIT marker is on t[0].
				p := r.(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0]
				if p.ErrorCode != 0 || !slices.ContainsFunc(p.ActiveProducers, func(ap kmsg.DescribeProducersResponseTopicPartitionActiveProducer) bool {
					return ap.ProducerID == txns["ended"].id
				}) {
					return fmt.Errorf("described %+v, want the producer of the committed transaction", p)
				}
				return nil
			}}},
		64: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrUnregisterBrokerRequest())
			r.BrokerID = 99
			return r
		}, grant: []metadata.ACL{clusterACL(kmsg.ACLOperationAlter)}, deny: kerr.ClusterAuthorizationFailed.Code,
			allowed: func(r kmsg.Response) error {
				// Let through, the request meets the cluster, which has no broker 99.
				if code := r.(*kmsg.UnregisterBrokerResponse).ErrorCode; code != kerr.BrokerIDNotRegistered.Code {
					return fmt.Errorf("code %v, want BROKER_ID_NOT_REGISTERED", kerr.ErrorForCode(code))
				}
				return nil
			}}},
		65: {
			{name: "transactional id", req: func() kmsg.Request {
				r := at(kmsg.NewPtrDescribeTransactionsRequest())
				r.TransactionalIDs = []string{"etl"}
				return r
			}, grant: []metadata.ACL{txnACL("etl", describe)}, deny: kerr.TransactionalIDAuthorizationFailed.Code,
				partial: []metadata.ACL{txnACL("ended", describe), topicACL(topic, describe)},
				allowed: func(r kmsg.Response) error {
					// No topic may be described: the partitions are left out.
					if ts, err := describeTxn(r); err != nil || len(ts.Topics) != 0 {
						return fmt.Errorf("without DESCRIBE on the topics: %+v, %v; want no partitions", ts, err)
					}
					return nil
				}},
			{name: "topics", req: func() kmsg.Request {
				r := at(kmsg.NewPtrDescribeTransactionsRequest())
				r.TransactionalIDs = []string{"etl"}
				return r
			}, grant: []metadata.ACL{txnACL("etl", describe), topicACL(topic, describe)}, deny: kerr.TransactionalIDAuthorizationFailed.Code,
				allowed: func(r kmsg.Response) error {
					ts, err := describeTxn(r)
					if err != nil {
						return err
					}
					if len(ts.Topics) != 1 || ts.Topics[0].Topic != topic {
						return fmt.Errorf("topics %+v, want only %s (%s is not the principal's to describe)", ts.Topics, topic, offsetsTopic)
					}
					return nil
				}},
		},
		66: {{req: func() kmsg.Request { return at(kmsg.NewPtrListTransactionsRequest()) }, grant: []metadata.ACL{txnACL("etl", describe)},
			denied: listedTxns(), allowed: listedTxns("etl")}},
		75: {{req: func() kmsg.Request {
			r := at(kmsg.NewPtrDescribeTopicPartitionsRequest())
			r.Topics = []kmsg.DescribeTopicPartitionsRequestTopic{{Topic: topic}}
			return r
		}, grant: []metadata.ACL{topicACL(topic, describe)}, deny: kerr.TopicAuthorizationFailed.Code}},
	}
}

func createTopicsReq(name string) kmsg.Request {
	r := at(kmsg.NewPtrCreateTopicsRequest())
	r.TimeoutMillis = 5000
	r.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: name, NumPartitions: 1, ReplicationFactor: 1}}
	return r
}

func offsetForLeaderEpochReq(topic string) func() kmsg.Request {
	return func() kmsg.Request {
		r := at(kmsg.NewPtrOffsetForLeaderEpochRequest())
		r.ReplicaID = -1
		r.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}
		return r
	}
}

func describeConfigsReq(typ kmsg.ConfigResourceType, name string) func() kmsg.Request {
	return func() kmsg.Request {
		r := at(kmsg.NewPtrDescribeConfigsRequest())
		r.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: typ, ResourceName: name}}
		return r
	}
}

// illegalSaslState checks the answer of a SASL API on a listener without
// SASL.
func illegalSaslState(r kmsg.Response) error {
	if codes := errorCodes(r); !slices.Equal(codes, []int16{kerr.IllegalSaslState.Code}) {
		return fmt.Errorf("codes %v, want ILLEGAL_SASL_STATE", codes)
	}
	return nil
}

// exchange sends req on a fresh connection and decodes the response.
func exchange(t *testing.T, s *Server, req kmsg.Request) kmsg.Response {
	t.Helper()
	c := dial(t, s)
	corr := c.send(req)
	resp := req.ResponseKind()
	c.recv(resp, corr)
	return resp
}

// setACLs replaces every ACL of the cluster with acls.
func setACLs(t *testing.T, s *Server, acls ...metadata.ACL) {
	t.Helper()
	all := metadata.ACLFilter{ResourceType: kmsg.ACLResourceTypeAny, PatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	if _, err := s.meta.DeleteACLs(context.Background(), []metadata.ACLFilter{all}); err != nil {
		t.Fatal(err)
	}
	if len(acls) > 0 {
		if err := s.meta.CreateACLs(context.Background(), acls); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEveryAPIIsAuthorized sends, for every API key the broker advertises,
// a request as a principal no ACL names (allow.everyone.if.no.acl.found
// false) and checks Kafka's denial, then the same request with the ACLs it
// needs and checks it passes.
func TestEveryAPIIsAuthorized(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("allow.everyone.if.no.acl.found", "false"); err != nil {
			t.Fatal(err)
		}
	})
	// The fixtures: topics t and doomed, a record in t, an offset of
	// group g.
	setACLs(t, s, allow(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLOperationAll), allow(kmsg.ACLResourceTypeGroup, "*", kmsg.ACLOperationAll),
		clusterACL(kmsg.ACLOperationAll))
	for _, name := range []string{"t", "doomed"} {
		if _, err := s.createTopic(name, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	if p := exchange(t, s, produceReq("t", -1, batch(-1, -1, -1, 1, 10))).(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 {
		t.Fatalf("producing the fixture: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.Version, find.CoordinatorKeys = 4, []string{"g"}
	exchange(t, s, find) // creates the offsets topic
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Version, commit.Group, commit.Generation = 8, "g", -1
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c := errorCodes(exchange(t, s, commit))
		if c[0] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committing the fixture offset: %v", kerr.ErrorForCode(c[0]))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Two transactions: etl with t[0] and g's offsets (AddPartitionsToTxn,
	// AddOffsetsToTxn and TxnOffsetCommit join it), and ended with t[0]
	// in it (EndTxn commits it).
	setACLs(t, s, allow(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLOperationAll), allow(kmsg.ACLResourceTypeGroup, "*", kmsg.ACLOperationAll),
		clusterACL(kmsg.ACLOperationAll), allow(kmsg.ACLResourceTypeTransactionalId, "*", kmsg.ACLOperationAll))
	txns := map[string]producerEpoch{}
	for _, id := range []string{"etl", "ended"} {
		txns[id] = initTransactionalID(t, s, id)
	}
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.Version, add.TransactionalID, add.ProducerID, add.ProducerEpoch = 3, "ended", txns["ended"].id, txns["ended"].epoch
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	if c := errorCodes(exchange(t, s, add)); c[0] != 0 {
		t.Fatalf("adding t[0] to the fixture transaction: %v", kerr.ErrorForCode(c[0]))
	}

	cases := authorizationCases(s, txns)
	for _, k := range SupportedAPIs() {
		name := kmsg.NameForKey(k.ApiKey)
		list, ok := cases[k.ApiKey]
		if !ok {
			t.Errorf("%s (key %d) is served but has no authorization case here", name, k.ApiKey)
			continue
		}
		if a, _ := authz.ForAPI(k.ApiKey); a.BeforeAuthentication && list[0].deny != 0 {
			t.Errorf("%s is served before authentication and cannot be denied", name)
		}
		for _, tc := range list {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				setACLs(t, s)
				resp := exchange(t, s, tc.req())
				codes := errorCodes(resp)
				if tc.deny != 0 {
					if !slices.Contains(codes, tc.deny) {
						t.Errorf("without an ACL: codes %v, want %v", codes, kerr.ErrorForCode(tc.deny))
					}
					for _, c := range codes {
						if c != 0 && c != tc.deny {
							t.Errorf("without an ACL: code %v beside %v", kerr.ErrorForCode(c), kerr.ErrorForCode(tc.deny))
						}
					}
				} else if tc.denied == nil {
					t.Fatal("the case checks no denial")
				}
				if tc.denied != nil {
					if err := tc.denied(resp); err != nil {
						t.Errorf("without an ACL: %v", err)
					}
				}
				if tc.partial != nil {
					want := cmp.Or(tc.partialDeny, tc.deny)
					setACLs(t, s, tc.partial...)
					resp := exchange(t, s, tc.req())
					if tc.partialLists != nil {
						if err := tc.partialLists(resp); err != nil {
							t.Errorf("with only %+v: %v", tc.partial, err)
						}
					} else if codes := errorCodes(resp); !slices.Contains(codes, want) {
						t.Errorf("with only %+v: codes %v, want %v", tc.partial, codes, kerr.ErrorForCode(want))
					}
				}
				if tc.grant == nil {
					return
				}
				setACLs(t, s, tc.grant...)
				resp = exchange(t, s, tc.req())
				for _, c := range errorCodes(resp) {
					if slices.Contains(authorizationCodes, c) {
						t.Errorf("with %+v: %v", tc.grant, kerr.ErrorForCode(c))
					}
				}
				if tc.allowed != nil {
					if err := tc.allowed(resp); err != nil {
						t.Errorf("with the ACLs: %v", err)
					}
				}
			})
		}
	}
	for key := range cases {
		if _, ok := apiByKey(key); !ok {
			t.Errorf("a case for %s, which is not served", kmsg.NameForKey(key))
		}
	}
}

// TestOffsetCommitCommitsPermittedTopics: a commit naming a topic the
// principal may read and one it may not commits the first and answers
// TOPIC_AUTHORIZATION_FAILED for the second, each in the request's place.
func TestOffsetCommitCommitsPermittedTopics(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("allow.everyone.if.no.acl.found", "false"); err != nil {
			t.Fatal(err)
		}
	})
	setACLs(t, s, topicACL("*", kmsg.ACLOperationAll), groupACL("*", kmsg.ACLOperationAll), clusterACL(kmsg.ACLOperationAll))
	for _, name := range []string{"open", "closed"} {
		if _, err := s.createTopic(name, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.Version, find.CoordinatorKeys = 4, []string{"g"}
	exchange(t, s, find) // creates the offsets topic
	setACLs(t, s, topicACL("open", kmsg.ACLOperationRead), groupACL("g", kmsg.ACLOperationRead))

	part := []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 0, LeaderEpoch: -1}}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Version, commit.Group, commit.Generation = 8, "g", -1
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "closed", Partitions: part}, {Topic: "open", Partitions: part}}
	var resp *kmsg.OffsetCommitResponse
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp = exchange(t, s, commit).(*kmsg.OffsetCommitResponse)
		if len(resp.Topics) == 2 && resp.Topics[1].Partitions[0].ErrorCode != kerr.CoordinatorLoadInProgress.Code &&
			resp.Topics[1].Partitions[0].ErrorCode != kerr.CoordinatorNotAvailable.Code {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the offsets coordinator did not come up: %+v", resp.Topics)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := map[string]int16{}
	for i, rt := range resp.Topics {
		if want := commit.Topics[i].Topic; rt.Topic != want {
			t.Fatalf("answer %d is for %q, want %q (the request's order)", i, rt.Topic, want)
		}
		got[rt.Topic] = rt.Partitions[0].ErrorCode
	}
	if got["closed"] != kerr.TopicAuthorizationFailed.Code || got["open"] != 0 {
		t.Fatalf("codes closed=%v open=%v; want TOPIC_AUTHORIZATION_FAILED and none",
			kerr.ErrorForCode(got["closed"]), kerr.ErrorForCode(got["open"]))
	}

	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Version = 8
	fetch.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "open", Partitions: []int32{0}}}}}
	setACLs(t, s, topicACL("*", kmsg.ACLOperationAll), groupACL("*", kmsg.ACLOperationAll))
	if p := exchange(t, s, fetch).(*kmsg.OffsetFetchResponse).Groups[0].Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 0 {
		t.Fatalf("open[0] committed offset %d (%v), want 0", p.Offset, kerr.ErrorForCode(p.ErrorCode))
	}
}
