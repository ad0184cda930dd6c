// Package iam emulates AWS IAM (awsQuery protocol) for the local cloud: roles with trust
// policies, inline and managed policies, instance profiles and tags. It also evaluates identity
// policies for every other service: Service implements awsapi.Authorizer (installed with
// Server.SetAuthorizer) and awsapi.InstanceProfileResolver (for EC2 and the instance metadata
// service), and tells STS whether a role's trust policy lets a caller assume it.
package iam

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/policy"
)

// Service is the emulated IAM of one account. It is safe for concurrent use.
type Service struct {
	account   string
	statePath string
	creds     *awsapi.CredentialStore // where users' access keys are registered
	log       *slog.Logger
	now       func() time.Time

	mu       sync.RWMutex
	users    map[string]*user            // by lower-case user name
	groups   map[string]*group           // by lower-case group name
	roles    map[string]*role            // by role name (IAM names are case-insensitive; keyed lower-case)
	policies map[string]*managedPolicy   // by policy ARN
	profiles map[string]*instanceProfile // by lower-case profile name
}

var (
	_ awsapi.Service                 = (*Service)(nil)
	_ awsapi.Authorizer              = (*Service)(nil)
	_ awsapi.InstanceProfileResolver = (*Service)(nil)
)

type role struct {
	Name               string    `json:"name"`
	Path               string    `json:"path"`
	ID                 string    `json:"id"`
	Created            time.Time `json:"created"`
	Description        string    `json:"description,omitempty"`
	MaxSessionDuration int32     `json:"maxSessionDuration"`
	TrustPolicy        string    `json:"trustPolicy"`
	Tags               []tag     `json:"tags,omitempty"`
	policySet

	trust *policy.Document
}

type managedPolicy struct {
	Name        string           `json:"name"`
	Path        string           `json:"path"`
	ID          string           `json:"id"`
	ARN         string           `json:"arn"`
	Description string           `json:"description,omitempty"`
	Created     time.Time        `json:"created"`
	Updated     time.Time        `json:"updated"`
	Versions    []*policyVersion `json:"versions"`
	Default     string           `json:"default"` // version id
	Tags        []tag            `json:"tags,omitempty"`
}

type policyVersion struct {
	ID       string    `json:"id"` // v1, v2, ...
	Document string    `json:"document"`
	Created  time.Time `json:"created"`

	doc *policy.Document
}

type instanceProfile struct {
	Name    string    `json:"name"`
	Path    string    `json:"path"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Role    string    `json:"role,omitempty"` // role name; a profile holds at most one role
	Tags    []tag     `json:"tags,omitempty"`
}

type tag struct {
	Key   string `json:"key" xml:"Key"`
	Value string `json:"value" xml:"Value"`
}

// New returns the IAM service, restoring its state from env.StateDir/iam.json when present.
func New(env awsapi.Env) (*Service, error) {
	env = env.WithDefaults()
	s := &Service{
		account:  env.Account,
		creds:    env.Credentials,
		log:      env.Logger,
		now:      env.Now,
		users:    map[string]*user{},
		groups:   map[string]*group{},
		roles:    map[string]*role{},
		policies: map[string]*managedPolicy{},
		profiles: map[string]*instanceProfile{},
	}
	if env.StateDir != "" {
		s.statePath = filepath.Join(env.StateDir, "iam.json")
		data, err := os.ReadFile(s.statePath)
		switch {
		case err == nil:
			if err := s.restore(data); err != nil {
				return nil, err
			}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("reading IAM state: %w", err)
		}
	}
	return s, nil
}

func (s *Service) roleARN(r *role) string {
	return "arn:aws:iam::" + s.account + ":role" + r.Path + r.Name
}

func (s *Service) profileARN(p *instanceProfile) string {
	return "arn:aws:iam::" + s.account + ":instance-profile" + p.Path + p.Name
}

func (s *Service) policyARN(path, name string) string {
	return "arn:aws:iam::" + s.account + ":policy" + path + name
}

// Authorize implements awsapi.Authorizer: it evaluates the identity policies (inline and
// attached managed policies) of the role behind an assumed-role session. Roots never reach
// here; any other principal without policies is implicitly denied.
func (s *Service) Authorize(ctx context.Context, req awsapi.AuthorizationRequest) (awsapi.Decision, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	docs := s.identityPoliciesLocked(req.Caller)
	now := s.now()
	conditions := map[string][]string{
		"aws:PrincipalArn":     {req.Caller.PrincipalARN},
		"aws:PrincipalAccount": {req.Caller.Account},
		"aws:PrincipalType":    {principalType(req.Caller.Type)},
		"aws:RequestedRegion":  {req.Region},
		"aws:userid":           {req.Caller.UserID},
		"aws:CurrentTime":      {now.UTC().Format(time.RFC3339)},
		"aws:EpochTime":        {strconv.FormatInt(now.Unix(), 10)},
	}
	if req.Caller.Type == awsapi.PrincipalUser {
		conditions["aws:username"] = []string{req.Caller.ARN[strings.LastIndex(req.Caller.ARN, "/")+1:]}
	}
	for k, v := range req.Conditions {
		conditions[k] = v
	}
	resource := req.Resource
	if resource == "" {
		resource = "*"
	}
	d := policy.Evaluate(policy.Request{
		Caller:   policy.Caller{Account: req.Caller.Account, ARNs: []string{req.Caller.ARN, req.Caller.PrincipalARN}},
		Action:   req.Action,
		Resource: resource,
		Context:  conditions,
	}, docs...)
	switch d {
	case policy.Allowed:
		return awsapi.Decision{Allowed: true}, nil
	case policy.ExplicitDeny:
		return awsapi.Decision{ExplicitDeny: true, Reason: "with an explicit deny in an identity-based policy"}, nil
	default:
		return awsapi.Decision{Reason: "because no identity-based policy allows the " + req.Action + " action"}, nil
	}
}

// principalType is the value of aws:PrincipalType: AWS calls the root "Account".
func principalType(t awsapi.PrincipalType) string {
	if t == awsapi.PrincipalRoot {
		return "Account"
	}
	return string(t)
}

// identityPoliciesLocked returns the policies of the IAM entity behind an identity.
func (s *Service) identityPoliciesLocked(id awsapi.Identity) []*policy.Document {
	var sourced []sourcedPolicy
	switch id.Type {
	case awsapi.PrincipalUser:
		if u := s.userByARNLocked(id.PrincipalARN); u != nil {
			sourced = s.userPoliciesLocked(u)
		}
	case awsapi.PrincipalAssumedRole:
		if r := s.roleByARNLocked(id.PrincipalARN); r != nil {
			sourced = s.documents(&r.policySet, "role", r.Name)
		}
	}
	docs := make([]*policy.Document, len(sourced))
	for i, sp := range sourced {
		docs[i] = sp.doc
	}
	return docs
}

// userPoliciesLocked returns a user's own policies and those of its groups.
func (s *Service) userPoliciesLocked(u *user) []sourcedPolicy {
	out := s.documents(&u.policySet, "user", u.Name)
	for _, g := range s.groupsOfLocked(u) {
		out = append(out, s.documents(&g.policySet, "group", g.Name)...)
	}
	return out
}

func (s *Service) roleByARNLocked(arn string) *role {
	i := strings.LastIndex(arn, "/")
	if i < 0 {
		return nil
	}
	r, ok := s.roles[strings.ToLower(arn[i+1:])]
	if !ok || s.roleARN(r) != arn {
		return nil
	}
	return r
}

func (p *managedPolicy) version(id string) *policyVersion {
	for _, v := range p.Versions {
		if v.ID == id {
			return v
		}
	}
	return nil
}

// ResolveInstanceProfile implements awsapi.InstanceProfileResolver.
func (s *Service) ResolveInstanceProfile(ctx context.Context, account, nameOrARN string) (awsapi.InstanceProfile, error) {
	if account != "" && account != s.account {
		return awsapi.InstanceProfile{}, fmt.Errorf("instance profile %s in account %s: %w", nameOrARN, account, awsapi.ErrNotFound)
	}
	name := nameOrARN
	if strings.HasPrefix(nameOrARN, "arn:") {
		name = nameOrARN[strings.LastIndex(nameOrARN, "/")+1:]
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.profiles[strings.ToLower(name)]
	if !ok || (strings.HasPrefix(nameOrARN, "arn:") && s.profileARN(p) != nameOrARN) {
		return awsapi.InstanceProfile{}, fmt.Errorf("instance profile %s: %w", nameOrARN, awsapi.ErrNotFound)
	}
	out := awsapi.InstanceProfile{Name: p.Name, ARN: s.profileARN(p), ID: p.ID}
	if r, ok := s.roles[strings.ToLower(p.Role)]; ok {
		out.RoleName, out.RoleARN, out.RoleID = r.Name, s.roleARN(r), r.ID
	}
	return out, nil
}

// AssumableRole is what STS needs to know about a role to issue a session for it.
type AssumableRole struct {
	ARN                string
	ID                 string // AROA...
	MaxSessionDuration time.Duration
	// ViaAccount is set when the trust policy allows the caller's whole account rather than
	// the caller itself; AWS then also requires the caller's identity policies to allow
	// sts:AssumeRole on the role.
	ViaAccount bool
}

// CheckAssumeRole reports whether caller may assume the role roleARN: the role must exist and
// its trust policy must allow sts:AssumeRole for the caller. The error is an *awsapi.Error
// (NoSuchEntity is reported as AccessDenied, as STS does, so role names do not leak).
func (s *Service) CheckAssumeRole(caller awsapi.Identity, roleARN string, conditions map[string][]string) (AssumableRole, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	denied := &awsapi.Error{Code: "AccessDenied", Status: http.StatusForbidden,
		Message: "User: " + caller.ARN + " is not authorized to perform: sts:AssumeRole on resource: " + roleARN}
	r := s.roleByARNLocked(roleARN)
	if r == nil {
		return AssumableRole{}, denied
	}
	arns := []string{caller.ARN}
	if caller.PrincipalARN != "" && caller.PrincipalARN != caller.ARN {
		arns = append(arns, caller.PrincipalARN)
	}
	req := policy.Request{
		Caller:   policy.Caller{Account: caller.Account, ARNs: arns},
		Action:   "sts:AssumeRole",
		Resource: roleARN,
		Context:  conditions,
	}
	if policy.Evaluate(req, r.trust) != policy.Allowed {
		return AssumableRole{}, denied
	}
	direct := req
	direct.Caller.Account = ""
	return AssumableRole{
		ARN: s.roleARN(r), ID: r.ID,
		MaxSessionDuration: time.Duration(r.MaxSessionDuration) * time.Second,
		ViaAccount:         policy.Evaluate(direct, r.trust) != policy.Allowed,
	}, nil
}

// TrustsService reports whether the role roleARN exists and its trust policy lets the AWS
// service principal (for example "ec2.amazonaws.com") assume it. The instance metadata
// service can use it before handing out role credentials, as EC2 only delivers credentials
// for roles that trust it.
func (s *Service) TrustsService(roleARN, service string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.roleByARNLocked(roleARN)
	if r == nil {
		return false
	}
	return policy.Evaluate(policy.Request{Caller: policy.Caller{Service: service}, Action: "sts:AssumeRole", Resource: roleARN}, r.trust) == policy.Allowed
}

// snapshot is the persisted form of the service.
type snapshot struct {
	Users    []*user            `json:"users,omitempty"`
	Groups   []*group           `json:"groups,omitempty"`
	Roles    []*role            `json:"roles"`
	Policies []*managedPolicy   `json:"policies"`
	Profiles []*instanceProfile `json:"profiles"`
}

func (s *Service) saveLocked() error {
	if s.statePath == "" {
		return nil
	}
	snap := snapshot{}
	for _, name := range sortedKeys(s.users) {
		snap.Users = append(snap.Users, s.users[name])
	}
	for _, name := range sortedKeys(s.groups) {
		snap.Groups = append(snap.Groups, s.groups[name])
	}
	for _, name := range sortedKeys(s.roles) {
		snap.Roles = append(snap.Roles, s.roles[name])
	}
	for _, arn := range sortedKeys(s.policies) {
		snap.Policies = append(snap.Policies, s.policies[arn])
	}
	for _, name := range sortedKeys(s.profiles) {
		snap.Profiles = append(snap.Profiles, s.profiles[name])
	}
	data, err := json.MarshalIndent(snap, "", " ")
	if err != nil {
		return fmt.Errorf("encoding IAM state: %w", err)
	}
	if err := awsapi.WriteFileAtomic(s.statePath, data, 0o600); err != nil {
		return fmt.Errorf("saving IAM state: %w", err)
	}
	return nil
}

func (s *Service) restore(data []byte) error {
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("decoding IAM state: %w", err)
	}
	for _, u := range snap.Users {
		if err := u.policySet.parse(); err != nil {
			return fmt.Errorf("decoding IAM state: user %s: %w", u.Name, err)
		}
		s.users[strings.ToLower(u.Name)] = u
		// The credential store is saved separately; make sure it knows every active key.
		for _, k := range u.Keys {
			if k.Active && s.creds != nil {
				if err := s.activateKey(u, k); err != nil {
					return fmt.Errorf("restoring access key %s of user %s: %w", k.ID, u.Name, err)
				}
			}
		}
	}
	for _, g := range snap.Groups {
		if err := g.policySet.parse(); err != nil {
			return fmt.Errorf("decoding IAM state: group %s: %w", g.Name, err)
		}
		s.groups[strings.ToLower(g.Name)] = g
	}
	for _, r := range snap.Roles {
		var err error
		if r.trust, err = policy.Parse(r.TrustPolicy); err != nil {
			return fmt.Errorf("decoding IAM state: trust policy of role %s: %w", r.Name, err)
		}
		if err := r.policySet.parse(); err != nil {
			return fmt.Errorf("decoding IAM state: role %s: %w", r.Name, err)
		}
		s.roles[strings.ToLower(r.Name)] = r
	}
	for _, p := range snap.Policies {
		for _, v := range p.Versions {
			var err error
			if v.doc, err = policy.Parse(v.Document); err != nil {
				return fmt.Errorf("decoding IAM state: policy %s %s: %w", p.ARN, v.ID, err)
			}
		}
		s.policies[p.ARN] = p
	}
	for _, p := range snap.Profiles {
		s.profiles[strings.ToLower(p.Name)] = p
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sortedKeysWhere returns the keys, sorted, of the entries of m that keep accepts (nil for
// none).
func sortedKeysWhere[V any](m map[string]V, keep func(V) bool) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		if keep(m[k]) {
			out = append(out, k)
		}
	}
	return out
}

// newID returns an IAM unique id: a prefix (AROA for roles, ANPA for policies, AIPA for
// instance profiles) and 17 upper-case letters and digits.
func newID(prefix string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, 17)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return prefix + string(b)
}
