package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
)

// tlsEnv is a CA, the broker's certificate and a client certificate, with
// the broker's keystore and truststore written to files.
type tlsEnv struct {
	ca, otherCA        *tlstest.CA
	broker, client     tlstest.Leaf
	keystore, trustore string
}

func newTLSEnv(t testing.TB) *tlsEnv {
	t.Helper()
	e := &tlsEnv{}
	var err error
	if e.ca, err = tlstest.NewCA("tributary test CA"); err != nil {
		t.Fatal(err)
	}
	if e.otherCA, err = tlstest.NewCA("another CA"); err != nil {
		t.Fatal(err)
	}
	if e.broker, err = e.ca.Issue("broker-1", "127.0.0.1", "localhost"); err != nil {
		t.Fatal(err)
	}
	if e.client, err = e.ca.Issue("app"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e.keystore, e.trustore = filepath.Join(dir, "keystore.pem"), filepath.Join(dir, "ca.pem")
	if err := tlstest.WriteFile(e.keystore, e.broker.Keystore()); err != nil {
		t.Fatal(err)
	}
	if err := tlstest.WriteFile(e.trustore, e.ca.PEM); err != nil {
		t.Fatal(err)
	}
	return e
}

// clientTLS is a client configuration trusting ca, presenting cert when
// given.
func clientTLS(t testing.TB, ca *tlstest.CA, cert *tlstest.Leaf) *tls.Config {
	t.Helper()
	c := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		pair, err := cert.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c
}

// startListeners runs a broker with the given listener settings (ports 0)
// and returns it with its debug log.
func startListeners(t testing.TB, props map[string]string, awsCfg ...*aws.Config) (*Server, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	s, err := newListenersServer(t, props, logs, awsCfg...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, logs
}

func newListenersServer(t testing.TB, props map[string]string, logs io.Writer, awsCfg ...*aws.Config) (*Server, error) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.GroupInitialRebalanceDelay = 0
	var ps []config.Property
	for k, v := range props {
		ps = append(ps, config.Property{Key: k, Value: v, Line: len(ps) + 1})
	}
	if err := cfg.ApplyProperties(ps, nil); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var w io.Writer = logs
	if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	opts := Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if len(awsCfg) > 0 {
		opts.AWSConfig = awsCfg[0]
	}
	return New(context.Background(), opts)
}

// threeListeners is PLAINTEXT, SSL and mutual-TLS SSL on ports 0.
func threeListeners(e *tlsEnv) map[string]string {
	return map[string]string{
		"listeners":                                             "CLIENT://127.0.0.1:0,CLIENT_SECURE://127.0.0.1:0,CLIENT_MTLS://127.0.0.1:0",
		"listener.security.protocol.map":                        "CLIENT:PLAINTEXT,CLIENT_SECURE:SSL,CLIENT_MTLS:SSL",
		"ssl.keystore.type":                                     "PEM",
		"ssl.keystore.location":                                 e.keystore,
		"ssl.truststore.location":                               e.trustore,
		"listener.name.client_mtls.ssl.client.auth":             "required",
		"listener.name.client_mtls.ssl.principal.mapping.rules": "RULE:^CN=([^,]+),.*$/$1/L,DEFAULT",
		// The mutual-TLS listener authenticates, so no ACL means no
		// access: these clients are the cluster's administrators.
		"super.users": "User:ANONYMOUS;User:app",
	}
}

func port(a net.Addr) int32 { return int32(a.(*net.TCPAddr).Port) }

// TestListenersEachServed: every configured listener is served, and
// Metadata, FindCoordinator and DescribeCluster answer with the endpoints
// of the listener the client connected on.
func TestListenersEachServed(t *testing.T) {
	e := newTLSEnv(t)
	s, _ := startListeners(t, threeListeners(e))
	clients := map[string][]kgo.Opt{
		"CLIENT":        nil,
		"CLIENT_SECURE": {kgo.DialTLSConfig(clientTLS(t, e.ca, nil))},
		"CLIENT_MTLS":   {kgo.DialTLSConfig(clientTLS(t, e.ca, &e.client))},
	}
	for name, opts := range clients {
		t.Run(name, func(t *testing.T) {
			addr := s.ListenerAddr(name)
			if addr == nil {
				t.Fatalf("listener %s not served", name)
			}
			cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(addr.String()), kgo.DefaultProduceTopic("t-"+strings.ToLower(name)),
				kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics("t-"+strings.ToLower(name)))...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			if len(md.Brokers) != 1 || md.Brokers[0].Port != port(addr) {
				t.Fatalf("Metadata on %s lists %+v, want port %d", name, md.Brokers, port(addr))
			}
			fc := kmsg.NewPtrFindCoordinatorRequest()
			fc.CoordinatorKey = "g"
			fr, err := fc.RequestWith(ctx, cl)
			if err != nil || fr.ErrorCode != 0 || fr.Port != port(addr) {
				t.Fatalf("FindCoordinator on %s: %+v %v", name, fr, err)
			}
			dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
			if err != nil || len(dc.Brokers) != 1 || dc.Brokers[0].Port != port(addr) {
				t.Fatalf("DescribeCluster on %s: %+v %v", name, dc, err)
			}
			if err := cl.ProduceSync(ctx, kgo.StringRecord("over "+name)).FirstErr(); err != nil {
				t.Fatalf("produce over %s: %v", name, err)
			}
			fs := cl.PollFetches(ctx)
			if err := fs.Err(); err != nil {
				t.Fatalf("consume over %s: %v", name, err)
			}
			if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "over "+name {
				t.Fatalf("consumed %v over %s", recs, name)
			}
		})
	}
}

// TestListenerMutualTLSPrincipal: the client certificate names the
// principal, through ssl.principal.mapping.rules.
func TestListenerMutualTLSPrincipal(t *testing.T) {
	e := newTLSEnv(t)
	s, logs := startListeners(t, threeListeners(e))
	nc, err := tls.Dial("tcp", s.ListenerAddr("CLIENT_MTLS").String(), clientTLS(t, e.ca, &e.client))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &rawConn{t: t, nc: nc}
	resp := kmsg.NewPtrApiVersionsResponse()
	c.recv(resp, c.send(kmsg.NewPtrApiVersionsRequest()))
	if resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if !strings.Contains(logs.String(), `principal=User:app`) {
		t.Fatalf("no connection authenticated as User:app (the CN, lower-cased by the rule); log:\n%s", logs)
	}
}

// TestListenerRefusals: what a TLS listener refuses, each with its error.
func TestListenerRefusals(t *testing.T) {
	e := newTLSEnv(t)
	s, logs := startListeners(t, threeListeners(e))
	otherClient, err := e.otherCA.Issue("intruder")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("plaintext client on a TLS port", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT_SECURE").String()), kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := cl.Ping(ctx); err == nil {
			t.Fatal("a plaintext client was served on the TLS port")
		}
		waitLog(t, logs, "first record does not look like a TLS handshake")
	})
	t.Run("client does not trust the broker", func(t *testing.T) {
		_, err := tls.Dial("tcp", s.ListenerAddr("CLIENT_SECURE").String(), clientTLS(t, e.otherCA, nil))
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) {
			t.Fatalf("dial trusting another CA: %v, want an unknown authority", err)
		}
	})
	t.Run("client certificate from another CA", func(t *testing.T) {
		cfg := clientTLS(t, e.ca, nil)
		pair, err := otherClient.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		// Sent whatever CAs the server names (Go's client would
		// otherwise keep a certificate the server cannot accept).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
		nc, err := tls.Dial("tcp", s.ListenerAddr("CLIENT_MTLS").String(), cfg)
		if err == nil {
			// TLS 1.3: the server's verdict on the client certificate
			// arrives with the first read.
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = nc.Read(make([]byte, 1))
			nc.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "bad certificate") && !strings.Contains(err.Error(), "unknown certificate authority") {
			t.Fatalf("client certificate of another CA: %v, want unknown certificate authority", err)
		}
		waitLog(t, logs, "certificate signed by unknown authority")
	})
	t.Run("no client certificate on a mutual TLS listener", func(t *testing.T) {
		nc, err := tls.Dial("tcp", s.ListenerAddr("CLIENT_MTLS").String(), clientTLS(t, e.ca, nil))
		if err == nil {
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = nc.Read(make([]byte, 1))
			nc.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate required") {
			t.Fatalf("no client certificate: %v, want certificate required", err)
		}
	})
}

// TestListenerRotatesKeystore: a TLS listener serves a rotated keystore
// file from the next handshake, with no restart, and keeps the previous one
// while the file is broken.
func TestListenerRotatesKeystore(t *testing.T) {
	e := newTLSEnv(t)
	s, _ := startListeners(t, threeListeners(e))
	addr := s.ListenerAddr("CLIENT_SECURE").String()
	served := func() string {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTLSConfig(clientTLS(t, e.ca, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cl.Ping(ctx); err != nil {
			t.Fatalf("ping over TLS: %v", err)
		}
		nc, err := tls.Dial("tcp", addr, clientTLS(t, e.ca, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		return nc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "broker-1" {
		t.Fatalf("serves %q", cn)
	}
	rotated, err := e.ca.Issue("broker-1-rotated", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tlstest.WriteFile(e.keystore, rotated.Keystore()); err != nil {
		t.Fatal(err)
	}
	if cn := served(); cn != "broker-1-rotated" {
		t.Fatalf("after rotation serves %q", cn)
	}
	// A key that does not match its certificate: the rotated pair stays.
	if err := tlstest.WriteFile(e.keystore, e.client.KeyPEM+rotated.CertPEM); err != nil {
		t.Fatal(err)
	}
	if cn := served(); cn != "broker-1-rotated" {
		t.Fatalf("after a broken write serves %q", cn)
	}
}

// TestListenerUnservable: a listener whose key material cannot be read
// stops the broker at start, naming the listener.
func TestListenerUnservable(t *testing.T) {
	e := newTLSEnv(t)
	props := threeListeners(e)
	props["listener.name.client_secure.ssl.keystore.location"] = filepath.Join(t.TempDir(), "missing.pem")
	_, err := newListenersServer(t, props, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listener CLIENT_SECURE") || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("New with a missing keystore: %v", err)
	}
}

func waitLog(t *testing.T, logs *logBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q; log:\n%s", want, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInlineKeyNeverDescribed: a private key given inline serves TLS and is
// reported by DescribeConfigs as set and sensitive, never with its value.
func TestInlineKeyNeverDescribed(t *testing.T) {
	e := newTLSEnv(t)
	s, _ := startListeners(t, map[string]string{
		"listeners":                      "CLIENT://127.0.0.1:0,CLIENT_SECURE://127.0.0.1:0",
		"listener.security.protocol.map": "CLIENT:PLAINTEXT,CLIENT_SECURE:SSL",
		"listener.name.client_secure.ssl.keystore.certificate.chain": e.broker.CertPEM,
		"listener.name.client_secure.ssl.keystore.key":               e.broker.KeyPEM,
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT_SECURE").String()), kgo.DialTLSConfig(clientTLS(t, e.ca, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, "1"
	req.Resources = append(req.Resources, rr)
	req.IncludeSynonyms = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range resp.Resources[0].Configs {
		if c.Name != "listener.name.client_secure.ssl.keystore.key" {
			continue
		}
		found = true
		if !c.IsSensitive || c.Value != nil {
			t.Errorf("the key is described as %+v", c)
		}
		for _, syn := range c.ConfigSynonyms {
			if syn.Value != nil {
				t.Errorf("a synonym carries the key: %+v", syn)
			}
		}
	}
	if !found {
		t.Fatal("the inline key is not described at all")
	}
	b := resp.AppendTo(nil)
	if strings.Contains(string(b), "PRIVATE KEY") {
		t.Fatal("the DescribeConfigs answer holds the private key")
	}
}

// TestShutdownResetsHandshakesInFlight: a client whose TLS handshake the
// broker's shutdown cuts short sees a reset (a network error clients
// retry on another broker), not an end of stream in the handshake, which
// franz-go takes for a TLS misconfiguration and does not retry.
func TestShutdownResetsHandshakesInFlight(t *testing.T) {
	e := newTLSEnv(t)
	logs := &logBuffer{}
	s, err := newListenersServer(t, threeListeners(e), logs)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	var addr net.Addr
	for deadline := time.Now().Add(10 * time.Second); addr == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		addr = s.ListenerAddr("CLIENT_SECURE")
	}
	if addr == nil {
		t.Fatal("CLIENT_SECURE not served")
	}
	// A TCP connection that has not finished its handshake: the broker
	// waits for its ClientHello.
	nc, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	time.Sleep(200 * time.Millisecond) // accepted, in the handshake
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = nc.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after the shutdown cut the handshake: %v, want a reset (ECONNRESET), not an end of stream", err)
	}
}
