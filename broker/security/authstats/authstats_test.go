package authstats

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
)

// TestHandshakeFailureReasons runs real handshakes against a server that
// requires a client certificate of its CA and TLS 1.3, and checks the
// reason each refused client is counted under.
func TestHandshakeFailureReasons(t *testing.T) {
	ca, err := tlstest.NewCA("cluster CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlstest.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(ca *tlstest.CA, notBefore, notAfter time.Time) tls.Certificate {
		t.Helper()
		l, err := ca.IssueValid("client", notBefore, notAfter, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	now := time.Now()
	serverCert := leaf(ca, now.Add(-time.Hour), now.Add(time.Hour))
	good := leaf(ca, now.Add(-time.Hour), now.Add(time.Hour))
	server := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: ca.Pool(), MinVersion: tls.VersionTLS13}
	client := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: certs}
	}
	tls12 := client(good)
	tls12.MaxVersion = tls.VersionTLS12

	for _, tc := range []struct {
		name   string
		client func(net.Conn)
		want   Reason
		counts bool
	}{
		{"good certificate", func(c net.Conn) { _ = tls.Client(c, client(good)).Handshake() }, "", false},
		{"no certificate", func(c net.Conn) { _ = tls.Client(c, client()).Handshake() }, NoCertificate, true},
		// Go's client (and Java's) sends no certificate whose issuer is
		// not among the CAs the server names: no certificate, then.
		{"another CA, left out by the client", func(c net.Conn) {
			_ = tls.Client(c, client(leaf(other, now.Add(-time.Hour), now.Add(time.Hour)))).Handshake()
		}, NoCertificate, true},
		{"another CA, sent", func(c net.Conn) {
			cfg := client()
			cert := leaf(other, now.Add(-time.Hour), now.Add(time.Hour))
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
			_ = tls.Client(c, cfg).Handshake()
		}, UnknownCA, true},
		{"expired", func(c net.Conn) {
			_ = tls.Client(c, client(leaf(ca, now.Add(-2*time.Hour), now.Add(-time.Hour)))).Handshake()
		}, ExpiredCertificate, true},
		{"not yet valid", func(c net.Conn) {
			_ = tls.Client(c, client(leaf(ca, now.Add(time.Hour), now.Add(2*time.Hour)))).Handshake()
		}, ExpiredCertificate, true},
		{"TLS 1.2 only", func(c net.Conn) { _ = tls.Client(c, tls12).Handshake() }, ProtocolVersion, true},
		{"plaintext Kafka request", func(c net.Conn) { _, _ = c.Write([]byte{0, 0, 0, 20, 0, 18, 0, 3, 0, 0, 0, 1}) }, NotTLS, true},
		{"closed at once", func(net.Conn) {}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, cc := net.Pipe()
			done := make(chan struct{})
			go func() {
				defer close(done)
				tc.client(cc)
				cc.Close()
			}()
			srv := tls.Server(sc, server)
			_ = srv.SetDeadline(time.Now().Add(10 * time.Second))
			err := srv.Handshake()
			sc.Close()
			<-done
			if tc.counts || tc.want != "" {
				if err == nil {
					t.Fatal("handshake passed; want it refused")
				}
			}
			got, counts := HandshakeFailure(err)
			if got != tc.want || counts != tc.counts {
				t.Errorf("HandshakeFailure(%v) = %q, %v; want %q, %v", err, got, counts, tc.want, tc.counts)
			}
		})
	}
}

// TestListenerSeries checks the series a listener exports from its start,
// where each count lands, and that nothing a client names becomes a label.
func TestListenerSeries(t *testing.T) {
	l := NewListener("CLIENT_SASL", false, "SCRAM-SHA-512", "OAUTHBEARER")
	counts, failures := l.Series()
	// TLS (failure only), SCRAM (success, failure), OAUTHBEARER (success,
	// failure), unsupported (failure only).
	if len(counts) != 6 {
		t.Errorf("%d authentication series, want 6: %+v", len(counts), counts)
	}
	if want := len(tlsReasons) + len(scramReasons) + len(iamReasons) + 1; len(failures) != want {
		t.Errorf("%d failure series, want %d", len(failures), want)
	}
	for _, c := range counts {
		if c.Count != 0 {
			t.Errorf("%+v: not zero at the start", c)
		}
	}

	l.Success("SCRAM-SHA-512")
	l.Success(TLS) // not counted: SASL authenticates this listener
	l.Failure("SCRAM-SHA-512", BadPassword)
	l.Failure("SCRAM-SHA-512", BadPassword)
	l.Failure("SCRAM-SHA-512", TokenExpired) // not a SCRAM reason: other
	l.Failure("OAUTHBEARER", TokenExpired)
	l.Failure(TLS, UnknownCA)
	l.Failure("PLAIN", Malformed) // a client's mechanism name: unsupported
	var nilListener *Listener
	nilListener.Success(TLS)
	nilListener.Failure(TLS, Other)

	counts, failures = l.Series()
	got := map[string]int64{}
	for _, c := range counts {
		got[c.Mechanism+"/"+c.Result] = c.Count
	}
	for _, f := range failures {
		if f.Count != 0 {
			got[f.Mechanism+"/"+string(f.Reason)] = f.Count
		}
		if f.Mechanism == "PLAIN" {
			t.Errorf("a client's mechanism name became a label value: %+v", f)
		}
	}
	want := map[string]int64{
		"TLS/failure": 1, "TLS/unknown_ca": 1,
		"SCRAM-SHA-512/success": 1, "SCRAM-SHA-512/failure": 3, "SCRAM-SHA-512/bad_password": 2, "SCRAM-SHA-512/other": 1,
		"OAUTHBEARER/success": 0, "OAUTHBEARER/failure": 1, "OAUTHBEARER/token_expired": 1,
		"unsupported/failure": 1, "unsupported/unsupported_mechanism": 1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
	if _, ok := got["TLS/success"]; ok {
		t.Error("a TLS success series on a SASL_SSL listener")
	}
}

// BenchmarkCount is the per-connection cost of counting: a success or a
// failure on a SASL_SSL listener with two mechanisms, found by name.
func BenchmarkCount(b *testing.B) {
	l := NewListener("CLIENT_SASL", false, "SCRAM-SHA-512", "SCRAM-SHA-256")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Success("SCRAM-SHA-256")
			l.Failure("SCRAM-SHA-256", BadPassword)
		}
	})
}
