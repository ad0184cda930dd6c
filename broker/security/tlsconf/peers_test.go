package tlsconf

import (
	"crypto/x509/pkix"
	"strings"
	"testing"
)

// TestPeersOnlyTheBrokersCA: with one truststore holding the cluster CA
// and the CA of client certificates (as a broker-wide ssl.truststore does
// beside a mutual-TLS client listener), a listener between brokers
// accepts the other brokers, in either direction and with or without
// endpoint identification, and refuses a client certificate the
// mutual-TLS listener accepts.
func TestPeersOnlyTheBrokersCA(t *testing.T) {
	clusterCA, clientCA := newCA(t, "cluster"), newCA(t, "clients")
	trust := clusterCA.pem + clientCA.pem
	load := func(c *ca, n int64, cn, verifyHost string) *TLS {
		t.Helper()
		l := c.issue(t, n, pkix.Name{CommonName: cn}, nil)
		s, err := Load(MapGetter(map[string]string{
			"ssl.keystore.certificate.chain": l.certPEM, "ssl.keystore.key": l.keyPEM,
			"ssl.truststore.certificates": trust, "ssl.client.auth": "required",
			"ssl.endpoint.identification.algorithm": verifyHost,
		}), "REPLICATION")
		if err != nil {
			t.Fatal(err)
		}
		tl, err := New(s, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tl
	}
	b1, b2 := load(clusterCA, 1, "broker-1", "https"), load(clusterCA, 2, "broker-2", "")
	app := load(clientCA, 3, "app", "https")

	tests := []struct {
		name   string
		server *TLS
		peers  bool // the server is a listener between brokers
		client func() *TLS
		peer   bool // the client dials with Peers
		ok     bool
	}{
		{"broker to broker", b2, true, func() *TLS { return b1 }, true, true},
		{"broker to broker, no endpoint identification", b1, true, func() *TLS { return b2 }, true, true},
		{"client certificate on the replication listener", b2, true, func() *TLS { return app }, false, false},
		{"client certificate, as if it were a broker", b2, true, func() *TLS { return app }, true, false},
		{"a broker dialing a server with a client certificate", app, false, func() *TLS { return b1 }, true, false},
		{"the same client certificate on a mutual-TLS client listener", b2, false, func() *TLS { return app }, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.server.ServerConfig()
			if tc.peers {
				cfg = tc.server.Peers().ServerConfig()
			}
			srv := serveWith(t, tc.server, cfg)
			c := tc.client().ClientConfig("127.0.0.1")
			if tc.peer {
				c = tc.client().Peers().ClientConfig("127.0.0.1")
			}
			_, err := handshake(t, srv.addr, c)
			r := srv.next(t)
			if tc.ok {
				if err != nil || r.err != nil {
					t.Fatalf("refused: client %v, server %v", err, r.err)
				}
				return
			}
			if err == nil && r.err == nil {
				t.Fatalf("accepted %q", r.principal)
			}
			if tc.peers && tc.peer == false && (r.err == nil || !strings.Contains(r.err.Error(), "not from the CA of this broker's certificate")) {
				t.Fatalf("server's refusal %v, want the peer check's", r.err)
			}
		})
	}
}

// TestPeersOwnCertificateOutsideTheTruststore: a broker whose own
// certificate does not chain to its truststore accepts no peer, and says
// why.
func TestPeersOwnCertificateOutsideTheTruststore(t *testing.T) {
	clusterCA, other := newCA(t, "cluster"), newCA(t, "other")
	mk := func(c *ca, n int64) *TLS {
		l := c.issue(t, n, pkix.Name{CommonName: "broker"}, nil)
		s, err := Load(MapGetter(map[string]string{
			"ssl.keystore.certificate.chain": l.certPEM, "ssl.keystore.key": l.keyPEM,
			"ssl.truststore.certificates": clusterCA.pem, "ssl.client.auth": "required",
		}), "CONTROLLER")
		if err != nil {
			t.Fatal(err)
		}
		tl, err := New(s, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tl
	}
	stray, b1 := mk(other, 1), mk(clusterCA, 2)
	if err := b1.Peers().Check(); err != nil {
		t.Fatalf("a broker of the cluster CA: %v", err)
	}
	if err := stray.Peers().Check(); err == nil || !strings.Contains(err.Error(), "does not chain to the truststore") {
		t.Fatalf("Check of a certificate outside the truststore: %v", err)
	}
	srv := serveWith(t, stray, stray.Peers().ServerConfig())
	// The client takes any server, so that the server's check is reached.
	c := b1.ClientConfig("127.0.0.1")
	c.InsecureSkipVerify = true
	_, _ = handshake(t, srv.addr, c)
	if r := srv.next(t); r.err == nil || !strings.Contains(r.err.Error(), "does not chain to the truststore") {
		t.Fatalf("server's refusal %v", r.err)
	}
}
