package iam_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/awsapitest"
)

// The ARNs of one MSK-style cluster, as brokers name them for kafka-cluster:* actions.
const (
	clusterARN = "arn:aws:kafka:us-east-1:000000000000:cluster/orders/5c9f0f1e-uuid"
	topicARN   = "arn:aws:kafka:us-east-1:000000000000:topic/orders/5c9f0f1e-uuid/"
	groupARN   = "arn:aws:kafka:us-east-1:000000000000:group/orders/5c9f0f1e-uuid/"
)

// clientPolicy is a client role's policy, as users write it for MSK: connect, topics with a
// prefix, a consumer group prefix, and idempotent writes only over TLS.
const clientPolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "Connect",
      "Effect": "Allow",
      "Action": ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"],
      "Resource": "arn:aws:kafka:us-east-1:000000000000:cluster/orders/*"
    },
    {
      "Sid": "Topics",
      "Effect": "Allow",
      "Action": ["kafka-cluster:*Topic", "kafka-cluster:WriteData", "kafka-cluster:ReadData"],
      "Resource": "arn:aws:kafka:us-east-1:000000000000:topic/orders/*/payments-*"
    },
    {
      "Sid": "Groups",
      "Effect": "Allow",
      "Action": ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
      "Resource": "arn:aws:kafka:us-east-1:000000000000:group/orders/*/app-*"
    },
    {
      "Sid": "Idempotent",
      "Effect": "Allow",
      "Action": "kafka-cluster:WriteDataIdempotently",
      "Resource": "arn:aws:kafka:us-east-1:000000000000:cluster/orders/*",
      "Condition": {"Bool": {"aws:SecureTransport": "true"}}
    }
  ]
}`

const guardrails = `{"Version":"2012-10-17","Statement":[
  {"Sid":"NoDeletes","Effect":"Deny","Action":"kafka-cluster:DeleteTopic","Resource":"*"},
  {"Sid":"NoAudit","Effect":"Deny","Action":"kafka-cluster:WriteData","Resource":"arn:aws:kafka:*:*:topic/*/*/payments-audit"}]}`

// simulateFixture makes the client role "app" (inline policy "kafka" plus the managed policy
// "kafka-guardrails") and returns the role's ARN.
func simulateFixture(t *testing.T, c *cloud) string {
	t.Helper()
	ctx := context.Background()
	iamClient := awsiam.NewFromConfig(c.Root())
	role := awsapitest.CreateRole(t, iamClient, "app", awsapitest.TrustAccount)
	if _, err := iamClient.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: role.RoleName, PolicyName: aws.String("kafka"), PolicyDocument: aws.String(clientPolicy)}); err != nil {
		t.Fatal(err)
	}
	mp, err := iamClient.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("kafka-guardrails"), PolicyDocument: aws.String(guardrails)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iamClient.AttachRolePolicy(ctx, &awsiam.AttachRolePolicyInput{RoleName: role.RoleName, PolicyArn: mp.Policy.Arn}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(role.Arn)
}

// statementAt returns the text of doc between a matched statement's positions, which point
// just after its braces.
func statementAt(t *testing.T, doc string, st iamtypes.Statement) string {
	t.Helper()
	offset := func(p *iamtypes.Position) int {
		lines := strings.SplitAfter(doc, "\n")
		line, col := int(p.Line), int(p.Column)
		if line < 1 || line > len(lines) || col < 2 || col-1 > len(lines[line-1]) {
			t.Fatalf("position %d:%d outside the document", line, col)
		}
		off := 0
		for _, l := range lines[:line-1] {
			off += len(l)
		}
		return off + col - 1
	}
	start, end := offset(st.StartPosition), offset(st.EndPosition)
	if start < 1 || end <= start || doc[start-1] != '{' || doc[end-1] != '}' {
		t.Fatalf("positions %v..%v do not frame a statement", st.StartPosition, st.EndPosition)
	}
	return doc[start-1 : end]
}

func TestSimulatePrincipalPolicyKafkaActions(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	roleARN := simulateFixture(t, c)
	client := awsiam.NewFromConfig(c.Root())
	tests := []struct {
		name      string
		action    string
		resource  string
		context   []iamtypes.ContextEntry
		decision  iamtypes.PolicyEvaluationDecisionType
		sid       string // the Sid in the matched statement's text
		source    string // its SourcePolicyId
		missingKV []string
	}{
		{"connect", "kafka-cluster:Connect", clusterARN, nil, iamtypes.PolicyEvaluationDecisionTypeAllowed, "Connect", "role_app_kafka", nil},
		{"create topic by the *Topic wildcard", "kafka-cluster:CreateTopic", topicARN + "payments-eu", nil, iamtypes.PolicyEvaluationDecisionTypeAllowed, "Topics", "role_app_kafka", nil},
		{"*Topic does not cover TopicDynamicConfiguration", "kafka-cluster:AlterTopicDynamicConfiguration", topicARN + "payments-eu", nil, iamtypes.PolicyEvaluationDecisionTypeImplicitDeny, "", "", nil},
		{"explicit deny from the managed policy", "kafka-cluster:DeleteTopic", topicARN + "payments-eu", nil, iamtypes.PolicyEvaluationDecisionTypeExplicitDeny, "NoDeletes", "kafka-guardrails", nil},
		{"write outside the prefix", "kafka-cluster:WriteData", topicARN + "orders", nil, iamtypes.PolicyEvaluationDecisionTypeImplicitDeny, "", "", nil},
		{"deny wins over allow", "kafka-cluster:WriteData", topicARN + "payments-audit", nil, iamtypes.PolicyEvaluationDecisionTypeExplicitDeny, "NoAudit", "kafka-guardrails", nil},
		{"join a group", "kafka-cluster:AlterGroup", groupARN + "app-billing", nil, iamtypes.PolicyEvaluationDecisionTypeAllowed, "Groups", "role_app_kafka", nil},
		{"delete a group", "kafka-cluster:DeleteGroup", groupARN + "app-billing", nil, iamtypes.PolicyEvaluationDecisionTypeImplicitDeny, "", "", nil},
		{"transactional id", "kafka-cluster:DescribeTransactionalId", "arn:aws:kafka:us-east-1:000000000000:transactional-id/orders/5c9f0f1e-uuid/tx", nil, iamtypes.PolicyEvaluationDecisionTypeImplicitDeny, "", "", nil},
		{"condition without its key", "kafka-cluster:WriteDataIdempotently", clusterARN, nil, iamtypes.PolicyEvaluationDecisionTypeImplicitDeny, "", "", []string{"aws:SecureTransport"}},
		{"condition with its key", "kafka-cluster:WriteDataIdempotently", clusterARN, []iamtypes.ContextEntry{{
			ContextKeyName: aws.String("aws:SecureTransport"), ContextKeyValues: []string{"true"}, ContextKeyType: iamtypes.ContextKeyTypeEnumBoolean}},
			iamtypes.PolicyEvaluationDecisionTypeAllowed, "Idempotent", "role_app_kafka", nil},
		{"condition not met", "kafka-cluster:WriteDataIdempotently", clusterARN, []iamtypes.ContextEntry{{
			ContextKeyName: aws.String("aws:SecureTransport"), ContextKeyValues: []string{"false"}, ContextKeyType: iamtypes.ContextKeyTypeEnumBoolean}},
			iamtypes.PolicyEvaluationDecisionTypeImplicitDeny, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := client.SimulatePrincipalPolicy(ctx, &awsiam.SimulatePrincipalPolicyInput{
				PolicySourceArn: aws.String(roleARN), ActionNames: []string{tt.action}, ResourceArns: []string{tt.resource}, ContextEntries: tt.context})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.EvaluationResults) != 1 || out.IsTruncated {
				t.Fatalf("%d results (truncated %v), want 1", len(out.EvaluationResults), out.IsTruncated)
			}
			r := out.EvaluationResults[0]
			if aws.ToString(r.EvalActionName) != tt.action || r.EvalDecision != tt.decision {
				t.Fatalf("%s: %s, want %s", aws.ToString(r.EvalActionName), r.EvalDecision, tt.decision)
			}
			if len(r.ResourceSpecificResults) != 1 || aws.ToString(r.ResourceSpecificResults[0].EvalResourceName) != tt.resource ||
				r.ResourceSpecificResults[0].EvalResourceDecision != tt.decision {
				t.Fatalf("ResourceSpecificResults %+v", r.ResourceSpecificResults)
			}
			if !slices.Equal(r.MissingContextValues, tt.missingKV) && (len(tt.missingKV) > 0 || len(r.MissingContextValues) > 0) {
				t.Fatalf("MissingContextValues %v, want %v", r.MissingContextValues, tt.missingKV)
			}
			if tt.sid == "" {
				if len(r.MatchedStatements) != 0 {
					t.Fatalf("an implicit deny with matched statements %+v", r.MatchedStatements)
				}
				return
			}
			if len(r.MatchedStatements) != 1 {
				t.Fatalf("matched %d statements, want 1", len(r.MatchedStatements))
			}
			st := r.MatchedStatements[0]
			doc := clientPolicy
			if tt.source == "kafka-guardrails" {
				doc = guardrails
			}
			if aws.ToString(st.SourcePolicyId) != tt.source || st.SourcePolicyType != "IAM Policy" ||
				!strings.Contains(statementAt(t, doc, st), `"Sid":`) || !strings.Contains(statementAt(t, doc, st), `"`+tt.sid+`"`) {
				t.Fatalf("matched %s (%s) at %q, want %s in %s", aws.ToString(st.SourcePolicyId), st.SourcePolicyType, statementAt(t, doc, st), tt.sid, tt.source)
			}
		})
	}

	// Several resources: the top level is the most restrictive decision, each resource has its own.
	out, err := client.SimulatePrincipalPolicy(ctx, &awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(roleARN),
		ActionNames: []string{"kafka-cluster:WriteData", "kafka-cluster:ReadData"}, ResourceArns: []string{topicARN + "payments-eu", topicARN + "payments-audit"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.EvaluationResults) != 2 {
		t.Fatalf("%d results, want one per action", len(out.EvaluationResults))
	}
	write, read := out.EvaluationResults[0], out.EvaluationResults[1]
	if write.EvalDecision != iamtypes.PolicyEvaluationDecisionTypeExplicitDeny || len(write.ResourceSpecificResults) != 2 ||
		write.ResourceSpecificResults[0].EvalResourceDecision != iamtypes.PolicyEvaluationDecisionTypeAllowed ||
		write.ResourceSpecificResults[1].EvalResourceDecision != iamtypes.PolicyEvaluationDecisionTypeExplicitDeny ||
		len(write.MatchedStatements) != 1 || aws.ToString(write.MatchedStatements[0].SourcePolicyId) != "kafka-guardrails" {
		t.Fatalf("WriteData on two topics: %+v", write)
	}
	if read.EvalDecision != iamtypes.PolicyEvaluationDecisionTypeAllowed || aws.ToString(read.EvalResourceName) != "*" {
		t.Fatalf("ReadData on two topics: %+v", read)
	}

	// Without resources the simulation is for "*", which the topic statements do not cover.
	out, err = client.SimulatePrincipalPolicy(ctx, &awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(roleARN), ActionNames: []string{"kafka-cluster:DeleteTopic", "kafka-cluster:ReadData"}})
	if err != nil {
		t.Fatal(err)
	}
	if out.EvaluationResults[0].EvalDecision != iamtypes.PolicyEvaluationDecisionTypeExplicitDeny ||
		out.EvaluationResults[1].EvalDecision != iamtypes.PolicyEvaluationDecisionTypeImplicitDeny || out.EvaluationResults[1].ResourceSpecificResults != nil {
		t.Fatalf("simulation on *: %+v", out.EvaluationResults)
	}
}

func TestSimulatePrincipalPolicyUsersGroupsAndPages(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	client := awsiam.NewFromConfig(c.Root())
	if _, err := client.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("alice")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateGroup(ctx, &awsiam.CreateGroupInput{GroupName: aws.String("producers")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AddUserToGroup(ctx, &awsiam.AddUserToGroupInput{GroupName: aws.String("producers"), UserName: aws.String("alice")}); err != nil {
		t.Fatal(err)
	}
	write := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kafka-cluster:WriteData","Resource":"arn:aws:kafka:*:000000000000:topic/*"}}`
	if _, err := client.PutGroupPolicy(ctx, &awsiam.PutGroupPolicyInput{GroupName: aws.String("producers"), PolicyName: aws.String("write"), PolicyDocument: aws.String(write)}); err != nil {
		t.Fatal(err)
	}
	simulate := func(source string, actions ...string) (*awsiam.SimulatePrincipalPolicyOutput, error) {
		return client.SimulatePrincipalPolicy(ctx, &awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(source), ActionNames: actions, ResourceArns: []string{topicARN + "t"}})
	}
	for _, source := range []string{"arn:aws:iam::000000000000:user/alice", "arn:aws:iam::000000000000:group/producers"} {
		out, err := simulate(source, "kafka-cluster:WriteData")
		if err != nil {
			t.Fatal(err)
		}
		r := out.EvaluationResults[0]
		if r.EvalDecision != iamtypes.PolicyEvaluationDecisionTypeAllowed || aws.ToString(r.MatchedStatements[0].SourcePolicyId) != "group_producers_write" {
			t.Fatalf("%s: %+v", source, r)
		}
	}

	// Pages of results, one per action.
	actions := []string{"kafka-cluster:WriteData", "kafka-cluster:ReadData", "kafka-cluster:Connect"}
	first, err := client.SimulatePrincipalPolicy(ctx, &awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String("arn:aws:iam::000000000000:user/alice"), ActionNames: actions, MaxItems: aws.Int32(2)})
	if err != nil || !first.IsTruncated || len(first.EvaluationResults) != 2 || first.Marker == nil {
		t.Fatalf("first page: %+v %v", first, err)
	}
	second, err := client.SimulatePrincipalPolicy(ctx, &awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String("arn:aws:iam::000000000000:user/alice"), ActionNames: actions, MaxItems: aws.Int32(2), Marker: first.Marker})
	if err != nil || second.IsTruncated || len(second.EvaluationResults) != 1 || aws.ToString(second.EvaluationResults[0].EvalActionName) != "kafka-cluster:Connect" {
		t.Fatalf("second page: %+v %v", second, err)
	}

	tests := []struct {
		name string
		in   awsiam.SimulatePrincipalPolicyInput
		code string
	}{
		{"role session ARN", awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String("arn:aws:sts::000000000000:assumed-role/app/s"), ActionNames: actions}, "InvalidInput"},
		{"missing role", awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String("arn:aws:iam::000000000000:role/nobody"), ActionNames: actions}, "NoSuchEntity"},
		{"missing user", awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String("arn:aws:iam::000000000000:user/bob"), ActionNames: actions}, "NoSuchEntity"},
		{"bad context value", awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String("arn:aws:iam::000000000000:user/alice"), ActionNames: actions,
			ContextEntries: []iamtypes.ContextEntry{{ContextKeyName: aws.String("aws:EpochTime"), ContextKeyValues: []string{"soon"}, ContextKeyType: iamtypes.ContextKeyTypeEnumNumeric}}}, "InvalidInput"},
		{"several values for a single type", awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String("arn:aws:iam::000000000000:user/alice"), ActionNames: actions,
			ContextEntries: []iamtypes.ContextEntry{{ContextKeyName: aws.String("aws:username"), ContextKeyValues: []string{"a", "b"}, ContextKeyType: iamtypes.ContextKeyTypeEnumString}}}, "InvalidInput"},
		{"malformed extra policy", awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String("arn:aws:iam::000000000000:user/alice"), ActionNames: actions,
			PolicyInputList: []string{`{"Statement":{"Effect":"Allow","Action":"x"}}`}}, "MalformedPolicyDocument"},
		{"bad marker", awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String("arn:aws:iam::000000000000:user/alice"), ActionNames: actions, Marker: aws.String("zz")}, "InvalidInput"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.SimulatePrincipalPolicy(ctx, &tt.in)
			if got := awsapitest.ErrorCode(t, err); got != tt.code {
				t.Fatalf("code %s, want %s (%v)", got, tt.code, err)
			}
		})
	}
}

func TestSimulateCustomPolicy(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	client := awsiam.NewFromConfig(c.Root())
	dated := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kafka-cluster:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2018-08-16T12:00:00Z"}}}}`
	simulate := func(in awsiam.SimulateCustomPolicyInput) iamtypes.EvaluationResult {
		t.Helper()
		out, err := client.SimulateCustomPolicy(ctx, &in)
		if err != nil {
			t.Fatal(err)
		}
		return out.EvaluationResults[0]
	}
	when := func(date string) []iamtypes.ContextEntry {
		return []iamtypes.ContextEntry{{ContextKeyName: aws.String("aws:CurrentTime"), ContextKeyValues: []string{date}, ContextKeyType: iamtypes.ContextKeyTypeEnumDate}}
	}
	r := simulate(awsiam.SimulateCustomPolicyInput{PolicyInputList: []string{dated}, ActionNames: []string{"kafka-cluster:Connect"}, ContextEntries: when("2019-04-25T11:00:00Z")})
	if r.EvalDecision != iamtypes.PolicyEvaluationDecisionTypeAllowed || aws.ToString(r.MatchedStatements[0].SourcePolicyId) != "PolicyInputList.1" {
		t.Fatalf("after the date: %+v", r)
	}
	// The statement starts at byte 36 of the one-line document: IAM reports column 38, just
	// after the brace, and the end just after the closing brace.
	if st := r.MatchedStatements[0]; st.StartPosition.Line != 1 || st.StartPosition.Column != 38 || st.EndPosition.Column != int32(len(dated)) {
		t.Fatalf("positions %+v %+v", st.StartPosition, st.EndPosition)
	}
	if r := simulate(awsiam.SimulateCustomPolicyInput{PolicyInputList: []string{dated}, ActionNames: []string{"kafka-cluster:Connect"}, ContextEntries: when("2014-04-25T11:00:00Z")}); r.EvalDecision != iamtypes.PolicyEvaluationDecisionTypeImplicitDeny {
		t.Fatalf("before the date: %+v", r)
	}

	// A permissions boundary caps what the identity policies allow.
	boundary := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kafka-cluster:Describe*","Resource":"*"}}`
	r = simulate(awsiam.SimulateCustomPolicyInput{PolicyInputList: []string{dated}, PermissionsBoundaryPolicyInputList: []string{boundary},
		ActionNames: []string{"kafka-cluster:WriteData"}, ContextEntries: when("2019-04-25T11:00:00Z")})
	if r.EvalDecision != iamtypes.PolicyEvaluationDecisionTypeImplicitDeny || r.PermissionsBoundaryDecisionDetail == nil || r.PermissionsBoundaryDecisionDetail.AllowedByPermissionsBoundary {
		t.Fatalf("outside the boundary: %+v", r)
	}
	r = simulate(awsiam.SimulateCustomPolicyInput{PolicyInputList: []string{dated}, PermissionsBoundaryPolicyInputList: []string{boundary},
		ActionNames: []string{"kafka-cluster:DescribeTopic"}, ContextEntries: when("2019-04-25T11:00:00Z")})
	if r.EvalDecision != iamtypes.PolicyEvaluationDecisionTypeAllowed || !r.PermissionsBoundaryDecisionDetail.AllowedByPermissionsBoundary {
		t.Fatalf("inside the boundary: %+v", r)
	}

	// A resource policy naming the caller allows on its own; one naming the account delegates
	// to the identity policies; its Deny wins.
	caller := "arn:aws:iam::000000000000:user/alice"
	resourcePolicy := `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Principal":{"AWS":"` + caller + `"},"Action":"kafka-cluster:ReadData","Resource":"*"},
	  {"Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":"kafka-cluster:AlterGroup","Resource":"*"},
	  {"Effect":"Deny","Principal":"*","Action":"kafka-cluster:DeleteGroup","Resource":"*"}]}`
	none := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kafka-cluster:DeleteGroup","Resource":"*"}}`
	for action, want := range map[string]iamtypes.PolicyEvaluationDecisionType{
		"kafka-cluster:ReadData":    iamtypes.PolicyEvaluationDecisionTypeAllowed,
		"kafka-cluster:AlterGroup":  iamtypes.PolicyEvaluationDecisionTypeImplicitDeny,
		"kafka-cluster:DeleteGroup": iamtypes.PolicyEvaluationDecisionTypeExplicitDeny,
	} {
		r := simulate(awsiam.SimulateCustomPolicyInput{PolicyInputList: []string{none}, ResourcePolicy: aws.String(resourcePolicy), CallerArn: aws.String(caller),
			ActionNames: []string{action}, ResourceArns: []string{groupARN + "g"}})
		if r.EvalDecision != want {
			t.Errorf("%s with a resource policy: %s, want %s", action, r.EvalDecision, want)
		}
	}
	_, err := client.SimulateCustomPolicy(ctx, &awsiam.SimulateCustomPolicyInput{PolicyInputList: []string{none}, ResourcePolicy: aws.String(resourcePolicy), ActionNames: []string{"kafka-cluster:ReadData"}})
	if got := awsapitest.ErrorCode(t, err); got != "InvalidInput" {
		t.Fatalf("a resource policy without CallerArn: %s", got)
	}
}

// TestSimulatePrincipalPolicyNeedsPermission is how brokers use the simulator: with their
// instance role, which must be allowed iam:SimulatePrincipalPolicy on the client's role.
func TestSimulatePrincipalPolicyNeedsPermission(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	appARN := simulateFixture(t, c)
	root := awsiam.NewFromConfig(c.Root())
	awsapitest.CreateRole(t, root, "other", awsapitest.TrustAccount)
	broker := awsapitest.CreateRole(t, root, "broker", trustEC2)
	cred, err := c.Server.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(broker.Arn), aws.ToString(broker.RoleId), "i-0123456789abcdef0"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	instance := awsiam.NewFromConfig(c.Config(cred.AccessKeyID, cred.SecretAccessKey, cred.SessionToken))
	simulate := func(source string) error {
		_, err := instance.SimulatePrincipalPolicy(ctx, &awsiam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(source),
			ActionNames: []string{"kafka-cluster:Connect"}, ResourceArns: []string{clusterARN}})
		return err
	}
	err = simulate(appARN)
	if got := awsapitest.ErrorCode(t, err); got != "AccessDenied" || !strings.Contains(err.Error(), "iam:SimulatePrincipalPolicy on resource: "+appARN) {
		t.Fatalf("without permission: %v", err)
	}
	allow := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iam:SimulatePrincipalPolicy","Resource":"arn:aws:iam::000000000000:role/app*"}}`
	if _, err := root.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: broker.RoleName, PolicyName: aws.String("simulate"), PolicyDocument: aws.String(allow)}); err != nil {
		t.Fatal(err)
	}
	if err := simulate(appARN); err != nil {
		t.Fatalf("with permission: %v", err)
	}
	if got := awsapitest.ErrorCode(t, simulate("arn:aws:iam::000000000000:role/other")); got != "AccessDenied" {
		t.Fatalf("a role outside the permission: %s", got)
	}
	_, err = instance.SimulateCustomPolicy(ctx, &awsiam.SimulateCustomPolicyInput{PolicyInputList: []string{clientPolicy}, ActionNames: []string{"kafka-cluster:Connect"}})
	if got := awsapitest.ErrorCode(t, err); got != "AccessDenied" {
		t.Fatalf("SimulateCustomPolicy without permission: %s", got)
	}
}
