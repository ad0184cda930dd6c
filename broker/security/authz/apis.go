package authz

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Effect says what a denied check does to a request.
type Effect int8

// The effects, as Kafka's request handlers apply them.
const (
	// FailRequest: the whole request fails with the check's Code.
	FailRequest Effect = iota
	// PerResource: each denied resource gets the Code in its own slot of
	// the response; the allowed ones proceed.
	PerResource
	// Filtered: denied resources are left out of the answer (listing all
	// topics, groups or transactions).
	Filtered
)

// Check is one authorization a request handler makes.
type Check struct {
	Operation kmsg.ACLOperation
	Type      kmsg.ACLResourceType
	// On names what is checked: "cluster", or the request field that names
	// the resources ("topics", "group", "transactional_id", ...).
	On string
	// When limits the check to some requests; "" means always.
	When string
	// Effect and Code are what a denial does.
	Effect Effect
	Code   int16
	// OrElse: this check is tried only when the one before it was denied,
	// and passing it is enough (Kafka's "CREATE on the cluster, else
	// CREATE on each topic").
	OrElse bool
	// AnyOfType: the check passes with the operation on at least one
	// resource of the type (ACLAuthorizer.AuthorizeByResourceType).
	AnyOfType bool
}

// APIAuthorization is what one Kafka API key needs.
type APIAuthorization struct {
	Key int16
	// BeforeAuthentication: served before a SASL client has authenticated
	// (ApiVersions, SaslHandshake, SaslAuthenticate), and needs no check.
	BeforeAuthentication bool
	// Checks in the order a handler makes them. An API that is neither
	// BeforeAuthentication nor has checks is open to every authenticated
	// principal (Kafka: DescribeCluster's broker list, Metadata's).
	Checks []Check
	// Note says what the checks cannot (versions, special cases).
	Note string
}

var (
	codeTopic   = kerr.TopicAuthorizationFailed.Code
	codeGroup   = kerr.GroupAuthorizationFailed.Code
	codeCluster = kerr.ClusterAuthorizationFailed.Code
	codeTxn     = kerr.TransactionalIDAuthorizationFailed.Code
	codeToken   = kerr.DelegationTokenAuthorizationFailed.Code
)

const (
	opRead            = kmsg.ACLOperationRead
	opWrite           = kmsg.ACLOperationWrite
	opCreate          = kmsg.ACLOperationCreate
	opDelete          = kmsg.ACLOperationDelete
	opAlter           = kmsg.ACLOperationAlter
	opDescribe        = kmsg.ACLOperationDescribe
	opClusterAction   = kmsg.ACLOperationClusterAction
	opDescribeConfigs = kmsg.ACLOperationDescribeConfigs
	opAlterConfigs    = kmsg.ACLOperationAlterConfigs
	opIdempotentWrite = kmsg.ACLOperationIdempotentWrite
	opCreateTokens    = kmsg.ACLOperationCreateTokens
	opDescribeTokens  = kmsg.ACLOperationDescribeTokens

	rTopic   = kmsg.ACLResourceTypeTopic
	rGroup   = kmsg.ACLResourceTypeGroup
	rCluster = kmsg.ACLResourceTypeCluster
	rTxn     = kmsg.ACLResourceTypeTransactionalId
	rToken   = kmsg.ACLResourceTypeDelegationToken
	rUser    = kmsg.ACLResourceTypeUser
)

func clusterCheck(op kmsg.ACLOperation) Check {
	return Check{Operation: op, Type: rCluster, On: "cluster", Effect: FailRequest, Code: codeCluster}
}

// interBroker is the check of APIs only brokers send.
var interBroker = []Check{clusterCheck(opClusterAction)}

// apiAuthorizations follows Kafka's request handlers (KafkaApis,
// AclAuthorizer docs, KIP-679 for InitProducerId, KIP-848 for the new
// group protocol). It covers every API key Kafka defines that a client or
// a broker sends to a broker.
var apiAuthorizations = map[int16]APIAuthorization{
	0: {Checks: []Check{
		{Operation: opWrite, Type: rTxn, On: "transactional_id", When: "the records are transactional", Effect: FailRequest, Code: codeTxn},
		{Operation: opWrite, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic},
	}},
	1: {Checks: []Check{
		{Operation: opClusterAction, Type: rCluster, On: "cluster", When: "a follower fetch (replica_id >= 0)", Effect: PerResource, Code: codeTopic},
		{Operation: opRead, Type: rTopic, On: "topics", When: "a consumer fetch", Effect: PerResource, Code: codeTopic},
	}, Note: "a follower without CLUSTER_ACTION gets TOPIC_AUTHORIZATION_FAILED on every partition, as Kafka answers"},
	2: {Checks: []Check{{Operation: opDescribe, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic}}},
	3: {Checks: []Check{
		{Operation: opDescribe, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic, When: "named topics; with all topics requested, unauthorized ones are left out"},
		{Operation: opCreate, Type: rCluster, On: "cluster", When: "auto-creating a missing topic", Effect: PerResource, Code: codeTopic},
		{Operation: opCreate, Type: rTopic, On: "topics", When: "auto-creating a missing topic", Effect: PerResource, Code: codeTopic, OrElse: true},
	}, Note: "the authorized-operations fields (v8+) list the operations that pass; the broker list is open to every authenticated principal"},
	8: {Checks: []Check{
		{Operation: opRead, Type: rGroup, On: "group", Effect: FailRequest, Code: codeGroup},
		{Operation: opRead, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic},
	}},
	9: {Checks: []Check{
		{Operation: opDescribe, Type: rGroup, On: "group(s)", Effect: FailRequest, Code: codeGroup},
		{Operation: opDescribe, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic, When: "named topics; with all offsets requested, unauthorized topics are left out"},
	}},
	10: {Checks: []Check{
		{Operation: opDescribe, Type: rGroup, On: "key", When: "key_type GROUP", Effect: FailRequest, Code: codeGroup},
		{Operation: opDescribe, Type: rTxn, On: "key", When: "key_type TRANSACTION", Effect: FailRequest, Code: codeTxn},
	}},
	11: {Checks: []Check{{Operation: opRead, Type: rGroup, On: "group", Effect: FailRequest, Code: codeGroup}}},
	12: {Checks: []Check{{Operation: opRead, Type: rGroup, On: "group", Effect: FailRequest, Code: codeGroup}}},
	13: {Checks: []Check{{Operation: opRead, Type: rGroup, On: "group", Effect: FailRequest, Code: codeGroup}}},
	14: {Checks: []Check{{Operation: opRead, Type: rGroup, On: "group", Effect: FailRequest, Code: codeGroup}}},
	15: {Checks: []Check{{Operation: opDescribe, Type: rGroup, On: "groups", Effect: PerResource, Code: codeGroup}}},
	16: {Checks: []Check{
		{Operation: opDescribe, Type: rCluster, On: "cluster", Effect: Filtered},
		{Operation: opDescribe, Type: rGroup, On: "each group", Effect: Filtered, OrElse: true},
	}, Note: "DESCRIBE on the cluster lists every group; otherwise only groups the principal may describe"},
	17: {BeforeAuthentication: true},
	18: {BeforeAuthentication: true},
	19: {Checks: []Check{
		{Operation: opCreate, Type: rCluster, On: "cluster", Effect: PerResource, Code: codeTopic},
		{Operation: opCreate, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic, OrElse: true},
		{Operation: opDescribeConfigs, Type: rTopic, On: "topics", When: "v5+ returns the created topics' configs", Effect: PerResource, Code: codeTopic},
	}, Note: "a denied DESCRIBE_CONFIGS leaves the configs out with TOPIC_AUTHORIZATION_FAILED in topic_config_error_code; the topic is still created"},
	20: {Checks: []Check{
		{Operation: opDelete, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic},
		{Operation: opDescribe, Type: rTopic, On: "topics", When: "topics named by id (v6+)", Effect: PerResource, Code: codeTopic},
	}},
	21: {Checks: []Check{{Operation: opDelete, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic}}},
	22: {Checks: []Check{
		{Operation: opWrite, Type: rTxn, On: "transactional_id", When: "transactional_id set", Effect: FailRequest, Code: codeTxn},
		{Operation: opIdempotentWrite, Type: rCluster, On: "cluster", When: "no transactional_id (idempotent producer)", Effect: FailRequest, Code: codeCluster},
		{Operation: opWrite, Type: rTopic, On: "any topic", When: "no transactional_id (idempotent producer)", Effect: FailRequest, Code: codeCluster, OrElse: true, AnyOfType: true},
	}},
	23: {Checks: []Check{
		{Operation: opClusterAction, Type: rCluster, On: "cluster", Effect: PerResource, Code: codeTopic},
		{Operation: opDescribe, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic, OrElse: true},
	}, Note: "brokers ask with CLUSTER_ACTION, consumers checking for truncation (KIP-320) with DESCRIBE on each topic"},
	24: {Checks: []Check{
		{Operation: opWrite, Type: rTxn, On: "transactional_id", Effect: FailRequest, Code: codeTxn},
		{Operation: opWrite, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic},
		{Operation: opClusterAction, Type: rCluster, On: "cluster", When: "v4+ batched verification from a broker", Effect: FailRequest, Code: codeCluster},
	}},
	25: {Checks: []Check{
		{Operation: opWrite, Type: rTxn, On: "transactional_id", Effect: FailRequest, Code: codeTxn},
		{Operation: opRead, Type: rGroup, On: "group", Effect: FailRequest, Code: codeGroup},
	}},
	26: {Checks: []Check{{Operation: opWrite, Type: rTxn, On: "transactional_id", Effect: FailRequest, Code: codeTxn}}},
	27: {Checks: interBroker},
	28: {Checks: []Check{
		{Operation: opWrite, Type: rTxn, On: "transactional_id", Effect: FailRequest, Code: codeTxn},
		{Operation: opRead, Type: rGroup, On: "group", Effect: FailRequest, Code: codeGroup},
		{Operation: opRead, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic},
	}},
	29: {Checks: []Check{clusterCheck(opDescribe)}},
	30: {Checks: []Check{clusterCheck(opAlter)}},
	31: {Checks: []Check{clusterCheck(opAlter)}},
	32: {Checks: []Check{
		{Operation: opDescribeConfigs, Type: rTopic, On: "TOPIC resources", Effect: PerResource, Code: codeTopic},
		{Operation: opDescribeConfigs, Type: rCluster, On: "BROKER and BROKER_LOGGER resources", Effect: PerResource, Code: codeCluster},
		{Operation: opDescribeConfigs, Type: rGroup, On: "GROUP resources", Effect: PerResource, Code: codeGroup},
	}},
	33: {Checks: []Check{
		{Operation: opAlterConfigs, Type: rTopic, On: "TOPIC resources", Effect: PerResource, Code: codeTopic},
		{Operation: opAlterConfigs, Type: rCluster, On: "BROKER resources", Effect: PerResource, Code: codeCluster},
	}},
	34: {Checks: []Check{clusterCheck(opAlter)}},
	35: {Checks: []Check{{Operation: opDescribe, Type: rCluster, On: "cluster", Effect: FailRequest, Code: codeCluster}},
		Note: "v0-2 answer an empty result instead of the error code"},
	36: {BeforeAuthentication: true},
	37: {Checks: []Check{{Operation: opAlter, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic}}},
	38: {Checks: []Check{{Operation: opCreateTokens, Type: rUser, On: "owner", When: "the owner is not the requester (KIP-373)", Effect: FailRequest, Code: codeToken}},
		Note: "a principal authenticated with a delegation token cannot create tokens"},
	39: {Note: "the token's owner or renewers only; no ACL is consulted"},
	40: {Note: "the token's owner or renewers only; no ACL is consulted"},
	41: {Checks: []Check{
		{Operation: opDescribe, Type: rToken, On: "token id", Effect: Filtered},
		{Operation: opDescribeTokens, Type: rUser, On: "token owner", Effect: Filtered, OrElse: true},
	}, Note: "owners and renewers always see their tokens"},
	42: {Checks: []Check{{Operation: opDelete, Type: rGroup, On: "groups", Effect: PerResource, Code: codeGroup}}},
	43: {Checks: []Check{clusterCheck(opAlter)}},
	44: {Checks: []Check{
		{Operation: opAlterConfigs, Type: rTopic, On: "TOPIC resources", Effect: PerResource, Code: codeTopic},
		{Operation: opAlterConfigs, Type: rCluster, On: "BROKER, BROKER_LOGGER and CLIENT_METRICS resources", Effect: PerResource, Code: codeCluster},
		{Operation: opAlterConfigs, Type: rGroup, On: "GROUP resources", Effect: PerResource, Code: codeGroup},
	}},
	45: {Checks: []Check{clusterCheck(opAlter)}},
	46: {Checks: []Check{clusterCheck(opDescribe)}},
	47: {Checks: []Check{
		{Operation: opDelete, Type: rGroup, On: "group", Effect: FailRequest, Code: codeGroup},
		{Operation: opRead, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic},
	}},
	48: {Checks: []Check{clusterCheck(opDescribeConfigs)}},
	49: {Checks: []Check{clusterCheck(opAlterConfigs)}},
	50: {Checks: []Check{clusterCheck(opDescribe)}},
	51: {Checks: []Check{clusterCheck(opAlter)}},
	55: {Checks: []Check{clusterCheck(opDescribe)}},
	57: {Checks: []Check{clusterCheck(opAlter)}},
	60: {Checks: []Check{{Operation: opDescribe, Type: rCluster, On: "cluster", When: "include_cluster_authorized_operations", Effect: Filtered}},
		Note: "the brokers and cluster id are open to every authenticated principal; only the authorized-operations field needs DESCRIBE"},
	61: {Checks: []Check{{Operation: opRead, Type: rTopic, On: "topics", Effect: PerResource, Code: codeTopic}}},
	64: {Checks: []Check{clusterCheck(opAlter)}},
	65: {Checks: []Check{
		{Operation: opDescribe, Type: rTxn, On: "transactional_ids", Effect: PerResource, Code: codeTxn},
		{Operation: opDescribe, Type: rTopic, On: "topics of each transaction", Effect: Filtered},
	}},
	66: {Checks: []Check{{Operation: opDescribe, Type: rTxn, On: "each transaction", Effect: Filtered}}},
	68: {Checks: []Check{
		{Operation: opRead, Type: rGroup, On: "group", Effect: FailRequest, Code: codeGroup},
		{Operation: opDescribe, Type: rTopic, On: "subscribed topics", Effect: FailRequest, Code: codeTopic},
	}},
	69: {Checks: []Check{{Operation: opDescribe, Type: rGroup, On: "groups", Effect: PerResource, Code: codeGroup}}},
	74: {Checks: []Check{clusterCheck(opDescribeConfigs)}},
	75: {Checks: []Check{{Operation: opDescribe, Type: rTopic, On: "topics", Effect: Filtered, When: "named topics get TOPIC_AUTHORIZATION_FAILED; listing leaves them out"}}},
	// Broker-to-controller and controller-to-broker APIs.
	4:  {Checks: interBroker},
	5:  {Checks: interBroker},
	6:  {Checks: interBroker},
	7:  {Checks: interBroker},
	52: {Checks: interBroker},
	53: {Checks: interBroker},
	54: {Checks: interBroker},
	56: {Checks: interBroker},
	58: {Checks: interBroker},
	62: {Checks: interBroker},
	63: {Checks: interBroker},
	67: {Checks: interBroker},
}

// ForAPI is what API key needs, and whether the table knows the key.
func ForAPI(key int16) (APIAuthorization, bool) {
	a, ok := apiAuthorizations[key]
	a.Key = key
	return a, ok
}

// APIKeys lists the keys the table covers, ascending.
func APIKeys() []int16 {
	keys := make([]int16, 0, len(apiAuthorizations))
	for k := range apiAuthorizations {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
