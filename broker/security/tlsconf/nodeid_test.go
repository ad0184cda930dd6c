package tlsconf

import (
	"crypto/x509"
	"net/url"
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
