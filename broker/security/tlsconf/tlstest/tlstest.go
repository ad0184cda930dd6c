// Package tlstest makes throwaway certificate authorities and certificates
// for tests and test harnesses (the chaos and load-test clusters run their
// brokers over TLS with them): ECDSA P-256 keys, valid from an hour ago for
// a day, usable by servers and clients both.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/broker/security/tlsconf"
)

// CA is a certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate, what a truststore holds.
	PEM string
}

var serial atomic.Int64

// NewCA makes a self-signed CA named name.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating CA %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}, nil
}

// Pool is a certificate pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Leaf is a certificate with its key, PEM encoded.
type Leaf struct {
	// CertPEM is the certificate followed by the CA's (the chain).
	CertPEM string
	// KeyPEM is the PKCS#8 private key.
	KeyPEM string
}

// Keystore is the single PEM file a broker's ssl.keystore.location names:
// the key, then the chain.
func (l Leaf) Keystore() string { return l.KeyPEM + l.CertPEM }

// TLSCertificate is the pair for a crypto/tls client or server.
func (l Leaf) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair([]byte(l.CertPEM), []byte(l.KeyPEM))
}

// Issue makes a certificate with subject CN=cn (and O=Tributary tests),
// valid for hosts (IP addresses or DNS names), for server and client use.
func (ca *CA) Issue(cn string, hosts ...string) (Leaf, error) {
	return ca.IssueSubject(pkix.Name{CommonName: cn, Organization: []string{"Tributary tests"}}, hosts...)
}

// IssueNode is Issue for broker node id: its certificate names the node
// (tlsconf.NodeURI), as the provider's broker certificates do.
func (ca *CA) IssueNode(cn string, id int32, hosts ...string) (Leaf, error) {
	return ca.issue(pkix.Name{CommonName: cn, Organization: []string{"Tributary tests"}}, []*url.URL{tlsconf.NodeURI(id)}, hosts)
}

// IssueSubject is Issue with a whole subject.
func (ca *CA) IssueSubject(subject pkix.Name, hosts ...string) (Leaf, error) {
	return ca.issue(subject, nil, hosts)
}

// IssueValid issues a certificate valid from notBefore to notAfter (the
// others are valid from an hour ago for a day), for tests of expiry and of
// which of two certificates outlives the other.
func (ca *CA) IssueValid(cn string, notBefore, notAfter time.Time, hosts ...string) (Leaf, error) {
	return ca.issueValid(pkix.Name{CommonName: cn}, nil, hosts, notBefore, notAfter)
}

func (ca *CA) issue(subject pkix.Name, uris []*url.URL, hosts []string) (Leaf, error) {
	return ca.issueValid(subject, uris, hosts, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

func (ca *CA) issueValid(subject pkix.Name, uris []*url.URL, hosts []string, notBefore, notAfter time.Time) (Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Leaf{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      subject,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         uris,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return Leaf{}, fmt.Errorf("issuing a certificate for %s: %w", subject.CommonName, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Leaf{}, err
	}
	return Leaf{
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + ca.PEM,
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})),
	}, nil
}

// WriteFile replaces path's content with mode 0600 through a rename, as a
// certificate rotation tool does, so that a reader never sees half a file.
func WriteFile(path, content string) error {
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
