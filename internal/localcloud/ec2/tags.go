package ec2

import (
	"context"
	"sort"
	"strings"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// taggableLocked finds the tags of any resource by id, with EC2's resource type name.
func (s *Service) taggableLocked(id string) (tags, string, error) {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "i":
		inst, err := s.findInstanceLocked(id)
		if err != nil {
			return nil, "", err
		}
		return inst.Tags, "instance", nil
	case "vol":
		v, err := s.findVolumeLocked(id)
		if err != nil {
			return nil, "", err
		}
		return v.Tags, "volume", nil
	case "eni":
		e, err := s.findInterfaceLocked(id)
		if err != nil {
			return nil, "", err
		}
		return e.Tags, "network-interface", nil
	case "sg":
		g, err := s.findGroupLocked(id, "")
		if err != nil {
			return nil, "", err
		}
		return g.Tags, "security-group", nil
	case "vpc":
		v, ok := s.st.VPCs[id]
		if !ok {
			return nil, "", awsapi.Errorf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
		}
		return v.Tags, "vpc", nil
	case "subnet":
		sn, ok := s.st.Subnets[id]
		if !ok {
			return nil, "", awsapi.Errorf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
		return sn.Tags, "subnet", nil
	case "ami":
		img, err := s.findImageLocked(id)
		if err != nil {
			return nil, "", err
		}
		return img.Tags, "image", nil
	case "lt":
		lt, err := s.findTemplateLocked(id, "")
		if err != nil {
			return nil, "", err
		}
		return lt.Tags, "launch-template", nil
	}
	return nil, "", awsapi.Errorf("InvalidID", "The ID '%s' is not valid", id)
}

func (s *Service) createTags(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	ids := p.list("ResourceId")
	if len(ids) == 0 {
		return nil, awsapi.Errorf("MissingParameter", "The request must contain the parameter resourceIdSet")
	}
	add := tags{}
	for _, t := range p.structs("Tag") {
		add[t.str("Key")] = t.str("Value")
	}
	if len(add) == 0 {
		return nil, awsapi.Errorf("MissingParameter", "The request must contain the parameter tagSet")
	}
	if err := validateTags(add); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var targets []tags
	for _, id := range ids {
		t, _, err := s.taggableLocked(id)
		if err != nil {
			return nil, err
		}
		merged := copyTags(t)
		for k, v := range add {
			merged[k] = v
		}
		if len(merged) > 50 {
			return nil, awsapi.Errorf("TagLimitExceeded", "The maximum number of tags for resource %s has been reached (50)", id)
		}
		targets = append(targets, t)
	}
	for _, t := range targets {
		for k, v := range add {
			t[k] = v
		}
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &returnTrue{Return: true})
}

func (s *Service) deleteTags(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	ids := p.list("ResourceId")
	if len(ids) == 0 {
		return nil, awsapi.Errorf("MissingParameter", "The request must contain the parameter resourceIdSet")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var targets []tags
	for _, id := range ids {
		t, _, err := s.taggableLocked(id)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	specs := p.structs("Tag")
	for _, t := range targets {
		if len(specs) == 0 {
			for k := range t {
				if !strings.HasPrefix(k, "aws:") {
					delete(t, k)
				}
			}
			continue
		}
		for _, spec := range specs {
			k := spec.str("Key")
			// With a value, the tag is removed only when its value matches.
			if _, hasValue := spec["Value"]; hasValue && t[k] != spec.str("Value") {
				continue
			}
			delete(t, k)
		}
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &returnTrue{Return: true})
}

func (s *Service) describeTags(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type entry struct {
		id, typ string
		t       tags
	}
	var all []entry
	for id, x := range s.st.Instances {
		all = append(all, entry{id, "instance", x.Tags})
	}
	for id, x := range s.st.Volumes {
		all = append(all, entry{id, "volume", x.Tags})
	}
	for id, x := range s.st.NetworkInterfaces {
		all = append(all, entry{id, "network-interface", x.Tags})
	}
	for id, x := range s.st.SecurityGroups {
		all = append(all, entry{id, "security-group", x.Tags})
	}
	for id, x := range s.st.VPCs {
		all = append(all, entry{id, "vpc", x.Tags})
	}
	for id, x := range s.st.Subnets {
		all = append(all, entry{id, "subnet", x.Tags})
	}
	for id, x := range s.st.Images {
		all = append(all, entry{id, "image", x.Tags})
	}
	filters := parseFilters(p)
	rows := map[string]xTagDescription{}
	var keys []string
	for _, e := range all {
		for k, v := range e.t {
			row := xTagDescription{ResourceID: e.id, ResourceType: e.typ, Key: k, Value: v}
			ok, err := matches(filters, e.t, func(name string) ([]string, bool) {
				switch name {
				case "resource-id":
					return []string{row.ResourceID}, true
				case "resource-type":
					return []string{row.ResourceType}, true
				case "key":
					return []string{row.Key}, true
				case "value":
					return []string{row.Value}, true
				}
				return nil, false
			})
			if err != nil {
				return nil, err
			}
			if ok {
				key := row.ResourceID + "\x00" + row.Key
				rows[key] = row
				keys = append(keys, key)
			}
		}
	}
	sort.Strings(keys)
	pg, next, err := page(keys, p, 5, 1000)
	if err != nil {
		return nil, err
	}
	out := &struct {
		meta
		Tags      items[xTagDescription] `xml:"tagSet"`
		NextToken string                 `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, k := range pg {
		out.Tags = append(out.Tags, rows[k])
	}
	return respond(req, out)
}
