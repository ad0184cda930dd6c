package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAuditAdminResults: a topic deleted by an authenticated principal is
// in the audit trail with that principal, the client's address and the
// result; the same request from a principal without permission is a
// denial line and a failed result, and deletes nothing.
func TestAuditAdminResults(t *testing.T) {
	s, e, logs := startSCRAMServer(t, map[string]string{"super.users": "User:alice"})
	_, alice := scramAdmin(t, s, e, "alice", "alice-secret")
	bobClient, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT_SASL_SCRAM").String()), kgo.DialTLSConfig(clientTLS(t, e.ca, nil)),
		kgo.SASL(scramMech("SCRAM-SHA-256", "bob", "bob-secret")), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bobClient.Close)
	bob := kadm.NewClient(bobClient)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, topic := range []string{"doomed", "kept"} {
		if _, err := alice.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatalf("alice creating %s: %v", topic, err)
		}
	}
	res, err := bob.DeleteTopic(ctx, "kept")
	if err == nil && res.Err == nil {
		t.Fatal("bob deleted a topic without permission")
	}
	if err == nil && !errors.Is(res.Err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("bob deleting kept: %v", res.Err)
	}
	if res, err := alice.DeleteTopic(ctx, "doomed"); err != nil || res.Err != nil {
		t.Fatalf("alice deleting doomed: %v %v", err, res.Err)
	}

	waitLog(t, logs, `msg="admin request" log=audit principal=User:alice`)
	lines := auditLines(logs.String())
	for _, tc := range []struct {
		what string
		want map[string]string
	}{
		{"alice's deletion", map[string]string{"msg": "admin request", "level": "INFO", "principal": "User:alice", "api": "DeleteTopics",
			"api_key": "20", "results": "[topic:doomed=NONE]", "failed": "0", "validate_only": "false", "listener": "CLIENT_SASL_SCRAM"}},
		{"alice's allowed decision", map[string]string{"msg": "authorization allowed", "principal": "User:alice", "api": "DeleteTopics",
			"operation": "DELETE", "resource": "doomed"}},
		{"bob's denial", map[string]string{"msg": "authorization denied", "level": "WARN", "principal": "User:bob", "api": "DeleteTopics",
			"operation": "DELETE", "resource_type": "TOPIC", "resource": "kept", "allowed": "false"}},
		{"bob's failed result", map[string]string{"msg": "admin request", "level": "WARN", "principal": "User:bob", "api": "DeleteTopics",
			"results": "[topic:kept=TOPIC_AUTHORIZATION_FAILED]", "failed": "1"}},
		{"the creations' results", map[string]string{"msg": "admin request", "principal": "User:alice", "api": "CreateTopics", "results": "[topic:kept=NONE]"}},
	} {
		l, ok := findAudit(lines, tc.want)
		if !ok {
			t.Errorf("no audit line for %s (%v) in:\n%s", tc.what, tc.want, logs.String())
			continue
		}
		if l["client"] == "" || l["client"][:10] != "127.0.0.1:" {
			t.Errorf("%s: client %q, want the client's loopback address", tc.what, l["client"])
		}
	}
	if _, ok := s.lookupTopic("kept"); !ok {
		t.Error("bob's refused deletion deleted the topic")
	}
}
