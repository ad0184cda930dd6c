package groups

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat handles Heartbeat v0-v4: it keeps a member's session alive and,
// while the group prepares a rebalance, answers REBALANCE_IN_PROGRESS so
// the member rejoins. v3+ carries group.instance.id (FENCED_INSTANCE_ID for
// a replaced static member).
func (c *Coordinator) Heartbeat(req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	if req.Version < 3 {
		req.InstanceID = nil
	}
	g, code := c.lockGroup(req.Group, false)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	if g == nil {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp
	}
	defer g.mu.Unlock()
	resp.ErrorCode = g.heartbeat(req)
	return resp
}

func (g *group) heartbeat(req *kmsg.HeartbeatRequest) int16 {
	m, code := g.validateMember(req.MemberID, req.InstanceID)
	if code != 0 {
		return code
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	switch g.state {
	case statePreparingRebalance:
		g.scheduleSessionExpiry(m)
		return kerr.RebalanceInProgress.Code
	case stateCompletingRebalance, stateStable:
		// Consumers may heartbeat between their JoinGroup answer and
		// their SyncGroup; that is a sign of life like any other.
		g.scheduleSessionExpiry(m)
		return 0
	default:
		return kerr.UnknownMemberID.Code
	}
}
