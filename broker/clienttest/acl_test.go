package clienttest

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

// lockedDown makes a broker where no principal may do what no ACL allows;
// with admin, the PLAINTEXT clients (User:ANONYMOUS) are super users.
func lockedDown(t *testing.T, admin bool) func(*config.Config) {
	return func(c *config.Config) {
		if err := c.Set("allow.everyone.if.no.acl.found", "false"); err != nil {
			t.Fatal(err)
		}
		users := ""
		if admin {
			users = "User:ANONYMOUS"
		}
		if err := c.Set("super.users", users); err != nil {
			t.Fatal(err)
		}
	}
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestACLAdminWithKadm creates, describes and deletes ACLs with franz-go's
// admin client, as a super user, and checks they live in the metadata log
// (a restart keeps them).
func TestACLAdminWithKadm(t *testing.T) {
	b := startBroker(t, lockedDown(t, true))
	adm := b.admin(t)
	ctx := ctx10(t)

	create := kadm.NewACLs().
		Allow("User:alice", "User:bob").AllowHosts().
		Topics("orders").ResourcePatternType(kadm.ACLPatternPrefixed).
		Groups("billing").
		Operations(kadm.OpRead, kadm.OpDescribe)
	results, err := adm.CreateACLs(ctx, create)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 8 {
		t.Fatalf("%d creation results, want 8 (2 principals x 2 resources x 2 operations)", len(results))
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("creating %s %s %s: %v (%s)", r.Principal, r.Name, r.Operation, r.Err, r.ErrMessage)
		}
	}
	deny := kadm.NewACLs().Deny("User:bob").DenyHosts("10.0.0.9").Topics("orders-eu").ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpAll)
	if _, err := adm.CreateACLs(ctx, deny); err != nil {
		t.Fatal(err)
	}

	describe := func(b *kadm.ACLBuilder) []kadm.DescribedACL {
		t.Helper()
		got, err := adm.DescribeACLs(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		var out []kadm.DescribedACL
		for _, r := range got {
			if r.Err != nil {
				t.Fatalf("describing: %v (%s)", r.Err, r.ErrMessage)
			}
			out = append(out, r.Described...)
		}
		return out
	}
	all := kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny).Allow().Deny().AllowHosts().DenyHosts()
	if got := describe(all); len(got) != 9 {
		t.Fatalf("described %d ACLs, want 9: %+v", len(got), got)
	}
	// MATCH: the ACLs that apply to topic orders-eu are the prefix and the
	// literal DENY.
	match := kadm.NewACLs().Topics("orders-eu").ResourcePatternType(kadm.ACLPatternMatch).Operations(kadm.OpAny).Allow().Deny().AllowHosts().DenyHosts()
	if got := describe(match); len(got) != 5 {
		t.Fatalf("ACLs applying to orders-eu: %d, want 5: %+v", len(got), got)
	}

	// Invalid ACLs are refused one by one with the reason.
	req := kmsg.NewPtrCreateACLsRequest()
	for _, c := range []struct {
		typ                   kmsg.ACLResourceType
		name, principal, host string
	}{
		{kmsg.ACLResourceTypeTopic, "fine", "User:carol", "*"},
		{kmsg.ACLResourceTypeTopic, "t", "carol", "*"},
		{kmsg.ACLResourceTypeTopic, "t", "User:carol", "not-an-ip"},
		{kmsg.ACLResourceTypeCluster, "other-cluster", "User:carol", "*"},
	} {
		cr := kmsg.NewCreateACLsRequestCreation()
		cr.ResourceType, cr.ResourceName, cr.ResourcePatternType = c.typ, c.name, kmsg.ACLResourcePatternTypeLiteral
		cr.Principal, cr.Host, cr.Operation, cr.PermissionType = c.principal, c.host, kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
		req.Creations = append(req.Creations, cr)
	}
	resp, err := req.RequestWith(ctx, b.client(t))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int16{0, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code} {
		if r := resp.Results[i]; r.ErrorCode != want || (want != 0 && (r.ErrorMessage == nil || *r.ErrorMessage == "")) {
			t.Errorf("creation %d: %v %v, want %v with a reason", i, kerr.ErrorForCode(r.ErrorCode), r.ErrorMessage, kerr.ErrorForCode(want))
		}
	}

	b.restart()
	adm = b.admin(t)
	if got := describe(all); len(got) != 10 {
		t.Fatalf("after a restart: %d ACLs, want 10", len(got))
	}
	deleted, err := adm.DeleteACLs(ctx, kadm.NewACLs().Allow("User:bob").AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny).AllowHosts())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range deleted {
		if r.Err != nil {
			t.Fatalf("deleting: %v", r.Err)
		}
		n += len(r.Deleted)
	}
	if n != 4 {
		t.Fatalf("deleted %d of bob's ALLOW ACLs, want 4", n)
	}
	if got := describe(all); len(got) != 6 {
		t.Fatalf("after deleting: %d ACLs, want 6", len(got))
	}
}

// TestDenialReachesClients checks that a principal without ACLs gets
// Kafka's authorization errors, as each client reports them, and that an
// ACL lets it through.
func TestDenialReachesClients(t *testing.T) {
	b := startBroker(t, lockedDown(t, true))
	b.createTopic(t, "secret", 1, nil)
	b.createTopic(t, "open", 1, nil)
	adm := b.admin(t)
	ctx := ctx10(t)
	grant := kadm.NewACLs().Allow("User:ANONYMOUS").AllowHosts().Topics("open").ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpWrite, kadm.OpRead)
	if _, err := adm.CreateACLs(ctx, grant); err != nil {
		t.Fatal(err)
	}
	idem := kadm.NewACLs().Allow("User:ANONYMOUS").AllowHosts().Clusters().Operations(kadm.OpIdempotentWrite)
	if _, err := adm.CreateACLs(ctx, idem); err != nil {
		t.Fatal(err)
	}
	// The clients are no longer super users.
	lockedDown(t, false)(b.cfg)
	b.restart()

	t.Run("franz-go", func(t *testing.T) {
		cl := b.client(t, kgo.RecordRetries(1), kgo.ProduceRequestTimeout(5*time.Second))
		err := cl.ProduceSync(ctx10(t), &kgo.Record{Topic: "secret", Value: []byte("x")}).FirstErr()
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("producing to secret: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		if err := cl.ProduceSync(ctx10(t), &kgo.Record{Topic: "open", Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatalf("producing to open: %v", err)
		}
		adm := kadm.NewClient(cl)
		if _, err := adm.CreateTopic(ctx10(t), 1, 1, nil, "mine"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("creating a topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		described, err := adm.DescribeACLs(ctx10(t), kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny).Allow().Deny().AllowHosts().DenyHosts())
		if err != nil || len(described) != 1 || !errors.Is(described[0].Err, kerr.ClusterAuthorizationFailed) {
			t.Fatalf("describing ACLs: %+v %v, want CLUSTER_AUTHORIZATION_FAILED", described, err)
		}
		topics, err := adm.ListTopics(ctx10(t))
		if err != nil {
			t.Fatal(err)
		}
		if names := topics.Names(); len(names) != 1 || names[0] != "open" {
			t.Fatalf("listed topics %v, want only open", names)
		}
	})

	t.Run("kcat", func(t *testing.T) {
		requireTool(t, "/usr/bin/kcat", "kcat")
		out, errOut, err := runAllowFail(30*time.Second, "x\n", "/usr/bin/kcat", "-P", "-b", b.addr, "-t", "secret", "-X", "message.timeout.ms=10000")
		if err == nil || !strings.Contains(errOut, "Topic authorization failed") {
			t.Fatalf("kcat producing to secret: err %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
		}
		run(t, 30*time.Second, "y\n", "/usr/bin/kcat", "-P", "-b", b.addr, "-t", "open")
	})

	t.Run("kafka-python", func(t *testing.T) {
		requirePython(t, "kafka", "python3-kafka")
		script := `
import sys
from kafka import KafkaProducer
from kafka.errors import TopicAuthorizationFailedError
p = KafkaProducer(bootstrap_servers=sys.argv[1], max_block_ms=10000)
p.send("open", b"x").get(timeout=10)
print("open ok")
try:
    p.send("secret", b"x").get(timeout=10)
    print("sent")
except TopicAuthorizationFailedError as e:
    print("denied", type(e).__name__)
`
		out := run(t, 60*time.Second, "", python, "-c", script, b.addr)
		if !strings.Contains(out, "denied TopicAuthorizationFailedError") || !strings.Contains(out, "open ok") {
			t.Fatalf("kafka-python:\n%s", out)
		}
	})
}

// runAllowFail runs a command that may fail and returns its outputs.
func runAllowFail(limit time.Duration, stdin string, name string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}
