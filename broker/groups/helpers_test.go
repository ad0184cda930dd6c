package groups

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testConfig is DefaultConfig with timeouts small enough for tests.
func testConfig() Config {
	cfg := DefaultConfig()
	// Long enough for concurrently started members to land in the first
	// generation together, as the setting intends.
	cfg.InitialRebalanceDelay = 100 * time.Millisecond
	cfg.MinSessionTimeout = 10 * time.Millisecond
	cfg.OffsetsRetentionCheckInterval = time.Hour // tests call ExpireOffsets directly
	return cfg
}

func newTestCoordinator(t *testing.T, log OffsetLog, adjust ...func(*Config)) *Coordinator {
	t.Helper()
	cfg := testConfig()
	// Logs show only for failing tests (or -v). Close, run by Cleanup
	// before the test ends, stops every timer that could log later.
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	for _, a := range adjust {
		a(&cfg)
	}
	c, err := New(context.Background(), log, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testCtx bounds every blocking call of a test.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// consumerMeta encodes a consumer subscription as Kafka clients send it in
// JoinGroup.
func consumerMeta(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Version = 0
	m.Topics = topics
	return m.AppendTo(nil)
}

func joinReq(version int16, group, memberID string, session, rebalance time.Duration, topics ...string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = version
	req.Group = group
	req.MemberID = memberID
	req.SessionTimeoutMillis = int32(session.Milliseconds())
	req.RebalanceTimeoutMillis = int32(rebalance.Milliseconds())
	req.ProtocolType = "consumer"
	req.Protocols = []kmsg.JoinGroupRequestProtocol{
		{Name: "range", Metadata: consumerMeta(topics...)},
		{Name: "roundrobin", Metadata: consumerMeta(topics...)},
	}
	return req
}

// testMember drives one consumer through the group protocol as a client
// library would.
type testMember struct {
	t          *testing.T
	c          *Coordinator
	group      string
	clientID   string
	version    int16 // JoinGroup version
	session    time.Duration
	rebalance  time.Duration
	topics     []string
	instanceID *string

	id         string
	generation int32
	leader     bool
	members    []kmsg.JoinGroupResponseMember
	assignment []byte
}

func newTestMember(t *testing.T, c *Coordinator, group, clientID string) *testMember {
	return &testMember{
		t: t, c: c, group: group, clientID: clientID, version: 5,
		session: 2 * time.Second, rebalance: 2 * time.Second, topics: []string{"t"},
	}
}

// join sends JoinGroup (twice for v4+ when the coordinator asks for a
// member id) and records the answer.
func (m *testMember) join(ctx context.Context) *kmsg.JoinGroupResponse {
	m.t.Helper()
	for range 2 {
		req := joinReq(m.version, m.group, m.id, m.session, m.rebalance, m.topics...)
		req.InstanceID = m.instanceID
		resp := m.c.JoinGroup(ctx, Client{ID: m.clientID, Host: "/127.0.0.1"}, req)
		if resp.ErrorCode == kerr.MemberIDRequired.Code {
			m.id = resp.MemberID
			continue
		}
		if resp.ErrorCode == 0 {
			m.id = resp.MemberID
			m.generation = resp.Generation
			m.leader = resp.LeaderID == resp.MemberID
			m.members = resp.Members
		}
		return resp
	}
	m.t.Errorf("%s: coordinator asked for a member id twice", m.clientID)
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.ErrorCode = kerr.MemberIDRequired.Code
	return resp
}

// joinAsync runs join in a goroutine.
func (m *testMember) joinAsync(ctx context.Context) <-chan *kmsg.JoinGroupResponse {
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { ch <- m.join(ctx) }()
	return ch
}

func (m *testMember) syncReq(assignments map[string][]byte) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 3
	req.Group = m.group
	req.Generation = m.generation
	req.MemberID = m.id
	req.InstanceID = m.instanceID
	for id, a := range assignments {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: a})
	}
	return req
}

func (m *testMember) sync(ctx context.Context, assignments map[string][]byte) *kmsg.SyncGroupResponse {
	resp := m.c.SyncGroup(ctx, m.syncReq(assignments))
	if resp.ErrorCode == 0 {
		m.assignment = resp.MemberAssignment
	}
	return resp
}

func (m *testMember) heartbeat() int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version = 3
	req.Group = m.group
	req.Generation = m.generation
	req.MemberID = m.id
	req.InstanceID = m.instanceID
	return m.c.Heartbeat(req).ErrorCode
}

func (m *testMember) leave() int16 {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = 3
	req.Group = m.group
	req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: m.id, InstanceID: m.instanceID}}
	resp := m.c.LeaveGroup(req)
	if resp.ErrorCode != 0 {
		return resp.ErrorCode
	}
	return resp.Members[0].ErrorCode
}

func (m *testMember) commit(ctx context.Context, topic string, partition int32, offset int64) int16 {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group = m.group
	req.Generation = m.generation
	req.MemberID = m.id
	req.InstanceID = m.instanceID
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: partition, Offset: offset, LeaderEpoch: -1}}}}
	return m.c.OffsetCommit(ctx, req).Topics[0].Partitions[0].ErrorCode
}

// joinAll joins every member concurrently, then syncs them with the leader
// handing each member its id as assignment. All must end in one generation.
func joinAll(t *testing.T, ctx context.Context, ms ...*testMember) {
	t.Helper()
	if err := joinAndSync(ctx, ms...); err != nil {
		t.Fatal(err)
	}
}

// syncAll sends SyncGroup for members that just joined one generation.
func syncAll(t *testing.T, ctx context.Context, ms ...*testMember) {
	t.Helper()
	if err := syncMembers(ctx, ms...); err != nil {
		t.Fatal(err)
	}
}

// joinAndSync is joinAll returning its error, for use off the test
// goroutine.
func joinAndSync(ctx context.Context, ms ...*testMember) error {
	var wg sync.WaitGroup
	errs := make([]int16, len(ms))
	for i, m := range ms {
		wg.Go(func() { errs[i] = m.join(ctx).ErrorCode })
	}
	wg.Wait()
	for i, code := range errs {
		if code != 0 {
			return fmt.Errorf("member %d join: %s", i, codeName(code))
		}
	}
	return syncMembers(ctx, ms...)
}

func syncMembers(ctx context.Context, ms ...*testMember) error {
	gen := ms[0].generation
	leaders := 0
	var assignments map[string][]byte
	for _, m := range ms {
		if m.generation != gen {
			return fmt.Errorf("members in different generations: %d and %d", gen, m.generation)
		}
		if m.leader {
			leaders++
			assignments = make(map[string][]byte)
			for _, jm := range m.members {
				assignments[jm.MemberID] = []byte("assignment-of-" + jm.MemberID)
			}
		}
	}
	if leaders != 1 {
		return fmt.Errorf("generation %d has %d leaders, want 1", gen, leaders)
	}
	var wg sync.WaitGroup
	errs := make([]int16, len(ms))
	for i, m := range ms {
		var a map[string][]byte
		if m.leader {
			a = assignments
		}
		wg.Go(func() { errs[i] = m.sync(ctx, a).ErrorCode })
	}
	wg.Wait()
	for i, code := range errs {
		if code != 0 {
			return fmt.Errorf("member %d sync: %s", i, codeName(code))
		}
		if got, want := string(ms[i].assignment), "assignment-of-"+ms[i].id; got != want {
			return fmt.Errorf("member %d assignment = %q, want %q", i, got, want)
		}
	}
	return nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func describe(t *testing.T, c *Coordinator, group string) kmsg.DescribeGroupsResponseGroup {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version = 5
	req.Groups = []string{group}
	return c.DescribeGroups(req).Groups[0]
}
