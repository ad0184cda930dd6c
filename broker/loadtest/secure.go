package loadtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/chaos"
	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
	"github.com/tributary/tributary/internal/awsbody"
	"github.com/tributary/tributary/internal/localcloud"
)

// The listeners of a SecureBroker, named as the boot agent names them for
// Amazon MSK's ports.
const (
	ListenerPlaintext = "CLIENT"        // PLAINTEXT, as 9092
	ListenerTLS       = "CLIENT_SECURE" // SSL, as 9094
	ListenerIAM       = "CLIENT_IAM"    // SASL_SSL with OAUTHBEARER IAM tokens, as 9098
)

// secureClusterID is the cluster id IAM tokens are bound to.
const secureClusterID = "loadtest-secure"

// SecureBroker is one broker process serving PLAINTEXT, SSL and SASL_SSL
// with IAM identity tokens side by side, so the same workload can be
// measured through each. Its certificate comes from a CA made for the
// run; IAM tokens are checked against a local cloud's STS running in this
// process. Every principal is a super user: the figures are about the
// transport, not about ACLs.
type SecureBroker struct {
	*Process
	cloud *localcloud.Cloud
	ca    *tlstest.CA
	aws   aws.Config
}

// StartSecureBroker starts the local cloud and the broker under dir.
func StartSecureBroker(ctx context.Context, bin, dir string) (*SecureBroker, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	cloud, err := localcloud.Start(ctx, localcloud.Options{StateDir: filepath.Join(dir, "cloud"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, fmt.Errorf("local cloud: %w", err)
	}
	b := &SecureBroker{cloud: cloud, aws: aws.Config{
		Region:       cloud.Region(),
		BaseEndpoint: aws.String(cloud.Endpoint()),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:   awsbody.NewClient(),
	}}
	ok := false
	defer func() {
		if !ok {
			b.Close()
		}
	}()
	if b.ca, err = tlstest.NewCA("tributary-loadtest CA"); err != nil {
		return nil, err
	}
	leaf, err := b.ca.Issue("broker-1", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	keystore := filepath.Join(dir, "keystore.pem")
	if err := tlstest.WriteFile(keystore, leaf.Keystore()); err != nil {
		return nil, err
	}
	ports, err := chaos.FreePorts("127.0.0.1", 2)
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`node.id=1
cluster.id=%s
log.dirs=%s
listeners=%s://127.0.0.1:0,%s://127.0.0.1:0,%s://127.0.0.1:0
listener.security.protocol.map=%[3]s:PLAINTEXT,%[4]s:SSL,%[5]s:SASL_SSL
controller.quorum.voters=1@127.0.0.1:%d
inter.broker.listener.port=%d
# one broker on loopback: its plaintext replication and quorum ports have no peer
tributary.allow.plaintext.inter.broker=true
ssl.keystore.type=PEM
ssl.keystore.location=%s
listener.name.client_iam.sasl.enabled.mechanisms=OAUTHBEARER
tributary.iam.authorization=acls
super.users=User:ANONYMOUS;User:arn:aws:iam::000000000000:root
`, secureClusterID, filepath.Join(dir, "data"), ListenerPlaintext, ListenerTLS, ListenerIAM, ports[0], ports[1], keystore)
	file := filepath.Join(dir, "broker.properties")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	b.Process, err = StartBrokerConfig(sctx, bin, file,
		"AWS_ENDPOINT_URL="+cloud.Endpoint(), "AWS_REGION="+cloud.Region(),
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true")
	if err != nil {
		return nil, err
	}
	for _, l := range []string{ListenerPlaintext, ListenerTLS, ListenerIAM} {
		if b.Listeners[l] == "" {
			return nil, fmt.Errorf("the broker logged no address for listener %s", l)
		}
	}
	ok = true
	return b, nil
}

// ClientOpts are what a franz-go client needs on listener: nothing on
// PLAINTEXT, TLS trusting the run's CA on the others, and an IAM token of
// the local cloud's root on the IAM listener.
func (b *SecureBroker) ClientOpts(listener string) []kgo.Opt {
	tc := &tls.Config{RootCAs: b.ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	switch listener {
	case ListenerTLS:
		return []kgo.Opt{kgo.DialTLSConfig(tc)}
	case ListenerIAM:
		return []kgo.Opt{kgo.DialTLSConfig(tc), kgo.SASL(iamauth.FranzGoMechanism(b.aws, secureClusterID))}
	}
	return nil
}

// Close stops the broker and the local cloud.
func (b *SecureBroker) Close() {
	if b.Process != nil {
		b.Stop(30 * time.Second)
	}
	_ = b.cloud.Close()
}
