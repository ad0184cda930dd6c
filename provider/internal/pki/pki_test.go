package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/security/tlsconf"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("orders", "tc-0123456789abcdef", now)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestNewCAAndIssue(t *testing.T) {
	ca := mustCA(t)
	if pub, ok := ca.Cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("CA key is %T, want ECDSA P-256", ca.Cert.PublicKey)
	}
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("CA certificate constraints: IsCA %v MaxPathLenZero %v usage %v", ca.Cert.IsCA, ca.Cert.MaxPathLenZero, ca.Cert.KeyUsage)
	}
	// The CA round-trips through its PEM, as it does through the state.
	again, err := ParseCA(ca.CertPEM, ca.KeyPEM, now)
	if err != nil {
		t.Fatalf("ParseCA of a CA NewCA made: %v", err)
	}
	leaf, err := again.Issue(Request{
		Subject: BrokerSubject("tc-0123456789abcdef"), Hosts: []string{"10.0.1.5", "ip-10-0-1-5.ec2.internal"},
		NotBefore: now, Validity: 48 * time.Hour, Server: true, Client: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, tt := range []struct {
		name string
		opts x509.VerifyOptions
		ok   bool
	}{
		{"by IP as a server", x509.VerifyOptions{DNSName: "10.0.1.5", Roots: pool, CurrentTime: now.Add(time.Hour)}, true},
		{"by DNS name", x509.VerifyOptions{DNSName: "ip-10-0-1-5.ec2.internal", Roots: pool, CurrentTime: now.Add(time.Hour)}, true},
		{"as a client", x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, true},
		{"another broker's address", x509.VerifyOptions{DNSName: "10.0.2.5", Roots: pool, CurrentTime: now}, false},
		{"after it expired", x509.VerifyOptions{DNSName: "10.0.1.5", Roots: pool, CurrentTime: now.Add(49 * time.Hour)}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := leaf.Cert.Verify(tt.opts)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify: %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if !strings.HasSuffix(leaf.CertPEM, ca.CertPEM) || strings.Count(leaf.CertPEM, "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("the leaf's PEM is not the leaf then the CA:\n%s", leaf.CertPEM)
	}
	if got := leaf.Cert.Subject.String(); got != "CN=tributary-broker,OU=tc-0123456789abcdef,O=Tributary" {
		t.Fatalf("subject %q", got)
	}
	if !strings.Contains(leaf.KeyPEM, "BEGIN PRIVATE KEY") {
		t.Fatal("the key is not PKCS#8")
	}
}

func TestIssueNeverOutlivesTheCA(t *testing.T) {
	ca := mustCA(t)
	leaf, err := ca.Issue(Request{Subject: AdminSubject("x"), NotBefore: now, Validity: 2 * CAValidity, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Fatalf("leaf ends %s, CA %s", leaf.Cert.NotAfter, ca.Cert.NotAfter)
	}
	if _, err := ca.Issue(Request{Subject: AdminSubject("x"), NotBefore: now}); err == nil {
		t.Fatal("a zero validity was accepted")
	}
}

// selfSigned makes a certificate with its key, for the refusals below.
func selfSigned(t *testing.T, isCA bool, usage x509.KeyUsage, from, to time.Time) (string, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "user CA"},
		NotBefore: from, NotAfter: to, IsCA: isCA, BasicConstraintsValid: true, KeyUsage: usage}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
}

func TestParseCA(t *testing.T) {
	goodCert, goodKey := selfSigned(t, true, x509.KeyUsageCertSign, now.Add(-time.Hour), now.Add(time.Hour))
	leafCert, leafKey := selfSigned(t, false, x509.KeyUsageDigitalSignature, now.Add(-time.Hour), now.Add(time.Hour))
	noSignCert, noSignKey := selfSigned(t, true, x509.KeyUsageDigitalSignature, now.Add(-time.Hour), now.Add(time.Hour))
	oldCert, oldKey := selfSigned(t, true, x509.KeyUsageCertSign, now.Add(-2*time.Hour), now.Add(-time.Hour))
	other := mustCA(t)
	for _, tt := range []struct {
		name, cert, key, want string
	}{
		{"an RSA CA in PKCS#1", goodCert, goodKey, ""},
		{"the key of another certificate", goodCert, other.KeyPEM, "is not the key of certificate_pem"},
		{"a leaf certificate", leafCert, leafKey, "is not a CA certificate"},
		{"a CA that may not sign", noSignCert, noSignKey, "lacks keyCertSign"},
		{"an expired CA", oldCert, oldKey, "not now"},
		{"two certificates", goodCert + other.CertPEM, goodKey, "holds 2 certificates"},
		{"no certificate", "hello", goodKey, "holds no PEM certificate"},
		{"a key where the certificate belongs", goodKey, goodKey, `"RSA PRIVATE KEY" PEM block`},
		{"an encrypted key", goodCert, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", "is encrypted"},
		{"garbage key", goodCert, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "is not a readable private key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ca, err := ParseCA(tt.cert, tt.key, now)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := ca.Issue(Request{Subject: BrokerSubject("c"), Hosts: []string{"10.0.0.1"}, NotBefore: now, Validity: time.Hour, Server: true}); err != nil {
					t.Fatalf("issuing with a user CA: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseCA: %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY-----") {
				t.Fatalf("the error quotes the key: %v", err)
			}
		})
	}
}

func TestParseTrustBundle(t *testing.T) {
	a, b := mustCA(t), mustCA(t)
	leaf, err := a.Issue(Request{Subject: AdminSubject("c"), NotBefore: now, Validity: time.Hour, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ParseTrustBundle("# clients\n"+a.CertPEM+b.CertPEM, now)
	if err != nil || len(certs) != 2 {
		t.Fatalf("two CAs: %d, %v", len(certs), err)
	}
	if got := Bundle(certs[0], certs[1], certs[0]); strings.Count(got, "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("Bundle keeps duplicates:\n%s", got)
	}
	if _, err := ParseTrustBundle(leaf.CertPEM, now); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Fatalf("a leaf in a trust bundle: %v", err)
	}
	if _, err := ParseTrustBundle(a.CertPEM, now.Add(CAValidity+time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired CA in a trust bundle: %v", err)
	}
}

func TestParseValidity(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"395d", 395 * 24 * time.Hour, ""},
		{"8760h", 8760 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"30s", 0, "shorter than a minute"},
		{"3651d", 0, "longer than ten years"},
		{"1y", 0, "neither a duration"},
		{"1.5d", 0, "not a number of days"},
		{"d", 0, "not a number of days"},
	} {
		got, err := ParseValidity(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseValidity(%q) = %v, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseValidity(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestRenewalDue(t *testing.T) {
	const v = 300 * time.Hour
	for _, tt := range []struct {
		after time.Duration
		due   bool
	}{
		{0, false}, {199 * time.Hour, false}, {200 * time.Hour, true}, {299 * time.Hour, true}, {400 * time.Hour, true},
	} {
		if got := RenewalDue(now, v, now.Add(tt.after)); got != tt.due {
			t.Errorf("%s after issue: due %v, want %v", tt.after, got, tt.due)
		}
	}
}

func TestIssueHosts(t *testing.T) {
	ca := mustCA(t)
	leaf, err := ca.Issue(Request{Subject: BrokerSubject("c"), Hosts: []string{"::1", "a.example", "a.example", ""}, NotBefore: now, Validity: time.Hour, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.Cert.IPAddresses) != 1 || !leaf.Cert.IPAddresses[0].Equal(net.ParseIP("::1")) || len(leaf.Cert.DNSNames) != 1 {
		t.Fatalf("SANs: %v %v", leaf.Cert.IPAddresses, leaf.Cert.DNSNames)
	}
}

func TestPrincipalIsWhatTheBrokerSees(t *testing.T) {
	ca := mustCA(t)
	leaf, err := ca.Issue(Request{Subject: AdminSubject("tc-1"), NotBefore: now, Validity: time.Hour, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	want, err := tlsconf.DistinguishedName(leaf.Cert)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Principal(AdminSubject("tc-1"))
	if err != nil || got != "User:"+want || got != "User:CN=tributary-admin,OU=tc-1,O=Tributary" {
		t.Fatalf("Principal = %q, %v; the broker names the certificate User:%s", got, err, want)
	}
}

// TestCertificateRenewalTime reads back, from an issued certificate, when it
// was issued, for how long, and when it is due: two thirds into that
// validity, not counting the backdating.
func TestCertificateRenewalTime(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ca, err := NewCA("test", "tc-renewal", now)
	if err != nil {
		t.Fatal(err)
	}
	for _, validity := range []time.Duration{4 * time.Minute, 8760 * time.Hour} {
		leaf, err := ca.Issue(Request{Subject: BrokerSubject("tc-renewal"), Hosts: []string{"127.0.0.1"}, NotBefore: now, Validity: validity, Server: true})
		if err != nil {
			t.Fatal(err)
		}
		issued, got := IssuedFor(leaf.Cert)
		if !issued.Equal(now) || got != validity {
			t.Errorf("IssuedFor: issued %s for %s, want %s for %s", issued, got, now, validity)
		}
		if want := now.Add(validity * 2 / 3); !CertificateRenewalTime(leaf.Cert).Equal(want) {
			t.Errorf("validity %s: renewal at %s, want %s", validity, CertificateRenewalTime(leaf.Cert), want)
		}
	}
}
