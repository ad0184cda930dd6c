package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/sasl/sasltest"
	"github.com/tributary/tributary/internal/testenv"
)

// TestRealClientsOverMutualTLS: kcat (librdkafka) and franz-go connect to
// an SSL listener built by this package, verify its certificate against
// the CA and present their own; the listener names them by their
// certificate. A client without a certificate, and a client that does not
// trust the broker's CA, are refused.
func TestRealClientsOverMutualTLS(t *testing.T) {
	cluster, other := newCA(t, "cluster-ca"), newCA(t, "other-ca")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	brokerCert := cluster.issue(t, 1, pkix.Name{CommonName: "broker-1"}, nil)
	s, err := Load(MapGetter(map[string]string{
		"ssl.keystore.type": "PEM", "ssl.keystore.location": write("broker.pem", brokerCert.keystoreFile()),
		"ssl.truststore.location": write("ca.pem", cluster.pem), "ssl.client.auth": "required",
		"ssl.principal.mapping.rules": "RULE:^CN=([^,]+),OU=clients.*$/$1/,DEFAULT",
	}), "SSL")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := New(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := sasltest.Start(t, sasltest.Options{TLS: tl.ServerConfig(), TLSPrincipal: tl.Principal})
	client := cluster.issue(t, 2, pkix.Name{CommonName: "orders-app", OrganizationalUnit: []string{"clients"}}, nil)
	clientCert, clientKey := write("client.pem", client.certPEM), write("client.key", client.keyPEM)
	caFile, otherCAFile := filepath.Join(dir, "ca.pem"), write("other-ca.pem", other.pem)

	t.Run("franz-go", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AddCert(cluster.cert)
		kp, err := tls.X509KeyPair([]byte(client.certPEM), []byte(client.keyPEM))
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.DialTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{kp}}))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		b.Skip()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := cl.Request(ctx, kmsg.NewPtrMetadataRequest()); err != nil {
			t.Fatal(err)
		}
		if o := b.Next(t, 5*time.Second); o.Err != nil || o.Result.Principal != "User:orders-app" {
			t.Fatalf("outcome %+v", o)
		}
	})

	kcat := testenv.Tool(t, "kcat", "kcat")
	for _, tt := range []struct {
		name      string
		args      []string
		principal string // "" : refused
	}{
		{"kcat with its certificate", []string{"-X", "ssl.ca.location=" + caFile, "-X", "ssl.certificate.location=" + clientCert, "-X", "ssl.key.location=" + clientKey}, "User:orders-app"},
		{"kcat without a certificate", []string{"-X", "ssl.ca.location=" + caFile}, ""},
		{"kcat trusting another CA", []string{"-X", "ssl.ca.location=" + otherCAFile, "-X", "ssl.certificate.location=" + clientCert, "-X", "ssl.key.location=" + clientKey}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b.Skip()
			args := append([]string{"-b", b.Addr, "-L", "-m", "6", "-X", "security.protocol=SSL"}, tt.args...)
			cmd := exec.Command(kcat, args...)
			done := make(chan struct{})
			var out []byte
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("kcat hung: %s", out)
			}
			o := b.Next(t, 5*time.Second)
			if tt.principal != "" {
				if err != nil || o.Err != nil || o.Result.Principal != tt.principal || !strings.Contains(string(out), "1 brokers") {
					t.Fatalf("kcat: %v, outcome %+v:\n%s", err, o, out)
				}
				return
			}
			if err == nil || o.Err == nil {
				t.Fatalf("kcat got in (outcome %+v):\n%s", o, out)
			}
		})
	}
}
