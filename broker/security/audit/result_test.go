package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestOutcomes(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name string
		req  kmsg.Request
		resp kmsg.Response
		want []Outcome
	}{
		{"delete topics", kmsg.NewPtrDeleteTopicsRequest(), &kmsg.DeleteTopicsResponse{Topics: []kmsg.DeleteTopicsResponseTopic{
			{Topic: str("orders")}, {Topic: str("ledger"), ErrorCode: kerr.TopicAuthorizationFailed.Code}}},
			[]Outcome{{"topic:orders", "NONE"}, {"topic:ledger", "TOPIC_AUTHORIZATION_FAILED"}}},
		{"create ACLs names the binding", &kmsg.CreateACLsRequest{Creations: []kmsg.CreateACLsRequestCreation{{ResourceType: kmsg.ACLResourceTypeTopic,
			ResourceName: "orders", ResourcePatternType: kmsg.ACLResourcePatternTypeLiteral, Principal: "User:bob", Host: "*",
			Operation: kmsg.ACLOperationWrite, PermissionType: kmsg.ACLPermissionTypeAllow}}},
			&kmsg.CreateACLsResponse{Results: []kmsg.CreateACLsResponseResult{{}}},
			[]Outcome{{"acl:TOPIC:LITERAL:orders User:bob ALLOW WRITE from *", "NONE"}}},
		{"incremental alter configs", kmsg.NewPtrIncrementalAlterConfigsRequest(), &kmsg.IncrementalAlterConfigsResponse{Resources: []kmsg.IncrementalAlterConfigsResponseResource{
			{ResourceType: kmsg.ConfigResourceTypeBroker}, {ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t", ErrorCode: kerr.InvalidConfig.Code}}},
			[]Outcome{{"broker:<default>", "NONE"}, {"topic:t", "INVALID_CONFIG"}}},
		{"reassignment refused as a whole", kmsg.NewPtrAlterPartitionAssignmentsRequest(), &kmsg.AlterPartitionAssignmentsResponse{ErrorCode: kerr.ClusterAuthorizationFailed.Code},
			[]Outcome{{"cluster", "CLUSTER_AUTHORIZATION_FAILED"}}},
		{"scram users by name only", kmsg.NewPtrAlterUserSCRAMCredentialsRequest(), &kmsg.AlterUserSCRAMCredentialsResponse{Results: []kmsg.AlterUserSCRAMCredentialsResponseResult{{User: "alice"}}},
			[]Outcome{{"user:alice", "NONE"}}},
		{"unregister broker", &kmsg.UnregisterBrokerRequest{BrokerID: 4}, &kmsg.UnregisterBrokerResponse{ErrorCode: kerr.BrokerIDNotRegistered.Code},
			[]Outcome{{"broker:4", "BROKER_ID_NOT_REGISTERED"}}},
		{"offset delete", &kmsg.OffsetDeleteRequest{Group: "g"}, &kmsg.OffsetDeleteResponse{Topics: []kmsg.OffsetDeleteResponseTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteResponseTopicPartition{{Partition: 2}}}}},
			[]Outcome{{"group:g offsets:t-2", "NONE"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Outcomes(tc.req, tc.resp); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestResultLine: the JSON line (as shipped to CloudWatch Logs) of a
// partly failed request, and nothing for a request that changes nothing.
func TestResultLine(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewJSONHandler(&buf, nil)))
	r := Request{Principal: "User:alice", Client: netip.MustParseAddrPort("10.0.0.7:51234"), Listener: "SASL_SSL", APIKey: 20}
	l.Result(context.Background(), r, kmsg.NewPtrDeleteTopicsRequest(), &kmsg.DeleteTopicsResponse{Topics: []kmsg.DeleteTopicsResponseTopic{
		{Topic: kmsg.StringPtr("orders"), ErrorCode: kerr.UnknownTopicOrPartition.Code}}})
	var line struct {
		Level, Msg, Log, Principal, Client, API string
		Results                                 []Outcome
		Failed                                  int
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if line.Level != "WARN" || line.Msg != "admin request" || line.Log != "audit" || line.Principal != "User:alice" || line.Client != "10.0.0.7:51234" ||
		line.API != "DeleteTopics" || line.Failed != 1 || len(line.Results) != 1 || line.Results[0] != (Outcome{"topic:orders", "UNKNOWN_TOPIC_OR_PARTITION"}) {
		t.Errorf("line %+v from %s", line, buf.String())
	}
	buf.Reset()
	r.APIKey = 3 // Metadata: no admin request
	l.Result(context.Background(), r, kmsg.NewPtrMetadataRequest(), kmsg.NewPtrMetadataResponse())
	if buf.Len() != 0 {
		t.Errorf("a Metadata request was audited: %s", buf.String())
	}
}
