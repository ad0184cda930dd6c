package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

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
// unbound, as before.
func TestControllerBindsNodeIDToCertificate(t *testing.T) {
	ca, err := tlstest.NewCA("controller test CA")
	if err != nil {
		t.Fatal(err)
	}
	peer := func(l tlstest.Leaf, err error) testPeerTLS {
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
	peers := map[int32]PeerTLS{}
	for id := int32(1); id <= 3; id++ {
		peers[id] = peer(ca.IssueNode(fmt.Sprint("broker-", id), id, "127.0.0.1"))
	}
	tc := newTestClusterTLS(t, 3, peers)
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
		m := newMux(listen(t, "127.0.0.1:0"), nil, cert, testLogger(t), nil)
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
	if after := leader.State().Brokers[other]; after.Epoch != before.Epoch || after.Fenced != before.Fenced || after.ShuttingDown != before.ShuttingDown || after.DiskFull != before.DiskFull {
		t.Errorf("node %d changed after the refused requests: %+v, was %+v", other, after, before)
	}
	// Node f's own heartbeat on such a connection is served.
	if err := ask(mine, rpcRequest{Op: opHeartbeat, NodeID: f.NodeID(), BrokerEpoch: epochOf(f.NodeID()), LeaseMs: f.cfg.Lease.Milliseconds()}); err != nil {
		t.Errorf("node %d's own heartbeat: %v", f.NodeID(), err)
	}
	// A certificate naming no node: served unbound (upgrade).
	unnamed := peer(ca.Issue("broker-old", "127.0.0.1"))
	if err := ask(unnamed, rpcRequest{Op: opHeartbeat, NodeID: other, BrokerEpoch: epochOf(other), LeaseMs: tc.nodes[other].cfg.Lease.Milliseconds()}); err != nil {
		t.Errorf("a heartbeat for node %d with a certificate naming no node: %v, want served", other, err)
	}
	if leader.refusedPeerRequests.Load() != 7 || leader.unboundPeers.Load() != 1 {
		t.Errorf("counted %d refused requests and %d unbound connections, want 7 and 1", leader.refusedPeerRequests.Load(), leader.unboundPeers.Load())
	}
}
