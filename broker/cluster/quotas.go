package cluster

import (
	"context"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// AlterClientQuotas applies client quota changes through the active
// controller; one error per entry (nil where it applied).
func (ctl *Controller) AlterClientQuotas(ctx context.Context, cmd metadata.AlterClientQuotas) ([]error, error) {
	v, err := ctl.propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return decodeErrors(v)
}

// AlterClientQuotas applies client quota changes and returns once this
// node's metadata has them, so that the broker that made a change
// describes and enforces it at once; one error per entry. Within ctx as
// CreateTopic.
func (m *MetadataStore) AlterClientQuotas(ctx context.Context, cmd metadata.AlterClientQuotas) ([]error, error) {
	ctx, cancel := m.ctxWithin(ctx)
	defer cancel()
	res, err := m.Controller.AlterClientQuotas(ctx, cmd)
	if err != nil {
		return nil, err
	}
	err = m.waitLocal(ctx, func(st *metadata.State) bool {
		for i, a := range cmd.Entries {
			if i >= len(res) || res[i] != nil {
				continue
			}
			have, _ := st.ClientQuota(a.Entity)
			for _, k := range a.Remove {
				if _, ok := have[k]; ok {
					return false
				}
			}
			for k, v := range a.Set {
				if got, ok := have[k]; !ok || got != v {
					return false
				}
			}
		}
		return true
	})
	return res, err
}

// ClientQuotas returns the client quotas of this node's metadata.
func (m *MetadataStore) ClientQuotas() metadata.ClientQuotas {
	return m.Controller.State().ClientQuotas
}
