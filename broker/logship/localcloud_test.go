package logship

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/tributary/tributary/internal/localcloud"
	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

func startLocalCloud(t *testing.T) *localcloud.Cloud {
	t.Helper()
	c, err := localcloud.Start(context.Background(), localcloud.Options{StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roleSession creates a role with policy and returns a CloudWatch Logs
// client signing as a session of it, as a broker's instance role signs.
func roleSession(t *testing.T, c *localcloud.Cloud, name, policy string) *cloudwatchlogs.Client {
	t.Helper()
	s := roleCredentials(t, c, name, policy)
	return logsClient(c.Endpoint(), s.AccessKeyID, s.SecretAccessKey, s.SessionToken)
}

// roleCredentials creates a role with policy and returns a session of it.
func roleCredentials(t *testing.T, c *localcloud.Cloud, name, policy string) awsapi.Credential {
	t.Helper()
	ctx := context.Background()
	admin := iam.NewFromConfig(aws.Config{Region: c.Region(), BaseEndpoint: aws.String(c.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider(localcloud.AccessKeyID, localcloud.SecretAccessKey, "")})
	role, err := admin.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("logs"), PolicyDocument: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	s, err := c.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(role.Role.Arn), aws.ToString(role.Role.RoleId), "i-0123456789abcdef0"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// groupOnlyPolicy is the broker role's statement for logs (as
// provider/internal/fleet renders it): its cluster's group, nothing else.
func groupOnlyPolicy(group string) string {
	return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
	"Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:PutLogEvents"],
	"Resource":["arn:aws:logs:*:*:log-group:` + group + `","arn:aws:logs:*:*:log-group:` + group + `:*"]}]}`
}

// TestShipToLocalCloud: a broker's role that may write only to its group
// creates the group and both streams, ships, and the lines read back with
// FilterLogEvents; the audit lines are in their own stream.
func TestShipToLocalCloud(t *testing.T) {
	c := startLocalCloud(t)
	ctx := context.Background()
	client := roleSession(t, c, "broker", groupOnlyPolicy("tributary/orders"))
	log, h, _ := testLogger(t, HandlerOptions{})
	log.Info("starting tributary broker", "node_id", 3)
	log.With("log", "audit").Info("authorization allowed", "principal", "User:alice", "operation", "DELETE", "resource", "payments")
	sh, err := NewShipper(ShipperOptions{Handler: h, Client: client, LogGroup: "tributary/orders", NodeID: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	log.Info("second flush")
	if err := sh.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if st := sh.Stats(); st.Shipped != 3 || st.Puts != 3 || st.Queued != 0 {
		t.Fatalf("stats %+v: want 3 events in 3 calls", st)
	}

	root := logsClient(c.Endpoint(), localcloud.AccessKeyID, localcloud.SecretAccessKey, "")
	read := func(stream, pattern string) []string {
		t.Helper()
		out, err := root.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("tributary/orders"),
			LogStreamNames: []string{stream}, FilterPattern: aws.String(pattern)})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for _, e := range out.Events {
			msgs = append(msgs, aws.ToString(e.Message))
		}
		return msgs
	}
	if got := read("broker-3", `{ $.msg = "starting tributary broker" && $.node_id = 3 }`); len(got) != 1 {
		t.Errorf("broker-3 start line: %v", got)
	}
	if got := read("broker-3", ""); len(got) != 2 {
		t.Errorf("broker-3 has %d lines, want 2 (no audit line): %v", len(got), got)
	}
	if got := read("broker-3/audit", `{ $.principal = "User:alice" }`); len(got) != 1 || !strings.Contains(got[0], `"log":"audit"`) {
		t.Errorf("broker-3/audit: %v", got)
	}
}

// TestShipRefusedOutsideTheGroup: the same role shipping to another group
// is refused by the local cloud's policy check; nothing is lost but what
// the bound drops, and nothing blocks.
func TestShipRefusedOutsideTheGroup(t *testing.T) {
	c := startLocalCloud(t)
	ctx := context.Background()
	client := roleSession(t, c, "broker", groupOnlyPolicy("tributary/orders"))
	log, h, _ := testLogger(t, HandlerOptions{})
	log.Info("a line")
	sh, err := NewShipper(ShipperOptions{Handler: h, Client: client, LogGroup: "tributary/payments", NodeID: 1})
	if err != nil {
		t.Fatal(err)
	}
	err = sh.Flush(ctx)
	if err == nil || !isDenied(err) || !strings.Contains(err.Error(), "assumed-role/broker/") {
		t.Fatalf("Flush to another group: %v, want AccessDeniedException for the role session", err)
	}
	if st := sh.Stats(); st.Denied == 0 || st.Queued != 1 || st.Shipped != 0 {
		t.Fatalf("stats %+v: want a denial and the line still queued", st)
	}
	root := logsClient(c.Endpoint(), localcloud.AccessKeyID, localcloud.SecretAccessKey, "")
	out, err := root.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.LogGroups) != 0 {
		t.Errorf("a refused role created log groups: %+v", out.LogGroups)
	}
}
