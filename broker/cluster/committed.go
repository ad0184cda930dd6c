package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// opAppliedIndex asks the active controller for the index of the metadata
// it has applied.
const opAppliedIndex rpcOp = "applied-index"

// WaitCaughtUpWithController waits until this node's metadata holds every
// change the active controller had applied when asked (a read index): once
// it returns nil, a topic whose creation the controller answered before the
// call is in State. It asks the active controller (a round trip, none on
// the controller itself), then waits for this node to apply up to its
// index, until ctx ends. A controller of a version without the request
// (a rolling upgrade) answers it as unknown: nil then, at once, as before.
func (ctl *Controller) WaitCaughtUpWithController(ctx context.Context) error {
	v, err := ctl.onLeader(ctx, rpcRequest{Op: opAppliedIndex})
	if isUnknownRequest(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var index int64
	if err := json.Unmarshal(v, &index); err != nil {
		return fmt.Errorf("decoding the active controller's applied index: %w", err)
	}
	st, err := ctl.fsm.WaitFor(ctx, func(st *metadata.State) bool { return st.Index >= index })
	if err != nil {
		return fmt.Errorf("waiting for this node's metadata (index %d) to reach the active controller's %d: %w", st.Index, index, err)
	}
	return nil
}

// appliedIndexLocal answers opAppliedIndex on the active controller. Its
// applied index, not Raft's commit index: a topic's creation is answered
// once the controller applied it, so every creation answered so far is at
// or below it (by a previous controller too: handleLocal first waits for
// this one to apply what was committed before its election).
func (ctl *Controller) appliedIndexLocal() (json.RawMessage, error) {
	if ctl.raft.State() != raft.Leader {
		return nil, ErrNotController
	}
	return encodeValue(ctl.fsm.Current().Index)
}
