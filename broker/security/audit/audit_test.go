package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/authz"
)

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestRecord(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewJSONHandler(&buf, nil)))
	acls, err := authz.NewACLs([]authz.Binding{
		{Pattern: authz.Pattern{Type: kmsg.ACLResourceTypeTopic, Name: "orders", PatternType: kmsg.ACLResourcePatternTypeLiteral},
			Entry: authz.Entry{Principal: "User:alice", Host: "*", Operation: kmsg.ACLOperationAll, Permission: kmsg.ACLPermissionTypeAllow}},
	})
	if err != nil {
		t.Fatal(err)
	}
	az := authz.NewACLAuthorizer(authz.ACLOptions{})
	az.SetACLs(acls)
	rc := authz.RequestContext{Principal: "User:alice", Host: netip.MustParseAddr("10.0.0.7")}
	acts := []authz.Action{
		{Operation: kmsg.ACLOperationRead, Type: kmsg.ACLResourceTypeTopic, Name: "orders"},         // allowed read: not audited
		{Operation: kmsg.ACLOperationDescribe, Type: kmsg.ACLResourceTypeTopic, Name: "orders"},     // allowed describe: not audited
		{Operation: kmsg.ACLOperationDelete, Type: kmsg.ACLResourceTypeTopic, Name: "orders"},       // allowed delete
		{Operation: kmsg.ACLOperationAlterConfigs, Type: kmsg.ACLResourceTypeTopic, Name: "orders"}, // allowed config change
		{Operation: kmsg.ACLOperationRead, Type: kmsg.ACLResourceTypeTopic, Name: "payments"},       // denied read
	}
	ds := az.Authorize(context.Background(), rc, acts)
	req := Request{Principal: rc.Principal, Client: netip.MustParseAddrPort("10.0.0.7:51234"), Listener: "SASL_SSL", APIKey: 20}
	l.Record(context.Background(), req, acts, ds)
	got := lines(t, &buf)
	if len(got) != 3 {
		t.Fatalf("%d lines, want 3 (two changes, one denial):\n%s", len(got), buf.String())
	}
	want := []struct {
		level, op, resource string
		allowed             bool
	}{
		{"INFO", "DELETE", "orders", true},
		{"INFO", "ALTER_CONFIGS", "orders", true},
		{"WARN", "READ", "payments", false},
	}
	for i, w := range want {
		g := got[i]
		if g["level"] != w.level || g["operation"] != w.op || g["resource"] != w.resource || g["allowed"] != w.allowed ||
			g["log"] != "audit" || g["principal"] != "User:alice" || g["client"] != "10.0.0.7:51234" || g["listener"] != "SASL_SSL" ||
			g["api"] != "DeleteTopics" || g["api_key"] != float64(20) || g["resource_type"] != "TOPIC" || g["reason"] == "" {
			t.Errorf("line %d: %v, want %+v", i, g, w)
		}
	}
	if !strings.Contains(got[2]["reason"].(string), "no ACL") {
		t.Errorf("denial reason %q", got[2]["reason"])
	}

	buf.Reset()
	l.Refused(context.Background(), Request{Client: netip.MustParseAddrPort("10.0.0.9:4000"), Listener: "SASL_SSL", APIKey: 36},
		"SASL OAUTHBEARER authentication", "expired IAM token: it expired at 2026-01-01T00:00:00Z")
	got = lines(t, &buf)
	if len(got) != 1 || got[0]["level"] != "WARN" || got[0]["api"] != "SASLAuthenticate" || got[0]["allowed"] != false || got[0]["what"] != "SASL OAUTHBEARER authentication" {
		t.Fatalf("%v", got)
	}
}

func TestAudited(t *testing.T) {
	for op := kmsg.ACLOperationAll; op <= kmsg.ACLOperationDescribeTokens; op++ {
		if !Audited(op, false) {
			t.Errorf("a denied %s is not audited", op)
		}
		change := op == kmsg.ACLOperationCreate || op == kmsg.ACLOperationDelete || op == kmsg.ACLOperationAlter || op == kmsg.ACLOperationAlterConfigs
		if Audited(op, true) != change {
			t.Errorf("allowed %s audited: %v, want %v", op, Audited(op, true), change)
		}
	}
}
