package clienttest

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	fsasl "github.com/twmb/franz-go/pkg/sasl"

	"github.com/tributary/tributary/broker/iamauth"
)

// TestSecureAuthenticationMetrics: real clients refused for each reason,
// and some let in, each counted once in the broker's Prometheus endpoint
// under its listener, mechanism and reason; every series is there from
// the start at 0, and no user name or client-sent mechanism becomes a
// label value.
func TestSecureAuthenticationMetrics(t *testing.T) {
	sb := startSecureBroker(t)
	expired, err := sb.ca.IssueValid("app", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	start := httpGet(t, sb.metricsURL)
	for _, want := range []string{
		`tributary_authentications_total{listener="CLIENT_MTLS",mechanism="TLS",result="success"} 0`,
		`tributary_authentications_total{listener="CLIENT_MTLS",mechanism="TLS",result="failure"} 0`,
		`tributary_authentications_total{listener="CLIENT_SASL_SCRAM",mechanism="SCRAM-SHA-512",result="failure"} 0`,
		`tributary_authentication_failures_total{listener="CLIENT_SASL_SCRAM",mechanism="SCRAM-SHA-256",reason="bad_password"} 0`,
		`tributary_authentication_failures_total{listener="CLIENT_IAM",mechanism="OAUTHBEARER",reason="token_expired"} 0`,
		`tributary_authentication_failures_total{listener="CLIENT_IAM",mechanism="unsupported",reason="unsupported_mechanism"} 0`,
		`tributary_authentication_failures_total{listener="CLIENT_SECURE",mechanism="TLS",reason="not_tls"} 0`,
	} {
		if !strings.Contains(start, want+"\n") {
			t.Errorf("no series at the start: %q", want)
		}
	}
	if strings.Contains(start, `listener="CLIENT"`) {
		t.Error("series for the PLAINTEXT listener, which authenticates nobody")
	}

	// One connection per attempt: no retries, so each is counted once.
	request := func(opts ...kgo.Opt) error { t.Helper(); return metadataOnce(t, opts...) }
	scram := func(m, user, pass string) error {
		return request(kgo.SeedBrokers(sb.addr("CLIENT_SASL_SCRAM")), kgo.DialTLSConfig(sb.tlsConfig(nil)), kgo.SASL(scramMechanism(m, user, pass)))
	}
	iamWith := func(m fsasl.Mechanism) error {
		return request(kgo.SeedBrokers(sb.addr("CLIENT_IAM")), kgo.DialTLSConfig(sb.tlsConfig(nil)), kgo.SASL(m))
	}
	mtls := func(cfg *tls.Config) error {
		return request(kgo.SeedBrokers(sb.addr("CLIENT_MTLS")), kgo.DialTLSConfig(cfg))
	}
	noCert := sb.tlsConfig(nil)
	for _, tt := range []struct {
		name   string
		err    error
		served bool
	}{
		{"wrong SCRAM password", scram("SCRAM-SHA-512", "alice", "guess"), false},
		{"unknown SCRAM user", scram("SCRAM-SHA-512", "mallory", "guess"), false},
		{"right SCRAM password", scram("SCRAM-SHA-512", "alice", "alice-secret"), true},
		{"expired IAM token", iamWith(fixedToken(expiredToken(t, sb.session, sb.creds))), false},
		{"IAM token for another cluster", iamWith(iamauth.FranzGoMechanism(sb.session, "payments")), false},
		{"good IAM token", iamWith(iamauth.FranzGoMechanism(sb.session, secureClusterID)), true},
		{"SCRAM client on the IAM listener", request(kgo.SeedBrokers(sb.addr("CLIENT_IAM")), kgo.DialTLSConfig(sb.tlsConfig(nil)), kgo.SASL(scramMechanism("SCRAM-SHA-512", "alice", "alice-secret"))), false},
		{"TLS client without a certificate", mtls(noCert), false},
		{"certificate of another CA", mtls(sb.tlsConfig(&sb.intruder)), false},
		{"expired certificate", mtls(sb.tlsConfig(&expired)), false},
		{"certificate of the CA", mtls(sb.tlsConfig(&sb.client)), true},
		{"plaintext client on a TLS listener", request(kgo.SeedBrokers(sb.addr("CLIENT_SECURE"))), false},
	} {
		if served := tt.err == nil; served != tt.served {
			t.Errorf("%s: served %v (%v), want %v", tt.name, served, tt.err, tt.served)
		}
	}

	// The server counts a refusal before it closes the connection the
	// client saw closed; a scrape right after may come first, so wait.
	want := []string{
		`tributary_authentication_failures_total{listener="CLIENT_SASL_SCRAM",mechanism="SCRAM-SHA-512",reason="bad_password"} 1`,
		`tributary_authentication_failures_total{listener="CLIENT_SASL_SCRAM",mechanism="SCRAM-SHA-512",reason="unknown_user"} 1`,
		`tributary_authentications_total{listener="CLIENT_SASL_SCRAM",mechanism="SCRAM-SHA-512",result="failure"} 2`,
		`tributary_authentications_total{listener="CLIENT_SASL_SCRAM",mechanism="SCRAM-SHA-512",result="success"} 1`,
		`tributary_authentications_total{listener="CLIENT_SASL_SCRAM",mechanism="SCRAM-SHA-256",result="failure"} 0`,
		`tributary_authentication_failures_total{listener="CLIENT_IAM",mechanism="OAUTHBEARER",reason="token_expired"} 1`,
		`tributary_authentication_failures_total{listener="CLIENT_IAM",mechanism="OAUTHBEARER",reason="token_wrong_cluster"} 1`,
		`tributary_authentications_total{listener="CLIENT_IAM",mechanism="OAUTHBEARER",result="failure"} 2`,
		`tributary_authentications_total{listener="CLIENT_IAM",mechanism="OAUTHBEARER",result="success"} 1`,
		`tributary_authentication_failures_total{listener="CLIENT_IAM",mechanism="unsupported",reason="unsupported_mechanism"} 1`,
		`tributary_authentication_failures_total{listener="CLIENT_MTLS",mechanism="TLS",reason="no_certificate"} 1`,
		`tributary_authentication_failures_total{listener="CLIENT_MTLS",mechanism="TLS",reason="unknown_ca"} 1`,
		`tributary_authentication_failures_total{listener="CLIENT_MTLS",mechanism="TLS",reason="expired_certificate"} 1`,
		`tributary_authentications_total{listener="CLIENT_MTLS",mechanism="TLS",result="failure"} 3`,
		`tributary_authentications_total{listener="CLIENT_MTLS",mechanism="TLS",result="success"} 1`,
		`tributary_authentication_failures_total{listener="CLIENT_SECURE",mechanism="TLS",reason="not_tls"} 1`,
		// SASL authenticates these listeners: their TLS handshakes all
		// passed and count no success of their own.
		`tributary_authentications_total{listener="CLIENT_SASL_SCRAM",mechanism="TLS",result="failure"} 0`,
	}
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		body = httpGet(t, sb.metricsURL)
		missing := 0
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var got []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "tributary_authentication") {
			got = append(got, line)
		}
	}
	for _, w := range want {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("no line %q in the broker's metrics", w)
		}
	}
	for _, s := range []string{"alice", "mallory", "payments", "intruder", "SCRAM-SHA-512\",reason=\"unsupported"} {
		if strings.Contains(strings.Join(got, "\n"), s) {
			t.Errorf("a label value holds %q", s)
		}
	}
	if t.Failed() {
		t.Logf("authentication series:\n%s", strings.Join(got, "\n"))
	}
	if strings.Contains(body, `tributary_authentications_total{listener="CLIENT_SASL_SCRAM",mechanism="TLS",result="success"}`) {
		t.Error("a TLS success series on a SASL_SSL listener")
	}
}
