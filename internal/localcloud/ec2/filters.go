package ec2

import (
	"encoding/base64"
	"slices"
	"strings"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// filter is one Filter.N of a Describe call: a resource matches when any of its values for
// Name matches any of Values (which may use * and ? wildcards).
type filter struct {
	Name   string
	Values []string
}

func parseFilters(p params) []filter {
	var out []filter
	for _, f := range p.structs("Filter") {
		out = append(out, filter{Name: f.str("Name"), Values: f.list("Value")})
	}
	return out
}

// fieldFunc returns a resource's values for a filter name, or false for a filter name the
// resource type does not know.
type fieldFunc func(name string) ([]string, bool)

// matches applies every filter (AND) to a resource with the given tags and fields.
func matches(filters []filter, t tags, fields fieldFunc) (bool, error) {
	for _, f := range filters {
		var values []string
		switch {
		case strings.HasPrefix(f.Name, "tag:"):
			v, ok := t[strings.TrimPrefix(f.Name, "tag:")]
			if !ok {
				return false, nil
			}
			values = []string{v}
		case f.Name == "tag-key":
			values = sortedKeys(t)
		case f.Name == "tag-value":
			for _, k := range sortedKeys(t) {
				values = append(values, t[k])
			}
		default:
			var ok bool
			values, ok = fields(f.Name)
			if !ok {
				return false, awsapi.Errorf("InvalidParameterValue", "The filter '%s' is invalid", f.Name)
			}
		}
		if !anyMatch(f.Values, values) {
			return false, nil
		}
	}
	return true, nil
}

// selectMatching is the selection a Describe* call makes over one kind of resource: the ids of
// byID that the call names (every id when ids is empty) and whose tags and fields, as view
// gives them, match every filter, in id order. A filter name that view's fields do not know
// fails the call, as in matches.
func selectMatching[T any](byID map[string]T, ids []string, filters []filter, view func(T) (tags, fieldFunc)) ([]string, error) {
	var keep []string
	for _, id := range sortedKeys(byID) {
		if len(ids) > 0 && !slices.Contains(ids, id) {
			continue
		}
		t, fields := view(byID[id])
		ok, err := matches(filters, t, fields)
		if err != nil {
			return nil, err
		}
		if ok {
			keep = append(keep, id)
		}
	}
	return keep, nil
}

// keepWhere returns the entries of byID for which keep is true: the candidates of a Describe*
// call that narrows them by something other than ids and filters.
func keepWhere[T any](byID map[string]T, keep func(T) bool) map[string]T {
	out := make(map[string]T, len(byID))
	for id, v := range byID {
		if keep(v) {
			out[id] = v
		}
	}
	return out
}

// missingKeys returns the ids, in the order given, that byID does not hold.
func missingKeys[T any](byID map[string]T, ids []string) []string {
	var missing []string
	for _, id := range ids {
		if _, ok := byID[id]; !ok {
			missing = append(missing, id)
		}
	}
	return missing
}

func anyMatch(patterns, values []string) bool {
	for _, p := range patterns {
		for _, v := range values {
			if wildcardMatch(p, v) {
				return true
			}
		}
	}
	return false
}

// wildcardMatch matches EC2 filter patterns: * any run, ? one character, \ escapes.
func wildcardMatch(pattern, s string) bool {
	if !strings.ContainsAny(pattern, `*?\`) {
		return pattern == s
	}
	p, str := []rune(pattern), []rune(s)
	var match func(i, j int) bool
	memo := map[[2]int]bool{}
	match = func(i, j int) bool {
		key := [2]int{i, j}
		if v, ok := memo[key]; ok {
			return v
		}
		var r bool
		switch {
		case i == len(p):
			r = j == len(str)
		case p[i] == '*':
			r = match(i+1, j) || (j < len(str) && match(i, j+1))
		case p[i] == '?':
			r = j < len(str) && match(i+1, j+1)
		case p[i] == '\\' && i+1 < len(p):
			r = j < len(str) && str[j] == p[i+1] && match(i+2, j+1)
		default:
			r = j < len(str) && str[j] == p[i] && match(i+1, j+1)
		}
		memo[key] = r
		return r
	}
	return match(0, 0)
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// page cuts one page out of ids (sorted). maxResults 0 means everything; nextToken continues
// after the id it encodes. bounds are the call's MaxResults limits.
func page(ids []string, p params, minResults, maxLimit int) ([]string, string, error) {
	maxResults, err := p.integer("MaxResults", 0)
	if err != nil {
		return nil, "", err
	}
	if p.has("MaxResults") && (maxResults < minResults || maxResults > maxLimit) {
		return nil, "", awsapi.Errorf("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Parameter must be between %d and %d.", maxResults, minResults, maxLimit)
	}
	start := 0
	if tok := p.str("NextToken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) == 0 {
			return nil, "", awsapi.Errorf("InvalidPaginationToken", "Invalid pagination token: %s", tok)
		}
		after := string(raw)
		start = len(ids)
		for i, id := range ids {
			if id > after {
				start = i
				break
			}
		}
	}
	rest := ids[start:]
	if maxResults == 0 || len(rest) <= maxResults {
		return rest, "", nil
	}
	pg := rest[:maxResults]
	return pg, base64.RawURLEncoding.EncodeToString([]byte(pg[len(pg)-1])), nil
}
