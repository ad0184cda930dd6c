package cluster

import (
	"bytes"
	"context"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// AlterScramCredentials applies SCRAM credential changes through the active
// controller; one error per user (nil where the user's changes applied).
func (ctl *Controller) AlterScramCredentials(ctx context.Context, cmd metadata.AlterScramCredentials) ([]error, error) {
	v, err := ctl.propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return decodeErrors(v)
}

// AlterScramCredentials applies SCRAM credential changes and returns once
// this node's metadata has them, so that the broker that made a change
// reads it back at once; one error per user. Within ctx as CreateTopic.
func (m *MetadataStore) AlterScramCredentials(ctx context.Context, cmd metadata.AlterScramCredentials) ([]error, error) {
	ctx, cancel := m.ctxWithin(ctx)
	defer cancel()
	res, err := m.Controller.AlterScramCredentials(ctx, cmd)
	if err != nil {
		return nil, err
	}
	err = m.waitLocal(ctx, func(st *metadata.State) bool {
		for i, u := range cmd.Users {
			if i >= len(res) || res[i] != nil {
				continue
			}
			for _, d := range u.Deletions {
				if _, ok := st.ScramCredential(u.User, d); ok {
					return false
				}
			}
			for _, r := range u.Upsertions {
				got, ok := st.ScramCredential(u.User, r.Mechanism)
				if !ok || (!cmd.IfAbsent && !bytes.Equal(got, r.Record)) {
					return false
				}
			}
		}
		return true
	})
	return res, err
}
