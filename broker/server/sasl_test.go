package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	fsasl "github.com/twmb/franz-go/pkg/sasl"
	fscram "github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/broker/security/scram"
	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
)

// scramUsers are the bootstrap users of the SASL tests.
var scramUsers = []bootstrapUser{
	{Username: "alice", Mechanism: "SCRAM-SHA-512", Password: "alice-secret"},
	{Username: "alice", Mechanism: "SCRAM-SHA-256", Password: "alice-secret"},
	{Username: "bob", Mechanism: "SCRAM-SHA-256", Password: "bob-secret"},
}

// startSCRAMServer runs a broker with a PLAINTEXT listener and a SASL_SSL
// listener offering both SCRAM mechanisms, with scramUsers imported at
// start; extra settings go over those.
func startSCRAMServer(t testing.TB, extra map[string]string) (*Server, *tlsEnv, *logBuffer) {
	t.Helper()
	e := newTLSEnv(t)
	file := filepath.Join(t.TempDir(), "scram.json")
	b, _ := json.Marshal(scramUsers)
	if err := tlstest.WriteFile(file, string(b)); err != nil {
		t.Fatal(err)
	}
	props := map[string]string{
		"listeners":                      "CLIENT://127.0.0.1:0,CLIENT_SASL_SCRAM://127.0.0.1:0",
		"listener.security.protocol.map": "CLIENT:PLAINTEXT,CLIENT_SASL_SCRAM:SASL_SSL",
		"ssl.keystore.location":          e.keystore,
		"listener.name.client_sasl_scram.sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
		"tributary.scram.bootstrap.file":                          file,
	}
	for k, v := range extra {
		props[k] = v
	}
	s, logs := startListeners(t, props)
	return s, e, logs
}

func scramMech(m, user, pass string) fsasl.Mechanism {
	a := fscram.Auth{User: user, Pass: pass}
	if m == "SCRAM-SHA-256" {
		return a.AsSha256Mechanism()
	}
	return a.AsSha512Mechanism()
}

func TestSCRAMLogins(t *testing.T) {
	s, e, _ := startSCRAMServer(t, nil)
	addr := s.ListenerAddr("CLIENT_SASL_SCRAM").String()
	login := func(m, user, pass string) error {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTLSConfig(clientTLS(t, e.ca, nil)), kgo.SASL(scramMech(m, user, pass)), kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = cl.Request(ctx, kmsg.NewPtrMetadataRequest())
		return err
	}
	for _, u := range scramUsers {
		if err := login(u.Mechanism, u.Username, u.Password); err != nil {
			t.Errorf("%s with %s: %v", u.Username, u.Mechanism, err)
		}
	}
	wrong := login("SCRAM-SHA-512", "alice", "guess")
	unknown := login("SCRAM-SHA-512", "mallory", "guess")
	for name, err := range map[string]error{"wrong password": wrong, "unknown user": unknown} {
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("%s: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
	}
	// The wire never says whether the user exists.
	if wrong == nil || unknown == nil || wrong.Error() != unknown.Error() {
		t.Errorf("wrong password and unknown user differ on the wire: %q vs %q", wrong, unknown)
	}
	if err := login("SCRAM-SHA-512", "bob", "bob-secret"); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("bob has no SCRAM-SHA-512 credential, yet: %v", err)
	}
}

// saslConn is a raw connection to a SASL_SSL listener that authenticates
// with SaslHandshake v1 and SaslAuthenticate, as a client that never
// re-authenticates.
func saslConn(t *testing.T, s *Server, e *tlsEnv, listener string) *rawConn {
	t.Helper()
	nc, err := tls.Dial("tcp", s.ListenerAddr(listener).String(), clientTLS(t, e.ca, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

// scramLogin runs a SCRAM exchange on c and returns the session lifetime.
func (c *rawConn) scramLogin(m, user, pass string) int64 {
	c.t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, m
	hr := kmsg.NewPtrSASLHandshakeResponse()
	hr.Version = 1
	c.recv(hr, c.send(hs))
	if hr.ErrorCode != 0 {
		c.t.Fatalf("handshake: %v", kerr.ErrorForCode(hr.ErrorCode))
	}
	sess, msg, err := scramMech(m, user, pass).Authenticate(context.Background(), "")
	if err != nil {
		c.t.Fatal(err)
	}
	for {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version, req.SASLAuthBytes = 2, msg
		resp := kmsg.NewPtrSASLAuthenticateResponse()
		resp.Version = 2
		c.recv(resp, c.send(req))
		if resp.ErrorCode != 0 {
			c.t.Fatalf("authenticate: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		done, next, err := sess.Challenge(resp.SASLAuthBytes)
		if err != nil {
			c.t.Fatal(err)
		}
		if done {
			return resp.SessionLifetimeMillis
		}
		msg = next
	}
}

func TestSASLSessionExpires(t *testing.T) {
	s, e, logs := startSCRAMServer(t, map[string]string{"connections.max.reauth.ms": "1500"})

	t.Run("a client that does not re-authenticate is closed at its next request", func(t *testing.T) {
		c := saslConn(t, s, e, "CLIENT_SASL_SCRAM")
		if life := c.scramLogin("SCRAM-SHA-512", "alice", "alice-secret"); life != 1500 {
			t.Fatalf("session lifetime %d ms, want connections.max.reauth.ms", life)
		}
		md := kmsg.NewPtrMetadataResponse()
		c.recv(md, c.send(kmsg.NewPtrMetadataRequest()))
		time.Sleep(1600 * time.Millisecond) // past the session's end
		c.send(kmsg.NewPtrMetadataRequest())
		c.expectClosed()
		waitLog(t, logs, "SASL session expired without re-authentication")
	})
	t.Run("a client that re-authenticates goes on", func(t *testing.T) {
		c := saslConn(t, s, e, "CLIENT_SASL_SCRAM")
		c.scramLogin("SCRAM-SHA-256", "alice", "alice-secret")
		for range 3 {
			time.Sleep(700 * time.Millisecond)
			if life := c.scramLogin("SCRAM-SHA-256", "alice", "alice-secret"); life != 1500 {
				t.Fatalf("re-authentication gave a session of %d ms", life)
			}
			md := kmsg.NewPtrMetadataResponse()
			c.recv(md, c.send(kmsg.NewPtrMetadataRequest()))
		}
	})
	t.Run("franz-go re-authenticates on its own", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT_SASL_SCRAM").String()), kgo.DialTLSConfig(clientTLS(t, e.ca, nil)),
			kgo.SASL(scramMech("SCRAM-SHA-512", "alice", "alice-secret")))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		deadline := time.Now().Add(4 * time.Second)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := cl.Request(ctx, kmsg.NewPtrMetadataRequest())
			cancel()
			if err != nil {
				t.Fatalf("request across re-authentications: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		waitLog(t, logs, "reauthentication=true")
	})
	t.Run("re-authentication as someone else is refused", func(t *testing.T) {
		c := saslConn(t, s, e, "CLIENT_SASL_SCRAM")
		c.scramLogin("SCRAM-SHA-256", "alice", "alice-secret")
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version, hs.Mechanism = 1, "SCRAM-SHA-256"
		hr := kmsg.NewPtrSASLHandshakeResponse()
		hr.Version = 1
		c.recv(hr, c.send(hs))
		sess, msg, _ := scramMech("SCRAM-SHA-256", "bob", "bob-secret").Authenticate(context.Background(), "")
		var last *kmsg.SASLAuthenticateResponse
		for range 2 {
			req := kmsg.NewPtrSASLAuthenticateRequest()
			req.Version, req.SASLAuthBytes = 2, msg
			last = kmsg.NewPtrSASLAuthenticateResponse()
			last.Version = 2
			c.recv(last, c.send(req))
			if last.ErrorCode != 0 {
				break
			}
			_, msg, _ = sess.Challenge(last.SASLAuthBytes)
		}
		if last.ErrorCode != kerr.SaslAuthenticationFailed.Code || last.ErrorMessage == nil || !strings.Contains(*last.ErrorMessage, "principal") {
			t.Fatalf("re-authentication as bob: %+v", last)
		}
		c.expectClosed()
	})
}

func TestSASLStateMachine(t *testing.T) {
	s, e, _ := startSCRAMServer(t, nil)
	t.Run("a request before authentication closes the connection", func(t *testing.T) {
		c := saslConn(t, s, e, "CLIENT_SASL_SCRAM")
		av := kmsg.NewPtrApiVersionsResponse()
		c.recv(av, c.send(kmsg.NewPtrApiVersionsRequest()))
		keys := map[int16]kmsg.ApiVersionsResponseApiKey{}
		for _, k := range av.ApiKeys {
			keys[k.ApiKey] = k
		}
		if h := keys[17]; h.MinVersion != 0 || h.MaxVersion != 1 {
			t.Errorf("SaslHandshake advertised %+v, want 0-1", h)
		}
		if a := keys[36]; a.MinVersion != 0 || a.MaxVersion != 2 {
			t.Errorf("SaslAuthenticate advertised %+v, want 0-2", a)
		}
		c.send(kmsg.NewPtrMetadataRequest())
		c.expectClosed()
	})
	t.Run("an unsupported mechanism is named and refused", func(t *testing.T) {
		c := saslConn(t, s, e, "CLIENT_SASL_SCRAM")
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version, hs.Mechanism = 1, "PLAIN"
		hr := kmsg.NewPtrSASLHandshakeResponse()
		hr.Version = 1
		c.recv(hr, c.send(hs))
		if hr.ErrorCode != kerr.UnsupportedSaslMechanism.Code || strings.Join(hr.SupportedMechanisms, ",") != "SCRAM-SHA-512,SCRAM-SHA-256" {
			t.Fatalf("handshake %+v", hr)
		}
		c.expectClosed()
	})
	t.Run("SaslHandshake on a plaintext listener", func(t *testing.T) {
		c := &rawConn{t: t}
		nc := dialAddr(t, s.ListenerAddr("CLIENT").String())
		c.nc = nc
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version, hs.Mechanism = 1, "SCRAM-SHA-512"
		hr := kmsg.NewPtrSASLHandshakeResponse()
		hr.Version = 1
		c.recv(hr, c.send(hs))
		if hr.ErrorCode != kerr.IllegalSaslState.Code {
			t.Fatalf("handshake on PLAINTEXT: %+v", hr)
		}
		c.expectClosed()
	})
	t.Run("SaslAuthenticate without a handshake", func(t *testing.T) {
		c := saslConn(t, s, e, "CLIENT_SASL_SCRAM")
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version = 1
		resp := kmsg.NewPtrSASLAuthenticateResponse()
		resp.Version = 1
		c.recv(resp, c.send(req))
		if resp.ErrorCode != kerr.IllegalSaslState.Code {
			t.Fatalf("authenticate without a handshake: %+v", resp)
		}
		c.expectClosed()
	})
	t.Run("a plaintext listener serves without SASL", func(t *testing.T) {
		c := &rawConn{t: t, nc: dialAddr(t, s.ListenerAddr("CLIENT").String())}
		md := kmsg.NewPtrMetadataResponse()
		c.recv(md, c.send(kmsg.NewPtrMetadataRequest()))
		if len(md.Brokers) != 1 || md.Brokers[0].Port != port(s.ListenerAddr("CLIENT")) {
			t.Fatalf("metadata %+v", md.Brokers)
		}
	})
}

func dialAddr(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// TestIAMLoginNeedsConnect: with IAM principals authorized by their IAM
// policies (the default), a login through the OAUTHBEARER listener needs
// kafka-cluster:Connect on the cluster: a role without it is refused at
// SaslAuthenticate, with the reason, and audited; a role with it logs in
// as its role ARN.
func TestIAMLoginNeedsConnect(t *testing.T) {
	cloud := iamCloud(t)
	e := newTLSEnv(t)
	brokerCfg := cloud.Root()
	s, logs := startListeners(t, map[string]string{
		"cluster.id":                     "orders-uuid",
		"tributary.cluster.name":         "orders",
		"listeners":                      "CLIENT://127.0.0.1:0,CLIENT_IAM://127.0.0.1:0",
		"listener.security.protocol.map": "CLIENT:PLAINTEXT,CLIENT_IAM:SASL_SSL",
		"ssl.keystore.location":          e.keystore,
		"listener.name.client_iam.sasl.enabled.mechanisms": "OAUTHBEARER",
	}, &brokerCfg)
	login := func(role string) error {
		t.Helper()
		session, _ := cloud.AssumeRole(t, "arn:aws:iam::000000000000:role/team/"+role, 3600)
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT_IAM").String()), kgo.DialTLSConfig(clientTLS(t, e.ca, nil)),
			kgo.SASL(iamauth.FranzGoMechanism(session, "orders-uuid")), kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = cl.Request(ctx, kmsg.NewPtrMetadataRequest())
		return err
	}
	if err := login("writer"); err != nil {
		t.Fatalf("writer (kafka-cluster:Connect allowed): %v", err)
	}
	waitLog(t, logs, "principal=User:arn:aws:iam::000000000000:role/writer by=OAUTHBEARER")
	err := login("nobody")
	if !errors.Is(err, kerr.SaslAuthenticationFailed) || !strings.Contains(err.Error(), "kafka-cluster:Connect") {
		t.Fatalf("nobody (no policy): %v, want SASL_AUTHENTICATION_FAILED naming kafka-cluster:Connect", err)
	}
	waitLog(t, logs, `principal=User:arn:aws:iam::000000000000:role/nobody`)
}

// TestSCRAMBootstrapSaltedCredentials: tributary.scram.bootstrap.file may
// hold salted credentials, as the boot agent writes them (no password on
// the instance): the user logs in with the password they were salted
// from. A salted entry that is not a valid credential stops the broker,
// naming the entry and not the key.
func TestSCRAMBootstrapSaltedCredentials(t *testing.T) {
	cred, err := scram.NewCredential(scram.SHA512, "dave-secret", 4096)
	if err != nil {
		t.Fatal(err)
	}
	write := func(users ...bootstrapUser) string {
		t.Helper()
		file := filepath.Join(t.TempDir(), "scram.json")
		b, _ := json.Marshal(users)
		if err := tlstest.WriteFile(file, string(b)); err != nil {
			t.Fatal(err)
		}
		return file
	}
	e := newTLSEnv(t)
	props := func(file string) map[string]string {
		return map[string]string{
			"listeners":                      "CLIENT://127.0.0.1:0,CLIENT_SASL_SCRAM://127.0.0.1:0",
			"listener.security.protocol.map": "CLIENT:PLAINTEXT,CLIENT_SASL_SCRAM:SASL_SSL",
			"ssl.keystore.location":          e.keystore,
			"listener.name.client_sasl_scram.sasl.enabled.mechanisms": "SCRAM-SHA-512",
			"tributary.scram.bootstrap.file":                          file,
		}
	}
	s, _ := startListeners(t, props(write(
		bootstrapUser{Username: "dave", Mechanism: "SCRAM-SHA-512", Salt: cred.Salt, Iterations: cred.Iterations, StoredKey: cred.StoredKey, ServerKey: cred.ServerKey},
		bootstrapUser{Username: "erin", Mechanism: "SCRAM-SHA-512", Password: "erin-secret"})))
	addr := s.ListenerAddr("CLIENT_SASL_SCRAM").String()
	if err := canLogin(t, addr, e, "SCRAM-SHA-512", "dave", "dave-secret"); err != nil {
		t.Fatalf("dave with the password of his salted credential: %v", err)
	}
	if err := canLogin(t, addr, e, "SCRAM-SHA-512", "dave", "guess"); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("dave with a wrong password: %v", err)
	}
	if err := canLogin(t, addr, e, "SCRAM-SHA-512", "erin", "erin-secret"); err != nil {
		t.Fatalf("erin beside him, from a password: %v", err)
	}

	for _, tc := range []struct {
		name string
		user bootstrapUser
		want string
	}{
		{"short keys", bootstrapUser{Username: "frank", Mechanism: "SCRAM-SHA-512", Salt: cred.Salt, Iterations: 4096, StoredKey: []byte("stored"), ServerKey: cred.ServerKey}, "entry 1 (frank): SCRAM credential: keys of 6 and 64 bytes"},
		{"few iterations", bootstrapUser{Username: "frank", Mechanism: "SCRAM-SHA-512", Salt: cred.Salt, Iterations: 100, StoredKey: cred.StoredKey, ServerKey: cred.ServerKey}, "entry 1 (frank)"},
		{"password and salted credential", bootstrapUser{Username: "frank", Mechanism: "SCRAM-SHA-512", Password: "frank-secret", Salt: cred.Salt, Iterations: 4096, StoredKey: cred.StoredKey, ServerKey: cred.ServerKey}, "both a password and a salted credential"},
		{"neither", bootstrapUser{Username: "frank", Mechanism: "SCRAM-SHA-512"}, "entry 1 (frank): empty password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newListenersServer(t, props(write(tc.user)), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start: %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "frank-secret") {
				t.Fatalf("the error holds the password: %v", err)
			}
		})
	}
}
