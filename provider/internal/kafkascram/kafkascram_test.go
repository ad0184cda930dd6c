package kafkascram

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	fscram "github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
	"github.com/tributary/tributary/broker/server"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// scramBroker runs a broker in this process with the provider's plaintext
// listener (whose clients, User:ANONYMOUS, are super users here, as the
// provider's admin identity is on a real cluster) and an MSK-style
// SASL_SSL SCRAM listener for the users (alice a super user too: this is
// about who she is, not what she may do).
type scramBroker struct {
	srv *server.Server
	tls *tls.Config
}

func startBroker(t *testing.T) *scramBroker {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ca, err := tlstest.NewCA("kafkascram test CA")
	must(err)
	leaf, err := ca.Issue("broker-1", "127.0.0.1")
	must(err)
	keystore := filepath.Join(dir, "keystore.pem")
	must(tlstest.WriteFile(keystore, leaf.Keystore()))
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	var props []config.Property
	for k, v := range map[string]string{
		"listeners":                      "CLIENT://127.0.0.1:0,CLIENT_SASL_SCRAM://127.0.0.1:0",
		"listener.security.protocol.map": "CLIENT:PLAINTEXT,CLIENT_SASL_SCRAM:SASL_SSL",
		"ssl.keystore.type":              "PEM",
		"ssl.keystore.location":          keystore,
		"listener.name.client_sasl_scram.sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
		"super.users":               "User:ANONYMOUS;User:alice",
		"auto.create.topics.enable": "true",
	} {
		props = append(props, config.Property{Key: k, Value: v, Line: len(props) + 1})
	}
	must(cfg.ApplyProperties(props, nil))
	must(cfg.Validate())
	srv, err := server.New(context.Background(), server.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	must(err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
	})
	return &scramBroker{srv: srv, tls: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}}
}

// produceAs logs in on the SCRAM listener with a real client and writes one
// record. A refused login fails the record after its retries; each retry
// waits for the client's next metadata load, which by default comes 5 s
// after the last, so the minimum age is short: a refusal is reported in
// well under a second instead of 10 s.
func (b *scramBroker) produceAs(ctx context.Context, user, pass string, sha512 bool) error {
	auth := fscram.Auth{User: user, Pass: pass}
	mech := auth.AsSha256Mechanism()
	if sha512 {
		mech = auth.AsSha512Mechanism()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.srv.ListenerAddr("CLIENT_SASL_SCRAM").String()), kgo.DialTLSConfig(b.tls.Clone()),
		kgo.SASL(mech), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0), kgo.RecordRetries(2),
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return cl.ProduceSync(pctx, &kgo.Record{Topic: "scram-users", Value: []byte(user)}).FirstErr()
}

// TestCredentialLifecycle sets, changes and deletes a user's credentials
// through the admin listener and logs in with a real client after each
// step: the right password works, the old or a wrong one is refused, a
// deleted credential is refused, and the two mechanisms are separate.
func TestCredentialLifecycle(t *testing.T) {
	b := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := &Admin{Conn: kafkaconn.New("test", []kafkaconn.Broker{{NodeID: 1, Addr: b.srv.ListenerAddr("CLIENT").String()}}), PollInterval: 50 * time.Millisecond}
	refused := func(err error) bool { return errors.Is(err, kerr.SaslAuthenticationFailed) }

	if _, err := a.Iterations(ctx, "alice", SHA512); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Iterations before Set: %v, want ErrNotFound", err)
	}
	if err := a.Set(ctx, "alice", SHA512, DefaultIterations, "first password"); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Iterations(ctx, "alice", SHA512); err != nil || n != DefaultIterations {
		t.Fatalf("Iterations = %d, %v; want %d", n, err, DefaultIterations)
	}
	if err := b.produceAs(ctx, "alice", "first password", true); err != nil {
		t.Fatalf("login with the password just set: %v", err)
	}
	if err := b.produceAs(ctx, "alice", "wrong", true); !refused(err) {
		t.Fatalf("login with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if err := b.produceAs(ctx, "alice", "first password", false); !refused(err) {
		t.Fatalf("login with SCRAM-SHA-256, which alice has no credential for: %v, want SASL_AUTHENTICATION_FAILED", err)
	}

	// A new password (and iterations) replaces the old one.
	if err := a.Set(ctx, "alice", SHA512, 4096, "second password"); err != nil {
		t.Fatal(err)
	}
	if err := b.produceAs(ctx, "alice", "first password", true); !refused(err) {
		t.Fatalf("login with the replaced password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if err := b.produceAs(ctx, "alice", "second password", true); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}

	if err := a.Delete(ctx, "alice", SHA512); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "alice", SHA512); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting it again: %v, want ErrNotFound", err)
	}
	if err := b.produceAs(ctx, "alice", "second password", true); !refused(err) {
		t.Fatalf("login after the credential was deleted: %v, want SASL_AUTHENTICATION_FAILED", err)
	}

	for _, bad := range []struct {
		mech  string
		iter  int
		pass  string
		label string
	}{{"SCRAM-SHA-1", DefaultIterations, "p", "unknown mechanism"}, {SHA256, 100, "p", "too few iterations"}, {SHA256, DefaultIterations, "", "empty password"}} {
		if err := a.Set(ctx, "bob", bad.mech, bad.iter, bad.pass); err == nil {
			t.Errorf("Set with %s accepted", bad.label)
		}
	}
}
