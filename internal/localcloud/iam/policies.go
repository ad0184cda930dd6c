package iam

import (
	"slices"
	"strconv"
	"strings"

	"github.com/tributary/tributary/internal/localcloud/policy"
)

type policyXML struct {
	PolicyName                    string   `xml:"PolicyName"`
	PolicyID                      string   `xml:"PolicyId"`
	Arn                           string   `xml:"Arn"`
	Path                          string   `xml:"Path"`
	DefaultVersionID              string   `xml:"DefaultVersionId"`
	AttachmentCount               int      `xml:"AttachmentCount"`
	PermissionsBoundaryUsageCount int      `xml:"PermissionsBoundaryUsageCount"`
	IsAttachable                  bool     `xml:"IsAttachable"`
	Description                   string   `xml:"Description,omitempty"`
	CreateDate                    string   `xml:"CreateDate"`
	UpdateDate                    string   `xml:"UpdateDate"`
	Tags                          *tagList `xml:"Tags,omitempty"`
}

// attachments returns the roles, users and groups a managed policy is attached to.
func (s *Service) attachments(arn string) (roles, users, groups []string) {
	for _, key := range sortedKeys(s.roles) {
		if slices.Contains(s.roles[key].Attached, arn) {
			roles = append(roles, s.roles[key].Name)
		}
	}
	for _, key := range sortedKeys(s.users) {
		if slices.Contains(s.users[key].Attached, arn) {
			users = append(users, s.users[key].Name)
		}
	}
	for _, key := range sortedKeys(s.groups) {
		if slices.Contains(s.groups[key].Attached, arn) {
			groups = append(groups, s.groups[key].Name)
		}
	}
	return roles, users, groups
}

func (s *Service) attachmentCount(arn string) int {
	roles, users, groups := s.attachments(arn)
	return len(roles) + len(users) + len(groups)
}

func (s *Service) policyXML(mp *managedPolicy) policyXML {
	return policyXML{
		PolicyName: mp.Name, PolicyID: mp.ID, Arn: mp.ARN, Path: mp.Path, DefaultVersionID: mp.Default,
		AttachmentCount: s.attachmentCount(mp.ARN), IsAttachable: true, Description: mp.Description,
		CreateDate: isoTime(mp.Created), UpdateDate: isoTime(mp.Updated), Tags: tagsXML(mp.Tags),
	}
}

type policyResult struct {
	Policy policyXML `xml:"Policy"`
}

func (s *Service) policyLocked(arn string) (*managedPolicy, error) {
	if arn == "" {
		return nil, validationError("1 validation error detected: Value null at 'policyArn' failed to satisfy constraint: Member must not be null")
	}
	mp, ok := s.policies[arn]
	if !ok {
		return nil, noSuchEntity("Policy %s was not found.", arn)
	}
	return mp, nil
}

func (s *Service) createPolicy(p params) (any, error) {
	name, path, err := nameAndPath(p, "PolicyName", 128)
	if err != nil {
		return nil, err
	}
	text, doc, err := p.policyDocument("PolicyDocument", policy.Identity)
	if err != nil {
		return nil, err
	}
	tags, err := p.tags("Tags")
	if err != nil {
		return nil, err
	}
	arn := s.policyARN(path, name)
	for _, mp := range s.policies {
		if strings.EqualFold(mp.Name, name) {
			return nil, alreadyExists("A policy called %s already exists. Duplicate names are not allowed.", name)
		}
	}
	now := s.now().UTC()
	mp := &managedPolicy{
		Name: name, Path: path, ID: newID("ANPA"), ARN: arn, Description: p.get("Description"),
		Created: now, Updated: now, Default: "v1", Tags: tags,
		Versions: []*policyVersion{{ID: "v1", Document: text, Created: now, doc: doc}},
	}
	s.policies[arn] = mp
	return policyResult{Policy: s.policyXML(mp)}, nil
}

func (s *Service) getPolicy(p params) (any, error) {
	mp, err := s.policyLocked(p.get("PolicyArn"))
	if err != nil {
		return nil, err
	}
	return policyResult{Policy: s.policyXML(mp)}, nil
}

func (s *Service) deletePolicy(p params) (any, error) {
	mp, err := s.policyLocked(p.get("PolicyArn"))
	if err != nil {
		return nil, err
	}
	if s.attachmentCount(mp.ARN) > 0 {
		return nil, deleteConflict("Cannot delete a policy attached to entities.")
	}
	if len(mp.Versions) > 1 {
		return nil, deleteConflict("Cannot delete a policy with non-default versions; delete them first.")
	}
	delete(s.policies, mp.ARN)
	return nil, nil
}

type listPoliciesResult struct {
	Policies    []policyXML `xml:"Policies>member"`
	IsTruncated bool        `xml:"IsTruncated"`
	Marker      string      `xml:"Marker,omitempty"`
}

// listPolicies lists the account's customer managed policies (Scope Local or All; the local
// cloud has no AWS managed policies).
func (s *Service) listPolicies(p params) (any, error) {
	prefix := pathOr(p.get("PathPrefix"))
	onlyAttached := p.get("OnlyAttached") == "true"
	var arns []string
	if p.get("Scope") != "AWS" {
		for _, arn := range sortedKeys(s.policies) {
			mp := s.policies[arn]
			if strings.HasPrefix(mp.Path, prefix) && (!onlyAttached || s.attachmentCount(arn) > 0) {
				arns = append(arns, arn)
			}
		}
	}
	items, next, err := page(arns, p)
	if err != nil {
		return nil, err
	}
	out := listPoliciesResult{Policies: []policyXML{}, IsTruncated: next != "", Marker: next}
	for _, arn := range items {
		x := s.policyXML(s.policies[arn])
		x.Tags = nil
		out.Policies = append(out.Policies, x)
	}
	return out, nil
}

type policyVersionXML struct {
	Document         string `xml:"Document,omitempty"`
	VersionID        string `xml:"VersionId"`
	IsDefaultVersion bool   `xml:"IsDefaultVersion"`
	CreateDate       string `xml:"CreateDate"`
}

type policyVersionResult struct {
	PolicyVersion policyVersionXML `xml:"PolicyVersion"`
}

func (s *Service) getPolicyVersion(p params) (any, error) {
	mp, err := s.policyLocked(p.get("PolicyArn"))
	if err != nil {
		return nil, err
	}
	id := p.get("VersionId")
	v := mp.version(id)
	if v == nil {
		return nil, noSuchEntity("Policy %s version %s does not exist or is not attachable.", mp.ARN, id)
	}
	return policyVersionResult{PolicyVersion: policyVersionXML{
		Document: encodePolicy(v.Document), VersionID: v.ID, IsDefaultVersion: v.ID == mp.Default, CreateDate: isoTime(v.Created),
	}}, nil
}

// maxPolicyVersions is IAM's limit of stored versions per managed policy.
const maxPolicyVersions = 5

func (s *Service) createPolicyVersion(p params) (any, error) {
	mp, err := s.policyLocked(p.get("PolicyArn"))
	if err != nil {
		return nil, err
	}
	text, doc, err := p.policyDocument("PolicyDocument", policy.Identity)
	if err != nil {
		return nil, err
	}
	if len(mp.Versions) >= maxPolicyVersions {
		return nil, limitExceeded("A managed policy can have up to %d versions. Before you create a new version, you must delete an existing version.", maxPolicyVersions)
	}
	highest := 0
	for _, v := range mp.Versions {
		if n, err := strconv.Atoi(strings.TrimPrefix(v.ID, "v")); err == nil && n > highest {
			highest = n
		}
	}
	now := s.now().UTC()
	v := &policyVersion{ID: "v" + strconv.Itoa(highest+1), Document: text, Created: now, doc: doc}
	mp.Versions = append(mp.Versions, v)
	if p.get("SetAsDefault") == "true" {
		mp.Default = v.ID
	}
	mp.Updated = now
	return policyVersionResult{PolicyVersion: policyVersionXML{VersionID: v.ID, IsDefaultVersion: v.ID == mp.Default, CreateDate: isoTime(v.Created)}}, nil
}

func (s *Service) deletePolicyVersion(p params) (any, error) {
	mp, err := s.policyLocked(p.get("PolicyArn"))
	if err != nil {
		return nil, err
	}
	id := p.get("VersionId")
	i := slices.IndexFunc(mp.Versions, func(v *policyVersion) bool { return v.ID == id })
	if i < 0 {
		return nil, noSuchEntity("Policy %s version %s does not exist.", mp.ARN, id)
	}
	if id == mp.Default {
		return nil, deleteConflict("Cannot delete the default version of a policy.")
	}
	mp.Versions = slices.Delete(mp.Versions, i, i+1)
	return nil, nil
}

type listPolicyVersionsResult struct {
	Versions    []policyVersionXML `xml:"Versions>member"`
	IsTruncated bool               `xml:"IsTruncated"`
}

func (s *Service) listPolicyVersions(p params) (any, error) {
	mp, err := s.policyLocked(p.get("PolicyArn"))
	if err != nil {
		return nil, err
	}
	out := listPolicyVersionsResult{Versions: []policyVersionXML{}}
	for i := len(mp.Versions) - 1; i >= 0; i-- { // newest first, as IAM lists them
		v := mp.Versions[i]
		out.Versions = append(out.Versions, policyVersionXML{VersionID: v.ID, IsDefaultVersion: v.ID == mp.Default, CreateDate: isoTime(v.Created)})
	}
	return out, nil
}

type policyRoleXML struct {
	RoleName string `xml:"RoleName"`
	RoleID   string `xml:"RoleId"`
}

type policyUserXML struct {
	UserName string `xml:"UserName"`
	UserID   string `xml:"UserId"`
}

type policyGroupXML struct {
	GroupName string `xml:"GroupName"`
	GroupID   string `xml:"GroupId"`
}

type listEntitiesResult struct {
	PolicyGroups []policyGroupXML `xml:"PolicyGroups>member"`
	PolicyUsers  []policyUserXML  `xml:"PolicyUsers>member"`
	PolicyRoles  []policyRoleXML  `xml:"PolicyRoles>member"`
	IsTruncated  bool             `xml:"IsTruncated"`
}

func (s *Service) listEntitiesForPolicy(p params) (any, error) {
	mp, err := s.policyLocked(p.get("PolicyArn"))
	if err != nil {
		return nil, err
	}
	out := listEntitiesResult{PolicyGroups: []policyGroupXML{}, PolicyUsers: []policyUserXML{}, PolicyRoles: []policyRoleXML{}}
	roles, users, groups := s.attachments(mp.ARN)
	for _, name := range roles {
		r := s.roles[strings.ToLower(name)]
		out.PolicyRoles = append(out.PolicyRoles, policyRoleXML{RoleName: r.Name, RoleID: r.ID})
	}
	for _, name := range users {
		u := s.users[strings.ToLower(name)]
		out.PolicyUsers = append(out.PolicyUsers, policyUserXML{UserName: u.Name, UserID: u.ID})
	}
	for _, name := range groups {
		g := s.groups[strings.ToLower(name)]
		out.PolicyGroups = append(out.PolicyGroups, policyGroupXML{GroupName: g.Name, GroupID: g.ID})
	}
	return out, nil
}
