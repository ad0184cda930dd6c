package boot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/tributary/tributary/internal/awsbody"
	"github.com/tributary/tributary/internal/bootconfig"
)

// The certificate companion, `tributary-broker cert-watch`: a small process
// beside the broker that applies a renewed TLS key and certificate without
// a restart. The provider renews a broker's certificate by putting it,
// sealed with KMS under the broker's own encryption context (cluster and
// node), into the broker's Secrets Manager secret
// (bootconfig.CertificateSecretName). The companion reads that secret at
// start and then every interval; when its version is new it decrypts it
// (the instance role may read only its own secret and decrypt only its own
// node's context), checks the pair, and replaces the keystore file, which
// the broker's TLS listeners read again when it changes (tlsconf). The
// clear key exists only in the instance's runtime directory, as the one
// the boot agent wrote.
//
// A certificate is applied only if its key matches it, the cluster CA of
// the runtime directory signed it, it is valid now, and it expires no
// earlier than the one the broker serves: a stale or foreign secret never
// replaces a good certificate.

// DefaultCertWatchInterval is how often the companion reads the secret.
const DefaultCertWatchInterval = 30 * time.Second

// EnvCertWatchInterval overrides the interval (the local cloud's tests
// shorten it through the instances' environment).
const EnvCertWatchInterval = "TRIBUTARY_CERT_WATCH_INTERVAL"

// SecretsReader is the one Secrets Manager call the companion makes.
type SecretsReader interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// CertWatchOptions configure the certificate companion.
type CertWatchOptions struct {
	ClusterID  string
	NodeID     int32
	SecretsDir string // the runtime directory's secrets/
	Interval   time.Duration
	Secrets    SecretsReader
	KMS        KMSDecrypter
	Logger     *slog.Logger
	Now        func() time.Time
}

// certWatcher remembers the last secret version it looked at.
type certWatcher struct {
	opts    CertWatchOptions
	applied string // secret version id last handled
	lastErr string // last problem logged, so a lasting one is logged once
}

// CertWatch runs the companion until ctx ends.
func CertWatch(ctx context.Context, opts CertWatchOptions) error {
	if opts.Interval <= 0 {
		opts.Interval = DefaultCertWatchInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &certWatcher{opts: opts}
	opts.Logger.Info("certificate companion started", "secret", bootconfig.CertificateSecretName(opts.ClusterID, opts.NodeID), "interval", opts.Interval.String())
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	for {
		w.report(w.check(ctx))
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// report logs a problem once until it changes or goes away.
func (w *certWatcher) report(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == w.lastErr {
		return
	}
	w.lastErr = msg
	if err != nil {
		w.opts.Logger.Warn("could not apply the delivered certificate; the broker keeps serving its current one", "error", msg)
	}
}

// check reads the secret once and applies a new certificate from it.
func (w *certWatcher) check(ctx context.Context) error {
	name := bootconfig.CertificateSecretName(w.opts.ClusterID, w.opts.NodeID)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := w.opts.Secrets.GetSecretValue(cctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	var notFound *smtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
		return nil // nothing delivered yet: the boot document's certificate stands
	case err != nil:
		return fmt.Errorf("reading secret %s: %w", name, err)
	}
	version := aws.ToString(out.VersionId)
	if version != "" && version == w.applied {
		return nil
	}
	serial, err := w.apply(ctx, []byte(aws.ToString(out.SecretString)))
	if err != nil {
		return fmt.Errorf("secret %s version %s: %w", name, version, err)
	}
	w.applied = version
	if serial != "" {
		w.opts.Logger.Info("applied the delivered certificate", "secret", name, "version", version, "serial", serial)
	}
	return nil
}

// apply opens a secret value and writes its key and certificate as the
// keystore when they pass the checks; it returns the new certificate's
// serial, or "" when the broker already serves it or a later one.
func (w *certWatcher) apply(ctx context.Context, value []byte) (string, error) {
	ca, err := firstCertificate(filepath.Join(w.opts.SecretsDir, CAFileName))
	if err != nil {
		return "", fmt.Errorf("reading the cluster CA: %w", err)
	}
	s, leaf, err := openDelivered(ctx, w.opts.KMS, w.opts.ClusterID, w.opts.NodeID, ca, w.opts.Now(), value)
	if err != nil {
		return "", err
	}
	keystore := filepath.Join(w.opts.SecretsDir, TLSKeystoreFileName)
	current, err := firstCertificate(keystore) // after the key: the broker's own
	if err != nil {
		return "", fmt.Errorf("reading the current keystore: %w", err)
	}
	switch {
	case leaf.SerialNumber.Cmp(current.SerialNumber) == 0:
		return "", nil // served already
	case leaf.NotAfter.Before(current.NotAfter):
		return "", fmt.Errorf("the delivered certificate expires at %s, before the one the broker serves (%s)",
			leaf.NotAfter.UTC().Format(time.RFC3339), current.NotAfter.UTC().Format(time.RFC3339))
	}
	data := strings.TrimRight(s.TLSPrivateKeyPEM, "\n") + "\n" + strings.TrimRight(s.TLSCertificatePEM, "\n") + "\n"
	if err := writeFileAtomic(keystore, []byte(data), 0o600); err != nil {
		return "", err
	}
	return leaf.SerialNumber.Text(16), nil
}

// openDelivered opens a delivered secret value and checks what it holds:
// sealed for this broker's node, a key and certificate that make a pair,
// the certificate signed by the cluster CA and valid at now. It returns the
// key and certificate and the parsed certificate.
func openDelivered(ctx context.Context, client KMSDecrypter, clusterID string, nodeID int32, ca *x509.Certificate, now time.Time, value []byte) (*bootconfig.Secrets, *x509.Certificate, error) {
	var env bootconfig.Envelope
	if err := json.Unmarshal(value, &env); err != nil {
		return nil, nil, fmt.Errorf("the value is not a sealed envelope: %w", jsonErrorWithoutValue(err))
	}
	want := bootconfig.EncryptionContext(clusterID, nodeID)
	if !maps.Equal(env.EncryptionContext, want) {
		return nil, nil, fmt.Errorf("the envelope is sealed for %s, not this broker (%s)", formatContext(env.EncryptionContext), formatContext(want))
	}
	s, err := decryptSecrets(ctx, client, &env)
	if err != nil {
		return nil, nil, err
	}
	if s.TLSPrivateKeyPEM == "" || s.TLSCertificatePEM == "" {
		return nil, nil, errors.New("the envelope holds no TLS key and certificate")
	}
	pair, err := tls.X509KeyPair([]byte(s.TLSCertificatePEM), []byte(s.TLSPrivateKeyPEM))
	if err != nil {
		return nil, nil, fmt.Errorf("the delivered key and certificate do not make a pair: %w", jsonErrorWithoutValue(err))
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("reading the delivered certificate: %w", err)
	}
	if now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter) {
		return nil, nil, fmt.Errorf("the delivered certificate is valid from %s to %s, not now", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return nil, nil, fmt.Errorf("the cluster CA did not sign the delivered certificate: %w", err)
	}
	return s, leaf, nil
}

// preferDelivered is the boot agent's read of the broker's certificate
// secret. A renewal in place (the provider's) writes the renewed key and
// certificate only there: the launch template keeps the boot document's
// first certificate, so an instance its group launches again after a
// renewal would serve that one (expired, once it is past its NotAfter)
// until the companion's first read. When the secret holds a certificate
// for this broker that passes the companion's checks and expires later
// than the document's (or the document's is no longer valid), the broker
// starts with it instead. Anything else keeps the document's pair: the
// secret is absent until a first renewal, and a role made by an earlier
// provider may not read it; the boot goes on, and the detail says why.
func preferDelivered(ctx context.Context, sm SecretsReader, client KMSDecrypter, doc *bootconfig.Document, s *bootconfig.Secrets, now time.Time) string {
	if s == nil || s.TLSCertificatePEM == "" || doc.TLS == nil {
		return ""
	}
	name := bootconfig.CertificateSecretName(doc.ClusterID, doc.NodeID)
	block, _ := pem.Decode([]byte(doc.TLS.CertificateAuthorityPEM))
	if block == nil {
		return "" // validation refuses such a document before this step
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	docPair, err := tls.X509KeyPair([]byte(s.TLSCertificatePEM), []byte(s.TLSPrivateKeyPEM))
	if err != nil {
		return "" // the config step reports it
	}
	docLeaf, err := x509.ParseCertificate(docPair.Certificate[0])
	if err != nil {
		return ""
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := sm.GetSecretValue(cctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	var notFound *smtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
		return "no renewed certificate in secret " + name
	case err != nil:
		return fmt.Sprintf("the document's certificate (could not read secret %s: %v)", name, err)
	}
	delivered, leaf, err := openDelivered(cctx, client, doc.ClusterID, doc.NodeID, ca, now, []byte(aws.ToString(out.SecretString)))
	if err != nil {
		return fmt.Sprintf("the document's certificate (secret %s version %s not used: %v)", name, aws.ToString(out.VersionId), err)
	}
	docValid := !now.Before(docLeaf.NotBefore) && now.Before(docLeaf.NotAfter)
	if docValid && !leaf.NotAfter.After(docLeaf.NotAfter) {
		return fmt.Sprintf("the document's certificate (serial %s) expires no earlier than the one of secret %s", docLeaf.SerialNumber.Text(16), name)
	}
	s.TLSPrivateKeyPEM, s.TLSCertificatePEM = delivered.TLSPrivateKeyPEM, delivered.TLSCertificatePEM
	return fmt.Sprintf("the renewed certificate of secret %s version %s (serial %s, expires %s) in place of the document's (serial %s, expires %s)",
		name, aws.ToString(out.VersionId), leaf.SerialNumber.Text(16), leaf.NotAfter.UTC().Format(time.RFC3339),
		docLeaf.SerialNumber.Text(16), docLeaf.NotAfter.UTC().Format(time.RFC3339))
}

// firstCertificate reads the first certificate of a PEM file.
func firstCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%s holds no certificate", path)
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// CertWatchMain is `tributary-broker cert-watch`.
func CertWatchMain(ctx context.Context, args []string, stderr io.Writer) error {
	flags := flag.NewFlagSet("tributary-broker cert-watch", flag.ContinueOnError)
	flags.SetOutput(stderr)
	clusterID := flags.String("cluster-id", "", "the cluster id (the boot document's)")
	nodeID := flags.Int("node-id", 0, "the broker's node id")
	runtimeDir := flags.String("runtime-dir", "", "the boot agent's runtime directory (its secrets/ holds the keystore)")
	region := flags.String("region", "", "the AWS region when the SDK's configuration names none")
	def := DefaultCertWatchInterval
	if v := os.Getenv(EnvCertWatchInterval); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s=%q is not a positive duration", EnvCertWatchInterval, v)
		}
		def = d
	}
	interval := flags.Duration("interval", def, "how often to read the secret (default $"+EnvCertWatchInterval+", else 30s)")
	withParent := flags.Bool("exit-with-parent", false, "stop when the process that started it (the broker) ends")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: tributary-broker cert-watch --cluster-id ID --node-id N --runtime-dir DIR [flags]\n\n"+
			"Applies a renewed TLS key and certificate that the provider delivered, KMS-sealed, in the broker's\n"+
			"Secrets Manager secret, by replacing the keystore file the broker reloads. The boot agent starts it.\n"+
			"See docs/broker-security.md.\n\nflags:")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *clusterID == "" || *nodeID <= 0 || *runtimeDir == "" {
		return errors.New("--cluster-id, --node-id and --runtime-dir are required")
	}
	cfg, err := awsbody.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("loading the AWS SDK configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = *region
	}
	kmsClient, err := newKMSClient(ctx, cfg.Region)
	if err != nil {
		return err
	}
	if *withParent {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go exitWithParent(ctx, cancel)
	}
	return CertWatch(ctx, CertWatchOptions{
		ClusterID:  *clusterID,
		NodeID:     int32(*nodeID),
		SecretsDir: filepath.Join(*runtimeDir, SecretsDirName),
		Interval:   *interval,
		Secrets:    secretsmanager.NewFromConfig(cfg),
		KMS:        kmsClient,
		Logger:     slog.New(slog.NewTextHandler(stderr, nil)).With("component", "cert-watch"),
	})
}

// certWatchArgs are the companion's arguments for a booted document.
func certWatchArgs(doc *bootconfig.Document, runtimeDir, region string) []string {
	return []string{"cert-watch", "--exit-with-parent", "--cluster-id", doc.ClusterID,
		"--node-id", strconv.Itoa(int(doc.NodeID)), "--runtime-dir", runtimeDir, "--region", region}
}
