package tlsconf

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/url"
	"strings"
	"testing"
)

// TestCertificateNodeID: the node a certificate names is read from its
// tributary://node/<id> URI; other URIs are ignored; no such URI names no
// node; a malformed one, or two nodes, is an error rather than a guess.
func TestCertificateNodeID(t *testing.T) {
	uris := func(ss ...string) *x509.Certificate {
		c := &x509.Certificate{}
		for _, s := range ss {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			c.URIs = append(c.URIs, u)
		}
		return c
	}
	for _, tc := range []struct {
		name    string
		cert    *x509.Certificate
		id      int32
		ok, bad bool
	}{
		{name: "none", cert: uris()},
		{name: "other URIs only", cert: uris("spiffe://example.org/broker/2", "tributary://cluster/2")},
		{name: "node 2", cert: uris("tributary://node/2"), id: 2, ok: true},
		{name: "node 0", cert: uris("tributary://node/0"), id: 0, ok: true},
		{name: "beside another URI", cert: uris("spiffe://example.org/x", "tributary://node/5"), id: 5, ok: true},
		{name: "twice the same", cert: uris("tributary://node/5", "tributary://node/5"), id: 5, ok: true},
		{name: "two nodes", cert: uris("tributary://node/2", "tributary://node/3"), bad: true},
		{name: "not a number", cert: uris("tributary://node/two"), bad: true},
		{name: "negative", cert: uris("tributary://node/-1"), bad: true},
		{name: "leading zero", cert: uris("tributary://node/02"), bad: true},
		{name: "over int32", cert: uris("tributary://node/2147483648"), bad: true},
		{name: "a path below", cert: uris("tributary://node/2/3"), bad: true},
		{name: "a query", cert: uris("tributary://node/2?as=3"), bad: true},
		{name: "empty", cert: uris("tributary://node/"), bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, ok, err := CertificateNodeID(tc.cert)
			if (err != nil) != tc.bad || ok != tc.ok || id != tc.id {
				t.Fatalf("got %d, %v, %v; want %d, %v, error %v", id, ok, err, tc.id, tc.ok, tc.bad)
			}
		})
	}
	if id, ok, err := CertificateNodeID(uris(NodeURI(7).String())); id != 7 || !ok || err != nil {
		t.Fatalf("NodeURI(7) = %s reads back as %d, %v, %v", NodeURI(7), id, ok, err)
	}
}

// TestPeersCheckNode: a broker whose own certificate names another node
// does not start (its peers would refuse all it sends); one naming its
// node, or none, does.
func TestPeersCheckNode(t *testing.T) {
	ca := newCA(t, "cluster")
	withURIs := func(uris ...string) *TLS {
		t.Helper()
		l := ca.issue(t, int64(10+len(uris)), pkix.Name{CommonName: "broker"}, nil)
		cert, key := parseLeaf(t, l)
		for _, s := range uris {
			u, _ := url.Parse(s)
			cert.URIs = append(cert.URIs, u)
		}
		der, err := x509.CreateCertificate(rand.Reader, cert, ca.cert, cert.PublicKey, ca.key)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Load(MapGetter(map[string]string{
			"ssl.keystore.certificate.chain": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + ca.pem,
			"ssl.keystore.key":               key, "ssl.truststore.certificates": ca.pem, "ssl.client.auth": "required",
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
	if err := withURIs(NodeURI(2).String()).Peers().CheckNode(2); err != nil {
		t.Errorf("node 2's certificate on node 2: %v", err)
	}
	if err := withURIs().Peers().CheckNode(2); err != nil {
		t.Errorf("a certificate naming no node on node 2: %v", err)
	}
	if err := withURIs(NodeURI(3).String()).Peers().CheckNode(2); err == nil || !strings.Contains(err.Error(), "names node 3, and this is node 2") {
		t.Errorf("node 3's certificate on node 2: %v", err)
	}
	if err := withURIs("tributary://node/x").Peers().CheckNode(2); err == nil {
		t.Error("a certificate with a malformed node name was accepted")
	}
}

// parseLeaf returns l's certificate as a template to sign again, and its
// key in PEM.
func parseLeaf(t *testing.T, l leaf) (*x509.Certificate, string) {
	t.Helper()
	b, _ := pem.Decode([]byte(l.certPEM))
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c, l.keyPEM
}
