package provider

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/authz"
	"github.com/tributary/tributary/internal/localcloud/policy"
)

// policyEvaluator answers the brokers' IAM questions from one policy with
// the local cloud's policy engine, as iam:SimulatePrincipalPolicy would.
type policyEvaluator struct{ doc *policy.Document }

func (e policyEvaluator) Evaluate(_ context.Context, principal string, actions []string, resource string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, a := range actions {
		out[a] = policy.Evaluate(policy.Request{Caller: policy.Caller{Account: "123456789012", ARNs: []string{principal}}, Action: a, Resource: resource}, e.doc) == policy.Allowed
	}
	return out, nil
}

// TestIAMPolicyDocumentIsWhatTheBrokersAsk checks the document against the
// brokers' own mapping of Kafka operations to MSK's actions and ARNs: what
// it names is allowed, and nothing else.
func TestIAMPolicyDocumentIsWhatTheBrokersAsk(t *testing.T) {
	text, err := iamPolicyJSON(iamPolicyInput{
		ClusterARN:  "arn:aws:kafka:us-east-1:123456789012:cluster/orders/tc-0123456789abcdef",
		WriteTopics: []string{"orders-*"}, ReadTopics: []string{"payments"}, Groups: []string{"billing-*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := policy.Parse(text)
	if err != nil {
		t.Fatalf("the document is not a valid IAM policy: %v\n%s", err, text)
	}
	a, err := authz.NewIAMAuthorizer(authz.IAMOptions{Region: "us-east-1", Account: "123456789012", ClusterName: "orders",
		ClusterUUID: "tc-0123456789abcdef", Evaluator: policyEvaluator{doc}})
	if err != nil {
		t.Fatal(err)
	}
	rc := authz.RequestContext{Principal: "User:arn:aws:iam::123456789012:role/app", IAM: true}
	if !a.Connect(context.Background(), rc).Allowed {
		t.Fatal("Connect is denied")
	}
	tests := []struct {
		action authz.Action
		want   bool
	}{
		{authz.Action{Operation: kmsg.ACLOperationWrite, Type: kmsg.ACLResourceTypeTopic, Name: "orders-eu"}, true},
		{authz.Action{Operation: kmsg.ACLOperationIdempotentWrite, Type: kmsg.ACLResourceTypeCluster, Name: authz.ClusterName}, true},
		{authz.Action{Operation: kmsg.ACLOperationDescribe, Type: kmsg.ACLResourceTypeTopic, Name: "orders-eu"}, true},
		{authz.Action{Operation: kmsg.ACLOperationRead, Type: kmsg.ACLResourceTypeTopic, Name: "payments"}, true},
		{authz.Action{Operation: kmsg.ACLOperationRead, Type: kmsg.ACLResourceTypeGroup, Name: "billing-7"}, true},
		{authz.Action{Operation: kmsg.ACLOperationRead, Type: kmsg.ACLResourceTypeTopic, Name: "orders-eu"}, false},
		{authz.Action{Operation: kmsg.ACLOperationWrite, Type: kmsg.ACLResourceTypeTopic, Name: "payments"}, false},
		{authz.Action{Operation: kmsg.ACLOperationCreate, Type: kmsg.ACLResourceTypeTopic, Name: "orders-eu"}, false},
		{authz.Action{Operation: kmsg.ACLOperationRead, Type: kmsg.ACLResourceTypeGroup, Name: "other"}, false},
		{authz.Action{Operation: kmsg.ACLOperationAlter, Type: kmsg.ACLResourceTypeCluster, Name: authz.ClusterName}, false},
	}
	for _, tt := range tests {
		if got := a.Authorize(context.Background(), rc, []authz.Action{tt.action})[0].Allowed; got != tt.want {
			t.Errorf("%s: allowed = %v, want %v\n%s", tt.action, got, tt.want, text)
		}
	}
}

func TestIAMPolicyDocumentRefusesAnotherARN(t *testing.T) {
	_, err := iamPolicyJSON(iamPolicyInput{ClusterARN: "arn:aws:kafka:us-east-1:123456789012:topic/orders/x/y"})
	if err == nil || !strings.Contains(err.Error(), "not a cluster ARN") {
		t.Fatalf("err = %v", err)
	}
}
