package iam

import (
	"strings"

	"github.com/tributary/tributary/internal/localcloud/policy"
)

type roleXML struct {
	Path                     string   `xml:"Path"`
	RoleName                 string   `xml:"RoleName"`
	RoleID                   string   `xml:"RoleId"`
	Arn                      string   `xml:"Arn"`
	CreateDate               string   `xml:"CreateDate"`
	AssumeRolePolicyDocument string   `xml:"AssumeRolePolicyDocument"`
	Description              string   `xml:"Description,omitempty"`
	MaxSessionDuration       int32    `xml:"MaxSessionDuration"`
	Tags                     *tagList `xml:"Tags,omitempty"`
}

func (s *Service) roleXML(r *role) roleXML {
	return roleXML{
		Path: r.Path, RoleName: r.Name, RoleID: r.ID, Arn: s.roleARN(r), CreateDate: isoTime(r.Created),
		AssumeRolePolicyDocument: encodePolicy(r.TrustPolicy), Description: r.Description,
		MaxSessionDuration: r.MaxSessionDuration, Tags: tagsXML(r.Tags),
	}
}

type roleResult struct {
	Role roleXML `xml:"Role"`
}

func (s *Service) roleLocked(name string) (*role, error) {
	return lookupByName(s.roles, "RoleName", name, "The role with name %s cannot be found.")
}

func (s *Service) createRole(p params) (any, error) {
	name, path, err := nameAndPath(p, "RoleName", 64)
	if err != nil {
		return nil, err
	}
	trustText, trust, err := p.policyDocument("AssumeRolePolicyDocument", policy.Trust)
	if err != nil {
		return nil, err
	}
	maxSession, err := p.int32("MaxSessionDuration", 3600, 3600, 43200)
	if err != nil {
		return nil, err
	}
	tags, err := p.tags("Tags")
	if err != nil {
		return nil, err
	}
	if _, ok := s.roles[strings.ToLower(name)]; ok {
		return nil, alreadyExists("Role with name %s already exists.", name)
	}
	r := &role{
		Name: name, Path: path, ID: newID("AROA"), Created: s.now().UTC(), Description: p.get("Description"),
		MaxSessionDuration: maxSession, TrustPolicy: trustText, Tags: tags, trust: trust,
		policySet: newPolicySet(),
	}
	s.roles[strings.ToLower(name)] = r
	return roleResult{Role: s.roleXML(r)}, nil
}

func (s *Service) getRole(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	return roleResult{Role: s.roleXML(r)}, nil
}

// deleteRole refuses, as IAM does, while the role still has inline or attached policies or
// belongs to an instance profile.
func (s *Service) deleteRole(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	if len(r.Inline) > 0 {
		return nil, deleteConflict("Cannot delete entity, must delete policies first.")
	}
	if len(r.Attached) > 0 {
		return nil, deleteConflict("Cannot delete entity, must detach all policies first.")
	}
	for _, prof := range s.profiles {
		if strings.EqualFold(prof.Role, r.Name) {
			return nil, deleteConflict("Cannot delete entity, must remove roles from instance profile first.")
		}
	}
	delete(s.roles, strings.ToLower(r.Name))
	return nil, nil
}

type listRolesResult struct {
	Roles       []roleXML `xml:"Roles>member"`
	IsTruncated bool      `xml:"IsTruncated"`
	Marker      string    `xml:"Marker,omitempty"`
}

func (s *Service) listRoles(p params) (any, error) {
	prefix := pathOr(p.get("PathPrefix"))
	names := sortedKeysWhere(s.roles, func(r *role) bool { return strings.HasPrefix(r.Path, prefix) })
	items, next, err := page(names, p)
	if err != nil {
		return nil, err
	}
	out := listRolesResult{Roles: []roleXML{}, IsTruncated: next != "", Marker: next}
	for _, key := range items {
		x := s.roleXML(s.roles[key])
		x.Tags = nil // ListRoles does not return tags, as in IAM
		out.Roles = append(out.Roles, x)
	}
	return out, nil
}

func (s *Service) updateRole(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	maxSession, err := p.int32("MaxSessionDuration", r.MaxSessionDuration, 3600, 43200)
	if err != nil {
		return nil, err
	}
	if p.has("Description") {
		r.Description = p.get("Description")
	}
	r.MaxSessionDuration = maxSession
	return nil, nil
}

func (s *Service) updateRoleDescription(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	r.Description = p.get("Description")
	return roleResult{Role: s.roleXML(r)}, nil
}

func (s *Service) updateAssumeRolePolicy(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	text, doc, err := p.policyDocument("PolicyDocument", policy.Trust)
	if err != nil {
		return nil, err
	}
	r.TrustPolicy, r.trust = text, doc
	return nil, nil
}

func (s *Service) tagRole(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	return nil, tagResource(&r.Tags, p)
}

func (s *Service) untagRole(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	untagResource(&r.Tags, p)
	return nil, nil
}

func (s *Service) listRoleTags(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	return listTags(r.Tags), nil
}

func (s *Service) putRolePolicy(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	return nil, putInlinePolicy(&r.policySet, p)
}

type rolePolicyResult struct {
	RoleName       string `xml:"RoleName"`
	PolicyName     string `xml:"PolicyName"`
	PolicyDocument string `xml:"PolicyDocument"`
}

func (s *Service) getRolePolicy(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	name, text, err := inlinePolicy(&r.policySet, "role", p)
	if err != nil {
		return nil, err
	}
	return rolePolicyResult{RoleName: r.Name, PolicyName: name, PolicyDocument: encodePolicy(text)}, nil
}

func (s *Service) deleteRolePolicy(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	return nil, deleteInlinePolicy(&r.policySet, "role", p)
}

func (s *Service) listRolePolicies(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	return listInlinePolicies(&r.policySet, p)
}

func (s *Service) attachRolePolicy(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	return nil, s.attachPolicy(&r.policySet, "PoliciesPerRole", p)
}

func (s *Service) detachRolePolicy(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	return nil, detachPolicy(&r.policySet, p)
}

func (s *Service) listAttachedRolePolicies(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	return s.listAttached(&r.policySet, p)
}
