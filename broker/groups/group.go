package groups

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupState is the classic group state machine of Kafka's coordinator:
//
//	Empty -> PreparingRebalance        a member joins
//	PreparingRebalance -> Completing   every member rejoined, or the rebalance timeout fired
//	PreparingRebalance -> Empty        the rebalance ended with no member
//	Completing -> Stable               the leader's SyncGroup brought the assignments
//	Completing|Stable -> Preparing     a member joins, leaves, changes its protocols or expires
//	Empty -> Dead                      DeleteGroups, or its last offsets expired
type groupState int8

const (
	stateEmpty groupState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

// String returns the state name Kafka uses in DescribeGroups and ListGroups.
func (s groupState) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	default:
		return "Dead"
	}
}

// group is one consumer group. Every field is guarded by mu; each group runs
// independently of the others, and timers lock mu before touching anything.
type group struct {
	mu sync.Mutex
	c  *Coordinator

	name       string
	state      groupState
	stateSince time.Time

	generation   int32
	protocolType string // "" for a group that only commits offsets
	protocol     string // selected at the end of each join phase
	leader       string

	members map[string]*member
	// pending holds member ids handed out with MEMBER_ID_REQUIRED (KIP-394)
	// that have not rejoined yet; the join phase waits for them.
	pending map[string]*time.Timer
	// static maps group.instance.id to the member id that currently owns it.
	static map[string]string
	// joinSeq orders members by arrival, so leader election is deterministic.
	joinSeq uint64

	// rebalanceTimer ends the join phase; rebalanceSeq invalidates a timer
	// that fired while its phase was already over.
	rebalanceTimer *time.Timer
	rebalanceSeq   uint64
	// initialDelay is true while the first join phase of an empty group
	// waits for group.initial.rebalance.delay.ms; newMemberAdded extends it.
	initialDelay   bool
	newMemberAdded bool

	// pendingSync holds the members that got their JoinGroup answer but have
	// not sent SyncGroup yet; they are removed if the rebalance timeout
	// passes first.
	pendingSync map[string]struct{}
	syncTimer   *time.Timer

	offsets map[string]map[int32]committedOffset
	// pendingTxn holds offsets committed inside transactions not yet
	// decided, by producer id: they become offsets at the COMMIT marker
	// and are dropped at ABORT (KIP-98).
	pendingTxn map[int64]map[string]map[int32]committedOffset
}

// member is one member of a group.
type member struct {
	id         string
	instanceID *string
	clientID   string
	clientHost string
	seq        uint64

	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol
	assignment       []byte

	// awaitingJoin is true from the member's JoinGroup until the join phase
	// ends; join holds where to send the answer (nil when the member was
	// restored from the log or its JoinGroup was answered already).
	awaitingJoin bool
	join         *joinWaiter
	sync         *syncWaiter

	sessionTimer *time.Timer
	sessionSeq   uint64
}

type joinWaiter struct {
	req *kmsg.JoinGroupRequest
	ch  chan *kmsg.JoinGroupResponse // buffered: replying never blocks
}

// clientReason is the reason a JoinGroup v8+ gives (KIP-800), for logs.
func (w *joinWaiter) clientReason() string {
	if w == nil || w.req.Reason == nil || *w.req.Reason == "" {
		return ""
	}
	return " (client: " + *w.req.Reason + ")"
}

type syncWaiter struct {
	req *kmsg.SyncGroupRequest
	ch  chan *kmsg.SyncGroupResponse // buffered: replying never blocks
}

func newGroup(c *Coordinator, name string) *group {
	return &group{
		c:          c,
		name:       name,
		state:      stateEmpty,
		stateSince: c.now(),
		members:    make(map[string]*member),
		pending:    make(map[string]*time.Timer),
		static:     make(map[string]string),
		offsets:    make(map[string]map[int32]committedOffset),
		pendingTxn: make(map[int64]map[string]map[int32]committedOffset),
	}
}

func (g *group) log() *slog.Logger {
	return g.c.log.With("group", g.name)
}

func (g *group) setState(s groupState) {
	g.state = s
	g.stateSince = g.c.now()
}

// after runs fn under the group lock once d has passed, unless the group is
// dead or the coordinator closed by then. Callers add their own staleness
// checks (sequence numbers) inside fn.
func (g *group) after(d time.Duration, fn func()) *time.Timer {
	return time.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.state == stateDead || g.c.isClosed() {
			return
		}
		fn()
	})
}

// protocolNames lists the protocol names of a join request, in preference
// order.
func protocolNames(protocols []kmsg.JoinGroupRequestProtocol) []string {
	names := make([]string, len(protocols))
	for i, p := range protocols {
		names[i] = p.Name
	}
	return names
}

// supportsProtocols reports whether a member with this protocol type and
// these protocols may join: the first member sets the type, later ones must
// share it and support at least one protocol every current member supports.
func (g *group) supportsProtocols(protocolType string, protocols []kmsg.JoinGroupRequestProtocol) bool {
	if len(g.members) == 0 {
		return protocolType != "" && len(protocols) > 0
	}
	if protocolType != g.protocolType {
		return false
	}
	candidates := g.candidateProtocols()
	for _, p := range protocols {
		if _, ok := candidates[p.Name]; ok {
			return true
		}
	}
	return false
}

// candidateProtocols returns the protocol names every member supports.
func (g *group) candidateProtocols() map[string]struct{} {
	counts := make(map[string]int)
	for _, m := range g.members {
		for _, p := range m.protocols {
			counts[p.Name]++
		}
	}
	out := make(map[string]struct{})
	for name, n := range counts {
		if n == len(g.members) {
			out[name] = struct{}{}
		}
	}
	return out
}

// selectProtocol picks the protocol for the next generation as Kafka does:
// each member votes for its most preferred candidate, the most votes win;
// ties go to the leader's preference order.
func (g *group) selectProtocol() string {
	candidates := g.candidateProtocols()
	votes := make(map[string]int)
	for _, m := range g.members {
		for _, p := range m.protocols {
			if _, ok := candidates[p.Name]; ok {
				votes[p.Name]++
				break
			}
		}
	}
	var order []string
	if l, ok := g.members[g.leader]; ok {
		order = protocolNames(l.protocols)
	} else {
		for name := range candidates {
			order = append(order, name)
		}
		slices.Sort(order)
	}
	best, bestVotes := "", -1
	for _, name := range order {
		if _, ok := candidates[name]; ok && votes[name] > bestVotes {
			best, bestVotes = name, votes[name]
		}
	}
	return best
}

// cloneProtocols copies a request's protocols: the member keeps them
// beyond the request, whose bytes may alias the connection's read buffer.
func cloneProtocols(protocols []kmsg.JoinGroupRequestProtocol) []kmsg.JoinGroupRequestProtocol {
	out := make([]kmsg.JoinGroupRequestProtocol, len(protocols))
	for i, p := range protocols {
		out[i] = kmsg.JoinGroupRequestProtocol{Name: p.Name, Metadata: slices.Clone(p.Metadata)}
	}
	return out
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// sameJoin reports whether a rejoin carries the protocols the member already
// has, in which case a stable group need not rebalance.
func (m *member) sameJoin(req *kmsg.JoinGroupRequest) bool {
	if m.protocolType != req.ProtocolType || len(m.protocols) != len(req.Protocols) {
		return false
	}
	for i, p := range req.Protocols {
		if m.protocols[i].Name != p.Name || string(m.protocols[i].Metadata) != string(p.Metadata) {
			return false
		}
	}
	return true
}

// sortedMembers returns the members in arrival order.
func (g *group) sortedMembers() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int { return cmp.Compare(a.seq, b.seq) })
	return ms
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// addMember puts a member in the group as joining and moves the group
// towards a rebalance.
func (g *group) addMember(m *member, wait *joinWaiter) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	g.joinSeq++
	m.seq = g.joinSeq
	m.awaitingJoin = true
	m.join = wait
	g.members[m.id] = m
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
	if g.leader == "" {
		g.leader = m.id
	}
	if g.initialDelay {
		g.newMemberAdded = true
	}
	g.scheduleSessionExpiry(m)
	g.maybePrepareRebalance("member " + m.id + " joined" + wait.clientReason())
	g.tryCompleteJoin()
}

// updateMember records a known member's rejoin and moves the group towards
// a rebalance.
func (g *group) updateMember(m *member, req *kmsg.JoinGroupRequest, wait *joinWaiter, session, rebalance time.Duration) {
	m.protocols = cloneProtocols(req.Protocols)
	m.protocolType = req.ProtocolType
	m.sessionTimeout = session
	m.rebalanceTimeout = rebalance
	if m.join != nil {
		// The client sent a second JoinGroup while its first one waits (it
		// timed out and retried on another connection). Kafka silently
		// drops the first; answering it "rejoin" frees its waiter without
		// making a client that still listens forget its member id.
		m.replyJoinError(kerr.RebalanceInProgress.Code)
	}
	m.awaitingJoin = true
	m.join = wait
	g.maybePrepareRebalance("member " + m.id + " rejoined" + wait.clientReason())
	g.tryCompleteJoin()
}

func (g *group) maybePrepareRebalance(reason string) {
	switch g.state {
	case stateEmpty, stateStable, stateCompletingRebalance:
		g.prepareRebalance(reason)
	}
}

// prepareRebalance starts a join phase: every member must send JoinGroup
// again (heartbeats now answer REBALANCE_IN_PROGRESS).
func (g *group) prepareRebalance(reason string) {
	if g.state == stateCompletingRebalance {
		// Members waiting in SyncGroup will not get this generation's
		// assignment: tell them to rejoin.
		for _, m := range g.members {
			m.assignment = nil
			m.replySyncError(kerr.RebalanceInProgress.Code)
		}
	}
	g.clearPendingSync()
	wasEmpty := g.state == stateEmpty
	g.setState(statePreparingRebalance)
	g.log().Info("preparing to rebalance group", "reason", reason, "generation", g.generation, "members", len(g.members))

	g.stopRebalanceTimer()
	rebalance := g.maxRebalanceTimeout()
	if wasEmpty && g.c.cfg.InitialRebalanceDelay > 0 {
		delay := g.c.cfg.InitialRebalanceDelay
		g.initialDelay = true
		g.newMemberAdded = false
		g.scheduleInitialDelay(delay, max(rebalance-delay, 0))
		return
	}
	seq := g.rebalanceSeq
	g.rebalanceTimer = g.after(rebalance, func() {
		if g.rebalanceSeq == seq && g.state == statePreparingRebalance {
			g.completeJoin()
		}
	})
	g.tryCompleteJoin()
}

// scheduleInitialDelay implements group.initial.rebalance.delay.ms as Kafka
// does: wait delay; if members arrived meanwhile and rebalance time is left,
// wait again.
func (g *group) scheduleInitialDelay(delay, remaining time.Duration) {
	seq := g.rebalanceSeq
	g.rebalanceTimer = g.after(delay, func() {
		if g.rebalanceSeq != seq || g.state != statePreparingRebalance {
			return
		}
		if g.newMemberAdded && remaining > 0 {
			g.newMemberAdded = false
			next := min(g.c.cfg.InitialRebalanceDelay, remaining)
			g.scheduleInitialDelay(next, remaining-next)
			return
		}
		g.completeJoin()
	})
}

func (g *group) stopRebalanceTimer() {
	g.rebalanceSeq++
	if g.rebalanceTimer != nil {
		g.rebalanceTimer.Stop()
		g.rebalanceTimer = nil
	}
	g.initialDelay = false
}

// tryCompleteJoin ends the join phase early once every member rejoined and
// no KIP-394 member id is outstanding (never during the initial delay).
func (g *group) tryCompleteJoin() {
	if g.state != statePreparingRebalance || g.initialDelay || len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if !m.awaitingJoin {
			return
		}
	}
	g.completeJoin()
}

// completeJoin ends the join phase: members that did not rejoin are dropped,
// a new generation starts, and every joined member gets its JoinGroup answer
// (the leader with every member's metadata).
func (g *group) completeJoin() {
	g.stopRebalanceTimer()
	for _, m := range g.sortedMembers() {
		// Static members keep their place while they are away (KIP-345);
		// their session timeout removes them if they never come back.
		if !m.awaitingJoin && m.instanceID == nil {
			g.c.stats.membersExpired.Add(1)
			g.log().Info("removing member that did not rejoin in time", "member", m.id, "generation", g.generation)
			g.removeMember(m)
		}
	}

	if len(g.members) == 0 {
		g.generation++
		g.protocol = ""
		g.leader = ""
		g.setState(stateEmpty)
		g.log().Info("group is empty", "generation", g.generation)
		g.persistMetadata(context.Background())
		return
	}

	if l, ok := g.members[g.leader]; !ok || !l.awaitingJoin {
		g.leader = ""
		for _, m := range g.sortedMembers() {
			if m.awaitingJoin {
				g.leader = m.id
				break
			}
		}
		if g.leader == "" {
			// Only absent static members are left: wait another
			// rebalance timeout for them to return or expire.
			g.log().Warn("no member rejoined; waiting another rebalance timeout", "generation", g.generation)
			seq := g.rebalanceSeq
			g.rebalanceTimer = g.after(g.maxRebalanceTimeout(), func() {
				if g.rebalanceSeq == seq && g.state == statePreparingRebalance {
					g.completeJoin()
				}
			})
			return
		}
	}

	g.generation++
	g.c.stats.rebalances.Add(1)
	g.protocol = g.selectProtocol()
	g.setState(stateCompletingRebalance)
	g.log().Info("join phase complete", "generation", g.generation, "protocol", g.protocol, "leader", g.leader, "members", len(g.members))

	g.pendingSync = make(map[string]struct{}, len(g.members))
	for _, m := range g.sortedMembers() {
		g.pendingSync[m.id] = struct{}{}
		if !m.awaitingJoin {
			continue
		}
		m.awaitingJoin = false
		if m.join != nil {
			resp := m.join.req.ResponseKind().(*kmsg.JoinGroupResponse)
			g.fillJoinResponse(resp, m.id, m.id == g.leader)
			m.reply(resp)
		}
		g.scheduleSessionExpiry(m)
	}
	gen := g.generation
	g.syncTimer = g.after(g.maxRebalanceTimeout(), func() { g.expirePendingSync(gen) })
}

// fillJoinResponse writes the current generation into a JoinGroup answer;
// the leader also gets every member's metadata for the chosen protocol.
func (g *group) fillJoinResponse(resp *kmsg.JoinGroupResponse, memberID string, withMembers bool) {
	resp.ErrorCode = 0
	resp.Generation = g.generation
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.LeaderID = g.leader
	resp.MemberID = memberID
	resp.Members = nil
	if !withMembers {
		return
	}
	for _, m := range g.sortedMembers() {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		jm.InstanceID = m.instanceID
		jm.ProtocolMetadata = m.metadataFor(g.protocol)
		resp.Members = append(resp.Members, jm)
	}
}

func (m *member) reply(resp *kmsg.JoinGroupResponse) {
	if m.join == nil {
		return
	}
	m.join.ch <- resp
	m.join = nil
}

func (m *member) replyJoinError(code int16) {
	if m.join == nil {
		return
	}
	resp := m.join.req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode = code
	resp.MemberID = m.id
	m.reply(resp)
}

func (m *member) replySync(resp *kmsg.SyncGroupResponse) {
	if m.sync == nil {
		return
	}
	m.sync.ch <- resp
	m.sync = nil
}

func (m *member) replySyncError(code int16) {
	if m.sync == nil {
		return
	}
	resp := m.sync.req.ResponseKind().(*kmsg.SyncGroupResponse)
	resp.ErrorCode = code
	m.replySync(resp)
}

// expirePendingSync removes the members that never sent SyncGroup after the
// join phase of generation gen, then rebalances without them.
func (g *group) expirePendingSync(gen int32) {
	if g.generation != gen || len(g.pendingSync) == 0 {
		return
	}
	if g.state != stateCompletingRebalance && g.state != stateStable {
		return
	}
	for id := range g.pendingSync {
		if m, ok := g.members[id]; ok {
			g.c.stats.membersExpired.Add(1)
			g.log().Info("removing member that did not sync in time", "member", id, "generation", gen)
			g.removeMember(m)
		}
	}
	g.prepareRebalance("members did not sync in time")
}

func (g *group) clearPendingSync() {
	g.pendingSync = nil
	if g.syncTimer != nil {
		g.syncTimer.Stop()
		g.syncTimer = nil
	}
}

// removeMember takes a member out of the group without starting a
// rebalance; its waiting JoinGroup or SyncGroup gets UNKNOWN_MEMBER_ID.
func (g *group) removeMember(m *member) {
	m.replyJoinError(kerr.UnknownMemberID.Code)
	m.replySyncError(kerr.UnknownMemberID.Code)
	m.stopSession()
	delete(g.members, m.id)
	delete(g.pendingSync, m.id)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
		if ms := g.sortedMembers(); len(ms) > 0 {
			g.leader = ms[0].id
		}
	}
}

// removeMemberAndRebalance removes a member that left or expired and lets
// the others know through a rebalance.
func (g *group) removeMemberAndRebalance(m *member, reason string) {
	g.removeMember(m)
	switch g.state {
	case stateStable, stateCompletingRebalance:
		g.prepareRebalance(reason)
	case statePreparingRebalance:
		g.tryCompleteJoin()
	}
}

// scheduleSessionExpiry (re)starts a member's session timer; any call is a
// sign of life (JoinGroup, SyncGroup, Heartbeat, OffsetCommit).
func (g *group) scheduleSessionExpiry(m *member) {
	m.stopSession()
	seq := m.sessionSeq
	m.sessionTimer = g.after(m.sessionTimeout, func() {
		if m.sessionSeq != seq || g.members[m.id] != m {
			return
		}
		if m.awaitingJoin || m.sync != nil {
			// A member parked in JoinGroup or SyncGroup cannot heartbeat;
			// the rebalance and sync timeouts bound how long it waits.
			g.scheduleSessionExpiry(m)
			return
		}
		g.c.stats.membersExpired.Add(1)
		g.log().Info("member session expired", "member", m.id, "session_timeout", m.sessionTimeout, "generation", g.generation)
		g.removeMemberAndRebalance(m, "member "+m.id+" session expired")
	})
}

func (m *member) stopSession() {
	m.sessionSeq++
	if m.sessionTimer != nil {
		m.sessionTimer.Stop()
		m.sessionTimer = nil
	}
}

// addPending records a member id handed out with MEMBER_ID_REQUIRED; it
// lapses after the session timeout if the client never rejoins with it.
func (g *group) addPending(id string, session time.Duration) {
	g.pending[id] = g.after(session, func() {
		if _, ok := g.pending[id]; !ok {
			return
		}
		delete(g.pending, id)
		g.log().Info("pending member id expired before rejoin", "member", id)
		g.tryCompleteJoin()
	})
}

func (g *group) removePending(id string) bool {
	t, ok := g.pending[id]
	if ok {
		t.Stop()
		delete(g.pending, id)
	}
	return ok
}

// stopAll stops every timer and answers every parked request with code;
// used when the group dies or the coordinator closes.
func (g *group) stopAll(code int16) {
	g.stopRebalanceTimer()
	g.clearPendingSync()
	for id := range g.pending {
		g.removePending(id)
	}
	for _, m := range g.members {
		m.stopSession()
		m.replyJoinError(code)
		m.replySyncError(code)
	}
}

// validateMember checks a request's member id and group.instance.id
// against the group, returning a Kafka error code or 0.
func (g *group) validateMember(memberID string, instanceID *string) (*member, int16) {
	if instanceID != nil {
		owner, ok := g.static[*instanceID]
		if !ok {
			return nil, kerr.UnknownMemberID.Code
		}
		if owner != memberID {
			return nil, kerr.FencedInstanceID.Code
		}
	}
	m, ok := g.members[memberID]
	if !ok {
		return nil, kerr.UnknownMemberID.Code
	}
	return m, 0
}

// isEmptyOfEverything reports a group that holds nothing worth keeping:
// no member, no pending member id, no committed offset, pending or not.
func (g *group) isEmptyOfEverything() bool {
	return g.state == stateEmpty && len(g.members) == 0 && len(g.pending) == 0 && len(g.offsets) == 0 && len(g.pendingTxn) == 0
}
