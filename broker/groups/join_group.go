package groups

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup handles JoinGroup v0-v9. It blocks until the join phase of the
// group completes (at most the largest member rebalance timeout, plus the
// initial rebalance delay for a new group), or until ctx is done, in which
// case the answer is COORDINATOR_NOT_AVAILABLE and the member stays in the
// group until its session expires, as in Kafka.
//
// Version notes: v0 has no rebalance timeout (the session timeout is used);
// v4+ (KIP-394) answers a first join without member id with
// MEMBER_ID_REQUIRED and the id to rejoin with; v5+ carries
// group.instance.id (KIP-345 static membership); v7+ returns the protocol
// type; v9 (KIP-814) tells a rejoining static leader to skip the assignment.
func (c *Coordinator) JoinGroup(ctx context.Context, client Client, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.MemberID = req.MemberID
	fail := func(code int16) *kmsg.JoinGroupResponse {
		resp.ErrorCode = code
		return resp
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID.Code)
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout {
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	rebalance := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 || rebalance <= 0 {
		rebalance = session
	}
	if req.Version < 5 {
		req.InstanceID = nil
	}

	g, code := c.lockGroup(req.Group, req.MemberID == "")
	if code != 0 {
		return fail(code)
	}
	if g == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	wait := &joinWaiter{req: req, ch: make(chan *kmsg.JoinGroupResponse, 1)}
	immediate := g.join(client, req, resp, wait, session, rebalance)
	if immediate {
		g.dropIfUnused()
	}
	g.mu.Unlock()
	if immediate {
		return resp
	}
	select {
	case r := <-wait.ch:
		return r
	case <-ctx.Done():
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
}

// join runs a JoinGroup under the group lock. It either fills resp and
// returns true, or parks the member on wait and returns false.
func (g *group) join(client Client, req *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse, wait *joinWaiter, session, rebalance time.Duration) (immediate bool) {
	if !g.supportsProtocols(req.ProtocolType, req.Protocols) {
		resp.ErrorCode = kerr.InconsistentGroupProtocol.Code
		return true
	}
	newMember := func(id string) *member {
		return &member{
			id: id, instanceID: req.InstanceID, clientID: client.ID, clientHost: client.Host,
			sessionTimeout: session, rebalanceTimeout: rebalance,
			protocolType: req.ProtocolType, protocols: cloneProtocols(req.Protocols),
		}
	}

	if req.MemberID == "" {
		if req.InstanceID != nil {
			if old, ok := g.static[*req.InstanceID]; ok {
				return g.replaceStaticMember(g.members[old], newMember(newMemberID(*req.InstanceID)), req, resp, wait)
			}
		}
		if limit := g.c.cfg.MaxGroupSize; limit > 0 && len(g.members)+len(g.pending) >= limit {
			resp.ErrorCode = kerr.GroupMaxSizeReached.Code
			return true
		}
		if req.InstanceID != nil {
			// Static members are known by their instance id and join at
			// once, without the KIP-394 round trip.
			g.addMember(newMember(newMemberID(*req.InstanceID)), wait)
			return false
		}
		id := newMemberID(client.ID)
		if req.Version >= 4 {
			// KIP-394: hand out the id first, so a client that times out
			// and retries does not leave an orphan member behind.
			g.addPending(id, session)
			resp.MemberID = id
			resp.ErrorCode = kerr.MemberIDRequired.Code
			return true
		}
		g.addMember(newMember(id), wait)
		return false
	}

	if g.removePending(req.MemberID) {
		if limit := g.c.cfg.MaxGroupSize; limit > 0 && len(g.members) >= limit {
			resp.ErrorCode = kerr.GroupMaxSizeReached.Code
			g.tryCompleteJoin()
			return true
		}
		g.addMember(newMember(req.MemberID), wait)
		return false
	}
	m, code := g.validateMember(req.MemberID, req.InstanceID)
	if code != 0 {
		resp.ErrorCode = code
		return true
	}

	switch g.state {
	case statePreparingRebalance:
		g.updateMember(m, req, wait, session, rebalance)
		return false
	case stateCompletingRebalance:
		if m.sameJoin(req) {
			// The member lost our answer and asks again: same answer.
			g.fillJoinResponse(resp, m.id, m.id == g.leader)
			g.scheduleSessionExpiry(m)
			return true
		}
		g.updateMember(m, req, wait, session, rebalance)
		return false
	case stateStable:
		if m.id != g.leader && m.sameJoin(req) {
			// A follower that rejoins unchanged (it lost its sync or
			// restarted its consumer loop) gets the current generation.
			g.fillJoinResponse(resp, m.id, false)
			g.scheduleSessionExpiry(m)
			return true
		}
		// The leader rejoining, or any member changing its protocols or
		// subscription, needs a new assignment.
		g.updateMember(m, req, wait, session, rebalance)
		return false
	default:
		// Empty cannot hold members; Dead groups are never returned by
		// lockGroup.
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return true
	}
}

// replaceStaticMember gives a static member that restarted (same
// group.instance.id, no member id) a new member id and fences the old one
// (KIP-345). A stable group whose member comes back with the same protocol
// does not rebalance: the member gets the current generation and its old
// assignment.
func (g *group) replaceStaticMember(old, m *member, req *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse, wait *joinWaiter) (immediate bool) {
	if old == nil {
		delete(g.static, *req.InstanceID)
		g.addMember(m, wait)
		return false
	}
	old.replyJoinError(kerr.FencedInstanceID.Code)
	old.replySyncError(kerr.FencedInstanceID.Code)
	old.stopSession()

	m.seq = old.seq
	m.assignment = old.assignment
	m.awaitingJoin = old.awaitingJoin
	delete(g.members, old.id)
	g.members[m.id] = m
	g.static[*req.InstanceID] = m.id
	wasLeader := g.leader == old.id
	if wasLeader {
		g.leader = m.id
	}
	if _, ok := g.pendingSync[old.id]; ok {
		delete(g.pendingSync, old.id)
		g.pendingSync[m.id] = struct{}{}
	}
	g.log().Info("static member replaced", "instance_id", *req.InstanceID, "old_member", old.id, "member", m.id)

	// As in Kafka, only a change of the protocol the group would pick next
	// makes a stable group rebalance; new metadata alone does not (clients
	// put their generation and owned partitions in it, which differ after
	// every restart). Before JoinGroup v9 a leader cannot be told to keep
	// the assignment it no longer remembers, so it gets a full rebalance.
	sameProtocol := g.selectProtocol() == g.protocol
	if g.state == stateStable && sameProtocol && (!wasLeader || req.Version >= 9) {
		g.scheduleSessionExpiry(m)
		g.persistMetadata(context.Background())
		g.fillJoinResponse(resp, m.id, wasLeader)
		resp.SkipAssignment = wasLeader
		return true
	}
	g.scheduleSessionExpiry(m)
	m.awaitingJoin = true
	m.join = wait
	g.maybePrepareRebalance("static member " + *req.InstanceID + " rejoined")
	g.tryCompleteJoin()
	return false
}
