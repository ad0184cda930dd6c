package cluster

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
)

// testPeerTLS is a node's controller TLS: its certificate both ways, the
// test CA as the only trust anchor.
type testPeerTLS struct {
	cert tls.Certificate
	pool *x509.CertPool
}

func (p testPeerTLS) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool}
}

func (p testPeerTLS) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.cert}, RootCAs: p.pool, ServerName: serverName}
}

// TestControllerBindsNodeIDToCertificate: with the controller port over
// TLS and certificates naming their node, a 3-node cluster forms and
// heartbeats as before; a connection with node 2's certificate cannot
// heartbeat, join, register or shut down as node 3, nor change the ISR of
// a partition as its leader node 3 (ErrNodeIDMismatch, the metadata
// unchanged), and goes on serving node 2's own heartbeat. A certificate
// naming no node (issued before certificates named theirs) is served
// unbound, as before. The commands only the active controller proposes
// (fencing a broker, expiring leases, the cluster id) are refused from
// any peer (ErrControllerDuty).
func TestControllerBindsNodeIDToCertificate(t *testing.T) {
	tc, ca, peers, peer := nodeCertCluster(t)
	leader := tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	var f *Controller
	for _, c := range tc.nodes {
		if c != leader {
			f = c
			break
		}
	}
	other := int32(6) - leader.NodeID() - f.NodeID() // the third node
	epochOf := func(id int32) int64 { return leader.State().Brokers[id].Epoch }

	// ask sends one request on a new connection with the certificate of
	// node f (or cert) and returns the controller's answer.
	ask := func(cert PeerTLS, req rpcRequest) error {
		t.Helper()
		m := newMux(listen(t, "127.0.0.1:0"), nil, cert, testLogger(t), nil, nil)
		defer m.close()
		c, err := m.dial(leader.Addr(), connRPC, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := json.NewEncoder(c).Encode(req); err != nil {
			t.Fatal(err)
		}
		var resp rpcResponse
		if err := json.NewDecoder(c).Decode(&resp); err != nil {
			t.Fatalf("reading the answer to %s: %v", req.Op, err)
		}
		return resp.Err.err()
	}
	command := func(c metadata.Command) []byte {
		t.Helper()
		b, err := metadata.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mine := peers[f.NodeID()]
	before := leader.State().Brokers[other]
	for name, req := range map[string]rpcRequest{
		"heartbeat":           {Op: opHeartbeat, NodeID: other, BrokerEpoch: epochOf(other), LeaseMs: 60_000},
		"join":                {Op: opJoin, NodeID: other, RaftAddr: "127.0.0.1:1"},
		"register":            {Op: opApply, Command: command(metadata.RegisterBroker{NodeID: other, Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 1}}, LeaseMs: 60_000})},
		"controlled shutdown": {Op: opApply, Command: command(metadata.ControlledShutdown{NodeID: other, BrokerEpoch: epochOf(other)})},
		"lease in the log":    {Op: opApply, Command: command(metadata.BrokerHeartbeat{NodeID: other, BrokerEpoch: epochOf(other), LeaseMs: 60_000})},
		"ISR change":          {Op: opApply, Command: command(metadata.AlterPartition{Topic: "t", LeaderID: other, BrokerEpoch: epochOf(other), NewISR: []int32{other}})},
		"disk full":           {Op: opApply, Command: command(metadata.ReplicaDiskFull{Topic: "t", BrokerID: other, BrokerEpoch: epochOf(other)})},
	} {
		if err := ask(mine, req); !errors.Is(err, ErrNodeIDMismatch) {
			t.Errorf("%s for node %d with node %d's certificate: %v, want ErrNodeIDMismatch", name, other, f.NodeID(), err)
		}
	}
	// The active controller's own duties are refused from every peer,
	// whatever its certificate names: a broker's key does not let it fence
	// another broker.
	unnamed := peer(ca.Issue("broker-old", "127.0.0.1"))
	for name, cmd := range map[string]metadata.Command{
		"fence":         metadata.FenceBroker{NodeID: other, BrokerEpoch: epochOf(other)},
		"expire leases": metadata.ExpireLeases{},
		"cluster id":    metadata.InitCluster{ClusterID: "another-cluster"},
	} {
		for certName, cert := range map[string]PeerTLS{fmt.Sprint("node ", f.NodeID(), "'s certificate"): mine, "a certificate naming no node": unnamed} {
			if err := ask(cert, rpcRequest{Op: opApply, Command: command(cmd)}); !errors.Is(err, ErrControllerDuty) {
				t.Errorf("%s proposed with %s: %v, want ErrControllerDuty", name, certName, err)
			}
		}
	}
	if after := leader.State().Brokers[other]; after.Epoch != before.Epoch || after.Fenced != before.Fenced || after.ShuttingDown != before.ShuttingDown || after.DiskFull != before.DiskFull {
		t.Errorf("node %d changed after the refused requests: %+v, was %+v", other, after, before)
	}
	// Node f's own heartbeat on such a connection is served.
	if err := ask(mine, rpcRequest{Op: opHeartbeat, NodeID: f.NodeID(), BrokerEpoch: epochOf(f.NodeID()), LeaseMs: f.cfg.Lease.Milliseconds()}); err != nil {
		t.Errorf("node %d's own heartbeat: %v", f.NodeID(), err)
	}
	// A certificate naming no node: served unbound (upgrade).
	if err := ask(unnamed, rpcRequest{Op: opHeartbeat, NodeID: other, BrokerEpoch: epochOf(other), LeaseMs: tc.nodes[other].cfg.Lease.Milliseconds()}); err != nil {
		t.Errorf("a heartbeat for node %d with a certificate naming no node: %v, want served", other, err)
	}
	// Each refusal is counted under its reason (the broker exports these
	// as tributary_peer_refusals_total and
	// tributary_peer_unbound_connections_total): the seven requests for
	// node other, the three duties with each of two certificates, and the
	// four connections with the certificate naming no node.
	if got, want := leader.PeerRefusals(), (PeerRefusals{NodeMismatch: 7, ControllerDuty: 6, Unbound: 4}); got != want {
		t.Errorf("counted %+v, want %+v", got, want)
	}
}

// raftClient is a Raft transport that dials with cert, as a node's own
// transport does.
func raftClient(t *testing.T, cert PeerTLS) *raft.NetworkTransport {
	t.Helper()
	m := newMux(listen(t, "127.0.0.1:0"), nil, cert, testLogger(t), nil, nil)
	trans := newRaftTransport(streamLayer{m}, hclog.NewNullLogger())
	t.Cleanup(func() {
		trans.Close()
		m.close()
	})
	return trans
}

// TestRaftRPCsBoundToCertificate: with the controller port over TLS and
// certificates naming their node, a connection with node f's certificate
// cannot send Raft's RPCs (votes, pre-votes, log replication, snapshots,
// leadership transfer) as another server, nor as itself at another
// server's address or at none: each closes the connection before Raft
// reads the request, and is counted. The same RPCs as itself, at its own
// address, are answered, and a certificate naming no node is served
// unbound, as before.
func TestRaftRPCsBoundToCertificate(t *testing.T) {
	tc, ca, peers, peer := nodeCertCluster(t)
	leader := tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	// f sends to target, the third node.
	var f, target *Controller
	for _, c := range tc.nodes {
		switch {
		case c == leader:
		case f == nil:
			f = c
		default:
			target = c
		}
	}
	header := func(c *Controller) raft.RPCHeader {
		return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(serverID(c.NodeID())), Addr: []byte(c.Addr())}
	}
	asLeader := header(leader)
	atLeadersAddr := header(f)
	atLeadersAddr.Addr = asLeader.Addr
	noAddr := header(f)
	noAddr.Addr = nil
	noID := header(f)
	noID.ID = nil
	term, err := strconv.ParseUint(target.raft.Stats()["term"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// send sends one RPC with hdr to target: the sender's answer, or
	// the transport's error when the connection is closed on it.
	send := func(trans *raft.NetworkTransport, rpc string, hdr raft.RPCHeader) error {
		t.Helper()
		id, addr := serverID(target.NodeID()), raft.ServerAddress(target.Addr())
		switch rpc {
		case "RequestVote":
			// An old term: answered, never granted.
			return trans.RequestVote(id, addr, &raft.RequestVoteRequest{RPCHeader: hdr, Term: 0}, &raft.RequestVoteResponse{})
		case "RequestPreVote":
			return trans.RequestPreVote(id, addr, &raft.RequestPreVoteRequest{RPCHeader: hdr, Term: 0}, &raft.RequestPreVoteResponse{})
		case "AppendEntries":
			return trans.AppendEntries(id, addr, &raft.AppendEntriesRequest{RPCHeader: hdr, Term: term + 100}, &raft.AppendEntriesResponse{})
		case "TimeoutNow":
			return trans.TimeoutNow(id, addr, &raft.TimeoutNowRequest{RPCHeader: hdr}, &raft.TimeoutNowResponse{})
		case "InstallSnapshot":
			data := []byte("not a snapshot")
			return trans.InstallSnapshot(id, addr, &raft.InstallSnapshotRequest{RPCHeader: hdr, SnapshotVersion: raft.SnapshotVersionMax, Term: term + 100, Size: int64(len(data))}, &raft.InstallSnapshotResponse{}, bytes.NewReader(data))
		}
		t.Fatalf("unknown RPC %s", rpc)
		return nil
	}
	mine := raftClient(t, peers[f.NodeID()])
	refused := 0
	for _, rpc := range []string{"RequestVote", "RequestPreVote", "AppendEntries", "TimeoutNow", "InstallSnapshot"} {
		for name, hdr := range map[string]raft.RPCHeader{
			"as the leader":           asLeader,
			"at the leader's address": atLeadersAddr,
			"without an address":      noAddr,
			"without a server id":     noID,
		} {
			if err := send(mine, rpc, hdr); err == nil {
				t.Errorf("%s %s with node %d's certificate: answered, want the connection closed", rpc, name, f.NodeID())
			}
			refused++
		}
	}
	if got := target.PeerRefusals().RaftRPC; got != int64(refused) {
		t.Errorf("node %d counted %d refused Raft RPCs, want %d", target.NodeID(), got, refused)
	}
	// Refused before Raft read them: the term 100 ahead never reached
	// it (an election under load moves the term by one or two).
	if got, err := strconv.ParseUint(target.raft.Stats()["term"], 10, 64); err != nil || got >= term+100 {
		t.Errorf("node %d is at term %d (%v), was %d: a refused AppendEntries or InstallSnapshot reached Raft", target.NodeID(), got, err, term)
	}
	// As itself, at its own address: answered.
	for _, rpc := range []string{"RequestVote", "RequestPreVote"} {
		if err := send(mine, rpc, header(f)); err != nil {
			t.Errorf("%s as node %d with its own certificate: %v", rpc, f.NodeID(), err)
		}
	}
	// A certificate naming no node: served unbound (upgrade).
	unbound := target.PeerRefusals().Unbound
	if err := send(raftClient(t, peer(ca.Issue("broker-old", "127.0.0.1"))), "RequestVote", asLeader); err != nil {
		t.Errorf("RequestVote as the leader with a certificate naming no node: %v, want answered", err)
	}
	// Only Raft RPCs were refused: no controller request is counted.
	if got, want := target.PeerRefusals(), (PeerRefusals{RaftRPC: int64(refused), Unbound: unbound + 1}); got != want {
		t.Errorf("node %d counted %+v after the valid RPCs, want %+v", target.NodeID(), got, want)
	}
}

// TestRaftSnapshotThroughCertificateCheck: a broker that joins a TLS
// quorum whose log was compacted catches up by InstallSnapshot, whose data
// follows the checked request on the same connection.
func TestRaftSnapshotThroughCertificateCheck(t *testing.T) {
	ca, err := tlstest.NewCA("controller test CA")
	if err != nil {
		t.Fatal(err)
	}
	peers := map[int32]PeerTLS{}
	for id := int32(1); id <= 4; id++ {
		l, err := ca.IssueNode(fmt.Sprint("broker-", id), id, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		peers[id] = testPeerTLS{cert: c, pool: ca.Pool()}
	}
	tc := newTestClusterTLS(t, 3, peers)
	leader := tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	if _, err := leader.CreateTopic(ctxT(t), "before-the-snapshot", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	for range 2 * leader.cfg.SnapshotThreshold {
		if _, err := leader.AllocateProducerIDs(ctxT(t), 1); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 20*time.Second, func() error {
		first, err := leader.store.FirstIndex()
		if err != nil {
			return err
		}
		if first <= 1 {
			return fmt.Errorf("leader's log starts at %d", first)
		}
		return nil
	})
	joined := tc.addNonVoter(4)
	if err := joined.WaitRegistered(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 20*time.Second, func() error {
		if _, ok := joined.State().Topic("before-the-snapshot"); !ok {
			return errors.New("node 4 has not the topic created before the snapshot")
		}
		snaps, err := filepath.Glob(filepath.Join(tc.dirs[4], "snapshots", "*", "state.bin"))
		if err != nil {
			return err
		}
		if len(snaps) == 0 {
			return errors.New("node 4 holds no snapshot")
		}
		return nil
	})
	for _, c := range tc.nodes {
		if n := c.refusedRaftRPCs.Load(); n != 0 {
			t.Errorf("node %d refused %d Raft RPCs of its peers", c.NodeID(), n)
		}
	}
}

// nodeCertCluster starts three controllers over TLS whose certificates,
// from ca, name their node (peers, by node id), and returns peer, which
// makes a test peer of another certificate of ca.
func nodeCertCluster(t *testing.T) (tc *testCluster, ca *tlstest.CA, peers map[int32]PeerTLS, peer func(tlstest.Leaf, error) testPeerTLS) {
	t.Helper()
	ca, err := tlstest.NewCA("controller test CA")
	if err != nil {
		t.Fatal(err)
	}
	peer = func(l tlstest.Leaf, err error) testPeerTLS {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		return testPeerTLS{cert: c, pool: ca.Pool()}
	}
	peers = map[int32]PeerTLS{}
	for id := int32(1); id <= 3; id++ {
		peers[id] = peer(ca.IssueNode(fmt.Sprint("broker-", id), id, "127.0.0.1"))
	}
	return newTestClusterTLS(t, 3, peers), ca, peers, peer
}
