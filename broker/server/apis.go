package server

import (
	"context"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// api is one Kafka API key this broker serves: the versions it accepts and
// its handler. Each NN_name.go file declares one.
type api struct {
	key      int16
	min, max int16
	// handle answers one decoded request. A Go error closes the
	// connection (Kafka's answer to requests it cannot make sense of);
	// protocol errors go in the response as kerr codes.
	handle func(ctx context.Context, s *Server, c *conn, req kmsg.Request) (kmsg.Response, error)
}

// apis lists every API key served and advertised in ApiVersions. Nothing is
// advertised that is not implemented.
var apis []api

// The table is filled in init, not in its declaration, because the
// ApiVersions handler reads it (an initialization cycle otherwise).
func init() {
	apis = []api{
		produceAPI,
		fetchAPI,
		listOffsetsAPI,
		metadataAPI,
		findCoordinatorAPI,
		apiVersionsAPI,
		saslHandshakeAPI,
		saslAuthenticateAPI,
		describeUserScramCredentialsAPI,
		alterUserScramCredentialsAPI,
		// Client quotas, in the metadata log (quotas.go).
		describeClientQuotasAPI,
		alterClientQuotasAPI,
		createTopicsAPI,
		deleteTopicsAPI,
		deleteRecordsAPI,
		initProducerIDAPI,
		offsetForLeaderEpochAPI,
		describeConfigsAPI,
		alterConfigsAPI,
		describeLogDirsAPI,
		createPartitionsAPI,
		incrementalAlterConfigsAPI,
		describeClusterAPI,
		describeTopicPartitionsAPI,
		// ACLs, in the metadata log (authorize.go).
		describeACLsAPI,
		createACLsAPI,
		deleteACLsAPI,
		// Cluster operations, through the active controller.
		electLeadersAPI,
		alterPartitionReassignmentsAPI,
		listPartitionReassignmentsAPI,
		unregisterBrokerAPI,
		// Classic consumer groups (broker/groups).
		offsetCommitAPI,
		offsetFetchAPI,
		joinGroupAPI,
		heartbeatAPI,
		leaveGroupAPI,
		syncGroupAPI,
		describeGroupsAPI,
		listGroupsAPI,
		deleteGroupsAPI,
		offsetDeleteAPI,
		// Transactions (broker/txn; the partition side in broker/storage).
		addPartitionsToTxnAPI,
		addOffsetsToTxnAPI,
		endTxnAPI,
		writeTxnMarkersAPI,
		txnOffsetCommitAPI,
		describeProducersAPI,
		describeTransactionsAPI,
		listTransactionsAPI,
	}
}

var apiTable = sync.OnceValue(func() map[int16]api {
	m := make(map[int16]api, len(apis))
	for _, a := range apis {
		m[a.key] = a
	}
	return m
})

func apiByKey(key int16) (api, bool) {
	a, ok := apiTable()[key]
	return a, ok
}

// SupportedAPIs returns the advertised API keys and version ranges, sorted
// by key (docs/broker.md is checked against it).
func SupportedAPIs() []kmsg.ApiVersionsResponseApiKey {
	out := make([]kmsg.ApiVersionsResponseApiKey, 0, len(apis))
	for _, a := range apis {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.min, a.max
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ApiKey < out[j].ApiKey })
	return out
}
