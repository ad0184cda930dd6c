package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// versionsReported waits until every broker of the cluster's nodes has
// reported this binary's metadata version.
func versionsReported(st *metadata.State) error {
	if v := st.UsableMetadataVersion(); v != metadata.CurrentMetadataVersion {
		return fmt.Errorf("usable metadata version %d", v)
	}
	return nil
}

// brokerKnown is a waitForState condition: broker id is registered,
// fenced or not.
func brokerKnown(id int32) func(*metadata.State) error {
	return func(st *metadata.State) error {
		if _, ok := st.Brokers[id]; !ok {
			return fmt.Errorf("no broker %d", id)
		}
		return nil
	}
}

// registerOlderBroker registers broker id as a binary without metadata
// versions does: a RegisterBroker and no BrokerMetadataVersion. Its lease
// is long, so that it is not what lapses.
func registerOlderBroker(t *testing.T, leader *Controller, id int32) int64 {
	t.Helper()
	epoch, err := proposeAs[int64](ctxT(t), leader, metadata.RegisterBroker{NodeID: id, LeaseMs: time.Hour.Milliseconds()})
	if err != nil {
		t.Fatal(err)
	}
	return epoch
}

// TestNewerCommandsWaitForEveryBrokersVersion: while a broker that
// reported no metadata version is registered, a ReplicaDiskFull is
// refused by the proposer and by the active controller (for a proposer
// whose metadata is older) with ErrMetadataVersion, and nothing reaches
// the log; once that broker reports the version, the same report
// applies.
func TestNewerCommandsWaitForEveryBrokersVersion(t *testing.T) {
	tc := newTestCluster(t, 3)
	leader := tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	tc.waitForState("versions reported", versionsReported)
	f := tc.follower()
	if _, err := leader.CreateTopicAssigned(ctxT(t), "t", [][]int32{{leader.NodeID(), f.NodeID()}}, nil); err != nil {
		t.Fatal(err)
	}
	from := leader.raft.LastIndex()
	epoch9 := registerOlderBroker(t, leader, 9)
	tc.waitForState("older broker 9 registered", brokerKnown(9))
	p := leader.State().Topics["t"].Partition(0)
	_, err := f.ReplicaDiskFull(ctxT(t), "t", 0, p.LeaderEpoch)
	if !errors.Is(err, metadata.ErrMetadataVersion) {
		t.Fatalf("ReplicaDiskFull with an older broker registered: %v, want ErrMetadataVersion", err)
	}
	// Refused by the proposer: an active controller of an older version
	// would not refuse it.
	if re := (*remoteError)(nil); errors.As(err, &re) {
		t.Fatalf("refused by the active controller, not by the proposer: %v", err)
	}
	// As forwarded by a broker that had not applied broker 9's
	// registration yet.
	cmd, err := metadata.Encode(metadata.ReplicaDiskFull{Topic: "t", Partition: 0, BrokerID: f.NodeID(), BrokerEpoch: f.BrokerEpoch(), LeaderEpoch: p.LeaderEpoch})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.handleLocal(ctxT(t), rpcRequest{Op: opApply, Command: cmd}); !errors.Is(err, metadata.ErrMetadataVersion) {
		t.Fatalf("forwarded ReplicaDiskFull with an older broker registered: %v, want ErrMetadataVersion", err)
	}
	types, _, _ := commandsSince(t, leader, from)
	if slices.Contains(types, metadata.TypeReplicaDiskFull) {
		t.Fatalf("a ReplicaDiskFull reached the log: %v", types)
	}

	// Broker 9 upgraded (as its new incarnation would report).
	if _, err := leader.propose(ctxT(t), metadata.BrokerMetadataVersion{NodeID: 9, BrokerEpoch: epoch9, MetadataVersion: metadata.CurrentMetadataVersion}); err != nil {
		t.Fatal(err)
	}
	tc.waitForState("versions reported", versionsReported)
	np, err := f.ReplicaDiskFull(ctxT(t), "t", 0, p.LeaderEpoch)
	if err != nil {
		t.Fatalf("ReplicaDiskFull once every broker is new: %v", err)
	}
	if slices.Contains(np.ISR, f.NodeID()) {
		t.Fatalf("the full follower is still in the ISR: %+v", np)
	}
}

// TestLapsedLeaseWithAnOlderBrokerIsExpired: while a broker that knows no
// FenceBroker is registered, a broker whose heartbeats stop is fenced by
// ExpireLeases, as before FenceBroker existed, and no live broker is
// fenced with it, although their leases in the metadata (their
// registrations': renewals stay in the controller's memory) ran out long
// before: the controller logs them first.
func TestLapsedLeaseWithAnOlderBrokerIsExpired(t *testing.T) {
	tc := newTestCluster(t, 3)
	leader := tc.waitForLeader()
	tc.addNonVoter(4)
	tc.waitForState("brokers registered", registered(1, 2, 3, 4))
	tc.waitForState("versions reported", versionsReported)
	registerOlderBroker(t, leader, 9)
	lease, interval := leader.cfg.Lease, leader.cfg.HeartbeatInterval
	// Past the registrations' own leases: only renewals hold them now.
	time.Sleep(lease + interval)
	tc.waitForState("brokers unfenced", registered(1, 2, 3, 4))
	from := leader.raft.LastIndex()
	tc.kill(4)
	checkFor(t, lease+10*time.Second, func() error {
		for _, c := range tc.nodes {
			if b := c.State().Brokers[4]; !b.Fenced {
				return fmt.Errorf("node %d: broker 4 not fenced", c.NodeID())
			}
		}
		return nil
	})
	// A live broker fenced with 4 would be unfenced by its next
	// heartbeat: a BrokerHeartbeat after the ExpireLeases.
	time.Sleep(5 * interval)
	if leader.IsActive() {
		types, fences, missing := commandsSince(t, leader, from)
		if missing > 0 {
			t.Fatalf("%d entries compacted away in the window", missing)
		}
		if len(fences) > 0 {
			t.Fatalf("FenceBroker logged with an older broker registered: %+v", fences)
		}
		i := slices.Index(types, metadata.TypeExpireLeases)
		if i < 0 {
			t.Fatalf("no ExpireLeases logged: %v", types)
		}
		if i >= 0 && slices.Contains(types[i+1:], metadata.TypeBrokerHeartbeat) {
			t.Fatalf("a broker was unfenced after the expiry (a live broker fenced with 4): %v", types)
		}
	}
	tc.waitForState("live brokers unfenced", registered(1, 2, 3))
	for id, c := range tc.nodes {
		if st := c.State(); st.Brokers[9].Fenced {
			t.Errorf("node %d: broker 9, whose lease runs, fenced", id)
		}
	}
}

// TestDeleteTopicNamesNoIDToAnOlderCluster: while a broker that reported
// no metadata version is registered, a deletion names the topic without
// its id (a field that broker does not know, which would halt it); once
// every broker is new it names the id again.
func TestDeleteTopicNamesNoIDToAnOlderCluster(t *testing.T) {
	tc := newTestCluster(t, 3)
	leader := tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	tc.waitForState("versions reported", versionsReported)
	for _, name := range []string{"a", "b"} {
		if _, err := leader.CreateTopicAssigned(ctxT(t), name, [][]int32{{leader.NodeID()}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	epoch9 := registerOlderBroker(t, leader, 9)
	deletion := func(name string) []byte {
		t.Helper()
		from := leader.raft.LastIndex()
		if err := leader.DeleteTopic(ctxT(t), name); err != nil {
			t.Fatal(err)
		}
		for i := from + 1; i <= leader.raft.LastIndex(); i++ {
			var l raft.Log
			if err := leader.store.GetLog(i, &l); err == nil && len(l.Data) > 0 && metadata.CommandType(l.Data[0]) == metadata.TypeDeleteTopic {
				return l.Data[1:]
			}
		}
		t.Fatalf("no DeleteTopic of %s in the log", name)
		return nil
	}
	if d := deletion("a"); bytes.Contains(d, []byte(`"id"`)) {
		t.Fatalf("deletion with an older broker registered names the id: %s", d)
	}
	if _, err := leader.propose(ctxT(t), metadata.BrokerMetadataVersion{NodeID: 9, BrokerEpoch: epoch9, MetadataVersion: metadata.CurrentMetadataVersion}); err != nil {
		t.Fatal(err)
	}
	if d := deletion("b"); !bytes.Contains(d, []byte(`"id"`)) {
		t.Fatalf("deletion once every broker is new names no id: %s", d)
	}
}

// TestNewerCommandWaitsForAJustRegisteredBrokersReport: a client quota
// change proposed while a broker has registered and not yet reported its
// metadata version (a broker just started does so at once, in a second
// commit) waits for the report and applies; CI refused the first quota
// of a cluster just started so. A broker that never reports (an older
// binary) gets it refused, after the grace and not before.
func TestNewerCommandWaitsForAJustRegisteredBrokersReport(t *testing.T) {
	tc := newTestCluster(t, 3)
	leader := tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	tc.waitForState("versions reported", versionsReported)
	f := tc.follower()
	grace := f.versionReportGrace()
	user := "alice"
	quota := metadata.AlterClientQuotas{Entries: []metadata.QuotaAlteration{{
		Entity: metadata.QuotaEntity{{Type: "user", Name: &user}},
		Set:    map[string]float64{"producer_byte_rate": 1024},
	}}}

	epoch9 := registerOlderBroker(t, leader, 9)
	tc.waitForState("broker 9 registered", brokerKnown(9))
	done := make(chan error, 1)
	go func() {
		res, err := f.AlterClientQuotas(ctxT(t), quota)
		if err == nil && len(res) == 1 {
			err = res[0]
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("answered before broker 9 reported its version: %v", err)
	case <-time.After(grace / 3):
	}
	if _, err := leader.propose(ctxT(t), metadata.BrokerMetadataVersion{NodeID: 9, BrokerEpoch: epoch9, MetadataVersion: metadata.CurrentMetadataVersion}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("quota change while broker 9 reported: %v", err)
	}
	if _, ok := leader.State().ClientQuota(quota.Entries[0].Entity); !ok {
		t.Fatal("the quota change did not apply")
	}

	registerOlderBroker(t, leader, 10)
	tc.waitForState("broker 10 registered", brokerKnown(10))
	start := time.Now()
	_, err := f.AlterClientQuotas(ctxT(t), quota)
	if !errors.Is(err, metadata.ErrMetadataVersion) {
		t.Fatalf("quota change with broker 10 never reporting: %v, want ErrMetadataVersion", err)
	}
	if took := time.Since(start); took < grace || took > grace+5*time.Second {
		t.Fatalf("refused after %v, want after the grace (%v)", took, grace)
	}
}
