package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/internal/ttlcache"
)

// ActionPrefix is the IAM service prefix of Amazon MSK's Kafka actions.
const ActionPrefix = "kafka-cluster:"

// ConnectAction is needed for everything: MSK checks it when a client
// connects, and every other action lists it as required.
const ConnectAction = ActionPrefix + "Connect"

// mskAction is the IAM action for one Kafka operation on one resource
// type, with the actions on the same resource MSK requires along with it.
type mskAction struct {
	name     string
	requires []string
}

// mskActions maps Kafka operations to Amazon MSK's kafka-cluster actions
// (MSK's IAM access control table). Requirements on other resources are
// left to the request's own checks: ReadData's AlterGroup is the group READ
// a consumer's OffsetCommit makes, AlterTransactionalId's WriteData the
// topic WRITE of its Produce, WriteDataIdempotently's WriteData the topic
// WRITE of the producer's Produce.
var mskActions = map[kmsg.ACLResourceType]map[kmsg.ACLOperation]mskAction{
	kmsg.ACLResourceTypeTopic: {
		kmsg.ACLOperationRead:            {"ReadData", []string{"DescribeTopic"}},
		kmsg.ACLOperationWrite:           {"WriteData", []string{"DescribeTopic"}},
		kmsg.ACLOperationCreate:          {"CreateTopic", nil},
		kmsg.ACLOperationDelete:          {"DeleteTopic", []string{"DescribeTopic"}},
		kmsg.ACLOperationAlter:           {"AlterTopic", []string{"DescribeTopic"}},
		kmsg.ACLOperationDescribe:        {"DescribeTopic", nil},
		kmsg.ACLOperationDescribeConfigs: {"DescribeTopicDynamicConfiguration", nil},
		kmsg.ACLOperationAlterConfigs:    {"AlterTopicDynamicConfiguration", []string{"DescribeTopicDynamicConfiguration"}},
	},
	kmsg.ACLResourceTypeGroup: {
		kmsg.ACLOperationRead:     {"AlterGroup", []string{"DescribeGroup"}},
		kmsg.ACLOperationDescribe: {"DescribeGroup", nil},
		kmsg.ACLOperationDelete:   {"DeleteGroup", []string{"DescribeGroup"}},
	},
	kmsg.ACLResourceTypeCluster: {
		kmsg.ACLOperationAlter:           {"AlterCluster", []string{"DescribeCluster"}},
		kmsg.ACLOperationDescribe:        {"DescribeCluster", nil},
		kmsg.ACLOperationDescribeConfigs: {"DescribeClusterDynamicConfiguration", nil},
		kmsg.ACLOperationAlterConfigs:    {"AlterClusterDynamicConfiguration", []string{"DescribeClusterDynamicConfiguration"}},
		kmsg.ACLOperationIdempotentWrite: {"WriteDataIdempotently", nil},
	},
	kmsg.ACLResourceTypeTransactionalId: {
		kmsg.ACLOperationDescribe: {"DescribeTransactionalId", nil},
		kmsg.ACLOperationWrite:    {"AlterTransactionalId", []string{"DescribeTransactionalId"}},
	},
}

// IAMActions is what IAM must allow for act: the kafka-cluster actions (the
// mapped one first, then those MSK requires with it, then Connect) and the
// type and name of the resource they apply to. CREATE on the cluster
// (creating topics) is CreateTopic on every topic, "*". ok is false for
// operations MSK has no action for (CLUSTER_ACTION, delegation tokens,
// users), which IAM principals are never allowed.
func IAMActions(act Action) (actions []string, resType kmsg.ACLResourceType, resName string, ok bool) {
	if act.Type == kmsg.ACLResourceTypeCluster && act.Operation == kmsg.ACLOperationCreate {
		return []string{ActionPrefix + "CreateTopic", ConnectAction}, kmsg.ACLResourceTypeTopic, WildcardResource, true
	}
	m, ok := mskActions[act.Type][act.Operation]
	if !ok {
		return nil, 0, "", false
	}
	actions = []string{ActionPrefix + m.name}
	for _, r := range m.requires {
		actions = append(actions, ActionPrefix+r)
	}
	return append(actions, ConnectAction), act.Type, act.Name, true
}

// PolicyEvaluator answers whether an IAM principal's policies allow
// actions on a resource. SimulateEvaluator asks iam:SimulatePrincipalPolicy.
type PolicyEvaluator interface {
	// Evaluate returns, for every action, whether principalARN may do it
	// on resourceARN. An error means the question could not be answered
	// (IAM unreachable, the broker not allowed to simulate): nothing is
	// known, and the caller fails closed.
	Evaluate(ctx context.Context, principalARN string, actions []string, resourceARN string) (map[string]bool, error)
}

// IAMOptions configures an IAMAuthorizer. The cluster's ARNs are built
// from Partition, Region, Account, ClusterName and ClusterUUID.
type IAMOptions struct {
	Partition   string // "aws" by default
	Region      string
	Account     string
	ClusterName string
	ClusterUUID string
	Evaluator   PolicyEvaluator
	// CacheTTL is how long an answer is reused per (principal, action,
	// resource): IAM policy changes reach the broker within it, as they
	// reach MSK "in under a minute". Default 1 minute.
	CacheTTL time.Duration
	// CacheSize bounds the cache. Default 100000 answers.
	CacheSize int
	// Concurrency bounds the evaluations one request runs at once.
	// Default 8.
	Concurrency int
	Now         func() time.Time
	Logger      *slog.Logger
}

// IAMAuthorizer authorizes IAM principals as Amazon MSK does: each Kafka
// (operation, resource) becomes MSK's kafka-cluster actions on the
// resource's ARN, and the principal's IAM policies decide, through
// iam:SimulatePrincipalPolicy. Kafka ACLs and super.users do not apply.
// When IAM cannot be asked, actions are denied (fail closed) and the
// failure is logged.
type IAMAuthorizer struct {
	opts    IAMOptions
	base    string // arn:<partition>:kafka:<region>:<account>:
	cluster string // <name>/<uuid>
	root    string // arn:<partition>:iam::<account>:root
	answers *ttlcache.Cache[iamKey, bool]
	batches *ttlcache.Cache[iamBatchKey, map[string]bool]

	logMu      sync.Mutex
	lastLog    time.Time
	suppressed int
}

var _ Authorizer = (*IAMAuthorizer)(nil)

type iamKey struct{ principal, action, resource string }

type iamBatchKey struct{ principal, resource, actions string }

// NewIAMAuthorizer checks opts and returns the authorizer.
func NewIAMAuthorizer(opts IAMOptions) (*IAMAuthorizer, error) {
	if opts.Partition == "" {
		opts.Partition = "aws"
	}
	var missing []string
	for name, v := range map[string]string{"Region": opts.Region, "Account": opts.Account, "ClusterName": opts.ClusterName, "ClusterUUID": opts.ClusterUUID} {
		if v == "" || strings.ContainsAny(v, ":/ ") {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("IAM authorizer: %s must be set, without ':', '/' or spaces", strings.Join(missing, ", "))
	}
	if opts.Evaluator == nil {
		return nil, errors.New("IAM authorizer: no policy evaluator")
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = time.Minute
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 100000
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &IAMAuthorizer{
		opts:    opts,
		base:    "arn:" + opts.Partition + ":kafka:" + opts.Region + ":" + opts.Account + ":",
		cluster: opts.ClusterName + "/" + opts.ClusterUUID,
		root:    "arn:" + opts.Partition + ":iam::" + opts.Account + ":root",
		answers: ttlcache.New[iamKey, bool](opts.CacheSize),
		batches: ttlcache.New[iamBatchKey, map[string]bool](1024),
	}, nil
}

// ClusterARN is arn:<partition>:kafka:<region>:<account>:cluster/<name>/<uuid>.
func (a *IAMAuthorizer) ClusterARN() string { return a.base + "cluster/" + a.cluster }

// ResourceARN is the ARN of a Kafka resource in MSK's format: topic/,
// group/ and transactional-id/ followed by <cluster name>/<cluster
// uuid>/<name>, or the cluster's ARN.
func (a *IAMAuthorizer) ResourceARN(typ kmsg.ACLResourceType, name string) (string, bool) {
	switch typ {
	case kmsg.ACLResourceTypeCluster:
		return a.ClusterARN(), true
	case kmsg.ACLResourceTypeTopic:
		return a.base + "topic/" + a.cluster + "/" + name, true
	case kmsg.ACLResourceTypeGroup:
		return a.base + "group/" + a.cluster + "/" + name, true
	case kmsg.ACLResourceTypeTransactionalId:
		return a.base + "transactional-id/" + a.cluster + "/" + name, true
	}
	return "", false
}

// Connect decides kafka-cluster:Connect on the cluster: a server asks it
// once a client has authenticated, and closes the connection when it is
// denied, as MSK refuses the connection.
func (a *IAMAuthorizer) Connect(ctx context.Context, rc RequestContext) Decision {
	principal := iamPrincipal(rc.Principal)
	if a.isAccountRoot(rc) {
		return a.rootDecision(ConnectAction, a.ClusterARN())
	}
	res := a.resolve(ctx, principal, []iamKey{{principal, ConnectAction, a.ClusterARN()}})
	return a.compose(principal, []iamKey{{principal, ConnectAction, a.ClusterARN()}}, res)
}

// Authorize decides each action from the principal's IAM policies.
func (a *IAMAuthorizer) Authorize(ctx context.Context, rc RequestContext, actions []Action) []Decision {
	principal := iamPrincipal(rc.Principal)
	out := make([]Decision, len(actions))
	needs := make([][]iamKey, len(actions))
	var all []iamKey
	for i, act := range actions {
		names, typ, name, ok := IAMActions(act)
		if !ok {
			out[i] = Decision{reason: fmt.Sprintf("no kafka-cluster action for %s on %s: not allowed under IAM access control", act.Operation, act.Type)}
			continue
		}
		arn, _ := a.ResourceARN(typ, name)
		if a.isAccountRoot(rc) {
			out[i] = a.rootDecision(names[0], arn)
			continue
		}
		for _, n := range names {
			res := arn
			if n == ConnectAction {
				res = a.ClusterARN()
			}
			needs[i] = append(needs[i], iamKey{principal, n, res})
		}
		all = append(all, needs[i]...)
	}
	res := a.resolve(ctx, principal, all)
	for i := range actions {
		if needs[i] != nil {
			out[i] = a.compose(principal, needs[i], res)
		}
	}
	return out
}

// isAccountRoot reports whether rc is the root user of the cluster's own
// account, authenticated by an IAM token. IAM policies do not restrict an
// account's root user: it may do every action on its account's resources,
// and iam:SimulatePrincipalPolicy refuses to simulate it, so asking IAM
// would deny the account owner what AWS allows it. Another account's root
// is not special: it is asked about like any principal, and IAM, which
// simulates only its own account's principals, allows it nothing.
func (a *IAMAuthorizer) isAccountRoot(rc RequestContext) bool {
	return rc.IAM && iamPrincipal(rc.Principal) == a.root
}

func (a *IAMAuthorizer) rootDecision(action, resource string) Decision {
	return Decision{Allowed: true, reason: fmt.Sprintf("%s is the root user of the cluster's account, allowed %s on %s as IAM allows it every action of its account", a.root, action, resource)}
}

// answer is one (action, resource) outcome: allowed, or the error that
// kept it from being known.
type answer struct {
	allowed bool
	err     error
}

// resolve answers every key, from the cache or from the evaluator (one
// call per resource ARN, several at once).
func (a *IAMAuthorizer) resolve(ctx context.Context, principal string, keys []iamKey) map[iamKey]answer {
	out := make(map[iamKey]answer, len(keys))
	now := a.opts.Now()
	missing := map[string][]string{} // resource -> actions
	for _, k := range keys {
		if _, done := out[k]; done {
			continue
		}
		if v, ok := a.answers.Get(k, now); ok {
			out[k] = answer{allowed: v}
			continue
		}
		out[k] = answer{} // placeholder, filled below
		missing[k.resource] = append(missing[k.resource], k.action)
	}
	if len(missing) == 0 {
		return out
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, a.opts.Concurrency)
	for resource, acts := range missing {
		slices.Sort(acts)
		acts = slices.Compact(acts)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			bk := iamBatchKey{principal, resource, strings.Join(acts, ",")}
			got, err := a.batches.Do(ctx, bk, a.opts.Now, func() (map[string]bool, time.Time, error) {
				// A run for these actions may have just finished: its
				// answers are cached, no need to ask again.
				if m, ok := a.cached(principal, resource, acts); ok {
					return m, time.Time{}, nil
				}
				m, err := a.opts.Evaluator.Evaluate(ctx, principal, acts, resource)
				if err != nil {
					return nil, time.Time{}, err
				}
				expiry := a.opts.Now().Add(a.opts.CacheTTL)
				for _, act := range acts {
					a.answers.Put(iamKey{principal, act, resource}, m[act], expiry)
				}
				// The batch entry only spans concurrent callers; the
				// per-action cache is the lasting one.
				return m, time.Time{}, nil
			})
			mu.Lock()
			defer mu.Unlock()
			for _, act := range acts {
				out[iamKey{principal, act, resource}] = answer{allowed: err == nil && got[act], err: err}
			}
			if err != nil {
				a.logFailure(principal, resource, acts, err)
			}
		}()
	}
	wg.Wait()
	return out
}

// cached returns the answers for acts on resource when all are cached.
func (a *IAMAuthorizer) cached(principal, resource string, acts []string) (map[string]bool, bool) {
	now := a.opts.Now()
	m := make(map[string]bool, len(acts))
	for _, act := range acts {
		v, ok := a.answers.Get(iamKey{principal, act, resource}, now)
		if !ok {
			return nil, false
		}
		m[act] = v
	}
	return m, true
}

func (a *IAMAuthorizer) compose(principal string, keys []iamKey, res map[iamKey]answer) Decision {
	for _, k := range keys {
		if r := res[k]; r.err != nil {
			return Decision{reason: fmt.Sprintf("IAM policy evaluation failed, denied (fail closed): %v", r.err)}
		}
	}
	for _, k := range keys {
		if !res[k].allowed {
			return Decision{reason: fmt.Sprintf("IAM policies of %s do not allow %s on %s", principal, k.action, k.resource)}
		}
	}
	return Decision{Allowed: true, reason: fmt.Sprintf("IAM policies of %s allow %s on %s", principal, keys[0].action, keys[0].resource)}
}

// logFailure logs IAM evaluation failures at most once every 10 seconds,
// with the number of failures in between: an IAM outage under load must
// be visible without flooding the log.
func (a *IAMAuthorizer) logFailure(principal, resource string, actions []string, err error) {
	a.logMu.Lock()
	now := a.opts.Now()
	if now.Sub(a.lastLog) < 10*time.Second {
		a.suppressed++
		a.logMu.Unlock()
		return
	}
	suppressed := a.suppressed
	a.lastLog, a.suppressed = now, 0
	a.logMu.Unlock()
	a.opts.Logger.Error("IAM policy evaluation failed: requests of IAM principals are denied until IAM answers",
		"principal", principal, "resource", resource, "actions", actions, "err", err, "failures_not_logged", suppressed)
}

// iamPrincipal is the ARN of a "User:<arn>" principal.
func iamPrincipal(p string) string { return strings.TrimPrefix(p, "User:") }
