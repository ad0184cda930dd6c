package awsbody

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// TestLoadDefaultConfigSendsThroughClient: a loaded configuration gives
// its clients Client over the SDK's default client, also with a CA bundle
// (which the SDK adds only to its own client type, before the wrapping).
func TestLoadDefaultConfigSendsThroughClient(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	for _, bundle := range []bool{false, true} {
		if bundle {
			t.Setenv("AWS_CA_BUNDLE", writeCA(t))
		} else {
			t.Setenv("AWS_CA_BUNDLE", "")
		}
		cfg, err := LoadDefaultConfig(context.Background())
		if err != nil {
			t.Fatalf("CA bundle %v: %v", bundle, err)
		}
		c, ok := cfg.HTTPClient.(Client)
		if !ok {
			t.Fatalf("CA bundle %v: the loaded configuration sends through %T, not Client", bundle, cfg.HTTPClient)
		}
		if _, ok := c.Next.(*awshttp.BuildableClient); !ok {
			t.Fatalf("CA bundle %v: Client wraps %T, not the SDK's default client", bundle, c.Next)
		}
		if again := Wrap(c); again != c {
			t.Fatalf("Wrap wrapped Client again: %#v", again)
		}
	}
}

// writeCA writes a self-signed certificate for AWS_CA_BUNDLE.
func writeCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "awsbody test CA"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEveryLoadedConfigurationSendsPlainBodies reads the repository's
// sources: outside tests, only this package and internal/awsconfig (which
// wraps each service client instead) call the SDK's
// config.LoadDefaultConfig, so a client added later does not bring the
// race back.
func TestEveryLoadedConfigurationSendsPlainBodies(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the module root: %v", err)
	}
	sdkCall := regexp.MustCompile(`\b(config|awsconfig)\.LoadDefaultConfig\(`)
	ours := regexp.MustCompile(`\bawsbody\.LoadDefaultConfig\(`)
	found := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch {
			case strings.HasPrefix(d.Name(), ".") && path != root, d.Name() == "testdata",
				rel == filepath.Join("internal", "awsconfig"), rel == filepath.Join("internal", "awsbody"):
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found += len(ours.FindAll(src, -1))
		if sdkCall.Match(src) {
			t.Errorf("%s loads an AWS configuration with the SDK's LoadDefaultConfig: use awsbody.LoadDefaultConfig", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 5 {
		t.Fatalf("found %d awsbody.LoadDefaultConfig calls; the scan is looking in the wrong place", found)
	}
}
