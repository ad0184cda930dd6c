package iam

import (
	"encoding/base64"
	"net"
	"strconv"
	"strings"

	"github.com/tributary/tributary/internal/localcloud/policy"
)

// IAM's policy simulator (SimulatePrincipalPolicy, SimulateCustomPolicy) through the same
// policy engine that authorizes every request of the local cloud, so a simulation and the real
// call decide alike. As in IAM, the simulator supplies no condition keys of its own: the
// request context is exactly the ContextEntries the caller gives, and keys that applicable
// statements test but the caller left out are reported as MissingContextValues.

// The SourcePolicyType values IAM's simulator reports (the API documents an enum, but the
// service answers with these words).
const (
	identityPolicyType = "IAM Policy"
	resourcePolicyType = "Resource Policy"
)

// simulation is one parsed Simulate* request.
type simulation struct {
	identity   []sourcedPolicy
	boundaries []sourcedPolicy
	resource   *sourcedPolicy // ResourcePolicy, nil when none
	actions    []string
	resources  []string // nil: the simulation is for "*"
	caller     policy.Caller
	context    map[string][]string
}

func (s *Service) simulatePrincipalPolicy(p params) (any, error) {
	source, err := p.required("PolicySourceArn")
	if err != nil {
		return nil, err
	}
	sim := &simulation{}
	callerARN := ""
	switch kind, name := s.entityOfARN(source); kind {
	case "user":
		u := s.userByARNLocked(source)
		if u == nil {
			return nil, noSuchEntity("The user with name %s cannot be found.", name)
		}
		sim.identity, callerARN = s.userPoliciesLocked(u), source
	case "role":
		r := s.roleByARNLocked(source)
		if r == nil {
			return nil, noSuchEntity("The role with name %s cannot be found.", name)
		}
		sim.identity = s.documents(&r.policySet, "role", r.Name)
	case "group":
		g := s.groupByARNLocked(source)
		if g == nil {
			return nil, noSuchEntity("The group with name %s cannot be found.", name)
		}
		sim.identity = s.documents(&g.policySet, "group", g.Name)
	default:
		return nil, invalidInput("Invalid Entity Arn: %s does not refer to a user, group or role of account %s (for a role session, name its role: arn:aws:iam::%s:role/<name>).", source, s.account, s.account)
	}
	return s.simulate(sim, p, callerARN)
}

func (s *Service) simulateCustomPolicy(p params) (any, error) {
	sim := &simulation{}
	if len(p.list("PolicyInputList")) == 0 {
		return nil, validationError("1 validation error detected: Value null at 'policyInputList' failed to satisfy constraint: Member must not be null")
	}
	return s.simulate(sim, p, "")
}

// simulate reads the parameters both Simulate* calls share and evaluates every action on every
// resource. callerARN is the caller the PolicySourceArn implies (a user), "" for none.
func (s *Service) simulate(sim *simulation, p params, callerARN string) (any, error) {
	for i, text := range p.list("PolicyInputList") {
		doc, err := parsePolicyDocument(text, policy.Identity)
		if err != nil {
			return nil, err
		}
		sim.identity = append(sim.identity, sourcedPolicy{doc: doc, id: "PolicyInputList." + strconv.Itoa(i+1)})
	}
	for i, text := range p.list("PermissionsBoundaryPolicyInputList") {
		doc, err := parsePolicyDocument(text, policy.Identity)
		if err != nil {
			return nil, err
		}
		sim.boundaries = append(sim.boundaries, sourcedPolicy{doc: doc, id: "PermissionsBoundaryPolicyInputList." + strconv.Itoa(i+1)})
	}
	if text := p.get("ResourcePolicy"); text != "" {
		doc, err := parsePolicyDocument(text, policy.Resource)
		if err != nil {
			return nil, err
		}
		sim.resource = &sourcedPolicy{doc: doc, id: "ResourcePolicy"}
	}
	if c := p.get("CallerArn"); c != "" {
		if kind, _ := s.entityOfARN(c); kind != "user" {
			return nil, invalidInput("CallerArn %s is not the ARN of an IAM user of account %s: the simulator accepts only users as callers.", c, s.account)
		}
		callerARN = c
	}
	if sim.resource != nil && callerARN == "" {
		return nil, invalidInput("CallerArn must be given with a ResourcePolicy when PolicySourceArn is not a user, so the policy's Principal has a caller to match.")
	}
	if owner := p.get("ResourceOwner"); owner != "" && owner != s.account && owner != "arn:aws:iam::"+s.account+":root" {
		return nil, invalidInput("ResourceOwner %s is another account: the local cloud has one account (%s) and does not simulate cross-account access.", owner, s.account)
	}
	sim.caller = policy.Caller{Account: s.account}
	if callerARN != "" {
		sim.caller.ARNs = []string{callerARN}
	}
	sim.actions = p.list("ActionNames")
	if len(sim.actions) == 0 {
		return nil, validationError("1 validation error detected: Value null at 'actionNames' failed to satisfy constraint: Member must not be null")
	}
	for _, a := range sim.actions {
		if len(a) < 3 || len(a) > 128 {
			return nil, validationError("1 validation error detected: Value '%s' at 'actionNames' failed to satisfy constraint: Member must have length between 3 and 128", a)
		}
	}
	sim.resources = p.list("ResourceArns")
	for _, r := range sim.resources {
		if r == "" || len(r) > 2048 {
			return nil, validationError("1 validation error detected: Value '%s' at 'resourceArns' failed to satisfy constraint: Member must have length between 1 and 2048", r)
		}
	}
	var err error
	if sim.context, err = contextEntries(p); err != nil {
		return nil, err
	}
	limit, err := p.int32("MaxItems", 100, 1, 1000)
	if err != nil {
		return nil, err
	}
	start := 0
	if m := p.get("Marker"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n <= 0 || n >= len(sim.actions) {
			return nil, invalidInput("Invalid Marker %q: pass the Marker of the previous answer, with the same parameters.", m)
		}
		start = n
	}
	end := min(start+int(limit), len(sim.actions))
	out := simulateResult{EvaluationResults: evaluationResultsXML{Members: []evaluationResultXML{}}, IsTruncated: end < len(sim.actions)}
	if out.IsTruncated {
		out.Marker = strconv.Itoa(end)
	}
	for _, action := range sim.actions[start:end] {
		out.EvaluationResults.Members = append(out.EvaluationResults.Members, sim.evaluate(action))
	}
	return out, nil
}

// entityOfARN says which kind of IAM entity ("user", "role", "group") of this account an ARN
// names, and its name; kind is "" for anything else.
func (s *Service) entityOfARN(arn string) (kind, name string) {
	rest, ok := strings.CutPrefix(arn, "arn:aws:iam::"+s.account+":")
	if !ok {
		return "", ""
	}
	kind, path, ok := strings.Cut(rest, "/")
	if !ok || path == "" {
		return "", ""
	}
	switch kind {
	case "user", "role", "group":
		return kind, path[strings.LastIndex(path, "/")+1:]
	}
	return "", ""
}

func (s *Service) groupByARNLocked(arn string) *group {
	g, ok := s.groups[strings.ToLower(arn[strings.LastIndex(arn, "/")+1:])]
	if !ok || s.groupARN(g) != arn {
		return nil
	}
	return g
}

// contextTypes are ContextEntry.ContextKeyType's values and a check of one value of the type.
var contextTypes = map[string]func(string) bool{
	"string":  func(string) bool { return true },
	"numeric": func(v string) bool { _, err := strconv.ParseFloat(v, 64); return err == nil },
	"boolean": func(v string) bool { return v == "true" || v == "false" },
	"date":    func(v string) bool { return policy.ValidDate(v) },
	"ip": func(v string) bool {
		_, _, err := net.ParseCIDR(v)
		return err == nil || net.ParseIP(v) != nil
	},
	"binary": func(v string) bool { _, err := base64.StdEncoding.DecodeString(v); return err == nil },
}

// contextEntries reads ContextEntries.member.N: each names a key, its values and their type
// (string when not given); a value that is not of the type is InvalidInput, as in IAM.
func contextEntries(p params) (map[string][]string, error) {
	ctx := map[string][]string{}
	for i := 1; ; i++ {
		prefix := "ContextEntries.member." + strconv.Itoa(i)
		name := p.get(prefix + ".ContextKeyName")
		values := p.list(prefix + ".ContextKeyValues")
		typ := p.get(prefix + ".ContextKeyType")
		if name == "" && len(values) == 0 && typ == "" {
			return ctx, nil
		}
		if len(name) < 5 || len(name) > 256 {
			return nil, validationError("1 validation error detected: Value '%s' at 'contextEntries.%d.member.contextKeyName' failed to satisfy constraint: Member must have length between 5 and 256", name, i)
		}
		if typ == "" {
			typ = "string"
		}
		base, list := strings.CutSuffix(typ, "List")
		check, ok := contextTypes[base]
		if !ok {
			return nil, validationError("1 validation error detected: Value '%s' at 'contextEntries.%d.member.contextKeyType' failed to satisfy constraint: Member must satisfy enum value set: [string, stringList, numeric, numericList, boolean, booleanList, ip, ipList, binary, binaryList, date, dateList]", typ, i)
		}
		if !list && len(values) > 1 {
			return nil, invalidInput("Context key %s has %d values but type %s takes one; use %sList.", name, len(values), typ, typ)
		}
		for _, v := range values {
			if !check(v) {
				return nil, invalidInput("Context key %s: value %q is not of type %s.", name, v, typ)
			}
		}
		ctx[name] = append(ctx[name], values...)
	}
}

// evaluate simulates one action on each resource (or on "*") and aggregates the decisions as
// IAM does: the top level reports the most restrictive decision across the resources.
func (sim *simulation) evaluate(action string) evaluationResultXML {
	resources := sim.resources
	if len(resources) == 0 {
		resources = []string{"*"}
	}
	// EvalResourceName at the top level is IAM's ARN template of the resource type; the local
	// cloud does not know the templates, so it answers "*" and gives each resource's name in
	// ResourceSpecificResults, where IAM gives them too.
	out := evaluationResultXML{EvalActionName: action, EvalResourceName: "*",
		MatchedStatements: statementsXML{Members: []statementXML{}}, MissingContextValues: stringsXML{Members: []string{}}}
	rank := map[string]int{"allowed": 0, "implicitDeny": 1, "explicitDeny": 2}
	missing := map[string]bool{}
	var results []resourceResultXML
	for _, resource := range resources {
		r := sim.evaluateOn(action, resource)
		results = append(results, r)
		if out.EvalDecision == "" || rank[r.EvalResourceDecision] > rank[out.EvalDecision] {
			out.EvalDecision = r.EvalResourceDecision
			out.MatchedStatements.Members = nil
			out.PermissionsBoundaryDecisionDetail = r.PermissionsBoundaryDecisionDetail
		}
		if r.EvalResourceDecision == out.EvalDecision {
			out.MatchedStatements.Members = append(out.MatchedStatements.Members, r.MatchedStatements.Members...)
		}
		for _, k := range r.MissingContextValues.Members {
			if !missing[k] {
				missing[k] = true
				out.MissingContextValues.Members = append(out.MissingContextValues.Members, k)
			}
		}
	}
	if out.MatchedStatements.Members == nil {
		out.MatchedStatements.Members = []statementXML{}
	}
	if len(sim.resources) > 0 {
		out.ResourceSpecificResults = &resourceResultsXML{Members: results}
		out.EvalDecisionDetails = &decisionDetailsXML{}
	}
	return out
}

// evaluateOn simulates one action on one resource: an explicit Deny in any policy wins; then
// an Allow of the resource policy naming the caller itself, or an Allow of the identity
// policies that the permissions boundaries (when given) also allow; otherwise the request is
// implicitly denied. A resource policy naming the whole account delegates to the identity
// policies, as it does in IAM.
func (sim *simulation) evaluateOn(action, resource string) resourceResultXML {
	req := policy.Request{Caller: sim.caller, Action: action, Resource: resource, Context: sim.context}
	out := resourceResultXML{EvalResourceName: resource, MatchedStatements: statementsXML{Members: []statementXML{}},
		MissingContextValues: stringsXML{Members: []string{}}}
	if len(sim.resources) > 0 {
		out.EvalDecisionDetails = &decisionDetailsXML{}
	}
	missing := map[string]bool{}
	explain := func(req policy.Request, policies []sourcedPolicy, kind string) (policy.Decision, []statementXML) {
		docs := make([]*policy.Document, len(policies))
		for i, sp := range policies {
			docs[i] = sp.doc
		}
		e := policy.Explain(req, docs...)
		for _, k := range e.MissingKeys {
			if !missing[k] {
				missing[k] = true
				out.MissingContextValues.Members = append(out.MissingContextValues.Members, k)
			}
		}
		var matched []statementXML
		for _, ref := range e.Matched {
			matched = append(matched, statementOf(policies[ref.Document], ref.Statement, kind))
		}
		return e.Decision, matched
	}
	var denies, allows []statementXML
	identity, identityMatched := explain(req, sim.identity, identityPolicyType)
	if identity == policy.ExplicitDeny {
		denies = append(denies, identityMatched...)
	}
	identityAllows := identity == policy.Allowed
	if len(sim.boundaries) > 0 {
		boundary, matched := explain(req, sim.boundaries, identityPolicyType)
		if boundary == policy.ExplicitDeny {
			denies = append(denies, matched...)
		}
		out.PermissionsBoundaryDecisionDetail = &boundaryDetailXML{AllowedByPermissionsBoundary: boundary == policy.Allowed}
		identityAllows = identityAllows && boundary == policy.Allowed
	}
	if identityAllows {
		allows = identityMatched
	}
	if sim.resource != nil {
		rp := []sourcedPolicy{*sim.resource}
		if d, matched := explain(req, rp, resourcePolicyType); d == policy.ExplicitDeny {
			denies = append(denies, matched...)
		}
		direct := req
		direct.Caller.Account = ""
		if d, matched := explain(direct, rp, resourcePolicyType); d == policy.Allowed {
			allows = append(allows, matched...)
		}
	}
	switch {
	case len(denies) > 0:
		out.EvalResourceDecision, out.MatchedStatements.Members = "explicitDeny", denies
	case len(allows) > 0:
		out.EvalResourceDecision, out.MatchedStatements.Members = "allowed", allows
	default:
		out.EvalResourceDecision = "implicitDeny"
	}
	return out
}

func statementOf(sp sourcedPolicy, i int, kind string) statementXML {
	st := sp.doc.Statements[i]
	return statementXML{SourcePolicyID: sp.id, SourcePolicyType: kind,
		StartPosition: positionXML{Line: st.Start.Line, Column: st.Start.Column},
		EndPosition:   positionXML{Line: st.End.Line, Column: st.End.Column}}
}

type simulateResult struct {
	EvaluationResults evaluationResultsXML `xml:"EvaluationResults"`
	IsTruncated       bool                 `xml:"IsTruncated"`
	Marker            string               `xml:"Marker,omitempty"`
}

type evaluationResultsXML struct {
	Members []evaluationResultXML `xml:"member"`
}

type evaluationResultXML struct {
	EvalActionName                    string              `xml:"EvalActionName"`
	EvalResourceName                  string              `xml:"EvalResourceName"`
	EvalDecision                      string              `xml:"EvalDecision"`
	MatchedStatements                 statementsXML       `xml:"MatchedStatements"`
	MissingContextValues              stringsXML          `xml:"MissingContextValues"`
	EvalDecisionDetails               *decisionDetailsXML `xml:"EvalDecisionDetails,omitempty"`
	PermissionsBoundaryDecisionDetail *boundaryDetailXML  `xml:"PermissionsBoundaryDecisionDetail,omitempty"`
	ResourceSpecificResults           *resourceResultsXML `xml:"ResourceSpecificResults,omitempty"`
}

type resourceResultsXML struct {
	Members []resourceResultXML `xml:"member"`
}

type resourceResultXML struct {
	EvalResourceName                  string              `xml:"EvalResourceName"`
	EvalResourceDecision              string              `xml:"EvalResourceDecision"`
	MatchedStatements                 statementsXML       `xml:"MatchedStatements"`
	MissingContextValues              stringsXML          `xml:"MissingContextValues"`
	EvalDecisionDetails               *decisionDetailsXML `xml:"EvalDecisionDetails,omitempty"`
	PermissionsBoundaryDecisionDetail *boundaryDetailXML  `xml:"PermissionsBoundaryDecisionDetail,omitempty"`
}

// decisionDetailsXML is EvalDecisionDetails, which IAM fills only for cross-account
// simulations: within one account it is present and empty when resources are named.
type decisionDetailsXML struct{}

type boundaryDetailXML struct {
	AllowedByPermissionsBoundary bool `xml:"AllowedByPermissionsBoundary"`
}

type statementsXML struct {
	Members []statementXML `xml:"member"`
}

type statementXML struct {
	SourcePolicyID   string      `xml:"SourcePolicyId"`
	SourcePolicyType string      `xml:"SourcePolicyType"`
	StartPosition    positionXML `xml:"StartPosition"`
	EndPosition      positionXML `xml:"EndPosition"`
}

type positionXML struct {
	Line   int `xml:"Line"`
	Column int `xml:"Column"`
}

type stringsXML struct {
	Members []string `xml:"member"`
}
