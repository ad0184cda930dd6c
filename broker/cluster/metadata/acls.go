package metadata

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/authz"
)

// ACL is one stored ACL (Kafka's AclBinding) as the log and snapshots
// write it, enums by their Kafka names ("TOPIC", "PREFIXED", "READ",
// "ALLOW").
type ACL struct {
	ResourceType kmsg.ACLResourceType        `json:"resource_type"`
	ResourceName string                      `json:"resource_name"`
	PatternType  kmsg.ACLResourcePatternType `json:"pattern_type"`
	Principal    string                      `json:"principal"`
	Host         string                      `json:"host"`
	Operation    kmsg.ACLOperation           `json:"operation"`
	Permission   kmsg.ACLPermissionType      `json:"permission"`
}

// ACLFromBinding is the stored form of b.
func ACLFromBinding(b authz.Binding) ACL {
	return ACL{
		ResourceType: b.Pattern.Type, ResourceName: b.Pattern.Name, PatternType: b.Pattern.PatternType,
		Principal: b.Entry.Principal, Host: b.Entry.Host, Operation: b.Entry.Operation, Permission: b.Entry.Permission,
	}
}

// Binding is the authorizer's form of a.
func (a ACL) Binding() authz.Binding {
	return authz.Binding{
		Pattern: authz.Pattern{Type: a.ResourceType, Name: a.ResourceName, PatternType: a.PatternType},
		Entry:   authz.Entry{Principal: a.Principal, Host: a.Host, Operation: a.Operation, Permission: a.Permission},
	}
}

// ACLFilter selects ACLs to delete, as Kafka's AclBindingFilter (see
// authz.Filter): nil ResourceName, Principal and Host match anything; ANY
// (and MATCH for the pattern type) match every value.
type ACLFilter struct {
	ResourceType kmsg.ACLResourceType        `json:"resource_type"`
	ResourceName *string                     `json:"resource_name,omitempty"`
	PatternType  kmsg.ACLResourcePatternType `json:"pattern_type"`
	Principal    *string                     `json:"principal,omitempty"`
	Host         *string                     `json:"host,omitempty"`
	Operation    kmsg.ACLOperation           `json:"operation"`
	Permission   kmsg.ACLPermissionType      `json:"permission"`
}

// ACLFilterFrom is the stored form of f.
func ACLFilterFrom(f authz.Filter) ACLFilter {
	return ACLFilter{
		ResourceType: f.Type, ResourceName: f.Name, PatternType: f.PatternType,
		Principal: f.Principal, Host: f.Host, Operation: f.Operation, Permission: f.Permission,
	}
}

// Filter is the authorizer's form of f.
func (f ACLFilter) Filter() authz.Filter {
	return authz.Filter{
		Type: f.ResourceType, Name: f.ResourceName, PatternType: f.PatternType,
		Principal: f.Principal, Host: f.Host, Operation: f.Operation, Permission: f.Permission,
	}
}

// ACLSet is the cluster's ACLs in a State: an immutable, indexed
// authz.ACLs snapshot, built once when a command changes the ACLs (on
// every node, as it applies the log) and shared by every later State, so
// that a broker's authorizer reads the ACLs of the state in force without a
// lock. It encodes as the ACL list in a stable order.
type ACLSet struct{ acls *authz.ACLs }

// Snapshot is the ACLs, never nil.
func (s ACLSet) Snapshot() *authz.ACLs {
	if s.acls == nil {
		return noACLs
	}
	return s.acls
}

// noACLs is the empty snapshot; snapshots are immutable, so one serves all.
var noACLs = &authz.ACLs{}

// Len is the number of ACLs.
func (s ACLSet) Len() int { return s.acls.Len() }

// IsZero reports an empty set, which a state leaves out of its encoding.
func (s ACLSet) IsZero() bool { return s.acls.Len() == 0 }

// List returns the ACLs in their stable order.
func (s ACLSet) List() []ACL {
	all := s.acls.All()
	out := make([]ACL, len(all))
	for i, b := range all {
		out[i] = ACLFromBinding(b)
	}
	return out
}

// MarshalJSON writes the ACL list.
func (s ACLSet) MarshalJSON() ([]byte, error) { return json.Marshal(s.List()) }

// UnmarshalJSON reads an ACL list; a field or a value this version does
// not know refuses it, as for the rest of a snapshot.
func (s *ACLSet) UnmarshalJSON(b []byte) error {
	var list []ACL
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return fmt.Errorf("decoding ACLs: %w", err)
	}
	bindings := make([]authz.Binding, len(list))
	for i, a := range list {
		bindings[i] = a.Binding()
	}
	acls, err := authz.NewACLs(bindings)
	if err != nil {
		return fmt.Errorf("decoding ACLs: %w", err)
	}
	s.acls = acls
	return nil
}

// CreateACLs adds ACLs (Kafka's CreateAcls). Every ACL must pass
// authz.Binding.Validate, or the whole command is refused with
// ErrInvalidRequest (the proposer validates each one first and answers the
// invalid ones itself). Adding an ACL that exists changes nothing, as in
// Kafka. The result is an ACLChange.
type CreateACLs struct {
	ACLs []ACL `json:"acls"`
}

// DeleteACLs removes every ACL that one of the filters matches (Kafka's
// DeleteAcls). Every filter must pass authz.Filter.Validate, or the
// command is refused with ErrInvalidRequest. The result is an ACLChange
// whose Matched lists, per filter, the ACLs it matched (an ACL two filters
// match is under both, deleted once).
type DeleteACLs struct {
	Filters []ACLFilter `json:"filters"`
}

// ACLChange answers CreateACLs and DeleteACLs.
type ACLChange struct {
	// Index is the Raft index of the change: a broker whose state has
	// reached it authorizes with the new ACLs.
	Index   int64   `json:"index"`
	Matched [][]ACL `json:"matched,omitempty"`
}

// Type implements Command.
func (CreateACLs) Type() CommandType { return TypeCreateACLs }

// Type implements Command.
func (DeleteACLs) Type() CommandType { return TypeDeleteACLs }

func applyCreateACLs(c *applyCtx, cmd CreateACLs) (any, error) {
	if len(cmd.ACLs) == 0 {
		return nil, fmt.Errorf("%w: no ACL to create", ErrInvalidRequest)
	}
	bindings := make([]authz.Binding, len(cmd.ACLs))
	for i, a := range cmd.ACLs {
		bindings[i] = a.Binding()
		if err := bindings[i].Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
		}
	}
	next, err := c.st.ACLs.acls.With(bindings...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	c.st.ACLs = ACLSet{next}
	return ACLChange{Index: c.index}, nil
}

func applyDeleteACLs(c *applyCtx, cmd DeleteACLs) (any, error) {
	if len(cmd.Filters) == 0 {
		return nil, fmt.Errorf("%w: no ACL filter", ErrInvalidRequest)
	}
	filters := make([]authz.Filter, len(cmd.Filters))
	for i, f := range cmd.Filters {
		filters[i] = f.Filter()
		if err := filters[i].Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
		}
	}
	next, matched := c.st.ACLs.acls.Without(filters...)
	res := ACLChange{Index: c.index, Matched: make([][]ACL, len(matched))}
	for i, bs := range matched {
		res.Matched[i] = make([]ACL, len(bs))
		for j, b := range bs {
			res.Matched[i][j] = ACLFromBinding(b)
		}
	}
	c.st.ACLs = ACLSet{next}
	return res, nil
}
