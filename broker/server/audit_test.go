package server

import (
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

// auditLines returns the audit lines of a text log (slog's TextHandler),
// each as its key=value pairs.
func auditLines(log string) []map[string]string {
	var out []map[string]string
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "log=audit") {
			continue
		}
		kv := map[string]string{}
		for i := 0; i < len(line); {
			for i < len(line) && line[i] == ' ' {
				i++
			}
			eq := strings.IndexByte(line[i:], '=')
			if eq < 0 {
				break
			}
			key := line[i : i+eq]
			i += eq + 1
			if i < len(line) && line[i] == '"' {
				j := i + 1
				for j < len(line) && line[j] != '"' {
					if line[j] == '\\' {
						j++
					}
					j++
				}
				v, err := strconv.Unquote(line[i:min(j+1, len(line))])
				if err != nil {
					break
				}
				kv[key], i = v, j+1
				continue
			}
			j := strings.IndexByte(line[i:], ' ')
			if j < 0 {
				j = len(line) - i
			}
			kv[key], i = line[i:i+j], i+j
		}
		out = append(out, kv)
	}
	return out
}

// findAudit returns the first line with every want pair.
func findAudit(lines []map[string]string, want map[string]string) (map[string]string, bool) {
	for _, l := range lines {
		ok := true
		for k, v := range want {
			if l[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return l, true
		}
	}
	return nil, false
}

// TestAuditTrail reads the broker's log: a denial and allowed changes are
// each one audit line with who, from where, which API, what and the
// answer; allowed reads and writes of data are not audited.
func TestAuditTrail(t *testing.T) {
	var logs logBuffer
	s := startServerWithLog(t, &logs, func(c *config.Config) {
		if err := c.Set("allow.everyone.if.no.acl.found", "false"); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := s.createTopic("orders", 1, nil); err != nil {
		t.Fatal(err)
	}
	// Denied: no ACL.
	exchange(t, s, produceReq("orders", -1, batch(-1, -1, -1, 1, 10)))
	// Allowed: a topic created and ACLs changed by an operator ACL.
	setACLs(t, s, clusterACL(kmsg.ACLOperationAll), topicACL("orders", kmsg.ACLOperationWrite))
	exchange(t, s, createTopicsReq("audited"))
	create := at(kmsg.NewPtrCreateACLsRequest())
	create.Creations = []kmsg.CreateACLsRequestCreation{{ResourceType: kmsg.ACLResourceTypeGroup, ResourceName: "billing", ResourcePatternType: kmsg.ACLResourcePatternTypePrefixed,
		Principal: "User:alice", Host: "*", Operation: kmsg.ACLOperationRead, PermissionType: kmsg.ACLPermissionTypeAllow}}
	exchange(t, s, create)
	// Allowed data traffic: not audited.
	exchange(t, s, produceReq("orders", -1, batch(-1, -1, -1, 1, 10)))

	lines := auditLines(logs.String())
	for _, tc := range []struct {
		what string
		want map[string]string
	}{
		{"the denied produce", map[string]string{"msg": "authorization denied", "level": "WARN", "api": "Produce", "api_key": "0", "operation": "WRITE",
			"resource_type": "TOPIC", "resource": "orders", "allowed": "false", "reason": "no ACL for the resource and allow.everyone.if.no.acl.found=false"}},
		{"the topic creation", map[string]string{"msg": "authorization allowed", "level": "INFO", "api": "CreateTopics", "operation": "CREATE",
			"resource_type": "CLUSTER", "resource": "kafka-cluster", "allowed": "true"}},
		{"the created topic", map[string]string{"msg": "changed", "api": "CreateTopics", "what": "topic created", "object": "audited"}},
		{"the ACL change", map[string]string{"msg": "authorization allowed", "api": "CreateACLs", "operation": "ALTER", "resource_type": "CLUSTER", "allowed": "true"}},
		{"the created ACL", map[string]string{"msg": "changed", "api": "CreateACLs", "what": "ACL created",
			"object": "(GROUP:PREFIXED:billing, User:alice from *: ALLOW READ)"}},
	} {
		l, ok := findAudit(lines, tc.want)
		if !ok {
			t.Errorf("no audit line for %s (%v) in:\n%s", tc.what, tc.want, logs.String())
			continue
		}
		if l["principal"] != anonymous || !strings.HasPrefix(l["client"], "127.0.0.1:") || l["listener"] != "PLAINTEXT" {
			t.Errorf("%s: principal %q client %q listener %q", tc.what, l["principal"], l["client"], l["listener"])
		}
	}
	writes := 0
	for _, l := range lines {
		if l["operation"] == "WRITE" && l["allowed"] == "true" {
			writes++
		}
	}
	if writes != 0 {
		t.Errorf("%d allowed writes of data audited", writes)
	}
}
