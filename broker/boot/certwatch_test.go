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
