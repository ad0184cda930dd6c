package boot

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
	"github.com/tributary/tributary/internal/bootconfig"
)

// sealingKMS decrypts what it sealed, only under the context it sealed with,
// as KMS does.
type sealingKMS struct{ sealed map[string]sealedValue }

type sealedValue struct {
	plain   []byte
	context map[string]string
}

func (k *sealingKMS) seal(t *testing.T, ctx map[string]string, s *bootconfig.Secrets) string {
	t.Helper()
	plain, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	id := "ciphertext-" + string(rune('a'+len(k.sealed)))
	k.sealed[id] = sealedValue{plain, ctx}
	env, err := json.Marshal(bootconfig.Envelope{Ciphertext: []byte(id), KeyID: "arn:aws:kms:us-east-1:000000000000:key/k", EncryptionContext: ctx})
	if err != nil {
		t.Fatal(err)
	}
	return string(env)
}

func (k *sealingKMS) Decrypt(_ context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	v, ok := k.sealed[string(in.CiphertextBlob)]
	if !ok || !maps.Equal(v.context, in.EncryptionContext) {
		return nil, errors.New("InvalidCiphertextException: the ciphertext refers to another context")
	}
	return &kms.DecryptOutput{Plaintext: v.plain}, nil
}

// oneSecret is a Secrets Manager holding at most one secret value.
type oneSecret struct {
	name, value, version string
}

func (s *oneSecret) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if s.value == "" || aws.ToString(in.SecretId) != s.name {
		return nil, &smtypes.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(s.value), VersionId: aws.String(s.version)}, nil
}

// TestCertWatchAppliesOnlyItsOwnGoodCertificate: the companion leaves the
// keystore alone while nothing is delivered, applies a delivered key and
// certificate of the cluster CA sealed for its node (once per version), and
// refuses one sealed for another node, one of another CA, and a key that
// does not match its certificate, keeping the certificate it has.
func TestCertWatchAppliesOnlyItsOwnGoodCertificate(t *testing.T) {
	ca, err := tlstest.NewCA("cluster")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlstest.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *tlstest.CA) tlstest.Leaf {
		l, err := ca.Issue("broker", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	dir := t.TempDir()
	keystore := filepath.Join(dir, TLSKeystoreFileName)
	first := issue(ca)
	if err := os.WriteFile(keystore, []byte(first.Keystore()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CAFileName), []byte(ca.PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	kmsFake := &sealingKMS{sealed: map[string]sealedValue{}}
	sm := &oneSecret{name: bootconfig.CertificateSecretName("tc-1", 2)}
	w := &certWatcher{opts: CertWatchOptions{ClusterID: "tc-1", NodeID: 2, SecretsDir: dir, Secrets: sm, KMS: kmsFake,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}}
	own := bootconfig.EncryptionContext("tc-1", 2)
	serves := func(want tlstest.Leaf) {
		t.Helper()
		got, err := os.ReadFile(keystore)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(got), strings.TrimSpace(want.KeyPEM)) || !strings.Contains(string(got), strings.TrimSpace(want.CertPEM)) {
			t.Fatal("the keystore is not the expected key and certificate")
		}
	}

	if err := w.check(context.Background()); err != nil {
		t.Fatalf("nothing delivered: %v", err)
	}
	serves(first)

	refused := []struct {
		name    string
		secrets *bootconfig.Secrets
		context map[string]string
		want    string
	}{
		{"sealed for another node", &bootconfig.Secrets{TLSPrivateKeyPEM: issue(ca).KeyPEM, TLSCertificatePEM: issue(ca).CertPEM}, bootconfig.EncryptionContext("tc-1", 3), "not this broker"},
		{"of another CA", func() *bootconfig.Secrets {
			l := issue(other)
			return &bootconfig.Secrets{TLSPrivateKeyPEM: l.KeyPEM, TLSCertificatePEM: l.CertPEM}
		}(), own, "did not sign"},
		{"a key of another certificate", &bootconfig.Secrets{TLSPrivateKeyPEM: issue(ca).KeyPEM, TLSCertificatePEM: issue(ca).CertPEM}, own, "do not make a pair"},
		{"no certificate", &bootconfig.Secrets{}, own, "no TLS key"},
	}
	for i, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			sm.value, sm.version = kmsFake.seal(t, tt.context, tt.secrets), "refused-"+string(rune('0'+i))
			err := w.check(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
			serves(first)
		})
	}

	second := issue(ca)
	sm.value, sm.version = kmsFake.seal(t, own, &bootconfig.Secrets{TLSPrivateKeyPEM: second.KeyPEM, TLSCertificatePEM: second.CertPEM}), "good"
	if err := w.check(context.Background()); err != nil {
		t.Fatal(err)
	}
	serves(second)
	// The same version is not applied again, even over a keystore changed
	// since (the broker's own file is never fought over).
	if err := os.WriteFile(keystore, []byte(first.Keystore()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.check(context.Background()); err != nil {
		t.Fatal(err)
	}
	serves(first)
}

// TestBootPrefersTheRenewedCertificate: a renewal in place leaves the launch
// template's boot document with the first certificate, so an instance its
// group launches again decrypts that one. The agent starts the broker with
// the secret's renewed certificate instead when it outlives the document's
// (or the document's has expired), and keeps the document's otherwise: no
// secret, a secret it may not read, a renewed certificate of another CA,
// one sealed for another node, one that expires first, one not valid yet.
// Without the agent's read of the secret the expired and the older
// document certificates are written to the keystore and the first cases fail.
func TestBootPrefersTheRenewedCertificate(t *testing.T) {
	ca, err := tlstest.NewCA("cluster")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlstest.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	issue := func(ca *tlstest.CA, from, to time.Duration) tlstest.Leaf {
		t.Helper()
		l, err := ca.IssueValid("broker", now.Add(from), now.Add(to), "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	const day = 24 * time.Hour
	expired := issue(ca, -90*day, -time.Hour)
	current := issue(ca, -60*day, 30*day)
	renewed := issue(ca, -time.Minute, 90*day)
	own := bootconfig.EncryptionContext("tc-1", 2)
	secretName := bootconfig.CertificateSecretName("tc-1", 2)
	pair := func(l tlstest.Leaf) *bootconfig.Secrets {
		return &bootconfig.Secrets{TLSPrivateKeyPEM: l.KeyPEM, TLSCertificatePEM: l.CertPEM}
	}
	tests := []struct {
		name      string
		doc       tlstest.Leaf
		delivered *bootconfig.Secrets // nil: no secret
		context   map[string]string
		readErr   bool
		want      tlstest.Leaf
		detail    string
	}{
		{"renewed outlives the document's", current, pair(renewed), own, false, renewed, "renewed certificate of secret"},
		{"document's expired", expired, pair(renewed), own, false, renewed, "renewed certificate of secret"},
		{"no secret", expired, nil, own, false, expired, "no renewed certificate"},
		{"secret unreadable", current, pair(renewed), own, true, current, "could not read secret"},
		{"of another CA", current, pair(issue(other, -time.Minute, 90*day)), own, false, current, "did not sign"},
		{"sealed for another node", current, pair(renewed), bootconfig.EncryptionContext("tc-1", 3), false, current, "not this broker"},
		{"expires first", current, pair(issue(ca, -time.Minute, 10*day)), own, false, current, "expires no earlier"},
		{"not valid yet", expired, pair(issue(ca, time.Hour, 90*day)), own, false, expired, "not now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kmsFake := &sealingKMS{sealed: map[string]sealedValue{}}
			var sm SecretsReader = &oneSecret{name: secretName}
			if tt.delivered != nil {
				sm = &oneSecret{name: secretName, value: kmsFake.seal(t, tt.context, tt.delivered), version: "v2"}
			}
			if tt.readErr {
				sm = deniedSecret{}
			}
			doc := &bootconfig.Document{ClusterID: "tc-1", NodeID: 2, TLS: &bootconfig.TLS{CertificateAuthorityPEM: ca.PEM}}
			s := pair(tt.doc)
			s.SCRAMCredentials = testSecrets.SCRAMCredentials
			detail := preferDelivered(context.Background(), sm, kmsFake, doc, s, now)
			if s.TLSPrivateKeyPEM != tt.want.KeyPEM || s.TLSCertificatePEM != tt.want.CertPEM {
				t.Errorf("the broker starts with another key and certificate than expected (detail %q)", detail)
			}
			if len(s.SCRAMCredentials) != len(testSecrets.SCRAMCredentials) {
				t.Error("the document's other secrets were dropped")
			}
			if !strings.Contains(detail, tt.detail) {
				t.Errorf("detail %q, want one saying %q", detail, tt.detail)
			}
		})
	}
}

// deniedSecret answers every read as Secrets Manager answers a role that
// may not read the secret.
type deniedSecret struct{}

func (deniedSecret) GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return nil, errors.New("AccessDeniedException: not authorized to perform secretsmanager:GetSecretValue")
}
