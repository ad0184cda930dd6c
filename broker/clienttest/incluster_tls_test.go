package clienttest

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
)

// TestClusterInClusterTLSRefusesPlaintextPeers: with in-cluster encryption,
// the replication (9093) and metadata quorum (9095) ports of a running
// cluster refuse a plaintext peer, a TLS peer without a certificate, one
// with a certificate of another CA and one with a client certificate the
// truststore accepts for mutual-TLS clients, and serve a peer with a
// broker certificate of the cluster's CA. No packet capture: the refusals are
// what the peer sees, and the brokers' log lines say why.
func TestClusterInClusterTLSRefusesPlaintextPeers(t *testing.T) {
	c := startClusterTLS(t, 3, true)
	host, _, _ := net.SplitHostPort(c.addrs[1])
	// The brokers' certificates name their nodes: they replicate and
	// heartbeat as before (every replica in sync, acks=all answered).
	c.createTopic("bound", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.client(kgo.RequiredAcks(kgo.AllISRAcks())).ProduceSync(ctx, &kgo.Record{Topic: "bound", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("acks=all produce on a cluster of node certificates: %v", err)
	}
	apiVersions := kmsg.NewRequestFormatter(kmsg.FormatterClientID("peer")).AppendRequest(nil, kmsg.NewPtrApiVersionsRequest(), 1)
	// What a peer sends first on each port: a Kafka request on 9093, the
	// kind byte of a controller request then its JSON on 9095.
	first := map[string][]byte{"9093": apiVersions, "9095": []byte("C{\"op\":\"join\",\"node_id\":9}\n")}

	// answered reports whether the port sent anything back to what the
	// peer wrote before closing the connection.
	answered := func(t *testing.T, nc net.Conn, msg []byte) (bool, error) {
		t.Helper()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(msg); err != nil {
			return false, err
		}
		b := make([]byte, 4)
		_, err := io.ReadFull(nc, b)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the port neither answered nor closed the connection within 10s")
		}
		return err == nil, err
	}
	peer, err := c.ca.Issue("peer", host)
	if err != nil {
		t.Fatal(err)
	}
	peerPair, _ := peer.TLSCertificate()
	other, _ := startOtherCA(t, host)
	app, err := c.clientCA.Issue("app", host)
	if err != nil {
		t.Fatal(err)
	}
	appPair, _ := app.TLSCertificate()

	for _, port := range []string{"9093", "9095"} {
		addr := net.JoinHostPort(host, port)
		t.Run(port+" plaintext", func(t *testing.T) {
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if ok, _ := answered(t, nc, first[port]); ok {
				t.Fatal("a plaintext peer was answered")
			}
		})
		// A client certificate of the truststore's client CA is no
		// broker's: only the CA of the brokers' own certificates is.
		for name, cert := range map[string]*tls.Certificate{"no certificate": nil, "another CA": &other, "a client CA of the truststore": &appPair} {
			t.Run(port+" TLS with "+name, func(t *testing.T) {
				cfg := &tls.Config{RootCAs: c.ca.Pool(), ServerName: host}
				if cert != nil {
					cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
				}
				nc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
				if err == nil {
					defer nc.Close()
					var ok bool
					ok, err = answered(t, nc, first[port])
					if ok {
						t.Fatal("a peer without a cluster certificate was answered")
					}
				}
				if err == nil || !strings.Contains(err.Error(), "tls:") {
					t.Fatalf("refusal %v, want a TLS alert", err)
				}
			})
		}
	}
	t.Run("9093 with a cluster certificate", func(t *testing.T) {
		nc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(host, "9093"),
			&tls.Config{RootCAs: c.ca.Pool(), ServerName: host, Certificates: []tls.Certificate{peerPair}})
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(apiVersions); err != nil {
			t.Fatal(err)
		}
		var size [4]byte
		if _, err := io.ReadFull(nc, size[:]); err != nil || binary.BigEndian.Uint32(size[:]) == 0 {
			t.Fatalf("no ApiVersions answer over TLS with a cluster certificate: %v", err)
		}
	})
	// A certificate of the cluster's CA naming node 2 acts only as node 2.
	node2, err := c.ca.IssueNode("broker-2", 2, host)
	if err != nil {
		t.Fatal(err)
	}
	node2Pair, _ := node2.TLSCertificate()
	dialAs := func(t *testing.T, port string, cert tls.Certificate) *tls.Conn {
		t.Helper()
		nc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(host, port),
			&tls.Config{RootCAs: c.ca.Pool(), ServerName: host, Certificates: []tls.Certificate{cert}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		return nc
	}
	t.Run("9093 fetch as replica 3 with node 2's certificate", func(t *testing.T) {
		for replica, want := range map[int32]int16{3: kerr.ClusterAuthorizationFailed.Code, 2: 0} {
			req := kmsg.NewPtrFetchRequest()
			req.Version, req.ReplicaID, req.MaxWaitMillis, req.MaxBytes = 12, replica, 1, 1<<20
			nc := dialAs(t, "9093", node2Pair)
			if _, err := nc.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("peer")).AppendRequest(nil, req, 7)); err != nil {
				t.Fatal(err)
			}
			var size [4]byte
			if _, err := io.ReadFull(nc, size[:]); err != nil {
				t.Fatalf("Fetch as replica %d: %v", replica, err)
			}
			body := make([]byte, binary.BigEndian.Uint32(size[:]))
			if _, err := io.ReadFull(nc, body); err != nil || len(body) < 5 {
				t.Fatalf("Fetch as replica %d: %v", replica, err)
			}
			resp := req.ResponseKind().(*kmsg.FetchResponse)
			// Correlation id, then the flexible header's empty tags.
			if err := resp.ReadFrom(body[5:]); err != nil {
				t.Fatal(err)
			}
			if resp.ErrorCode != want {
				t.Errorf("Fetch as replica %d with node 2's certificate: error %d, want %d", replica, resp.ErrorCode, want)
			}
		}
	})
	t.Run("9095 join as node 9 with node 2's certificate", func(t *testing.T) {
		nc := dialAs(t, "9095", node2Pair)
		if _, err := nc.Write(first["9095"]); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(nc).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(line, "join for node 9 on a connection whose certificate names node 2") {
			t.Fatalf("answer %q, want a refusal naming both nodes", line)
		}
	})
	p := c.proc(1)
	for _, want := range []string{"refused a replication connection: TLS handshake failed", "refused a controller connection: TLS handshake failed",
		"is not from the CA of this broker's certificate", "refused a follower fetch", "refused a controller request"} {
		waitFor(t, want, 5*time.Second, func() bool { return p.logged(want) })
	}
	// The refusals are counted in broker 1's metrics, for an operator to
	// alarm on: the Fetch as replica 3 and the join as node 9 with node
	// 2's certificate, and the connection to 9093 with a certificate
	// naming no node. Handshakes refused are not peers' requests.
	body := httpGet(t, "http://"+net.JoinHostPort(host, "11001")+"/metrics")
	for _, want := range []string{
		`tributary_peer_refusals_total{listener="replication",reason="node_mismatch"} 1`,
		`tributary_peer_refusals_total{listener="controller",reason="node_mismatch"} 1`,
		`tributary_peer_refusals_total{listener="controller",reason="controller_duty"} 0`,
		`tributary_peer_refusals_total{listener="controller",reason="raft_rpc"} 0`,
		`tributary_peer_unbound_connections_total{listener="replication"} 1`,
		`tributary_peer_unbound_connections_total{listener="controller"} 0`,
		// The refused handshakes, on each port: the plaintext peer, the
		// one without a certificate, and the two with a certificate of a
		// CA other than the brokers' (another CA; the truststore's client
		// CA, refused by the peer check).
		`tributary_authentication_failures_total{listener="controller",mechanism="TLS",reason="not_tls"} 1`,
		`tributary_authentication_failures_total{listener="controller",mechanism="TLS",reason="no_certificate"} 1`,
		`tributary_authentication_failures_total{listener="controller",mechanism="TLS",reason="unknown_ca"} 2`,
		`tributary_authentication_failures_total{listener="controller",mechanism="TLS",reason="other"} 0`,
		`tributary_authentications_total{listener="controller",mechanism="TLS",result="failure"} 4`,
		`tributary_authentication_failures_total{listener="replication",mechanism="TLS",reason="not_tls"} 1`,
		`tributary_authentication_failures_total{listener="replication",mechanism="TLS",reason="no_certificate"} 1`,
		`tributary_authentication_failures_total{listener="replication",mechanism="TLS",reason="unknown_ca"} 2`,
		`tributary_authentications_total{listener="replication",mechanism="TLS",result="failure"} 4`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("broker 1's metrics have no line %q", want)
		}
	}
	// The other brokers' handshakes, and this test's with broker
	// certificates, succeeded.
	for _, l := range []string{"controller", "replication"} {
		prefix := `tributary_authentications_total{listener="` + l + `",mechanism="TLS",result="success"} `
		i := strings.Index(body, prefix)
		if i < 0 || strings.HasPrefix(body[i+len(prefix):], "0\n") {
			t.Errorf("broker 1's metrics count no successful TLS authentication on the %s listener", l)
		}
	}
	if t.Failed() {
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "tributary_authentication") {
				t.Log(line)
			}
		}
	}
}

// startOtherCA makes a certificate for host from a CA the cluster does not
// trust.
func startOtherCA(t *testing.T, host string) (tls.Certificate, error) {
	t.Helper()
	ca, err := tlstest.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("intruder", host)
	if err != nil {
		t.Fatal(err)
	}
	return leaf.TLSCertificate()
}
