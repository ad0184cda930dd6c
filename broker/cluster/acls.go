package cluster

import (
	"context"
	"fmt"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/security/authz"
)

// CreateACLs stores ACLs in the metadata log. Each must pass
// authz.Binding.Validate: they are checked here, before the log, because
// an entry no node can decode (an UNKNOWN enum) would halt every node.
func (ctl *Controller) CreateACLs(ctx context.Context, acls []metadata.ACL) (metadata.ACLChange, error) {
	for _, a := range acls {
		if err := a.Binding().Validate(); err != nil {
			return metadata.ACLChange{}, fmt.Errorf("%w: %v", metadata.ErrInvalidRequest, err)
		}
	}
	return proposeAs[metadata.ACLChange](ctx, ctl, metadata.CreateACLs{ACLs: acls})
}

// DeleteACLs removes the ACLs the filters match and returns, per filter,
// those it matched. Each filter must pass authz.Filter.Validate (checked
// here, as for CreateACLs).
func (ctl *Controller) DeleteACLs(ctx context.Context, filters []metadata.ACLFilter) (metadata.ACLChange, error) {
	for _, f := range filters {
		if err := f.Filter().Validate(); err != nil {
			return metadata.ACLChange{}, fmt.Errorf("%w: %v", metadata.ErrInvalidRequest, err)
		}
	}
	return proposeAs[metadata.ACLChange](ctx, ctl, metadata.DeleteACLs{Filters: filters})
}

// ACLs is the ACL snapshot of this node's metadata state: what its
// authorizer decides with.
func (m *MetadataStore) ACLs() *authz.ACLs { return m.Controller.State().ACLs.Snapshot() }

// CreateACLs stores ACLs and returns once this node authorizes with them,
// within ctx as CreateTopic.
func (m *MetadataStore) CreateACLs(ctx context.Context, acls []metadata.ACL) error {
	ctx, cancel := m.ctxWithin(ctx)
	defer cancel()
	ch, err := m.Controller.CreateACLs(ctx, acls)
	if err != nil {
		return err
	}
	return m.waitIndex(ctx, ch.Index)
}

// DeleteACLs removes the ACLs the filters match, returns once this node
// no longer authorizes with them, and says which ACLs each filter matched;
// within ctx as CreateTopic.
func (m *MetadataStore) DeleteACLs(ctx context.Context, filters []metadata.ACLFilter) ([][]metadata.ACL, error) {
	ctx, cancel := m.ctxWithin(ctx)
	defer cancel()
	ch, err := m.Controller.DeleteACLs(ctx, filters)
	if err != nil {
		return nil, err
	}
	return ch.Matched, m.waitIndex(ctx, ch.Index)
}

// waitIndex waits until this node has applied the log up to index.
func (m *MetadataStore) waitIndex(ctx context.Context, index int64) error {
	return m.waitLocal(ctx, func(st *metadata.State) bool { return st.Index >= index })
}
