package iam

import (
	"slices"
	"strings"
	"time"
)

// group is an IAM group: its policies apply to every member user.
type group struct {
	Name    string    `json:"name"`
	Path    string    `json:"path"`
	ID      string    `json:"id"` // AGPA...
	Created time.Time `json:"created"`
	Members []string  `json:"members,omitempty"` // user names
	policySet
}

func (s *Service) groupARN(g *group) string {
	return "arn:aws:iam::" + s.account + ":group" + g.Path + g.Name
}

func groupResource(s *Service, p params) string {
	return "arn:aws:iam::" + s.account + ":group/" + p.get("GroupName")
}

type groupXML struct {
	Path       string `xml:"Path"`
	GroupName  string `xml:"GroupName"`
	GroupID    string `xml:"GroupId"`
	Arn        string `xml:"Arn"`
	CreateDate string `xml:"CreateDate"`
}

func (s *Service) groupXML(g *group) groupXML {
	return groupXML{Path: g.Path, GroupName: g.Name, GroupID: g.ID, Arn: s.groupARN(g), CreateDate: isoTime(g.Created)}
}

func (s *Service) groupLocked(name string) (*group, error) {
	return lookupByName(s.groups, "GroupName", name, "The group with name %s cannot be found.")
}

// groupsOfLocked returns the groups a user belongs to, by name.
func (s *Service) groupsOfLocked(u *user) []*group {
	var out []*group
	for _, key := range sortedKeys(s.groups) {
		g := s.groups[key]
		if slices.ContainsFunc(g.Members, func(m string) bool { return strings.EqualFold(m, u.Name) }) {
			out = append(out, g)
		}
	}
	return out
}

type groupResult struct {
	Group groupXML `xml:"Group"`
}

func (s *Service) createGroup(p params) (any, error) {
	name, path, err := nameAndPath(p, "GroupName", 128)
	if err != nil {
		return nil, err
	}
	if _, ok := s.groups[strings.ToLower(name)]; ok {
		return nil, alreadyExists("Group with name %s already exists.", name)
	}
	g := &group{Name: name, Path: path, ID: newID("AGPA"), Created: s.now().UTC(), policySet: newPolicySet()}
	s.groups[strings.ToLower(name)] = g
	return groupResult{Group: s.groupXML(g)}, nil
}

type getGroupResult struct {
	Group       groupXML  `xml:"Group"`
	Users       []userXML `xml:"Users>member"`
	IsTruncated bool      `xml:"IsTruncated"`
}

func (s *Service) getGroup(p params) (any, error) {
	g, err := s.groupLocked(p.get("GroupName"))
	if err != nil {
		return nil, err
	}
	out := getGroupResult{Group: s.groupXML(g), Users: []userXML{}}
	for _, name := range g.Members {
		if u, ok := s.users[strings.ToLower(name)]; ok {
			x := s.userXML(u)
			x.Tags = nil
			out.Users = append(out.Users, x)
		}
	}
	return out, nil
}

// deleteGroup refuses, as IAM does, while the group has members or policies.
func (s *Service) deleteGroup(p params) (any, error) {
	g, err := s.groupLocked(p.get("GroupName"))
	if err != nil {
		return nil, err
	}
	switch {
	case len(g.Members) > 0:
		return nil, deleteConflict("Cannot delete entity, must remove users from group first.")
	case len(g.Inline) > 0:
		return nil, deleteConflict("Cannot delete entity, must delete policies first.")
	case len(g.Attached) > 0:
		return nil, deleteConflict("Cannot delete entity, must detach all policies first.")
	}
	delete(s.groups, strings.ToLower(g.Name))
	return nil, nil
}

type listGroupsResult struct {
	Groups      []groupXML `xml:"Groups>member"`
	IsTruncated bool       `xml:"IsTruncated"`
	Marker      string     `xml:"Marker,omitempty"`
}

func (s *Service) listGroups(p params) (any, error) {
	prefix := pathOr(p.get("PathPrefix"))
	names := sortedKeysWhere(s.groups, func(g *group) bool { return strings.HasPrefix(g.Path, prefix) })
	items, next, err := page(names, p)
	if err != nil {
		return nil, err
	}
	out := listGroupsResult{Groups: []groupXML{}, IsTruncated: next != "", Marker: next}
	for _, key := range items {
		out.Groups = append(out.Groups, s.groupXML(s.groups[key]))
	}
	return out, nil
}

func (s *Service) listGroupsForUser(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	out := listGroupsResult{Groups: []groupXML{}}
	for _, g := range s.groupsOfLocked(u) {
		out.Groups = append(out.Groups, s.groupXML(g))
	}
	return out, nil
}

func (s *Service) addUserToGroup(p params) (any, error) {
	g, err := s.groupLocked(p.get("GroupName"))
	if err != nil {
		return nil, err
	}
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(g.Members, func(m string) bool { return strings.EqualFold(m, u.Name) }) {
		g.Members = append(g.Members, u.Name)
	}
	return nil, nil
}

func (s *Service) removeUserFromGroup(p params) (any, error) {
	g, err := s.groupLocked(p.get("GroupName"))
	if err != nil {
		return nil, err
	}
	name := p.get("UserName")
	i := slices.IndexFunc(g.Members, func(m string) bool { return strings.EqualFold(m, name) })
	if i < 0 {
		return nil, noSuchEntity("The user with name %s cannot be found in group %s.", name, g.Name)
	}
	g.Members = slices.Delete(g.Members, i, i+1)
	return nil, nil
}

func (s *Service) putGroupPolicy(p params) (any, error) {
	g, err := s.groupLocked(p.get("GroupName"))
	if err != nil {
		return nil, err
	}
	return nil, putInlinePolicy(&g.policySet, p)
}

type groupPolicyResult struct {
	GroupName      string `xml:"GroupName"`
	PolicyName     string `xml:"PolicyName"`
	PolicyDocument string `xml:"PolicyDocument"`
}

func (s *Service) getGroupPolicy(p params) (any, error) {
	g, err := s.groupLocked(p.get("GroupName"))
	if err != nil {
		return nil, err
	}
	name, text, err := inlinePolicy(&g.policySet, "group", p)
	if err != nil {
		return nil, err
	}
	return groupPolicyResult{GroupName: g.Name, PolicyName: name, PolicyDocument: encodePolicy(text)}, nil
}

func (s *Service) deleteGroupPolicy(p params) (any, error) {
	g, err := s.groupLocked(p.get("GroupName"))
	if err != nil {
		return nil, err
	}
	return nil, deleteInlinePolicy(&g.policySet, "group", p)
}

func (s *Service) listGroupPolicies(p params) (any, error) {
	g, err := s.groupLocked(p.get("GroupName"))
	if err != nil {
		return nil, err
	}
	return listInlinePolicies(&g.policySet, p)
}

func (s *Service) attachGroupPolicy(p params) (any, error) {
	g, err := s.groupLocked(p.get("GroupName"))
	if err != nil {
		return nil, err
	}
	return nil, s.attachPolicy(&g.policySet, "PoliciesPerGroup", p)
}

func (s *Service) detachGroupPolicy(p params) (any, error) {
	g, err := s.groupLocked(p.get("GroupName"))
	if err != nil {
		return nil, err
	}
	return nil, detachPolicy(&g.policySet, p)
}

func (s *Service) listAttachedGroupPolicies(p params) (any, error) {
	g, err := s.groupLocked(p.get("GroupName"))
	if err != nil {
		return nil, err
	}
	return s.listAttached(&g.policySet, p)
}
