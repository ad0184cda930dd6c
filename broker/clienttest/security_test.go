package clienttest

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	fsasl "github.com/twmb/franz-go/pkg/sasl"
	fscram "github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/broker/iamauth/saramaauth"
	"github.com/tributary/tributary/broker/metrics"
	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
	"github.com/tributary/tributary/broker/server"
	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/iam"
	"github.com/tributary/tributary/internal/localcloud/sts"
)

// The secure broker's identity and users.
const (
	secureClusterID = "clienttest-secure"
	roleName        = "orders-app"
	rolePrincipal   = "User:arn:aws:iam::000000000000:role/" + roleName
)

var secureUsers = []struct{ user, mechanism, password string }{
	{"alice", "SCRAM-SHA-512", "alice-secret"},
	{"alice", "SCRAM-SHA-256", "alice-secret"},
	{"bob", "SCRAM-SHA-256", "bob-secret"},
}

// secureBroker is an in-process broker serving Amazon MSK's client
// listeners (CLIENT plaintext, CLIENT_SECURE TLS with optional client
// certificates, CLIENT_SASL_SCRAM, CLIENT_IAM), with the local cloud's STS
// behind a switchable proxy for IAM identity tokens.
type secureBroker struct {
	*testBroker
	logs     *syncBuffer // the broker's log, debug level
	dir      string
	ca       *tlstest.CA
	caFile   string
	client   tlstest.Leaf // from ca
	certFile string
	keyFile  string
	intruder tlstest.Leaf // from another CA
	// IAM: the role's session, presigning for the STS proxy.
	session aws.Config
	creds   aws.Credentials
	stsURL  string
	stsDown atomic.Bool
	// metricsURL is the broker's Prometheus endpoint (its registry's
	// handler, as the broker serves it).
	metricsURL string
}

func startSecureBroker(t *testing.T) *secureBroker {
	t.Helper()
	sb := &secureBroker{dir: t.TempDir()}
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	sb.ca, err = tlstest.NewCA("clienttest CA")
	must(err)
	brokerCert, err := sb.ca.Issue("broker-1", "127.0.0.1", "localhost")
	must(err)
	sb.client, err = sb.ca.Issue("app")
	must(err)
	other, err := tlstest.NewCA("another CA")
	must(err)
	sb.intruder, err = other.Issue("intruder")
	must(err)
	write := func(name, content string) string {
		p := filepath.Join(sb.dir, name)
		must(tlstest.WriteFile(p, content))
		return p
	}
	keystore := write("keystore.pem", brokerCert.Keystore())
	sb.caFile = write("ca.pem", sb.ca.PEM)
	sb.certFile, sb.keyFile = write("client.pem", sb.client.CertPEM), write("client.key", sb.client.KeyPEM)
	var users []map[string]string
	for _, u := range secureUsers {
		users = append(users, map[string]string{"username": u.user, "mechanism": u.mechanism, "password": u.password})
	}
	b, _ := json.Marshal(users)
	bootstrap := write("scram.json", string(b))

	// The local cloud's IAM and STS; the broker and the clients reach STS
	// through a proxy the test can turn into an outage.
	cloud := awsapitest.Start(t)
	iamSvc, err := iam.New(cloud.Env(""))
	must(err)
	stsSvc, err := sts.New(cloud.Env(""), iamSvc)
	must(err)
	cloud.Server.Register("iam", iamSvc)
	cloud.Server.Register("sts", stsSvc)
	cloud.Server.SetAuthorizer(iamSvc)
	role := awsapitest.CreateRole(t, awsiam.NewFromConfig(cloud.Root()), roleName, awsapitest.TrustAccount)
	session, _ := cloud.AssumeRole(t, aws.ToString(role.Arn), 3600)
	target, _ := url.Parse(cloud.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	stsProxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sb.stsDown.Load() {
			http.Error(w, "<ErrorResponse><Error><Code>ServiceUnavailable</Code><Message>down for the test</Message></Error></ErrorResponse>", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(stsProxy.Close)
	sb.stsURL = stsProxy.URL
	sb.session = session.Copy()
	sb.session.BaseEndpoint = aws.String(stsProxy.URL)
	sb.creds, err = session.Credentials.Retrieve(context.Background())
	must(err)
	// The broker's own AWS configuration: the SDK's default chain.
	for k, v := range map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_STS": stsProxy.URL, "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": filepath.Join(sb.dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(sb.dir, "none"),
		"AWS_PROFILE": "", "AWS_ENDPOINT_URL": "",
	} {
		t.Setenv(k, v)
	}

	sb.logs = &syncBuffer{}
	var w io.Writer = sb.logs
	if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
		w = io.MultiWriter(sb.logs, os.Stderr)
	}
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := metrics.New(metrics.Options{BrokerID: 1, DataDir: t.TempDir(), Logger: logger})
	metricsSrv := httptest.NewServer(reg.Handler(""))
	t.Cleanup(metricsSrv.Close)
	sb.metricsURL = metricsSrv.URL + "/metrics"
	sb.testBroker = startBrokerReporting(t, logger, reg, func(c *config.Config) {
		props := map[string]string{
			"cluster.id":                                              secureClusterID,
			"listeners":                                               "CLIENT://127.0.0.1:0,CLIENT_SECURE://127.0.0.1:0,CLIENT_MTLS://127.0.0.1:0,CLIENT_SASL_SCRAM://127.0.0.1:0,CLIENT_IAM://127.0.0.1:0",
			"listener.security.protocol.map":                          "CLIENT:PLAINTEXT,CLIENT_SECURE:SSL,CLIENT_MTLS:SSL,CLIENT_SASL_SCRAM:SASL_SSL,CLIENT_IAM:SASL_SSL",
			"ssl.keystore.type":                                       "PEM",
			"ssl.keystore.location":                                   keystore,
			"ssl.truststore.location":                                 sb.caFile,
			"listener.name.client_secure.ssl.client.auth":             "requested",
			"listener.name.client_mtls.ssl.client.auth":               "required",
			"listener.name.client_sasl_scram.sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
			"listener.name.client_iam.sasl.enabled.mechanisms":        "OAUTHBEARER",
			"tributary.scram.bootstrap.file":                          bootstrap,
			// These tests are about who a client is: every principal
			// they authenticate may do everything (authorization has its
			// own tests), IAM principals included, through ACL rules.
			"tributary.iam.authorization": "acls",
			"super.users":                 "User:ANONYMOUS;User:alice;User:bob;User:CN=app,O=Tributary tests;" + rolePrincipal,
		}
		var ps []config.Property
		for k, v := range props {
			ps = append(ps, config.Property{Key: k, Value: v, Line: len(ps) + 1})
		}
		must(c.ApplyProperties(ps, nil))
		must(c.Validate())
	})
	return sb
}

// addr is the bound address of a listener.
func (sb *secureBroker) addr(listener string) string { return sb.srv.ListenerAddr(listener).String() }

func (sb *secureBroker) tlsConfig(cert *tlstest.Leaf) *tls.Config {
	c := &tls.Config{RootCAs: sb.ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		pair, err := cert.TLSCertificate()
		if err != nil {
			panic(err)
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	}
	return c
}

// awsEnv is the environment of a `tributary-broker iam-token` run for the
// role's session.
func (sb *secureBroker) awsEnv() []string {
	return append(os.Environ(), "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_STS="+sb.stsURL,
		"AWS_ACCESS_KEY_ID="+sb.creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+sb.creds.SecretAccessKey, "AWS_SESSION_TOKEN="+sb.creds.SessionToken,
		"AWS_CONFIG_FILE="+filepath.Join(sb.dir, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(sb.dir, "none"), "AWS_EC2_METADATA_DISABLED=true")
}

func scramMechanism(m, user, pass string) fsasl.Mechanism {
	a := fscram.Auth{User: user, Pass: pass}
	if m == "SCRAM-SHA-256" {
		return a.AsSha256Mechanism()
	}
	return a.AsSha512Mechanism()
}

// roundTrip produces n records to a fresh topic through cl and reads them
// back with a consumer made with the same options.
func roundTripRecords(t *testing.T, opts []kgo.Opt, topic string, n int) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	p, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())...)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range n {
		if err := p.ProduceSync(ctx, kgo.StringRecord(fmt.Sprintf("%s-%d", topic, i))).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
	c, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := 0
	for got < n {
		fs := c.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("consume %s: %v", topic, err)
		}
		got += fs.NumRecords()
	}
}

// TestSecureFranzGo: franz-go through every listener and mechanism.
func TestSecureFranzGo(t *testing.T) {
	sb := startSecureBroker(t)
	for _, tt := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"TLS", []kgo.Opt{kgo.SeedBrokers(sb.addr("CLIENT_SECURE")), kgo.DialTLSConfig(sb.tlsConfig(nil))}},
		{"mutual TLS", []kgo.Opt{kgo.SeedBrokers(sb.addr("CLIENT_SECURE")), kgo.DialTLSConfig(sb.tlsConfig(&sb.client))}},
		{"SCRAM-SHA-512", []kgo.Opt{kgo.SeedBrokers(sb.addr("CLIENT_SASL_SCRAM")), kgo.DialTLSConfig(sb.tlsConfig(nil)), kgo.SASL(scramMechanism("SCRAM-SHA-512", "alice", "alice-secret"))}},
		{"SCRAM-SHA-256", []kgo.Opt{kgo.SeedBrokers(sb.addr("CLIENT_SASL_SCRAM")), kgo.DialTLSConfig(sb.tlsConfig(nil)), kgo.SASL(scramMechanism("SCRAM-SHA-256", "bob", "bob-secret"))}},
		{"IAM", []kgo.Opt{kgo.SeedBrokers(sb.addr("CLIENT_IAM")), kgo.DialTLSConfig(sb.tlsConfig(nil)), kgo.SASL(iamauth.FranzGoMechanism(sb.session, secureClusterID))}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			roundTripRecords(t, tt.opts, "franz-"+strings.ReplaceAll(strings.ToLower(tt.name), " ", "-"), 20)
		})
	}
	// Who each connection was: the certificate's subject, the SCRAM
	// user, the role of the IAM session (not the session's own ARN).
	for _, p := range []string{"principal=\"User:CN=app,O=Tributary tests\" by=\"TLS client certificate\"",
		"principal=User:alice by=SCRAM-SHA-512", "principal=User:bob by=SCRAM-SHA-256", "principal=" + rolePrincipal + " by=OAUTHBEARER"} {
		if !strings.Contains(sb.logs.String(), p) {
			t.Errorf("no connection authenticated with %s", p)
		}
	}
}

// saramaSCRAM adapts franz-go's SCRAM client to sarama's SCRAMClient.
type saramaSCRAM struct {
	mech  string
	sess  fsasl.Session
	first []byte
	done  bool
}

func (s *saramaSCRAM) Begin(user, pass, _ string) error {
	var err error
	s.sess, s.first, err = scramMechanism(s.mech, user, pass).Authenticate(context.Background(), "")
	return err
}

func (s *saramaSCRAM) Step(challenge string) (string, error) {
	if s.first != nil {
		first := s.first
		s.first = nil
		return string(first), nil
	}
	done, resp, err := s.sess.Challenge([]byte(challenge))
	s.done = done
	return string(resp), err
}

func (s *saramaSCRAM) Done() bool { return s.done }

func saramaSecure(sb *secureBroker) *sarama.Config {
	conf := saramaConfig()
	conf.Net.TLS.Enable = true
	conf.Net.TLS.Config = sb.tlsConfig(nil)
	conf.Producer.Return.Successes = true
	conf.Metadata.Retry.Max = 1
	conf.Net.DialTimeout, conf.Net.ReadTimeout, conf.Net.WriteTimeout = 5*time.Second, 10*time.Second, 10*time.Second
	return conf
}

// TestSecureSarama: sarama with TLS, SCRAM-SHA-512, SCRAM-SHA-256 and IAM
// tokens, and its refusals.
func TestSecureSarama(t *testing.T) {
	sb := startSecureBroker(t)
	scramConf := func(mech, user, pass string) *sarama.Config {
		conf := saramaSecure(sb)
		conf.Net.SASL.Enable = true
		conf.Net.SASL.Mechanism = sarama.SASLMechanism(mech)
		conf.Net.SASL.User, conf.Net.SASL.Password = user, pass
		conf.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{mech: mech} }
		return conf
	}
	iamConf := func(cluster string) *sarama.Config {
		conf := saramaSecure(sb)
		conf.Net.SASL.Enable = true
		conf.Net.SASL.Mechanism = sarama.SASLTypeOAuth
		conf.Net.SASL.TokenProvider = saramaauth.New(sb.session, cluster)
		return conf
	}
	for _, tt := range []struct {
		name, listener string
		conf           *sarama.Config
	}{
		{"TLS", "CLIENT_SECURE", saramaSecure(sb)},
		{"SCRAM-SHA-512", "CLIENT_SASL_SCRAM", scramConf(sarama.SASLTypeSCRAMSHA512, "alice", "alice-secret")},
		{"SCRAM-SHA-256", "CLIENT_SASL_SCRAM", scramConf(sarama.SASLTypeSCRAMSHA256, "alice", "alice-secret")},
		{"IAM", "CLIENT_IAM", iamConf(secureClusterID)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			topic := "sarama-" + strings.ToLower(tt.name)
			p, err := sarama.NewSyncProducer([]string{sb.addr(tt.listener)}, tt.conf)
			if err != nil {
				t.Fatalf("producer: %v", err)
			}
			for i := range 10 {
				if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
					t.Fatalf("send: %v", err)
				}
			}
			p.Close()
			c, err := sarama.NewConsumer([]string{sb.addr(tt.listener)}, tt.conf)
			if err != nil {
				t.Fatalf("consumer: %v", err)
			}
			defer c.Close()
			pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			for i := range 10 {
				select {
				case m := <-pc.Messages():
					if string(m.Value) != fmt.Sprint(i) {
						t.Fatalf("record %d is %q", i, m.Value)
					}
				case <-time.After(15 * time.Second):
					t.Fatalf("record %d not consumed", i)
				}
			}
		})
	}
	for _, tt := range []struct {
		name, listener string
		conf           *sarama.Config
		want           string
	}{
		{"wrong password", "CLIENT_SASL_SCRAM", scramConf(sarama.SASLTypeSCRAMSHA512, "alice", "nope"), "invalid credentials"},
		{"token for another cluster", "CLIENT_IAM", iamConf("payments"), "another cluster"},
	} {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			cl, err := sarama.NewClient([]string{sb.addr(tt.listener)}, tt.conf)
			if err == nil {
				cl.Close()
				t.Fatal("sarama logged in")
			}
			if !errors.Is(err, sarama.ErrSASLAuthenticationFailed) && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("sarama: %v, want SASL_AUTHENTICATION_FAILED (%s)", err, tt.want)
			}
		})
	}
}

// expiredToken is a token whose client clock said 20 minutes ago: signed
// correctly, for this cluster, past its 15 minutes.
func expiredToken(t *testing.T, cfg aws.Config, creds aws.Credentials) string {
	t.Helper()
	u, _ := url.Parse(aws.ToString(cfg.BaseEndpoint) + "/")
	u.RawQuery = url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2011-06-15"}, "X-Amz-Expires": {"900"}}.Encode()
	req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
	req.Header.Set(iamauth.ClusterIDHeader, secureClusterID)
	signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sts", cfg.Region, time.Now().Add(-20*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(signed + "#cluster=" + secureClusterID))
}

// goodToken is a valid token for this cluster.
func goodToken(t *testing.T, cfg aws.Config) string {
	t.Helper()
	tok, err := iamauth.NewToken(context.Background(), cfg, secureClusterID)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Value
}

// alteredToken is a valid token whose signature was changed.
func alteredToken(t *testing.T, cfg aws.Config) string {
	t.Helper()
	tok, err := iamauth.NewToken(context.Background(), cfg, secureClusterID)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok.Value)
	s := string(raw)
	i := strings.Index(s, "X-Amz-Signature=") + len("X-Amz-Signature=")
	flip := byte('0')
	if s[i] == '0' {
		flip = '1'
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s[:i] + string(flip) + s[i+1:]))
}

// fixedToken is an OAUTHBEARER mechanism that sends one token.
type fixedToken string

func (f fixedToken) Name() string { return "OAUTHBEARER" }
func (f fixedToken) Authenticate(context.Context, string) (fsasl.Session, []byte, error) {
	return fixedSession{}, []byte("n,,\x01auth=Bearer " + string(f) + "\x01\x01"), nil
}

// bearerWithExtension sends a bearer token and the IAM token extension,
// as librdkafka's unsecured-JWT configuration does.
type bearerWithExtension struct{ bearer, iamToken string }

func (b bearerWithExtension) Name() string { return "OAUTHBEARER" }
func (b bearerWithExtension) Authenticate(context.Context, string) (fsasl.Session, []byte, error) {
	return fixedSession{}, []byte("n,,\x01auth=Bearer " + b.bearer + "\x01" + server.IAMTokenExtension + "=" + b.iamToken + "\x01\x01"), nil
}

// unsecuredJWT is what librdkafka makes with enable.sasl.oauthbearer.unsecure.jwt.
func unsecuredJWT(sub string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{"sub":"`+sub+`","exp":4102444800}`)) + "."
}

type fixedSession struct{}

func (fixedSession) Challenge(b []byte) (bool, []byte, error) {
	if len(b) > 0 {
		return false, []byte{1}, nil // RFC 7628: answer the error challenge
	}
	return true, nil, nil
}

// metadataOnce sends one Metadata request from a new client that does not
// retry, so that each call is one connection and one authentication.
func metadataOnce(t *testing.T, opts ...kgo.Opt) error {
	t.Helper()
	cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cl.Request(ctx, kmsg.NewPtrMetadataRequest())
	return err
}

// TestSecureRefusals: what the broker refuses, each with the error the
// client sees.
func TestSecureRefusals(t *testing.T) {
	sb := startSecureBroker(t)
	request := func(opts ...kgo.Opt) error { t.Helper(); return metadataOnce(t, opts...) }
	scram := func(m, user, pass string) error {
		return request(kgo.SeedBrokers(sb.addr("CLIENT_SASL_SCRAM")), kgo.DialTLSConfig(sb.tlsConfig(nil)), kgo.SASL(scramMechanism(m, user, pass)))
	}
	iamWith := func(m fsasl.Mechanism) error {
		return request(kgo.SeedBrokers(sb.addr("CLIENT_IAM")), kgo.DialTLSConfig(sb.tlsConfig(nil)), kgo.SASL(m))
	}
	scramMessage := "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
	for _, tt := range []struct {
		name string
		err  error
		want []string // in the client's error
	}{
		{"wrong SCRAM password", scram("SCRAM-SHA-512", "alice", "guess"), []string{"SASL_AUTHENTICATION_FAILED", scramMessage}},
		{"unknown SCRAM user", scram("SCRAM-SHA-512", "mallory", "guess"), []string{"SASL_AUTHENTICATION_FAILED", scramMessage}},
		{"expired token", iamWith(fixedToken(expiredToken(t, sb.session, sb.creds))), []string{"SASL_AUTHENTICATION_FAILED", "expired"}},
		{"token for another cluster", iamWith(iamauth.FranzGoMechanism(sb.session, "payments")), []string{"SASL_AUTHENTICATION_FAILED", "another cluster"}},
		{"altered signature", iamWith(fixedToken(alteredToken(t, sb.session))), []string{"SASL_AUTHENTICATION_FAILED", "refused by STS"}},
		{"client certificate from another CA", request(kgo.SeedBrokers(sb.addr("CLIENT_SECURE")), kgo.DialTLSConfig(sb.tlsConfig(&sb.intruder))), []string{"tls: unknown certificate authority"}},
		{"plaintext client on a TLS port", request(kgo.SeedBrokers(sb.addr("CLIENT_SECURE"))), []string{"broker closed the connection immediately"}},
		{"TLS client that does not trust the broker", request(kgo.SeedBrokers(sb.addr("CLIENT_SECURE")), kgo.DialTLSConfig(&tls.Config{ServerName: "127.0.0.1"})), []string{"certificate signed by unknown authority"}},
		{"unsecured JWT alone (it carries no authority)", iamWith(fixedToken(unsecuredJWT("admin"))), []string{"SASL_AUTHENTICATION_FAILED", "malformed IAM token"}},
		{"IAM token extension with a signed bearer token", iamWith(bearerWithExtension{bearer: "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", iamToken: goodToken(t, sb.session)}), []string{"SASL_AUTHENTICATION_FAILED", "unsecured JWT bearer token only"}},
		{"SCRAM client on the IAM listener", request(kgo.SeedBrokers(sb.addr("CLIENT_IAM")), kgo.DialTLSConfig(sb.tlsConfig(nil)), kgo.SASL(scramMechanism("SCRAM-SHA-512", "alice", "alice-secret"))), []string{"UNSUPPORTED_SASL_MECHANISM"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("served")
			}
			t.Logf("client error: %v", tt.err)
			for _, w := range tt.want {
				if !strings.Contains(tt.err.Error(), w) {
					t.Fatalf("client error %q does not say %q", tt.err, w)
				}
			}
		})
	}
	// Nothing in any refusal names a secret.
	for _, s := range []string{"alice-secret", "guess", sb.creds.SecretAccessKey, sb.creds.SessionToken} {
		if err := scram("SCRAM-SHA-512", "alice", "guess"); strings.Contains(err.Error(), s) {
			t.Fatalf("a refusal holds a secret: %v", err)
		}
	}
	if err := scram("SCRAM-SHA-512", "alice", "alice-secret"); err != nil {
		t.Fatalf("the right password after refusals: %v", err)
	}
	// The extension is what authenticates, whatever the JWT names.
	if err := iamWith(bearerWithExtension{bearer: unsecuredJWT("admin"), iamToken: goodToken(t, sb.session)}); err != nil {
		t.Fatalf("an unsecured JWT with the IAM token extension: %v", err)
	}
	if !strings.Contains(sb.logs.String(), "principal="+rolePrincipal+" by=OAUTHBEARER") || strings.Contains(sb.logs.String(), "principal=User:admin") {
		t.Fatal("the JWT's subject, not the IAM token's role, became the principal")
	}
}

// TestSecureSTSOutage: while STS cannot be reached, new IAM logins fail
// with that reason, and connections already authenticated go on.
func TestSecureSTSOutage(t *testing.T) {
	sb := startSecureBroker(t)
	opts := []kgo.Opt{kgo.SeedBrokers(sb.addr("CLIENT_IAM")), kgo.DialTLSConfig(sb.tlsConfig(nil)), kgo.SASL(iamauth.FranzGoMechanism(sb.session, secureClusterID))}
	established, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer established.Close()
	ctx := testContext(t, 30*time.Second)
	// franz-go opens a connection to the seed address, then one to the
	// broker it learns of: both are established before the outage.
	for range 3 {
		if _, err := established.Request(ctx, kmsg.NewPtrMetadataRequest()); err != nil {
			t.Fatal(err)
		}
	}
	sb.stsDown.Store(true)
	// A fresh token (a new second): not one the broker has verified.
	time.Sleep(1100 * time.Millisecond)
	fresh, err := kgo.NewClient(append(opts, kgo.RequestRetries(0))...)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = fresh.Request(fctx, kmsg.NewPtrMetadataRequest())
	cancel()
	if err == nil || !strings.Contains(err.Error(), "STS") || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("a login during the outage: %v, want STS unavailable", err)
	}
	for range 3 {
		if _, err := established.Request(ctx, kmsg.NewPtrMetadataRequest()); err != nil {
			t.Fatalf("an established connection during the outage: %v", err)
		}
	}
	sb.stsDown.Store(false)
	time.Sleep(1100 * time.Millisecond)
	if _, err := fresh.Request(ctx, kmsg.NewPtrMetadataRequest()); err != nil {
		t.Fatalf("a login after the outage: %v", err)
	}
}

// TestSecureKcat: kcat (librdkafka) over TLS with CA verification, SCRAM-SHA-512,
// and OAUTHBEARER with the IAM token in an unsecured JWT's extension, and
// its refusals.
func TestSecureKcat(t *testing.T) {
	requireTool(t, "/usr/bin/kcat", "kcat")
	bin := brokerBinary(t)
	sb := startSecureBroker(t)
	token := func(cluster string) string {
		t.Helper()
		cmd := exec.Command(bin, "iam-token", "--cluster-id", cluster)
		cmd.Env = sb.awsEnv()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("iam-token: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	tlsArgs := []string{"-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + sb.caFile}
	scramArgs := func(pass string) []string {
		return []string{"-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + sb.caFile, "-X", "sasl.mechanisms=SCRAM-SHA-512",
			"-X", "sasl.username=alice", "-X", "sasl.password=" + pass}
	}
	iamArgs := func(tok string) []string {
		return []string{"-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + sb.caFile, "-X", "sasl.mechanisms=OAUTHBEARER",
			"-X", "enable.sasl.oauthbearer.unsecure.jwt=true", "-X", "sasl.oauthbearer.config=principal=kcat extension_" + server.IAMTokenExtension + "=" + tok}
	}
	for _, tt := range []struct {
		name, listener string
		args           []string
	}{
		{"TLS", "CLIENT_SECURE", tlsArgs},
		{"mutual TLS", "CLIENT_SECURE", append(tlsArgs, "-X", "ssl.certificate.location="+sb.certFile, "-X", "ssl.key.location="+sb.keyFile)},
		{"SCRAM-SHA-512", "CLIENT_SASL_SCRAM", scramArgs("alice-secret")},
		{"IAM", "CLIENT_IAM", iamArgs(token(secureClusterID))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			topic := "kcat-" + strings.ReplaceAll(strings.ToLower(tt.name), " ", "-")
			var in strings.Builder
			for i := range 10 {
				fmt.Fprintf(&in, "%s-%d\n", topic, i)
			}
			run(t, 30*time.Second, in.String(), "/usr/bin/kcat", append([]string{"-P", "-b", sb.addr(tt.listener), "-t", topic}, tt.args...)...)
			out := run(t, 30*time.Second, "", "/usr/bin/kcat", append([]string{"-C", "-b", sb.addr(tt.listener), "-t", topic, "-o", "beginning", "-e", "-q"}, tt.args...)...)
			if got := strings.Count(out, topic+"-"); got != 10 {
				t.Fatalf("kcat consumed %d records:\n%s", got, out)
			}
			meta := run(t, 15*time.Second, "", "/usr/bin/kcat", append([]string{"-L", "-b", sb.addr(tt.listener)}, tt.args...)...)
			if !strings.Contains(meta, "broker 1 at "+sb.addr(tt.listener)) {
				t.Fatalf("kcat -L through %s does not list the broker at that listener:\n%s", tt.listener, meta)
			}
		})
	}
	for _, tt := range []struct {
		name, listener string
		args           []string
		want           string
	}{
		{"wrong SCRAM password", "CLIENT_SASL_SCRAM", scramArgs("guess"), "Authentication failed"},
		{"token for another cluster", "CLIENT_IAM", iamArgs(token("payments")), "another cluster"},
		{"client certificate from another CA", "CLIENT_SECURE", append(tlsArgs, "-X", "ssl.certificate.location="+writeFile(t, sb.intruder.CertPEM), "-X", "ssl.key.location="+writeFile(t, sb.intruder.KeyPEM)), "alert unknown ca"},
		{"plaintext on a TLS port", "CLIENT_SECURE", nil, "Disconnected while requesting ApiVersion"},
	} {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			out, err := runFails(t, 20*time.Second, "/usr/bin/kcat", append([]string{"-L", "-b", sb.addr(tt.listener), "-m", "5"}, tt.args...)...)
			if err == nil {
				t.Fatalf("kcat was served:\n%s", out)
			}
			t.Logf("kcat: %s", out)
			if !strings.Contains(out, tt.want) {
				t.Fatalf("kcat's error does not say %q:\n%s", tt.want, out)
			}
		})
	}
}

// TestSecurePythonClients: kafka-python over SASL_SSL with SCRAM-SHA-256,
// and confluent-kafka with OAUTHBEARER through an oauth_cb running
// `tributary-broker iam-token --json`.
func TestSecurePythonClients(t *testing.T) {
	requirePython(t, "kafka", "python3-kafka")
	requirePython(t, "confluent_kafka", "python3-confluent-kafka")
	bin := brokerBinary(t)
	sb := startSecureBroker(t)
	t.Run("kafka-python SCRAM-SHA-256", func(t *testing.T) {
		script := `
import logging, sys
logging.basicConfig(level=logging.ERROR)
from kafka import KafkaProducer, KafkaConsumer
addr, ca = sys.argv[1], sys.argv[2]
common = dict(bootstrap_servers=addr, security_protocol='SASL_SSL', ssl_cafile=ca, ssl_check_hostname=True,
              sasl_mechanism='SCRAM-SHA-256', sasl_plain_username='bob', sasl_plain_password=sys.argv[3])
p = KafkaProducer(acks='all', **common)
for i in range(20):
    p.send('kpy-scram', ('py-%d' % i).encode()).get(timeout=30)
p.close()
c = KafkaConsumer('kpy-scram', auto_offset_reset='earliest', consumer_timeout_ms=20000, **common)
seen = set()
for m in c:
    seen.add(m.value.decode())
    if len(seen) == 20:
        break
c.close()
print(len(seen))
`
		out := run(t, 90*time.Second, "", python, "-c", script, sb.addr("CLIENT_SASL_SCRAM"), sb.caFile, "bob-secret")
		if strings.TrimSpace(out) != "20" {
			t.Fatalf("kafka-python consumed %q records, want 20", out)
		}
		failed, err := runFails(t, 60*time.Second, python, "-c", script, sb.addr("CLIENT_SASL_SCRAM"), sb.caFile, "guess")
		t.Logf("kafka-python: %s", failed)
		// kafka-python 2.0 authenticates with SaslHandshake v0 and raw
		// frames, which have no room for an error: the broker closes the
		// connection, as Kafka does, while the client authenticates.
		if err == nil || !strings.Contains(failed, "<authenticating>") || !strings.Contains(failed, "NoBrokersAvailable") {
			t.Fatalf("kafka-python with a wrong password: %v\n%s", err, failed)
		}
	})
	t.Run("confluent-kafka OAUTHBEARER", func(t *testing.T) {
		script := `
import json, subprocess, sys
addr, ca, binary, cluster = sys.argv[1:5]
def oauth_cb(config):
    out = json.loads(subprocess.check_output([binary, "iam-token", "--cluster-id", cluster, "--json"]))
    return out["token"], out["expiry_ms"] / 1000.0
from confluent_kafka import Producer, Consumer
common = {"bootstrap.servers": addr, "security.protocol": "SASL_SSL", "ssl.ca.location": ca,
          "sasl.mechanisms": "OAUTHBEARER", "oauth_cb": oauth_cb}
errors = []
p = Producer(dict(common))
p.poll(1)  # librdkafka calls oauth_cb from poll
for i in range(20):
    p.produce("ck-iam", ("ck-%d" % i).encode(), on_delivery=lambda err, msg: err and errors.append(err))
if p.flush(30) != 0 or errors:
    sys.exit("produce failed: %s" % errors)
c = Consumer(dict(common, **{"group.id": "ck-iam", "auto.offset.reset": "earliest"}))
c.subscribe(["ck-iam"])
seen = 0
import time
deadline = time.time() + 30
while seen < 20 and time.time() < deadline:
    m = c.poll(1)
    if m is not None and m.error() is None:
        seen += 1
c.close()
print(seen)
`
		cmd := exec.Command(python, "-c", script, sb.addr("CLIENT_IAM"), sb.caFile, bin, secureClusterID)
		cmd.Env = sb.awsEnv()
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "20") {
			t.Fatalf("confluent-kafka with IAM tokens: %v\n%s", err, out)
		}
	})
}

// runFails runs a command that is expected to fail, returning its output.
func runFails(t *testing.T, limit time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s did not end within %v:\n%s", name, limit, out)
	}
	return string(out), err
}

// writeFile writes content to a new file in the test's directory.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "pem-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}
