package server

// Authorization: every request is checked by the broker's authorizer with
// Kafka's semantics (package authz, table authz.ForAPI): a denial is the
// API's authorization error code in the response, never a closed
// connection. Kafka ACLs live in the metadata log; the ACL authorizer reads
// the snapshot of the state in force, so a change applied by the log is in
// force on this broker at once, without a lock. IAM principals are
// authorized by their IAM policies (tributary.iam.authorization=policies,
// the default) or by ACLs. Every denial and every allowed create, alter or
// delete is written to the audit trail (package audit).

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/security/audit"
	"github.com/tributary/tributary/broker/security/authz"
	"github.com/tributary/tributary/broker/storage/recordbatch"
	"github.com/tributary/tributary/internal/awsbody"
)

// authorizer is the broker's authorization: the ACL authorizer, and the
// IAM one when IAM principals are authorized by their policies. Decisions
// are audited in the server's audit trail (Server.audit).
type authorizer struct {
	acl *authz.ACLAuthorizer
	iam *authz.IAMAuthorizer // nil: IAM principals are authorized by ACLs (or there are none)
	az  authz.Authorizer
}

// newAuthorizer builds the authorizer from the settings. With an IAM
// listener and tributary.iam.authorization=policies it asks STS for the
// broker's account (the kafka-cluster ARNs name it) and IAM policies are
// simulated with the broker's own credentials (awsCfg, or the SDK's
// default chain when nil).
func (s *Server) newAuthorizer(ctx context.Context, cfg *config.Config, awsCfg *aws.Config) (*authorizer, error) {
	superUsers, _ := cfg.Configured("super.users")
	supers, err := authz.ParseSuperUsers(superUsers)
	if err != nil {
		return nil, err
	}
	a := &authorizer{
		acl: authz.NewACLAuthorizer(authz.ACLOptions{
			SuperUsers:                supers,
			AllowEveryoneIfNoACLFound: cfg.AllowEveryoneIfNoACLFound(),
			Source:                    s.meta.ACLs,
		}),
	}
	a.az = a.acl
	iamListeners := cfg.IAMListeners()
	if len(iamListeners) == 0 || cfg.IAMAuthorization != config.IAMPolicies {
		return a, nil
	}
	if awsCfg == nil {
		// The region from the environment, else the instance's own.
		c, err := awsbody.LoadDefaultConfig(ctx, awsconfig.WithEC2IMDSRegion())
		if err != nil {
			return nil, fmt.Errorf("IAM authorization (tributary.iam.authorization=policies, listener %s): loading the AWS SDK configuration: %w", strings.Join(iamListeners, ", "), err)
		}
		awsCfg = &c
	}
	who, err := sts.NewFromConfig(*awsCfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, fmt.Errorf("IAM authorization (tributary.iam.authorization=policies): finding the broker's AWS account with sts:GetCallerIdentity: %w", err)
	}
	clusterName := cfg.Metrics["tributary.cluster.name"]
	if clusterName == "" {
		clusterName = s.ClusterID()
	}
	a.iam, err = authz.NewIAMAuthorizer(authz.IAMOptions{
		Region:      awsCfg.Region,
		Account:     aws.ToString(who.Account),
		ClusterName: clusterName,
		ClusterUUID: s.ClusterID(),
		Evaluator:   authz.NewSimulateEvaluator(iam.NewFromConfig(*awsCfg)),
		Logger:      s.log,
	})
	if err != nil {
		return nil, err
	}
	a.az = authz.Router{ACLs: a.acl, IAM: a.iam}
	s.log.Info("IAM principals are authorized by their IAM policies", "cluster_arn", a.iam.ClusterARN(), "listeners", iamListeners)
	return a, nil
}

// authorizeConnect decides whether a connection that has just
// authenticated as rc may go on: call it after every successful
// authentication (SaslAuthenticate, and re-authentication), before the
// connection serves anything else. IAM principals under
// tributary.iam.authorization=policies need kafka-cluster:Connect on the
// cluster, as Amazon MSK checks when a client connects; every other
// principal passes (Kafka has no permission to connect). A non-nil error
// is a refusal whose text holds nothing secret and may be sent to the
// client (SaslAuthenticate's error message, with
// SASL_AUTHENTICATION_FAILED); the connection must then be closed. The
// refusal is written to the audit trail.
func (s *Server) authorizeConnect(ctx context.Context, c *conn, rc authz.RequestContext) error {
	if !rc.IAM || s.access.iam == nil {
		return nil
	}
	d := s.access.iam.Connect(ctx, rc)
	if d.Allowed {
		return nil
	}
	s.audit.Refused(ctx, audit.Request{Principal: rc.Principal, Client: c.addr, Listener: rc.Listener, APIKey: saslAuthenticateKey},
		authz.ConnectAction+" on "+s.access.iam.ClusterARN(), d.Reason())
	return fmt.Errorf("access denied: %s is not allowed %s on this cluster", strings.TrimPrefix(rc.Principal, "User:"), authz.ConnectAction)
}

// saslAuthenticateKey is SaslAuthenticate's API key, where a refused
// connection is audited.
const saslAuthenticateKey = 36

// reqAuth authorizes one request: who sends it (the connection's request
// context), from where, and which API.
type reqAuth struct {
	s      *Server
	rc     authz.RequestContext
	client netip.AddrPort
	key    int16
}

// authFor is the authorization of a request of API key on c.
func (s *Server) authFor(c *conn, key int16) reqAuth {
	return reqAuth{s: s, rc: c.requestContext(), client: c.addr, key: key}
}

// decide authorizes actions and writes the audited decisions: every
// denial and every allowed create, alter or delete.
func (a reqAuth) decide(ctx context.Context, actions []authz.Action) []authz.Decision {
	return a.decideAudit(ctx, actions, true)
}

// decideQuietly is decide for checks whose denial is not a refusal:
// listings that leave out what the principal may not see, and the first
// of two alternatives (Kafka's logIfDenied=false). Allowed changes are
// still audited.
func (a reqAuth) decideQuietly(ctx context.Context, actions []authz.Action) []authz.Decision {
	return a.decideAudit(ctx, actions, false)
}

func (a reqAuth) decideAudit(ctx context.Context, actions []authz.Action, denials bool) []authz.Decision {
	if len(actions) == 0 {
		return nil
	}
	ds := a.s.access.az.Authorize(ctx, a.rc, actions)
	audited := false
	for i, act := range actions {
		if audit.Audited(act.Operation, ds[i].Allowed) && (ds[i].Allowed || denials) {
			audited = true
			break
		}
	}
	if !audited {
		return ds
	}
	if !denials {
		// Leave the denials out of the trail: only allowed changes.
		var acts []authz.Action
		var dec []authz.Decision
		for i, d := range ds {
			if d.Allowed {
				acts, dec = append(acts, actions[i]), append(dec, d)
			}
		}
		actions, ds = acts, dec
	}
	a.s.audit.Record(ctx, a.auditRequest(), actions, ds)
	return ds
}

func (a reqAuth) auditRequest() audit.Request {
	return audit.Request{Principal: a.rc.Principal, Client: a.client, Listener: a.rc.Listener, APIKey: a.key}
}

// allowed decides one action.
func (a reqAuth) allowed(ctx context.Context, op kmsg.ACLOperation, typ kmsg.ACLResourceType, name string) bool {
	return a.decide(ctx, []authz.Action{{Operation: op, Type: typ, Name: name}})[0].Allowed
}

// allowedQuietly decides one action without auditing a denial.
func (a reqAuth) allowedQuietly(ctx context.Context, op kmsg.ACLOperation, typ kmsg.ACLResourceType, name string) bool {
	return a.decideQuietly(ctx, []authz.Action{{Operation: op, Type: typ, Name: name}})[0].Allowed
}

// cluster decides op on the cluster.
func (a reqAuth) cluster(ctx context.Context, op kmsg.ACLOperation) bool {
	return a.allowed(ctx, op, kmsg.ACLResourceTypeCluster, authz.ClusterName)
}

// denied decides op on each of names (each name once, in one call) and
// returns those denied; nil when all are allowed.
func (a reqAuth) denied(ctx context.Context, op kmsg.ACLOperation, typ kmsg.ACLResourceType, names []string) map[string]bool {
	return a.deniedAudit(ctx, op, typ, names, true)
}

// deniedQuietly is denied for listings: the denials are not audited.
func (a reqAuth) deniedQuietly(ctx context.Context, op kmsg.ACLOperation, typ kmsg.ACLResourceType, names []string) map[string]bool {
	return a.deniedAudit(ctx, op, typ, names, false)
}

func (a reqAuth) deniedAudit(ctx context.Context, op kmsg.ACLOperation, typ kmsg.ACLResourceType, names []string, audited bool) map[string]bool {
	if len(names) == 0 {
		return nil
	}
	actions := make([]authz.Action, 0, len(names))
	for i, n := range names {
		if i > 0 && seenBefore(names[:i], n) {
			continue
		}
		actions = append(actions, authz.Action{Operation: op, Type: typ, Name: n})
	}
	ds := a.decideAudit(ctx, actions, audited)
	var out map[string]bool
	for i, d := range ds {
		if !d.Allowed {
			if out == nil {
				out = map[string]bool{}
			}
			out[actions[i].Name] = true
		}
	}
	return out
}

// seenBefore reports whether name is among earlier; requests name few
// resources, and most name one, so a scan beats a map.
func seenBefore(earlier []string, name string) bool {
	if len(earlier) > 16 {
		// Many resources: dedupe through the authorizer's answers
		// instead; asking twice is correct, just slower.
		return false
	}
	for _, e := range earlier {
		if e == name {
			return true
		}
	}
	return false
}

// authorizedOperations is Kafka's authorized-operations bit set (KIP-430)
// of a resource: the bit of each of ops the principal may do. Nothing is
// audited: the question is asked for the client's information.
func (a reqAuth) authorizedOperations(ctx context.Context, typ kmsg.ACLResourceType, name string, ops []kmsg.ACLOperation) int32 {
	actions := make([]authz.Action, len(ops))
	for i, op := range ops {
		actions[i] = authz.Action{Operation: op, Type: typ, Name: name}
	}
	var bits int32
	for i, d := range a.s.access.az.Authorize(ctx, a.rc, actions) {
		if d.Allowed {
			bits |= 1 << int(ops[i])
		}
	}
	return bits
}

// The operations each resource type has, for authorized-operations fields.
var (
	topicOperations = []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationCreate, kmsg.ACLOperationDelete,
		kmsg.ACLOperationAlter, kmsg.ACLOperationDescribe, kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs}
	clusterOperations = []kmsg.ACLOperation{kmsg.ACLOperationCreate, kmsg.ACLOperationAlter, kmsg.ACLOperationDescribe, kmsg.ACLOperationClusterAction,
		kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs, kmsg.ACLOperationIdempotentWrite}
	groupOperations = []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationDelete, kmsg.ACLOperationDescribe}
)

// idempotentWriteAllowed is InitProducerId's check for a producer without
// a transactional id: IDEMPOTENT_WRITE on the cluster, or (KIP-679) WRITE
// on at least one topic. IAM principals authorized by policies need
// kafka-cluster:WriteDataIdempotently, as on Amazon MSK.
func (a reqAuth) idempotentWriteAllowed(ctx context.Context) bool {
	if a.rc.IAM && a.s.access.iam != nil {
		return a.cluster(ctx, kmsg.ACLOperationIdempotentWrite)
	}
	if a.allowedQuietly(ctx, kmsg.ACLOperationIdempotentWrite, kmsg.ACLResourceTypeCluster, authz.ClusterName) {
		return true
	}
	d := a.s.access.acl.AuthorizeByResourceType(ctx, a.rc, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic)
	if !d.Allowed {
		a.s.audit.Record(ctx, a.auditRequest(),
			[]authz.Action{{Operation: kmsg.ACLOperationIdempotentWrite, Type: kmsg.ACLResourceTypeCluster, Name: authz.ClusterName}},
			[]authz.Decision{d})
	}
	return d.Allowed
}

// configResourceAllowed decides op (DESCRIBE_CONFIGS or ALTER_CONFIGS) on
// a config resource: a topic's on the topic, a broker's, broker logger's
// and client-metrics' on the cluster, a group's on the group. It returns
// the code of a denial; resource types this broker does not serve pass,
// and the handler refuses them.
func (a reqAuth) configResourceAllowed(ctx context.Context, op kmsg.ACLOperation, typ kmsg.ConfigResourceType, name string) (int16, bool) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		return kerr.TopicAuthorizationFailed.Code, a.allowed(ctx, op, kmsg.ACLResourceTypeTopic, name)
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger, kmsg.ConfigResourceTypeClientMetrics:
		return kerr.ClusterAuthorizationFailed.Code, a.cluster(ctx, op)
	case kmsg.ConfigResourceTypeGroupConfig:
		return kerr.GroupAuthorizationFailed.Code, a.allowed(ctx, op, kmsg.ACLResourceTypeGroup, name)
	}
	return 0, true
}

// transactionalRecords reports whether a Produce request holds a
// transactional record batch (Kafka's ProduceRequest.hasTransactionalRecords).
// A batch too short, malformed or of an older format to tell is left to
// the append, which refuses it.
func transactionalRecords(req *kmsg.ProduceRequest) bool {
	for i := range req.Topics {
		for j := range req.Topics[i].Partitions {
			for b := req.Topics[i].Partitions[j].Records; len(b) > 0; {
				h, err := recordbatch.ParseHeader(b)
				if err != nil || h.Magic != 2 {
					break
				}
				if h.IsTransactional() {
					return true
				}
				if h.Size() > len(b) {
					break
				}
				b = b[h.Size():]
			}
		}
	}
	return false
}
