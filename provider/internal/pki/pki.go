// Package pki is the cluster's certificates: the certificate authority the
// provider makes for a cluster (ECDSA P-256) or the one a user gives, the
// broker certificates it signs (server and client use, so that brokers
// present them to clients and to each other), the provider's own client
// certificate for clusters whose clients must present one, and the client
// CA bundles a cluster trusts.
//
// Broker private keys are made per issue and never kept by the provider: they
// travel only in a broker's KMS-encrypted boot secrets. A CA's private key is
// the caller's to keep (in Terraform state, marked sensitive).
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tributary/tributary/broker/security/tlsconf"
)

// Organization is the O of every subject the provider writes.
const Organization = "Tributary"

// CAValidity is how long a CA the provider makes is valid. Broker
// certificates are renewed well inside it; a CA is replaced only on purpose.
const CAValidity = 10 * 365 * 24 * time.Hour

// backdate starts every certificate a little in the past, so that a host
// whose clock is behind still accepts a certificate issued a moment ago.
const backdate = 5 * time.Minute

// CA is a certificate authority with its key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// CertPEM and KeyPEM are the certificate and the PKCS#8 key, PEM.
	CertPEM string
	KeyPEM  string
}

// NewCA makes a self-signed ECDSA P-256 CA for a cluster, valid from now
// for CAValidity, allowed to sign end-entity certificates only.
func NewCA(clusterName, clusterID string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         "Tributary " + clusterName + " CA",
			Organization:       []string{Organization},
			OrganizationalUnit: []string{clusterID},
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("reading back the CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(der), KeyPEM: keyPEM}, nil
}

// ParseCA reads a CA from its certificate and private key (PEM; the key
// PKCS#8, PKCS#1 or SEC 1, not encrypted). It refuses what cannot sign
// broker certificates today: a certificate that is not a CA, a CA whose
// key usage forbids signing certificates, a key that is not the
// certificate's, or a CA that has expired or is not valid yet.
func ParseCA(certPEM, keyPEM string, now time.Time) (*CA, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate_pem: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("certificate_pem holds %d certificates; give the CA certificate alone", len(certs))
	}
	cert := certs[0]
	if err := checkCA(cert); err != nil {
		return nil, fmt.Errorf("certificate_pem: %w", err)
	}
	if now.Before(cert.NotBefore) || !now.Before(cert.NotAfter) {
		return nil, fmt.Errorf("certificate_pem: the CA %q is valid from %s to %s, not now",
			cert.Subject.String(), cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("private_key_pem: %w", err)
	}
	if !samePublicKey(key.Public(), cert.PublicKey) {
		return nil, errors.New("private_key_pem is not the key of certificate_pem")
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(cert.Raw), KeyPEM: strings.TrimSpace(keyPEM) + "\n"}, nil
}

// checkCA refuses a certificate that may not sign other certificates.
func checkCA(cert *x509.Certificate) error {
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return fmt.Errorf("%q is not a CA certificate (its basic constraints do not say CA:TRUE)", cert.Subject.String())
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("%q may not sign certificates (its key usage lacks keyCertSign)", cert.Subject.String())
	}
	return nil
}

// Leaf is an issued certificate and its key.
type Leaf struct {
	Cert *x509.Certificate
	// CertPEM is the certificate followed by the CA's: the chain a broker
	// serves.
	CertPEM string
	// KeyPEM is the PKCS#8 private key.
	KeyPEM string
}

// Request is what an issued certificate says.
type Request struct {
	Subject pkix.Name
	// Hosts become subject alternative names: IP addresses and DNS names.
	Hosts []string
	// URIs become URI subject alternative names: a broker's node id
	// (tlsconf.NodeURI), which its peers bind its requests to.
	URIs []*url.URL
	// NotBefore and Validity place it in time; NotAfter never passes the
	// CA's.
	NotBefore time.Time
	Validity  time.Duration
	// Server and Client set the extended key usages.
	Server, Client bool
}

// Issue signs a new ECDSA P-256 key for req.
func (ca *CA) Issue(req Request) (*Leaf, error) {
	if req.Validity <= 0 {
		return nil, fmt.Errorf("certificate validity must be positive, got %s", req.Validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notBefore := req.NotBefore.Add(-backdate)
	notAfter := req.NotBefore.Add(req.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               req.Subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	if req.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if req.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	for _, h := range req.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" && !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	tmpl.URIs = req.URIs
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing a certificate for %q: %w", req.Subject.String(), err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("reading back the certificate for %q: %w", req.Subject.String(), err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &Leaf{Cert: cert, CertPEM: encodeCert(der) + ca.CertPEM, KeyPEM: keyPEM}, nil
}

// BrokerSubject is the subject of every broker certificate of a cluster.
// Brokers authenticate to each other with it on the replication and quorum
// listeners, so it is one principal for the whole cluster, named in
// super.users; the broker's own addresses are in the subject alternative
// names, which is what clients and peers check.
func BrokerSubject(clusterID string) pkix.Name {
	return pkix.Name{CommonName: "tributary-broker", OrganizationalUnit: []string{clusterID}, Organization: []string{Organization}}
}

// AdminSubject is the subject of the provider's own client certificate.
func AdminSubject(clusterID string) pkix.Name {
	return pkix.Name{CommonName: "tributary-admin", OrganizationalUnit: []string{clusterID}, Organization: []string{Organization}}
}

// ParseCertificates reads every CERTIFICATE block of a PEM text. Text
// outside the blocks (comments, as openssl writes them) is ignored; any
// other block type, an unreadable certificate or no certificate at all is
// an error.
func ParseCertificates(text string) ([]*x509.Certificate, error) {
	rest := []byte(text)
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("holds a %q PEM block where only certificates belong", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		return nil, errors.New("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	return out, nil
}

// ParseTrustBundle reads CA certificates that clients' certificates must
// chain to: each must be a CA certificate, unexpired at now.
func ParseTrustBundle(text string, now time.Time) ([]*x509.Certificate, error) {
	certs, err := ParseCertificates(text)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		if err := checkCA(c); err != nil {
			return nil, err
		}
		if !now.Before(c.NotAfter) {
			return nil, fmt.Errorf("the CA %q expired on %s", c.Subject.String(), c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return certs, nil
}

// Bundle writes certificates as one PEM text, each once, in order.
func Bundle(certs ...*x509.Certificate) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, c := range certs {
		fp := Fingerprint(c)
		if seen[fp] {
			continue
		}
		seen[fp] = true
		b.WriteString(encodeCert(c.Raw))
	}
	return b.String()
}

// Fingerprint is a certificate's SHA-256, hex.
func Fingerprint(c *x509.Certificate) string {
	h := sha256.Sum256(c.Raw)
	return hex.EncodeToString(h[:])
}

// RenewalDue reports whether certificates issued at issued, valid for
// validity, are due for renewal at now: from two thirds of their life on.
func RenewalDue(issued time.Time, validity time.Duration, now time.Time) bool {
	return !now.Before(RenewalTime(issued, validity))
}

// RenewalTime is when certificates issued at issued become due for renewal.
func RenewalTime(issued time.Time, validity time.Duration) time.Time {
	return issued.Add(validity / 3 * 2)
}

// CertificateRenewalTime is when a certificate Issue made is due for
// renewal: two thirds into the life it was issued for (NotBefore is
// backdated, which is not part of that life).
func CertificateRenewalTime(c *x509.Certificate) time.Time {
	return RenewalTime(IssuedFor(c))
}

// IssuedFor returns when a certificate Issue made was issued and the
// validity it was issued for.
func IssuedFor(c *x509.Certificate) (issued time.Time, validity time.Duration) {
	issued = c.NotBefore.Add(backdate)
	return issued, c.NotAfter.Sub(issued)
}

// ParseValidity reads a certificate validity: a Go duration ("8760h") or a
// number of days ("395d"). It must be at least a minute, so that a renewal
// at two thirds of it is still in the future when the apply ends.
func ParseValidity(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int64
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || fmt.Sprint(n) != days {
			return 0, fmt.Errorf("%q is not a number of days such as \"395d\"", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is neither a duration such as \"8760h\" nor days such as \"395d\"", s)
		}
	}
	switch {
	case d < time.Minute:
		return 0, fmt.Errorf("%q is shorter than a minute", s)
	case d > CAValidity:
		return 0, fmt.Errorf("%q is longer than ten years", s)
	}
	return d, nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating a serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func encodeCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func encodeKey(key crypto.Signer) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("encoding a private key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// parseKey reads one unencrypted private key. Errors never quote the key.
func parseKey(text string) (crypto.Signer, error) {
	block, rest := pem.Decode([]byte(text))
	if block == nil {
		return nil, errors.New("holds no PEM private key")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("holds more than one PEM block; give the CA's private key alone")
	}
	if _, encrypted := block.Headers["Proc-Type"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, errors.New("is encrypted; give the key without a passphrase (it is stored in the Terraform state, marked sensitive)")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("holds a %q PEM block, not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("is not a readable %s", strings.ToLower(block.Type))
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("holds a %T key, which cannot sign certificates here", key)
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ad, err1 := x509.MarshalPKIXPublicKey(a)
	bd, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(ad, bd)
}

// Principal is the Kafka principal a broker gives a client certificate with
// this subject: User: and the subject as Java's X500Principal writes it,
// which is what super.users and ACLs name.
func Principal(subject pkix.Name) (string, error) {
	raw, err := asn1.Marshal(subject.ToRDNSequence())
	if err != nil {
		return "", fmt.Errorf("encoding subject %q: %w", subject.String(), err)
	}
	dn, err := tlsconf.DistinguishedName(&x509.Certificate{RawSubject: raw})
	if err != nil {
		return "", err
	}
	return "User:" + dn, nil
}
