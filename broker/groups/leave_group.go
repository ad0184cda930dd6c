package groups

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup handles LeaveGroup v0-v5. v0-v2 remove the one member named by
// MemberID, with its error at the top level; v3+ (KIP-345) remove a batch of
// members, each by member id or group.instance.id, with an error per member.
// Each departure starts a rebalance for the members that stay.
func (c *Coordinator) LeaveGroup(req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	g, code := c.lockGroup(req.Group, false)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	results := make([]kmsg.LeaveGroupResponseMember, len(leaving))
	for i, l := range leaving {
		results[i] = kmsg.NewLeaveGroupResponseMember()
		results[i].MemberID = l.MemberID
		results[i].InstanceID = l.InstanceID
		results[i].ErrorCode = kerr.UnknownMemberID.Code
	}
	if g != nil {
		for i, l := range leaving {
			results[i].ErrorCode = g.leave(l)
		}
		g.mu.Unlock()
	}
	if req.Version < 3 {
		resp.ErrorCode = results[0].ErrorCode
		return resp
	}
	resp.Members = results
	return resp
}

func (g *group) leave(l kmsg.LeaveGroupRequestMember) int16 {
	memberID := l.MemberID
	if l.InstanceID != nil {
		owner, ok := g.static[*l.InstanceID]
		if !ok {
			return kerr.UnknownMemberID.Code
		}
		// An empty member id with an instance id is how an admin removes a
		// static member (kafka-consumer-groups --delete-members).
		if memberID != "" && memberID != owner {
			return kerr.FencedInstanceID.Code
		}
		memberID = owner
	}
	if g.removePending(memberID) {
		g.tryCompleteJoin()
		return 0
	}
	m, ok := g.members[memberID]
	if !ok {
		return kerr.UnknownMemberID.Code
	}
	reason := "not given"
	if l.Reason != nil {
		reason = *l.Reason
	}
	g.log().Info("member left the group", "member", m.id, "generation", g.generation, "client_reason", reason)
	g.removeMemberAndRebalance(m, "member "+m.id+" left")
	return 0
}
