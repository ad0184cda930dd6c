package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// A broker certificate names the node it was issued to with a URI subject
// alternative name, tributary://node/<id>. A URI, not a DNS name: clients
// and peers match the host they dial against DNS and IP names only (RFC
// 6125; Go's and Java's verifiers ignore URIs), so the node name can never
// make a certificate valid for a host it was not issued for, and no DNS
// zone can hold a name that looks like it. Every broker certificate of a
// cluster carries the same subject (one principal, in super.users), so
// this name is the only thing that tells one broker's certificate from
// another's.
const (
	nodeURIScheme = "tributary"
	nodeURIHost   = "node"
)

// NodeURI is the subject alternative name of node id's certificate.
func NodeURI(id int32) *url.URL {
	return &url.URL{Scheme: nodeURIScheme, Host: nodeURIHost, Path: "/" + strconv.FormatInt(int64(id), 10)}
}

// CertificateNodeID is the node id cert names (ok false when it names
// none). A certificate naming two different nodes, or a node URI that is
// not a non-negative id, is an error: a CA that issued it is not the
// provider's, and nothing it says about the node can be trusted.
func CertificateNodeID(cert *x509.Certificate) (id int32, ok bool, err error) {
	for _, u := range cert.URIs {
		if u.Scheme != nodeURIScheme || u.Host != nodeURIHost {
			continue
		}
		s := strings.TrimPrefix(u.Path, "/")
		n, perr := strconv.ParseInt(s, 10, 32)
		if perr != nil || n < 0 || u.Path != "/"+strconv.FormatInt(n, 10) || u.RawQuery != "" || u.Fragment != "" {
			return 0, false, fmt.Errorf("certificate %s: %q does not name a node id (want %s)", cert.Subject, u, NodeURI(0))
		}
		if ok && int32(n) != id {
			return 0, false, fmt.Errorf("certificate %s names two nodes, %d and %d", cert.Subject, id, n)
		}
		id, ok = int32(n), true
	}
	return id, ok, nil
}

// PeerNodeID is CertificateNodeID of the certificate a TLS peer presented
// (ok false when it presented none, or one naming no node).
func PeerNodeID(cs tls.ConnectionState) (id int32, ok bool, err error) {
	if len(cs.PeerCertificates) == 0 {
		return 0, false, nil
	}
	return CertificateNodeID(cs.PeerCertificates[0])
}
