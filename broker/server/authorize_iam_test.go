package server

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/security/authz"
	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/iam"
	"github.com/tributary/tributary/internal/localcloud/sts"
)

// iamCloud is a local cloud serving IAM (with its policy simulator) and
// STS, with two roles under the path /team/: writer may connect to
// cluster "orders" and write topics orders-*, reader may only connect and
// describe them.
func iamCloud(t *testing.T) *awsapitest.Cloud {
	t.Helper()
	c := awsapitest.Start(t)
	iamSvc, err := iam.New(c.Env(""))
	if err != nil {
		t.Fatal(err)
	}
	stsSvc, err := sts.New(c.Env(""), iamSvc)
	if err != nil {
		t.Fatal(err)
	}
	c.Server.Register("iam", iamSvc)
	c.Server.Register("sts", stsSvc)
	client := awsiam.NewFromConfig(c.Root())
	for name, actions := range map[string]string{
		"writer": `"kafka-cluster:WriteData", "kafka-cluster:DescribeTopic", "kafka-cluster:WriteDataIdempotently"`,
		"reader": `"kafka-cluster:DescribeTopic"`,
		"nobody": ``,
	} {
		if _, err := client.CreateRole(context.Background(), &awsiam.CreateRoleInput{RoleName: aws.String(name), Path: aws.String("/team/"),
			AssumeRolePolicyDocument: aws.String(awsapitest.TrustAccount)}); err != nil {
			t.Fatal(err)
		}
		if name == "nobody" {
			continue
		}
		policy := `{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["kafka-cluster:Connect","kafka-cluster:DescribeCluster"],"Resource":"arn:aws:kafka:us-east-1:000000000000:cluster/orders/*"},
  {"Effect":"Allow","Action":"kafka-cluster:WriteDataIdempotently","Resource":"arn:aws:kafka:us-east-1:000000000000:cluster/orders/*"},
  {"Effect":"Allow","Action":[` + actions + `],"Resource":"arn:aws:kafka:us-east-1:000000000000:topic/orders/*/orders-*"}]}`
		if name == "reader" {
			policy = strings.Replace(policy, `{"Effect":"Allow","Action":"kafka-cluster:WriteDataIdempotently","Resource":"arn:aws:kafka:us-east-1:000000000000:cluster/orders/*"},`, "", 1)
		}
		if _, err := client.PutRolePolicy(context.Background(), &awsiam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("kafka"),
			PolicyDocument: aws.String(policy)}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// withIAMListener authorizes s as a broker with an IAM listener (SASL_SSL
// offering OAUTHBEARER) beside its PLAINTEXT one would be, in mode, using
// awsCfg: the IAM principals of the test are the ones such a listener
// would authenticate.
func withIAMListener(t *testing.T, s *Server, mode string, awsCfg *aws.Config) {
	t.Helper()
	cfg := s.Config().Clone()
	for k, v := range map[string]string{
		"listeners":                                 "PLAINTEXT://127.0.0.1:0,IAM://127.0.0.1:0",
		"listener.security.protocol.map":            "PLAINTEXT:PLAINTEXT,IAM:SASL_SSL",
		"listener.name.iam.sasl.enabled.mechanisms": "OAUTHBEARER",
		"tributary.cluster.name":                    "orders",
		"tributary.iam.authorization":               mode,
	} {
		if err := cfg.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if got := cfg.IAMListeners(); len(got) != 1 || got[0] != "IAM" {
		t.Fatalf("IAM listeners %v", got)
	}
	a, err := s.newAuthorizer(context.Background(), cfg, awsCfg)
	if err != nil {
		t.Fatal(err)
	}
	s.access = a
}

// iamAuth authorizes a request of key as the role name, as an IAM token
// names it: the role's ARN without its path (an assumed-role session
// normalised to its role).
func iamAuth(s *Server, role string, key int16) reqAuth {
	host := netip.MustParseAddr("127.0.0.1")
	return reqAuth{s: s, key: key, client: netip.AddrPortFrom(host, 40000),
		rc: authz.RequestContext{Principal: "User:arn:aws:iam::" + awsapi.DefaultAccount + ":role/" + role, Host: host, IAM: true, Listener: "IAM"}}
}

// TestIAMPrincipalsAuthorizedByPolicies: IAM principals are authorized as
// Amazon MSK does, by iam:SimulatePrincipalPolicy on the kafka-cluster
// actions and ARNs, through the local cloud's policy engine. The roles
// have a path, which the principal of an assumed-role session lacks; the
// local cloud, like IAM, simulates a role only by its full ARN, so the
// writer's success shows that iam:GetRole found the path.
func TestIAMPrincipalsAuthorizedByPolicies(t *testing.T) {
	cloud := iamCloud(t)
	var logs logBuffer
	awsCfg := cloud.Root()
	s := startServerWithLog(t, &logs)
	withIAMListener(t, s, config.IAMPolicies, &awsCfg)
	if s.access.iam == nil {
		t.Fatal("no IAM authorizer with an IAM listener and tributary.iam.authorization=policies")
	}
	if arn := s.access.iam.ClusterARN(); arn != "arn:aws:kafka:us-east-1:000000000000:cluster/orders/"+s.ClusterID() {
		t.Fatalf("cluster ARN %s", arn)
	}
	if _, err := s.createTopic("orders-eu", 1, nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	produce := func(role string) int16 {
		t.Helper()
		resp, err := s.handleProduce(ctx, iamAuth(s, role, 0), produceReq("orders-eu", -1, batch(-1, -1, -1, 1, 10)))
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	if code := produce("writer"); code != 0 {
		t.Fatalf("writer (kafka-cluster:WriteData on the topic): %v", kerr.ErrorForCode(code))
	}
	if code := produce("reader"); code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("reader (no WriteData): %v, want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	// The root user of the broker's own account may do everything, as IAM
	// allows it; another account's root is asked about and refused.
	for root, want := range map[string]int16{
		"arn:aws:iam::" + awsapi.DefaultAccount + ":root": 0,
		"arn:aws:iam::111122223333:root":                  kerr.TopicAuthorizationFailed.Code,
	} {
		auth := iamAuth(s, "writer", 0)
		auth.rc.Principal = "User:" + root
		resp, err := s.handleProduce(ctx, auth, produceReq("orders-eu", -1, batch(-1, -1, -1, 1, 10)))
		if err != nil {
			t.Fatal(err)
		}
		if code := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != want {
			t.Errorf("produce as %s: %v, want %v", root, kerr.ErrorForCode(code), kerr.ErrorForCode(want))
		}
	}
	// Idempotent producers need kafka-cluster:WriteDataIdempotently.
	for role, want := range map[string]int16{"writer": 0, "reader": kerr.ClusterAuthorizationFailed.Code} {
		if got := s.handleInitProducerID(ctx, iamAuth(s, role, 22), kmsg.NewPtrInitProducerIDRequest()).ErrorCode; got != want {
			t.Errorf("InitProducerId as %s: %v, want %v", role, kerr.ErrorForCode(got), kerr.ErrorForCode(want))
		}
	}
	// Metadata lists what the role may describe.
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 12
	if got := s.handleMetadata(ctx, iamAuth(s, "reader", 3), meta).Topics; len(got) != 1 || *got[0].Topic != "orders-eu" {
		t.Fatalf("reader sees %+v", got)
	}
	if got := s.handleMetadata(ctx, iamAuth(s, "nobody", 3), meta).Topics; len(got) != 0 {
		t.Fatalf("a role without policies sees %+v", got)
	}

	// Connect is checked when a client authenticates.
	c := dialConn(t, s)
	if err := s.authorizeConnect(ctx, c, iamAuth(s, "writer", 36).rc); err != nil {
		t.Fatalf("writer refused at connection: %v", err)
	}
	err := s.authorizeConnect(ctx, c, iamAuth(s, "nobody", 36).rc)
	if err == nil || !strings.Contains(err.Error(), "kafka-cluster:Connect") {
		t.Fatalf("a role without kafka-cluster:Connect: %v", err)
	}
	if l, ok := findAudit(auditLines(logs.String()), map[string]string{"msg": "refused", "principal": "User:arn:aws:iam::000000000000:role/nobody", "listener": "IAM"}); !ok {
		t.Fatalf("no audit line for the refused connection:\n%s", logs.String())
	} else if !strings.Contains(l["reason"], "kafka-cluster:Connect") {
		t.Fatalf("audit reason %q", l["reason"])
	}
	if err := s.authorizeConnect(ctx, c, authz.RequestContext{Principal: "User:alice", Host: netip.MustParseAddr("127.0.0.1")}); err != nil {
		t.Fatalf("a SCRAM principal refused at connection: %v", err)
	}
}

// TestIAMPrincipalsAuthorizedByACLs: with tributary.iam.authorization=acls
// an IAM principal is a principal like any other, authorized by ACLs.
func TestIAMPrincipalsAuthorizedByACLs(t *testing.T) {
	s := startServer(t)
	withIAMListener(t, s, config.IAMACLs, nil)
	if s.access.iam != nil {
		t.Fatal("an IAM authorizer with tributary.iam.authorization=acls")
	}
	if _, err := s.createTopic("orders-eu", 1, nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	writer := iamAuth(s, "writer", 0)
	produce := func() int16 {
		resp, err := s.handleProduce(ctx, writer, produceReq("orders-eu", -1, batch(-1, -1, -1, 1, 10)))
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	if code := produce(); code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("without an ACL: %v", kerr.ErrorForCode(code))
	}
	acl := topicACL("orders-eu", kmsg.ACLOperationWrite)
	acl.Principal = writer.rc.Principal
	setACLs(t, s, acl)
	if code := produce(); code != 0 {
		t.Fatalf("with an ACL for the role's principal: %v", kerr.ErrorForCode(code))
	}
	if err := s.authorizeConnect(ctx, dialConn(t, s), writer.rc); err != nil {
		t.Fatalf("connect under acls: %v", err)
	}
}
