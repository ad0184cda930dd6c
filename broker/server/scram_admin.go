package server

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/authz"
)

// authorizeScramAdmin checks what the SCRAM credential APIs need (authz's
// table: DESCRIBE, or ALTER, on the cluster) with Kafka's ACL authorizer
// over super.users and allow.everyone.if.no.acl.found, and writes the audit
// line. It answers 0, or CLUSTER_AUTHORIZATION_FAILED and its message.
func (s *Server) authorizeScramAdmin(ctx context.Context, c *conn, key int16, alter bool) (int16, string) {
	cfg := s.Config()
	su, _ := cfg.Configured("super.users")
	supers, _ := authz.ParseSuperUsers(su) // validated at start
	a := authz.NewACLAuthorizer(authz.ACLOptions{SuperUsers: supers, AllowEveryoneIfNoACLFound: cfg.AllowEveryoneIfNoACLFound()})
	op := kmsg.ACLOperationDescribe
	if alter {
		op = kmsg.ACLOperationAlter
	}
	acts := []authz.Action{{Operation: op, Type: kmsg.ACLResourceTypeCluster, Name: authz.ClusterName}}
	ds := a.Authorize(ctx, c.requestContext(), acts)
	s.audit.Record(ctx, c.auditRequest(key), acts, ds)
	if ds[0].Allowed {
		return 0, ""
	}
	return kerr.ClusterAuthorizationFailed.Code, fmt.Sprintf("%s is not allowed %s on the cluster", c.principal, op)
}
