package scram_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	franzscram "github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tributary/tributary/broker/security/sasl/sasltest"
	"github.com/tributary/tributary/broker/security/scram"
	"github.com/tributary/tributary/internal/testenv"
)

// store holds alice's credentials for both mechanisms.
func store(t *testing.T) scram.Store {
	t.Helper()
	creds := map[scram.Mechanism]scram.Credential{}
	for _, m := range []scram.Mechanism{scram.SHA256, scram.SHA512} {
		c, err := scram.NewCredential(m, "alice-secret", scram.MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		creds[m] = c
	}
	return scram.StoreFunc(func(user string, m scram.Mechanism) (scram.Credential, bool) {
		if user != "alice" {
			return scram.Credential{}, false
		}
		c, ok := creds[m]
		return c, ok
	})
}

func startBroker(t *testing.T) *sasltest.Broker {
	t.Helper()
	s := store(t)
	s256, err := scram.NewServer(scram.SHA256, s)
	if err != nil {
		t.Fatal(err)
	}
	s512, err := scram.NewServer(scram.SHA512, s)
	if err != nil {
		t.Fatal(err)
	}
	return sasltest.Start(t, sasltest.Options{}, s256, s512)
}

// TestFranzGoOverTheWire: kgo authenticates through SaslHandshake and
// SaslAuthenticate and then gets its metadata; a wrong password gets
// SASL_AUTHENTICATION_FAILED with the generic message.
func TestFranzGoOverTheWire(t *testing.T) {
	b := startBroker(t)
	for _, tt := range []struct {
		name string
		mech func(franzscram.Auth) kgo.Opt
		pass string
		want error
	}{
		{"SCRAM-SHA-512", func(a franzscram.Auth) kgo.Opt { return kgo.SASL(a.AsSha512Mechanism()) }, "alice-secret", nil},
		{"SCRAM-SHA-256", func(a franzscram.Auth) kgo.Opt { return kgo.SASL(a.AsSha256Mechanism()) }, "alice-secret", nil},
		{"SCRAM-SHA-512 wrong password", func(a franzscram.Auth) kgo.Opt { return kgo.SASL(a.AsSha512Mechanism()) }, "guess", scram.ErrBadProof},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), tt.mech(franzscram.Auth{User: "alice", Pass: tt.pass}))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			_, reqErr := cl.Request(ctx, kmsg.NewPtrMetadataRequest())
			o := b.Next(t, 10*time.Second)
			if !errors.Is(o.Err, tt.want) {
				t.Fatalf("server outcome %+v, want %v", o, tt.want)
			}
			if tt.want == nil {
				if reqErr != nil || o.Result.Principal != "User:alice" {
					t.Fatalf("metadata after login: %v, principal %q", reqErr, o.Result.Principal)
				}
				return
			}
			if !errors.Is(reqErr, kerr.SaslAuthenticationFailed) || !strings.Contains(reqErr.Error(), "invalid credentials") {
				t.Fatalf("client error %v, want SASL_AUTHENTICATION_FAILED", reqErr)
			}
		})
	}
}

// TestLibrdkafkaAndPython: kcat (librdkafka) with SCRAM-SHA-512,
// kafka-python with SCRAM-SHA-256 (SaslHandshake v0 and raw SASL frames),
// confluent-kafka with SCRAM-SHA-256; each also with a wrong password.
func TestLibrdkafkaAndPython(t *testing.T) {
	b := startBroker(t)
	kcat := testenv.Tool(t, "kcat", "kcat")
	python := "/usr/bin/python3"
	for _, mod := range [][2]string{{"kafka", "python3-kafka"}, {"confluent_kafka", "python3-confluent-kafka"}} {
		if err := exec.Command(python, "-c", "import "+mod[0]).Run(); err != nil {
			testenv.Missing(t, "python module %s not installed (Debian package %s): run make tools", mod[0], mod[1])
		}
	}
	// kafka-python's KafkaClient, polled with a deadline: its consumer
	// and admin clients retry a refused login forever.
	kafkaPython := `
import sys, time
from kafka.client_async import KafkaClient
from kafka.protocol.metadata import MetadataRequest
c = KafkaClient(bootstrap_servers=sys.argv[1], security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                sasl_plain_username="alice", sasl_plain_password=sys.argv[2], api_version=(2, 5, 0))
deadline = time.time() + 8
node = c.least_loaded_node()
while not c.ready(node):
    if time.time() > deadline:
        sys.exit("not ready: the login failed")
    c.poll(timeout_ms=100)
f = c.send(node, MetadataRequest[1](topics=None))
while not f.is_done:
    if time.time() > deadline:
        sys.exit("no metadata")
    c.poll(timeout_ms=100)
if f.failed():
    sys.exit(str(f.exception))
print("metadata", f.value)
`
	confluent := `
import sys
from confluent_kafka.admin import AdminClient
a = AdminClient({"bootstrap.servers": sys.argv[1], "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-256",
                 "sasl.username": "alice", "sasl.password": sys.argv[2]})
md = a.list_topics(timeout=8)
print(md.cluster_id)
`
	clients := []struct {
		name string
		cmd  func(pass string) *exec.Cmd
		mech string
	}{
		{"kcat SCRAM-SHA-512", func(pass string) *exec.Cmd {
			return exec.Command(kcat, "-b", b.Addr, "-L", "-m", "8", "-X", "security.protocol=SASL_PLAINTEXT",
				"-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=alice", "-X", "sasl.password="+pass)
		}, "SCRAM-SHA-512"},
		{"kafka-python SCRAM-SHA-256", func(pass string) *exec.Cmd { return exec.Command(python, "-c", kafkaPython, b.Addr, pass) }, "SCRAM-SHA-256"},
		{"confluent-kafka SCRAM-SHA-256", func(pass string) *exec.Cmd { return exec.Command(python, "-c", confluent, b.Addr, pass) }, "SCRAM-SHA-256"},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			b.Skip()
			out, err := runWithTimeout(t, c.cmd("alice-secret"), 30*time.Second)
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			o := b.Next(t, 5*time.Second)
			if o.Err != nil || o.Mechanism != c.mech || o.Result.Principal != "User:alice" {
				t.Fatalf("outcome %+v", o)
			}
			if b.MetadataRequests("User:alice") == 0 {
				t.Fatal("the client never asked for metadata after logging in")
			}

			b.Skip()
			out, err = runWithTimeout(t, c.cmd("wrong"), 30*time.Second)
			if err == nil {
				t.Fatalf("a wrong password succeeded: %s", out)
			}
			o = b.Next(t, 5*time.Second)
			if !errors.Is(o.Err, scram.ErrBadProof) {
				t.Fatalf("outcome %+v, want ErrBadProof", o)
			}
		})
	}
}

func runWithTimeout(t *testing.T, cmd *exec.Cmd, d time.Duration) (string, error) {
	t.Helper()
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
		return string(out), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish within %v: %s", cmd.Path, d, out)
		return "", nil
	}
}
