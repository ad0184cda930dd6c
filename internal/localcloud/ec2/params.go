package ec2

import (
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// params reads EC2 query parameters, whose lists and structures are flattened into dotted
// names: InstanceId.1, Filter.2.Value.1, NetworkInterface.1.SecurityGroupId.1.
type params map[string]string

func newParams(v url.Values) params {
	p := params{}
	for k, vs := range v {
		if len(vs) > 0 {
			p[k] = vs[0]
		}
	}
	return p
}

func (p params) str(name string) string { return p[name] }

func (p params) has(name string) bool {
	if _, ok := p[name]; ok {
		return true
	}
	prefix := name + "."
	for k := range p {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// required returns the parameter or AWS's MissingParameter error.
func (p params) required(name string) (string, error) {
	v := p[name]
	if v == "" {
		return "", awsapi.Errorf("MissingParameter", "The request must contain the parameter %s", name)
	}
	return v, nil
}

func (p params) integer(name string, def int) (int, error) {
	v, ok := p[name]
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, awsapi.Errorf("InvalidParameterValue", "Invalid value '%s' for %s", v, name)
	}
	return n, nil
}

func (p params) boolean(name string, def bool) (bool, error) {
	v, ok := p[name]
	if !ok || v == "" {
		return def, nil
	}
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, awsapi.Errorf("InvalidParameterValue", "Invalid value '%s' for %s: expected a boolean", v, name)
}

// indices returns the sorted N of every key prefix.N or prefix.N.*.
func (p params) indices(prefix string) []int {
	seen := map[int]bool{}
	pre := prefix + "."
	for k := range p {
		rest, ok := strings.CutPrefix(k, pre)
		if !ok {
			continue
		}
		numStr, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(numStr); err == nil {
			seen[n] = true
		}
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// list returns the values of prefix.1, prefix.2, ...
func (p params) list(prefix string) []string {
	var out []string
	for _, n := range p.indices(prefix) {
		if v, ok := p[prefix+"."+strconv.Itoa(n)]; ok {
			out = append(out, v)
		}
	}
	return out
}

// structs returns one params per prefix.N, with "prefix.N." removed from the keys.
func (p params) structs(prefix string) []params {
	var out []params
	for _, n := range p.indices(prefix) {
		out = append(out, p.sub(prefix+"."+strconv.Itoa(n)))
	}
	return out
}

// sub returns the members of structure prefix, with "prefix." removed.
func (p params) sub(prefix string) params {
	pre := prefix + "."
	s := params{}
	for k, v := range p {
		if rest, ok := strings.CutPrefix(k, pre); ok {
			s[rest] = v
		}
	}
	return s
}

// tagSpecs reads TagSpecification.N for resourceType.
func (p params) tagSpecs(resourceType string) (tags, error) {
	out := tags{}
	for _, spec := range p.structs("TagSpecification") {
		rt := spec.str("ResourceType")
		if rt == "" {
			return nil, awsapi.Errorf("InvalidParameterValue", "Tag specification resource type must have a value")
		}
		if rt != resourceType {
			continue
		}
		for _, t := range spec.structs("Tag") {
			out[t.str("Key")] = t.str("Value")
		}
	}
	if err := validateTags(out); err != nil {
		return nil, err
	}
	return out, nil
}

// tagSpecTypes lists the resource types TagSpecification names, for validation.
func (p params) tagSpecTypes() []string {
	var out []string
	for _, spec := range p.structs("TagSpecification") {
		out = append(out, spec.str("ResourceType"))
	}
	return out
}

func validateTags(t tags) error {
	if len(t) > 50 {
		return awsapi.Errorf("TagLimitExceeded", "The maximum number of tags for a resource is 50")
	}
	for k, v := range t {
		if k == "" {
			return awsapi.Errorf("InvalidParameterValue", "Tag key must not be empty")
		}
		if len(k) > 128 {
			return awsapi.Errorf("InvalidParameterValue", "Tag key exceeds the maximum length of 128 characters")
		}
		if len(v) > 256 {
			return awsapi.Errorf("InvalidParameterValue", "Tag value exceeds the maximum length of 256 characters")
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return awsapi.Errorf("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
		}
	}
	return nil
}
