package iam

import (
	"fmt"
	"slices"

	"github.com/tributary/tributary/internal/localcloud/policy"
)

// policySet is the identity policies of a role or a user: inline documents by name, and the
// ARNs of attached managed policies.
type policySet struct {
	Inline   map[string]string `json:"inline,omitempty"` // policy name -> document
	Attached []string          `json:"attached,omitempty"`

	inline map[string]*policy.Document // parsed Inline
}

func newPolicySet() policySet {
	return policySet{Inline: map[string]string{}, inline: map[string]*policy.Document{}}
}

// parse rebuilds the parsed documents after loading the state.
func (ps *policySet) parse() error {
	if ps.Inline == nil {
		ps.Inline = map[string]string{}
	}
	ps.inline = make(map[string]*policy.Document, len(ps.Inline))
	for name, text := range ps.Inline {
		doc, err := policy.Parse(text)
		if err != nil {
			return fmt.Errorf("policy %s: %w", name, err)
		}
		ps.inline[name] = doc
	}
	return nil
}

// sourcedPolicy is an identity policy and the names IAM's policy simulator reports it by.
type sourcedPolicy struct {
	doc *policy.Document
	// id is the SourcePolicyId: the managed policy's name, or <kind>_<owner>_<name> for an
	// inline policy (role_broker_tributary-broker), as IAM's simulator names them.
	id string
}

// documents returns the inline and the attached policies' default versions of ps, whose owner
// is the role, user or group named owner; kind ("role", "user", "group") prefixes the names of
// inline policies.
func (s *Service) documents(ps *policySet, kind, owner string) []sourcedPolicy {
	var out []sourcedPolicy
	for _, name := range sortedKeys(ps.inline) {
		out = append(out, sourcedPolicy{doc: ps.inline[name], id: kind + "_" + owner + "_" + name})
	}
	for _, arn := range ps.Attached {
		if mp, ok := s.policies[arn]; ok {
			if v := mp.version(mp.Default); v != nil {
				out = append(out, sourcedPolicy{doc: v.doc, id: mp.Name})
			}
		}
	}
	return out
}

func putInlinePolicy(ps *policySet, p params) error {
	name, err := p.required("PolicyName")
	if err != nil {
		return err
	}
	if err := checkName("policyName", name, 128); err != nil {
		return err
	}
	text, doc, err := p.policyDocument("PolicyDocument", policy.Identity)
	if err != nil {
		return err
	}
	ps.Inline[name], ps.inline[name] = text, doc
	return nil
}

// inlinePolicy returns the named inline policy's document; kind ("role", "user") words the
// error.
func inlinePolicy(ps *policySet, kind string, p params) (name, text string, err error) {
	name = p.get("PolicyName")
	text, ok := ps.Inline[name]
	if !ok {
		return "", "", noSuchEntity("The %s policy with name %s cannot be found.", kind, name)
	}
	return name, text, nil
}

func deleteInlinePolicy(ps *policySet, kind string, p params) error {
	name, _, err := inlinePolicy(ps, kind, p)
	if err != nil {
		return err
	}
	delete(ps.Inline, name)
	delete(ps.inline, name)
	return nil
}

type listPolicyNamesResult struct {
	PolicyNames []string `xml:"PolicyNames>member"`
	IsTruncated bool     `xml:"IsTruncated"`
	Marker      string   `xml:"Marker,omitempty"`
}

func listInlinePolicies(ps *policySet, p params) (any, error) {
	items, next, err := page(sortedKeys(ps.Inline), p)
	if err != nil {
		return nil, err
	}
	return listPolicyNamesResult{PolicyNames: append([]string{}, items...), IsTruncated: next != "", Marker: next}, nil
}

// maxAttachedPolicies is IAM's default quota of managed policies per role or user.
const maxAttachedPolicies = 20

func (s *Service) attachPolicy(ps *policySet, quota string, p params) error {
	arn, err := p.required("PolicyArn")
	if err != nil {
		return err
	}
	if _, ok := s.policies[arn]; !ok {
		return noSuchEntity("Policy %s does not exist or is not attachable.", arn)
	}
	if slices.Contains(ps.Attached, arn) {
		return nil
	}
	if len(ps.Attached) >= maxAttachedPolicies {
		return limitExceeded("Cannot exceed quota for %s: %d", quota, maxAttachedPolicies)
	}
	ps.Attached = append(ps.Attached, arn)
	return nil
}

func detachPolicy(ps *policySet, p params) error {
	arn := p.get("PolicyArn")
	i := slices.Index(ps.Attached, arn)
	if i < 0 {
		return noSuchEntity("Policy %s was not found.", arn)
	}
	ps.Attached = slices.Delete(ps.Attached, i, i+1)
	return nil
}

type attachedPolicyXML struct {
	PolicyName string `xml:"PolicyName"`
	PolicyArn  string `xml:"PolicyArn"`
}

type listAttachedResult struct {
	AttachedPolicies []attachedPolicyXML `xml:"AttachedPolicies>member"`
	IsTruncated      bool                `xml:"IsTruncated"`
	Marker           string              `xml:"Marker,omitempty"`
}

func (s *Service) listAttached(ps *policySet, p params) (any, error) {
	items, next, err := page(slices.Sorted(slices.Values(ps.Attached)), p)
	if err != nil {
		return nil, err
	}
	out := listAttachedResult{AttachedPolicies: []attachedPolicyXML{}, IsTruncated: next != "", Marker: next}
	for _, arn := range items {
		if mp, ok := s.policies[arn]; ok {
			out.AttachedPolicies = append(out.AttachedPolicies, attachedPolicyXML{PolicyName: mp.Name, PolicyArn: arn})
		}
	}
	return out, nil
}
