package iam

import (
	"strings"
)

type instanceProfileXML struct {
	Path                string    `xml:"Path"`
	InstanceProfileName string    `xml:"InstanceProfileName"`
	InstanceProfileID   string    `xml:"InstanceProfileId"`
	Arn                 string    `xml:"Arn"`
	CreateDate          string    `xml:"CreateDate"`
	Roles               []roleXML `xml:"Roles>member"`
	Tags                *tagList  `xml:"Tags,omitempty"`
}

func (s *Service) profileXML(ip *instanceProfile) instanceProfileXML {
	out := instanceProfileXML{
		Path: ip.Path, InstanceProfileName: ip.Name, InstanceProfileID: ip.ID, Arn: s.profileARN(ip),
		CreateDate: isoTime(ip.Created), Roles: []roleXML{}, Tags: tagsXML(ip.Tags),
	}
	if r, ok := s.roles[strings.ToLower(ip.Role)]; ok {
		x := s.roleXML(r)
		x.Tags = nil
		out.Roles = append(out.Roles, x)
	}
	return out
}

type profileResult struct {
	InstanceProfile instanceProfileXML `xml:"InstanceProfile"`
}

func (s *Service) profileLocked(name string) (*instanceProfile, error) {
	return lookupByName(s.profiles, "InstanceProfileName", name, "Instance Profile %s cannot be found.")
}

func (s *Service) createInstanceProfile(p params) (any, error) {
	name, path, err := nameAndPath(p, "InstanceProfileName", 128)
	if err != nil {
		return nil, err
	}
	tags, err := p.tags("Tags")
	if err != nil {
		return nil, err
	}
	if _, ok := s.profiles[strings.ToLower(name)]; ok {
		return nil, alreadyExists("Instance Profile %s already exists.", name)
	}
	ip := &instanceProfile{Name: name, Path: path, ID: newID("AIPA"), Created: s.now().UTC(), Tags: tags}
	s.profiles[strings.ToLower(name)] = ip
	return profileResult{InstanceProfile: s.profileXML(ip)}, nil
}

func (s *Service) getInstanceProfile(p params) (any, error) {
	ip, err := s.profileLocked(p.get("InstanceProfileName"))
	if err != nil {
		return nil, err
	}
	return profileResult{InstanceProfile: s.profileXML(ip)}, nil
}

func (s *Service) deleteInstanceProfile(p params) (any, error) {
	ip, err := s.profileLocked(p.get("InstanceProfileName"))
	if err != nil {
		return nil, err
	}
	if ip.Role != "" {
		return nil, deleteConflict("Cannot delete entity, must remove roles from instance profile first.")
	}
	delete(s.profiles, strings.ToLower(ip.Name))
	return nil, nil
}

type listProfilesResult struct {
	InstanceProfiles []instanceProfileXML `xml:"InstanceProfiles>member"`
	IsTruncated      bool                 `xml:"IsTruncated"`
	Marker           string               `xml:"Marker,omitempty"`
}

func (s *Service) listProfiles(p params, keep func(*instanceProfile) bool) (any, error) {
	items, next, err := page(sortedKeysWhere(s.profiles, keep), p)
	if err != nil {
		return nil, err
	}
	out := listProfilesResult{InstanceProfiles: []instanceProfileXML{}, IsTruncated: next != "", Marker: next}
	for _, key := range items {
		out.InstanceProfiles = append(out.InstanceProfiles, s.profileXML(s.profiles[key]))
	}
	return out, nil
}

func (s *Service) listInstanceProfiles(p params) (any, error) {
	prefix := pathOr(p.get("PathPrefix"))
	return s.listProfiles(p, func(ip *instanceProfile) bool { return strings.HasPrefix(ip.Path, prefix) })
}

func (s *Service) listInstanceProfilesForRole(p params) (any, error) {
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	return s.listProfiles(p, func(ip *instanceProfile) bool { return strings.EqualFold(ip.Role, r.Name) })
}

func (s *Service) addRoleToInstanceProfile(p params) (any, error) {
	ip, err := s.profileLocked(p.get("InstanceProfileName"))
	if err != nil {
		return nil, err
	}
	r, err := s.roleLocked(p.get("RoleName"))
	if err != nil {
		return nil, err
	}
	if ip.Role != "" {
		return nil, limitExceeded("Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1")
	}
	ip.Role = r.Name
	return nil, nil
}

func (s *Service) removeRoleFromInstanceProfile(p params) (any, error) {
	ip, err := s.profileLocked(p.get("InstanceProfileName"))
	if err != nil {
		return nil, err
	}
	name := p.get("RoleName")
	if ip.Role == "" || !strings.EqualFold(ip.Role, name) {
		return nil, noSuchEntity("The role with name %s cannot be found in instance profile %s.", name, ip.Name)
	}
	ip.Role = ""
	return nil, nil
}

func (s *Service) tagInstanceProfile(p params) (any, error) {
	ip, err := s.profileLocked(p.get("InstanceProfileName"))
	if err != nil {
		return nil, err
	}
	return nil, tagResource(&ip.Tags, p)
}

func (s *Service) listInstanceProfileTags(p params) (any, error) {
	ip, err := s.profileLocked(p.get("InstanceProfileName"))
	if err != nil {
		return nil, err
	}
	return listTags(ip.Tags), nil
}

func (s *Service) untagInstanceProfile(p params) (any, error) {
	ip, err := s.profileLocked(p.get("InstanceProfileName"))
	if err != nil {
		return nil, err
	}
	untagResource(&ip.Tags, p)
	return nil, nil
}
