package authz

import (
	"cmp"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ACLs is an immutable set of ACLs, indexed for authorization. The
// metadata log builds a new one on every ACL change (With, Without) and
// swaps it into the authorizer; requests read whichever snapshot is
// current without a lock. The zero value and nil are the empty set.
type ACLs struct {
	all    []Binding // sorted (compareBindings), no duplicates
	byType map[kmsg.ACLResourceType]*typeIndex
}

// typeIndex holds the ACLs of one resource type.
type typeIndex struct {
	literal  map[string]*entrySet // by name, "*" included
	prefixed map[string]*entrySet // by prefix
	// prefixLens are the distinct lengths of the prefixes, ascending: a
	// name is checked against its own prefixes of those lengths only.
	prefixLens []int
}

// entrySet is the entries of one resource pattern, also by principal: a
// decision reads only the requester's and User:*'s, however many other
// principals have ACLs on the resource.
type entrySet struct {
	all         []Entry
	byPrincipal map[string][]Entry
}

func (es *entrySet) add(e Entry) {
	es.all = append(es.all, e)
	if es.byPrincipal == nil {
		es.byPrincipal = map[string][]Entry{}
	}
	es.byPrincipal[e.Principal] = append(es.byPrincipal[e.Principal], e)
}

// NewACLs builds a snapshot of bindings, dropping duplicates. Every
// binding must be valid (Binding.Validate): the metadata log validates
// before it commits.
func NewACLs(bindings []Binding) (*ACLs, error) {
	for _, b := range bindings {
		if err := b.Validate(); err != nil {
			return nil, err
		}
	}
	all := slices.Clone(bindings)
	slices.SortFunc(all, compareBindings)
	all = slices.Compact(all)
	return index(all), nil
}

func index(all []Binding) *ACLs {
	a := &ACLs{all: all, byType: map[kmsg.ACLResourceType]*typeIndex{}}
	for _, b := range all {
		ti := a.byType[b.Pattern.Type]
		if ti == nil {
			ti = &typeIndex{literal: map[string]*entrySet{}, prefixed: map[string]*entrySet{}}
			a.byType[b.Pattern.Type] = ti
		}
		m := ti.literal
		if b.Pattern.PatternType == kmsg.ACLResourcePatternTypePrefixed {
			m = ti.prefixed
			if _, ok := m[b.Pattern.Name]; !ok {
				ti.prefixLens = append(ti.prefixLens, len(b.Pattern.Name))
			}
		}
		es := m[b.Pattern.Name]
		if es == nil {
			es = &entrySet{}
			m[b.Pattern.Name] = es
		}
		es.add(b.Entry)
	}
	for _, ti := range a.byType {
		slices.Sort(ti.prefixLens)
		ti.prefixLens = slices.Compact(ti.prefixLens)
	}
	return a
}

// Len is the number of ACLs.
func (a *ACLs) Len() int {
	if a == nil {
		return 0
	}
	return len(a.all)
}

// All returns every ACL in a stable order (a copy).
func (a *ACLs) All() []Binding {
	if a == nil {
		return nil
	}
	return slices.Clone(a.all)
}

// With returns a snapshot with bindings added (CreateAcls); adding an ACL
// that exists changes nothing, as in Kafka. a is unchanged.
func (a *ACLs) With(bindings ...Binding) (*ACLs, error) {
	merged := append(a.All(), bindings...)
	return NewACLs(merged)
}

// Without returns a snapshot without the ACLs any filter matches
// (DeleteAcls), and for each filter the ACLs it matched. An ACL two
// filters match is reported under both and deleted once. a is unchanged.
// Filters must be valid (Filter.Validate).
func (a *ACLs) Without(filters ...Filter) (*ACLs, [][]Binding) {
	matched := make([][]Binding, len(filters))
	var keep []Binding
	for _, b := range a.All() {
		hit := false
		for i, f := range filters {
			if f.Matches(b) {
				matched[i] = append(matched[i], b)
				hit = true
			}
		}
		if !hit {
			keep = append(keep, b)
		}
	}
	return index(keep), matched
}

// Describe returns the ACLs f matches (DescribeAcls), in a stable order.
func (a *ACLs) Describe(f Filter) []Binding {
	var out []Binding
	if a == nil {
		return nil
	}
	for _, b := range a.all {
		if f.Matches(b) {
			out = append(out, b)
		}
	}
	return out
}

// forResource calls fn with every ACL entry that applies to the resource
// (typ, name): the literal name, the literal wildcard, and every prefixed
// pattern that name starts with. fn returning false stops the walk.
func (a *ACLs) forResource(typ kmsg.ACLResourceType, name string, fn func(Pattern, Entry) bool) {
	a.walk(typ, name, func(p Pattern, es *entrySet) bool {
		for _, e := range es.all {
			if !fn(p, e) {
				return false
			}
		}
		return true
	})
}

// forPrincipal is forResource for the entries of principal and of
// User:*, the only ones that can decide for principal. found reports
// whether any ACL (of any principal) applies to the resource.
func (a *ACLs) forPrincipal(typ kmsg.ACLResourceType, name, principal string, fn func(Pattern, Entry) bool) (found bool) {
	a.walk(typ, name, func(p Pattern, es *entrySet) bool {
		found = true
		for _, e := range es.byPrincipal[principal] {
			if !fn(p, e) {
				return false
			}
		}
		if principal == WildcardPrincipal {
			return true
		}
		for _, e := range es.byPrincipal[WildcardPrincipal] {
			if !fn(p, e) {
				return false
			}
		}
		return true
	})
	return found
}

// walk calls fn with each entry set that applies to (typ, name).
func (a *ACLs) walk(typ kmsg.ACLResourceType, name string, fn func(Pattern, *entrySet) bool) {
	if a == nil {
		return
	}
	ti := a.byType[typ]
	if ti == nil {
		return
	}
	if es := ti.literal[name]; es != nil && !fn(Pattern{typ, name, kmsg.ACLResourcePatternTypeLiteral}, es) {
		return
	}
	if name != WildcardResource {
		if es := ti.literal[WildcardResource]; es != nil && !fn(Pattern{typ, WildcardResource, kmsg.ACLResourcePatternTypeLiteral}, es) {
			return
		}
	}
	for _, n := range ti.prefixLens {
		if n > len(name) {
			break
		}
		prefix := name[:n]
		if es := ti.prefixed[prefix]; es != nil && !fn(Pattern{typ, prefix, kmsg.ACLResourcePatternTypePrefixed}, es) {
			return
		}
	}
}

// compareBindings orders ACLs by resource type, pattern type, name,
// principal, host, operation, permission: the order replicas agree on.
func compareBindings(x, y Binding) int {
	return cmp.Or(
		cmp.Compare(x.Pattern.Type, y.Pattern.Type),
		cmp.Compare(x.Pattern.PatternType, y.Pattern.PatternType),
		cmp.Compare(x.Pattern.Name, y.Pattern.Name),
		cmp.Compare(x.Entry.Principal, y.Entry.Principal),
		cmp.Compare(x.Entry.Host, y.Entry.Host),
		cmp.Compare(x.Entry.Operation, y.Entry.Operation),
		cmp.Compare(x.Entry.Permission, y.Entry.Permission),
	)
}
