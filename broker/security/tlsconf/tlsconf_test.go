package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLoadSettings(t *testing.T) {
	c := newCA(t, "ca")
	l := c.issue(t, 2, pkix.Name{CommonName: "broker"}, nil)
	inline := map[string]string{"ssl.keystore.certificate.chain": l.certPEM, "ssl.keystore.key": l.keyPEM}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range inline {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	s, err := Load(MapGetter(inline), "SSL")
	if err != nil {
		t.Fatal(err)
	}
	if s.MinVersion != tls.VersionTLS12 || s.MaxVersion != tls.VersionTLS13 || s.ClientAuth != tls.NoClientCert || !s.VerifyHostname || s.CipherSuites != nil {
		t.Fatalf("defaults: %+v", s)
	}
	s, err = Load(MapGetter(with(map[string]string{
		"ssl.client.auth": "none", "listener.name.mtls.ssl.client.auth": "required", "ssl.truststore.certificates": c.pem,
		"ssl.enabled.protocols": "TLSv1.3", "ssl.endpoint.identification.algorithm": "",
	})), "MTLS")
	if err != nil || s.ClientAuth != tls.RequireAndVerifyClientCert || s.MinVersion != tls.VersionTLS13 || s.VerifyHostname {
		t.Fatalf("listener override: %+v %v", s, err)
	}
	s, err = Load(MapGetter(with(map[string]string{
		"ssl.cipher.suites": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256",
	})), "SSL")
	if err != nil || len(s.CipherSuites) != 1 || s.CipherSuites[0] != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
		t.Fatalf("cipher suites: %+v %v", s, err)
	}

	tests := []struct {
		name     string
		settings map[string]string
		want     string
	}{
		{"no keystore", map[string]string{}, "ssl.keystore.location: no keystore"},
		{"JKS", with(map[string]string{"ssl.keystore.type": "JKS"}), `ssl.keystore.type: "JKS" is not supported`},
		{"both keystores", with(map[string]string{"ssl.keystore.location": "/k.pem"}), "ssl.keystore.location: set together"},
		{"chain without key", map[string]string{"ssl.keystore.certificate.chain": l.certPEM}, "go together"},
		{"key password", with(map[string]string{"ssl.key.password": "x"}), "ssl.key.password: encrypted"},
		{"client auth without truststore", with(map[string]string{"ssl.client.auth": "required"}), "ssl.client.auth: client certificates"},
		{"client auth typo", with(map[string]string{"ssl.client.auth": "always"}), `ssl.client.auth: "always"`},
		{"TLS 1.1", with(map[string]string{"ssl.enabled.protocols": "TLSv1.1,TLSv1.2"}), "TLSv1.1 is older than TLS 1.2"},
		{"no protocol", with(map[string]string{"ssl.enabled.protocols": " , "}), "no protocol enabled"},
		{"insecure suite", with(map[string]string{"ssl.cipher.suites": "TLS_RSA_WITH_RC4_128_SHA"}), "insecure"},
		{"unknown suite", with(map[string]string{"ssl.cipher.suites": "TLS_FOO"}), "not a cipher suite"},
		{"only TLS 1.3 suites with TLS 1.2 on", with(map[string]string{"ssl.cipher.suites": "TLS_AES_128_GCM_SHA256"}), "names no TLS 1.2 suite"},
		{"bad endpoint identification", with(map[string]string{"ssl.endpoint.identification.algorithm": "ldaps"}), "ssl.endpoint.identification.algorithm"},
		{"bad rules", with(map[string]string{"ssl.principal.mapping.rules": "default"}), "ssl.principal.mapping.rules: invalid rule"},
		{"bad protocol", with(map[string]string{"ssl.protocol": "SSLv3"}), "ssl.protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(MapGetter(tt.settings), "SSL")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "listener SSL") {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("the error quotes the key: %v", err)
			}
		})
	}
	// Every problem at once.
	_, err = Load(MapGetter(map[string]string{"ssl.client.auth": "always", "ssl.enabled.protocols": "TLSv1"}), "SSL")
	for _, want := range []string{"ssl.keystore.location", "ssl.client.auth", "ssl.enabled.protocols"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err %v does not name %s", err, want)
		}
	}
}

// server serves TLS on loopback with cfg and reports each handshake's
// principal (or error).
type server struct {
	addr    string
	results chan result
}

type result struct {
	principal string
	err       error
}

func serve(t *testing.T, tl *TLS) *server {
	t.Helper()
	return serveWith(t, tl, tl.ServerConfig())
}

// serveWith is serve with the server configuration cfg.
func serveWith(t *testing.T, tl *TLS, cfg *tls.Config) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{addr: ln.Addr().String(), results: make(chan result, 16)}
	tln := tls.NewListener(ln, cfg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				s.results <- result{err: err}
				c.Close()
				continue
			}
			p, err := tl.Principal(tc.ConnectionState())
			s.results <- result{principal: p, err: err}
			_, _ = tc.Write([]byte("ok"))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return s
}

func (s *server) next(t *testing.T) result {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no handshake ended")
		return result{}
	}
}

// handshake connects with cfg and returns the server certificate's serial.
func handshake(t *testing.T, addr string, cfg *tls.Config) (int64, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	// TLS 1.3 reports a refused client certificate on the first read.
	if _, err := io.ReadAll(c); err != nil {
		return 0, err
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestCertificateRotation replaces the keystore file under a running
// listener: the next handshake presents the new certificate, a broken file
// keeps the old one in service.
func TestCertificateRotation(t *testing.T) {
	c := newCA(t, "ca")
	dir := t.TempDir()
	keystore := filepath.Join(dir, "broker.pem")
	writeFile(t, keystore, c.issue(t, 100, pkix.Name{CommonName: "broker"}, nil).keystoreFile())
	s, err := Load(MapGetter(map[string]string{"ssl.keystore.type": "PEM", "ssl.keystore.location": keystore}), "SSL")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	tl, err := New(s, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, tl)
	roots := x509.NewCertPool()
	roots.AddCert(c.cert)
	client := &tls.Config{RootCAs: roots, ServerName: "localhost"}

	serial := func() int64 {
		t.Helper()
		n, err := handshake(t, srv.addr, client)
		if err != nil {
			t.Fatal(err)
		}
		srv.next(t)
		return n
	}
	if got := serial(); got != 100 {
		t.Fatalf("serial %d, want 100", got)
	}
	writeFile(t, keystore, c.issue(t, 101, pkix.Name{CommonName: "broker"}, nil).keystoreFile())
	if got := serial(); got != 101 {
		t.Fatalf("after rotation: serial %d, want 101", got)
	}
	// In-place rewrite (no rename), as cp or a configuration tool does.
	if err := os.WriteFile(keystore, []byte(c.issue(t, 102, pkix.Name{CommonName: "broker"}, nil).keystoreFile()), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != 102 {
		t.Fatalf("after an in-place rewrite: serial %d, want 102", got)
	}
	// Half a file (the key without its certificate): the old pair serves.
	next := c.issue(t, 103, pkix.Name{CommonName: "broker"}, nil)
	writeFile(t, keystore, next.keyPEM)
	if got := serial(); got != 102 {
		t.Fatalf("with a broken keystore: serial %d, want the previous 102", got)
	}
	if !strings.Contains(logs.String(), "cannot be read; the previous one stays in use") || strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Fatalf("log: %s", logs.String())
	}
	writeFile(t, keystore, next.keystoreFile())
	if got := serial(); got != 103 {
		t.Fatalf("once repaired: serial %d, want 103", got)
	}
}

func TestMutualTLS(t *testing.T) {
	good, other := newCA(t, "clients"), newCA(t, "elsewhere")
	brokerCert := good.issue(t, 1, pkix.Name{CommonName: "broker"}, nil)
	dir := t.TempDir()
	trust := filepath.Join(dir, "ca.pem")
	writeFile(t, trust, good.pem)
	base := map[string]string{
		"ssl.keystore.certificate.chain": brokerCert.certPEM, "ssl.keystore.key": brokerCert.keyPEM,
		"ssl.truststore.location":     trust,
		"ssl.principal.mapping.rules": "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L,DEFAULT",
	}
	roots := x509.NewCertPool()
	roots.AddCert(good.cert)
	// clientWith presents l whatever CAs the server asks for (a Go client
	// otherwise withholds a certificate the server would not accept).
	clientWith := func(l *leaf) *tls.Config {
		cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
		if l != nil {
			kp, err := tls.X509KeyPair([]byte(l.certPEM), []byte(l.keyPEM))
			if err != nil {
				t.Fatal(err)
			}
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
		}
		return cfg
	}
	app := good.issue(t, 10, pkix.Name{CommonName: "app", OrganizationalUnit: []string{"team"}, Organization: []string{"Acme, Inc."}, Country: []string{"US"}}, nil)
	svc := good.issue(t, 11, pkix.Name{CommonName: "Billing", OrganizationalUnit: []string{"ServiceUsers"}}, nil)
	stranger := other.issue(t, 12, pkix.Name{CommonName: "app"}, nil)

	for _, mode := range []string{"required", "requested"} {
		t.Run(mode, func(t *testing.T) {
			settings := map[string]string{"ssl.client.auth": mode}
			for k, v := range base {
				settings[k] = v
			}
			s, err := Load(MapGetter(settings), "SSL")
			if err != nil {
				t.Fatal(err)
			}
			tl, err := New(s, nil)
			if err != nil {
				t.Fatal(err)
			}
			srv := serve(t, tl)
			tests := []struct {
				name      string
				client    *leaf
				principal string // "" : refused
			}{
				{"subject as principal", &app, `User:CN=app,OU=team,O=Acme\, Inc.,C=US`},
				{"mapped by a rule", &svc, "User:billing"},
				{"certificate from another CA", &stranger, ""},
				{"no certificate", nil, map[string]string{"required": "", "requested": Anonymous}[mode]},
			}
			for _, tt := range tests {
				_, cerr := handshake(t, srv.addr, clientWith(tt.client))
				r := srv.next(t)
				if tt.principal == "" {
					if r.err == nil || cerr == nil {
						t.Errorf("%s: accepted as %q (client err %v)", tt.name, r.principal, cerr)
					}
					continue
				}
				if cerr != nil || r.err != nil || r.principal != tt.principal {
					t.Errorf("%s: principal %q, server err %v, client err %v; want %q", tt.name, r.principal, r.err, cerr, tt.principal)
				}
			}
		})
	}
	// A CA added to the truststore file is trusted from the next
	// handshake on.
	settings := map[string]string{"ssl.client.auth": "required"}
	for k, v := range base {
		settings[k] = v
	}
	s, err := Load(MapGetter(settings), "SSL")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := New(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, tl)
	if _, err := handshake(t, srv.addr, clientWith(&stranger)); err == nil {
		t.Fatal("a stranger accepted")
	}
	srv.next(t)
	writeFile(t, trust, good.pem+other.pem)
	if _, err := handshake(t, srv.addr, clientWith(&stranger)); err != nil {
		t.Fatalf("after the truststore gained its CA: %v", err)
	}
	if r := srv.next(t); r.principal != "User:CN=app" {
		t.Fatalf("principal %q", r.principal)
	}
}

// TestBrokerToBroker: two brokers with certificates of the cluster CA
// connect with each other's ClientConfig and a listener requiring client
// certificates; a peer that speaks plaintext, or holds another CA's
// certificate, is refused.
func TestBrokerToBroker(t *testing.T) {
	clusterCA, other := newCA(t, "cluster"), newCA(t, "other")
	broker := func(c *ca, n int64, verifyHost string) *TLS {
		l := c.issue(t, n, pkix.Name{CommonName: "broker-" + string(rune('0'+n))}, nil)
		s, err := Load(MapGetter(map[string]string{
			"ssl.keystore.certificate.chain": l.certPEM, "ssl.keystore.key": l.keyPEM,
			"ssl.truststore.certificates": clusterCA.pem, "ssl.client.auth": "required",
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
	b1, b2, rogue := broker(clusterCA, 1, "https"), broker(clusterCA, 2, ""), broker(other, 3, "https")
	srv := serve(t, b2)

	if _, err := handshake(t, srv.addr, b1.ClientConfig("127.0.0.1")); err != nil {
		t.Fatalf("broker 1 to broker 2: %v", err)
	}
	if r := srv.next(t); r.err != nil || r.principal != "User:CN=broker-1" {
		t.Fatalf("broker 2 sees %+v", r)
	}
	// Without endpoint identification the chain is still checked.
	srv1 := serve(t, b1)
	if _, err := handshake(t, srv1.addr, b2.ClientConfig("no-such-name")); err != nil {
		t.Fatalf("broker 2 to broker 1 without hostname check: %v", err)
	}
	srv1.next(t)
	rogueSrv := serve(t, rogue)
	if _, err := handshake(t, rogueSrv.addr, b2.ClientConfig("127.0.0.1")); err == nil {
		t.Fatal("broker 2 accepted a server with another CA's certificate")
	}
	rogueSrv.next(t)
	if _, err := handshake(t, srv.addr, rogue.ClientConfig("127.0.0.1")); err == nil {
		t.Fatal("a client with another CA's certificate got in")
	}
	if r := srv.next(t); r.err == nil {
		t.Fatalf("broker 2 accepted %q", r.principal)
	}
	// A plaintext Kafka request (ApiVersions) on the TLS port.
	conn, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte{0, 0, 0, 10, 0, 18, 0, 3, 0, 0, 0, 1, 0, 0})
	if r := srv.next(t); r.err == nil || !strings.Contains(r.err.Error(), "first record does not look like a TLS handshake") {
		t.Fatalf("plaintext peer: %+v", r)
	}
	conn.Close()
	// The dialer helper does the same as ClientConfig.
	c, err := b1.Dialer(&net.Dialer{Timeout: 5 * time.Second})(t.Context(), "tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(c)
	c.Close()
	if r := srv.next(t); r.principal != "User:CN=broker-1" {
		t.Fatalf("via Dialer: %+v", r)
	}
}

func TestTLSVersions(t *testing.T) {
	c := newCA(t, "ca")
	l := c.issue(t, 2, pkix.Name{CommonName: "broker"}, nil)
	roots := x509.NewCertPool()
	roots.AddCert(c.cert)
	for _, tt := range []struct {
		enabled      string
		clientMax    uint16
		wantVersion  uint16
		wantRejected bool
	}{
		{"TLSv1.2,TLSv1.3", tls.VersionTLS13, tls.VersionTLS13, false}, // 1.3 preferred
		{"TLSv1.2,TLSv1.3", tls.VersionTLS12, tls.VersionTLS12, false},
		{"TLSv1.3", tls.VersionTLS12, 0, true},
		{"TLSv1.2", tls.VersionTLS13, tls.VersionTLS12, false},
	} {
		s, err := Load(MapGetter(map[string]string{"ssl.keystore.certificate.chain": l.certPEM, "ssl.keystore.key": l.keyPEM, "ssl.enabled.protocols": tt.enabled}), "SSL")
		if err != nil {
			t.Fatal(err)
		}
		tl, err := New(s, nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := serve(t, tl)
		conn, err := tls.Dial("tcp", srv.addr, &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tt.clientMax, MinVersion: tls.VersionTLS10})
		srv.next(t)
		if tt.wantRejected {
			if err == nil {
				conn.Close()
				t.Errorf("%s: a TLS 1.2 client got in", tt.enabled)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.enabled, err)
		}
		if v := conn.ConnectionState().Version; v != tt.wantVersion {
			t.Errorf("%s, client max %x: version %x, want %x", tt.enabled, tt.clientMax, v, tt.wantVersion)
		}
		conn.Close()
	}
}
