package authz

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// statement is an IAM policy statement with glob patterns.
type statement struct {
	deny             bool
	action, resource string
}

// policies is a PolicyEvaluator over in-memory statements, IAM's way:
// an explicit deny wins, an allow allows, anything else is denied. It
// counts its calls and can fail like an unreachable IAM.
type policies struct {
	mu    sync.Mutex
	by    map[string][]statement
	calls int
	asked [][3]string // principal, actions, resource
	fail  error
}

func (p *policies) Evaluate(_ context.Context, principal string, actions []string, resource string) (map[string]bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.asked = append(p.asked, [3]string{principal, strings.Join(actions, ","), resource})
	if p.fail != nil {
		return nil, p.fail
	}
	out := map[string]bool{}
	for _, a := range actions {
		allowed := false
		for _, s := range p.by[principal] {
			if !globMatch(s.action, a) || !globMatch(s.resource, resource) {
				continue
			}
			if s.deny {
				allowed = false
				break
			}
			allowed = true
		}
		out[a] = allowed
	}
	return out, nil
}

// globMatch is IAM's wildcard match: '*' any run of characters ('/'
// included), '?' one character.
func globMatch(pattern, s string) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	return regexp.MustCompile(re).MatchString(s)
}

const (
	roleARN   = "arn:aws:iam::123456789012:role/app"
	clusterRN = "arn:aws:kafka:us-east-1:123456789012:cluster/orders/abc-123"
	topicRN   = "arn:aws:kafka:us-east-1:123456789012:topic/orders/abc-123/"
	groupRN   = "arn:aws:kafka:us-east-1:123456789012:group/orders/abc-123/"
	txnRN     = "arn:aws:kafka:us-east-1:123456789012:transactional-id/orders/abc-123/"
)

var iamRC = RequestContext{Principal: "User:" + roleARN, IAM: true}

type iamClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *iamClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *iamClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newIAM(t *testing.T, p *policies, log *bytes.Buffer) (*IAMAuthorizer, *iamClock) {
	t.Helper()
	clk := &iamClock{t: time.Unix(1_800_000_000, 0)}
	opts := IAMOptions{Region: "us-east-1", Account: "123456789012", ClusterName: "orders", ClusterUUID: "abc-123", Evaluator: p, Now: clk.Now}
	if log != nil {
		opts.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	a, err := NewIAMAuthorizer(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a, clk
}

// TestIAMActionMapping pins the Kafka operation -> kafka-cluster action
// table and the resource ARNs, as MSK's IAM access control documents them.
func TestIAMActionMapping(t *testing.T) {
	a, _ := newIAM(t, &policies{}, nil)
	tests := []struct {
		act     Action
		actions string
		arn     string
	}{
		{Action{opRead, rTopic, "t"}, "ReadData,DescribeTopic,Connect", topicRN + "t"},
		{Action{opWrite, rTopic, "t"}, "WriteData,DescribeTopic,Connect", topicRN + "t"},
		{Action{opCreate, rTopic, "t"}, "CreateTopic,Connect", topicRN + "t"},
		{Action{opDelete, rTopic, "t"}, "DeleteTopic,DescribeTopic,Connect", topicRN + "t"},
		{Action{opAlter, rTopic, "t"}, "AlterTopic,DescribeTopic,Connect", topicRN + "t"},
		{Action{opDescribe, rTopic, "t"}, "DescribeTopic,Connect", topicRN + "t"},
		{Action{opDescribeConfigs, rTopic, "t"}, "DescribeTopicDynamicConfiguration,Connect", topicRN + "t"},
		{Action{opAlterConfigs, rTopic, "t"}, "AlterTopicDynamicConfiguration,DescribeTopicDynamicConfiguration,Connect", topicRN + "t"},
		{Action{opRead, rGroup, "g"}, "AlterGroup,DescribeGroup,Connect", groupRN + "g"},
		{Action{opDescribe, rGroup, "g"}, "DescribeGroup,Connect", groupRN + "g"},
		{Action{opDelete, rGroup, "g"}, "DeleteGroup,DescribeGroup,Connect", groupRN + "g"},
		{Action{opCreate, rCluster, ClusterName}, "CreateTopic,Connect", topicRN + "*"},
		{Action{opAlter, rCluster, ClusterName}, "AlterCluster,DescribeCluster,Connect", clusterRN},
		{Action{opDescribe, rCluster, ClusterName}, "DescribeCluster,Connect", clusterRN},
		{Action{opDescribeConfigs, rCluster, ClusterName}, "DescribeClusterDynamicConfiguration,Connect", clusterRN},
		{Action{opAlterConfigs, rCluster, ClusterName}, "AlterClusterDynamicConfiguration,DescribeClusterDynamicConfiguration,Connect", clusterRN},
		{Action{opIdempotentWrite, rCluster, ClusterName}, "WriteDataIdempotently,Connect", clusterRN},
		{Action{opDescribe, rTxn, "x"}, "DescribeTransactionalId,Connect", txnRN + "x"},
		{Action{opWrite, rTxn, "x"}, "AlterTransactionalId,DescribeTransactionalId,Connect", txnRN + "x"},
		{Action{opClusterAction, rCluster, ClusterName}, "", ""},
		{Action{opDescribe, rToken, "tok"}, "", ""},
		{Action{opCreateTokens, rUser, "User:x"}, "", ""},
		{Action{opWrite, rGroup, "g"}, "", ""},
	}
	for _, tt := range tests {
		names, typ, name, ok := IAMActions(tt.act)
		if tt.actions == "" {
			if ok {
				t.Errorf("%s maps to %v; MSK has no action for it", tt.act, names)
			}
			continue
		}
		var short []string
		for _, n := range names {
			short = append(short, strings.TrimPrefix(n, ActionPrefix))
		}
		arn, _ := a.ResourceARN(typ, name)
		if strings.Join(short, ",") != tt.actions || arn != tt.arn || !ok {
			t.Errorf("%s: %v on %s, want %s on %s", tt.act, short, arn, tt.actions, tt.arn)
		}
	}
	if a.ClusterARN() != clusterRN {
		t.Fatal(a.ClusterARN())
	}
}

func TestIAMAuthorizerDecisions(t *testing.T) {
	p := &policies{by: map[string][]statement{roleARN: {
		{action: "kafka-cluster:Connect", resource: clusterRN},
		{action: "kafka-cluster:*Topic", resource: topicRN + "orders-*"},
		{action: "kafka-cluster:ReadData", resource: topicRN + "orders-*"},
		{action: "kafka-cluster:*Group", resource: groupRN + "*"},
		{deny: true, action: "kafka-cluster:DeleteTopic", resource: topicRN + "orders-keep"},
	}}}
	a, _ := newIAM(t, p, nil)
	tests := []struct {
		act  Action
		want bool
	}{
		{Action{opRead, rTopic, "orders-1"}, true},
		{Action{opWrite, rTopic, "orders-1"}, false}, // no WriteData
		{Action{opRead, rTopic, "payments"}, false},
		{Action{opDelete, rTopic, "orders-1"}, true},
		{Action{opDelete, rTopic, "orders-keep"}, false}, // explicit deny
		{Action{opCreate, rCluster, ClusterName}, false}, // CreateTopic on orders-* only, not on *
		{Action{opCreate, rTopic, "orders-new"}, true},
		{Action{opRead, rGroup, "g1"}, true},
		{Action{opDescribe, rCluster, ClusterName}, false},
		{Action{opClusterAction, rCluster, ClusterName}, false},
	}
	acts := make([]Action, len(tests))
	for i, tt := range tests {
		acts[i] = tt.act
	}
	got := a.Authorize(context.Background(), iamRC, acts)
	for i, tt := range tests {
		if got[i].Allowed != tt.want || got[i].Reason() == "" {
			t.Errorf("%s: %+v, want allowed=%v", tt.act, got[i], tt.want)
		}
	}
	if d := a.Connect(context.Background(), iamRC); !d.Allowed {
		t.Fatalf("Connect: %+v", d)
	}
	if d := a.Connect(context.Background(), RequestContext{Principal: "User:arn:aws:iam::123456789012:role/other", IAM: true}); d.Allowed {
		t.Fatalf("Connect without a policy: %+v", d)
	}
	// One evaluation per resource ARN, each with every action it needs.
	for _, q := range p.asked {
		if strings.Count(q[1], "kafka-cluster:Connect") > 1 {
			t.Fatalf("asked twice in one call: %v", q)
		}
	}
}

func TestIAMAuthorizerCachesForAMinute(t *testing.T) {
	p := &policies{by: map[string][]statement{roleARN: {{action: "kafka-cluster:*", resource: "*"}}}}
	a, clk := newIAM(t, p, nil)
	acts := []Action{{opRead, rTopic, "t1"}, {opWrite, rTopic, "t1"}, {opRead, rTopic, "t2"}}
	if d := a.Authorize(context.Background(), iamRC, acts); !d[0].Allowed || !d[1].Allowed || !d[2].Allowed {
		t.Fatalf("%+v", d)
	}
	first := p.calls
	if first != 3 { // topic t1, topic t2, the cluster (Connect)
		t.Fatalf("%d evaluations for two topics and the cluster, want 3: %v", first, p.asked)
	}
	clk.Advance(59 * time.Second)
	a.Authorize(context.Background(), iamRC, acts)
	if p.calls != first {
		t.Fatalf("asked IAM again within the minute: %d calls", p.calls)
	}
	// A policy change is seen once the minute is over.
	p.mu.Lock()
	p.by[roleARN] = []statement{{action: "kafka-cluster:Connect", resource: "*"}}
	p.mu.Unlock()
	clk.Advance(2 * time.Second)
	if d := a.Authorize(context.Background(), iamRC, acts); d[0].Allowed || p.calls == first {
		t.Fatalf("after the minute: %+v, %d calls", d, p.calls)
	}
}

func TestIAMAuthorizerFailsClosed(t *testing.T) {
	var log bytes.Buffer
	p := &policies{fail: errors.New("dial tcp: iam.amazonaws.com: i/o timeout")}
	a, clk := newIAM(t, p, &log)
	for range 5 {
		d := a.Authorize(context.Background(), iamRC, []Action{{opRead, rTopic, "t"}})
		if d[0].Allowed || !strings.Contains(d[0].Reason(), "fail closed") || !strings.Contains(d[0].Reason(), "i/o timeout") {
			t.Fatalf("%+v", d)
		}
	}
	lines := strings.Count(log.String(), "IAM policy evaluation failed")
	if lines != 1 || !strings.Contains(log.String(), "level=ERROR") {
		t.Fatalf("%d log lines for 5 denied requests (10 failed evaluations: topic and cluster) within 10 s, want 1 error line:\n%s", lines, log.String())
	}
	// Failures are not cached: IAM is asked again, and once it answers,
	// requests are allowed at once.
	calls := p.calls
	p.mu.Lock()
	p.fail = nil
	p.by = map[string][]statement{roleARN: {{action: "kafka-cluster:*", resource: "*"}}}
	p.mu.Unlock()
	if d := a.Authorize(context.Background(), iamRC, []Action{{opRead, rTopic, "t"}}); !d[0].Allowed || p.calls == calls {
		t.Fatalf("after IAM recovered: %+v", d)
	}
	clk.Advance(11 * time.Second)
	p.mu.Lock()
	p.fail = errors.New("still down")
	p.mu.Unlock()
	a.Authorize(context.Background(), iamRC, []Action{{opRead, rTopic, "other"}})
	if !strings.Contains(log.String(), "failures_not_logged=9") {
		t.Fatalf("the suppressed failures are not counted:\n%s", log.String())
	}
}

func TestIAMAuthorizerSharesConcurrentEvaluations(t *testing.T) {
	p := &policies{by: map[string][]statement{roleARN: {{action: "kafka-cluster:*", resource: "*"}}}}
	a, _ := newIAM(t, p, nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d := a.Authorize(context.Background(), iamRC, []Action{{opRead, rTopic, "t"}}); !d[0].Allowed {
				t.Error(d)
			}
		}()
	}
	wg.Wait()
	// Two resources (topic and cluster): at most a few calls, never one
	// per request.
	if p.calls > 4 {
		t.Fatalf("%d evaluations for 20 identical requests", p.calls)
	}
}

func TestNewIAMAuthorizerRefusals(t *testing.T) {
	good := IAMOptions{Region: "us-east-1", Account: "1", ClusterName: "c", ClusterUUID: "u", Evaluator: &policies{}}
	if _, err := NewIAMAuthorizer(good); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*IAMOptions){
		"no region":          func(o *IAMOptions) { o.Region = "" },
		"no account":         func(o *IAMOptions) { o.Account = "" },
		"name with a slash":  func(o *IAMOptions) { o.ClusterName = "a/b" },
		"no uuid":            func(o *IAMOptions) { o.ClusterUUID = "" },
		"no evaluator":       func(o *IAMOptions) { o.Evaluator = nil },
		"account with colon": func(o *IAMOptions) { o.Account = "1:2" },
	} {
		o := good
		mod(&o)
		if _, err := NewIAMAuthorizer(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestIAMAuthorizerAccountRoot: the root user of the cluster's own account
// is allowed every kafka-cluster action without asking IAM, which does not
// restrict it and refuses to simulate it; another account's root, another
// partition's, and the root's ARN from a login other than an IAM token are
// asked about like anyone and allowed nothing. Operations MSK has no
// action for stay denied to the root too.
func TestIAMAuthorizerAccountRoot(t *testing.T) {
	everything := []Action{
		{opRead, rTopic, "orders"}, {opWrite, rTopic, "orders"}, {opCreate, rCluster, ClusterName},
		{opDelete, rTopic, "orders"}, {opAlterConfigs, rCluster, ClusterName}, {opRead, rGroup, "g"},
		{opIdempotentWrite, rCluster, ClusterName}, {opWrite, rTxn, "tx"},
	}
	tests := []struct {
		name      string
		rc        RequestContext
		allowed   bool
		evaluated bool // whether IAM was asked
	}{
		{"own account's root", RequestContext{Principal: "User:arn:aws:iam::123456789012:root", IAM: true}, true, false},
		{"another account's root", RequestContext{Principal: "User:arn:aws:iam::999999999999:root", IAM: true}, false, true},
		{"another partition's root", RequestContext{Principal: "User:arn:aws-cn:iam::123456789012:root", IAM: true}, false, true},
		{"root's ARN not from an IAM token", RequestContext{Principal: "User:arn:aws:iam::123456789012:root"}, false, true},
		{"a user named root", RequestContext{Principal: "User:arn:aws:iam::123456789012:user/root", IAM: true}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &policies{}
			a, _ := newIAM(t, p, nil)
			for i, d := range a.Authorize(context.Background(), tt.rc, everything) {
				if d.Allowed != tt.allowed || d.Reason() == "" {
					t.Errorf("%s: %+v, want allowed=%v", everything[i], d, tt.allowed)
				}
			}
			if d := a.Connect(context.Background(), tt.rc); d.Allowed != tt.allowed {
				t.Errorf("Connect: %+v, want allowed=%v", d, tt.allowed)
			}
			if d := a.Authorize(context.Background(), tt.rc, []Action{{opClusterAction, rCluster, ClusterName}})[0]; d.Allowed {
				t.Errorf("CLUSTER_ACTION, which has no kafka-cluster action: %+v", d)
			}
			if got := p.calls > 0; got != tt.evaluated {
				t.Errorf("IAM asked %d times, want asked=%v", p.calls, tt.evaluated)
			}
		})
	}
}
