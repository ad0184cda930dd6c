package clienttest

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
)

// TestRunWithBootAgentConfig starts `tributary-broker run --config` with a
// file shaped like the one the boot agent renders: named listeners with a
// protocol map, a keystore file, keys this broker does not use, and
// broker_config overrides. The broker serves every listener with the
// configured identity and warns about the unknown key.
func TestRunWithBootAgentConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a broker process")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "broker.properties")
	metricsAddr := freeLoopbackAddr(t)
	// A one-voter cluster: the broker runs its metadata quorum alone.
	controllerAddr := freeLoopbackAddr(t)
	_, replicationPort, _ := net.SplitHostPort(freeLoopbackAddr(t))
	ca, err := tlstest.NewCA("config file test CA")
	if err != nil {
		t.Fatal(err)
	}
	brokerCert, err := ca.Issue("broker-3", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := ca.Issue("app")
	if err != nil {
		t.Fatal(err)
	}
	keystore, truststore := filepath.Join(dir, "keystore.pem"), filepath.Join(dir, "ca.pem")
	if err := tlstest.WriteFile(keystore, brokerCert.Keystore()); err != nil {
		t.Fatal(err)
	}
	if err := tlstest.WriteFile(truststore, ca.PEM); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`# Written by tributary-broker boot
node.id=3
broker.rack=us-east-1a
cluster.id=clienttest-cluster-0001
tributary.cluster.name=demo
listeners=CLIENT://127.0.0.1:0,CLIENT_SECURE://127.0.0.1:0
advertised.listeners=CLIENT://127.0.0.1:0,CLIENT_SECURE://127.0.0.1:0
listener.security.protocol.map=CLIENT:PLAINTEXT,CLIENT_SECURE:SSL
listener.name.client_secure.ssl.client.auth=required
ssl.keystore.type=PEM
ssl.keystore.location=%[5]s
ssl.truststore.location=%[6]s
log.dirs=%[2]s
inter.broker.listener.port=%[3]s
# in_cluster = false beside a TLS client listener
tributary.allow.plaintext.inter.broker=true
tributary.controller.port=9095
controller.quorum.voters=3@%[4]s
metrics.listen=%[1]s
tributary.metrics.cloudwatch.enable=false

# broker_config overrides from the cluster definition; beside a listener
# that authenticates clients (mutual TLS), the PLAINTEXT clients of this
# test need to be super users: no ACL names them
super.users=User:ANONYMOUS
auto.create.topics.enable=true
num.partitions=3
log.retention.ms=3600000
`, metricsAddr, filepath.Join(dir, "data"), replicationPort, controllerAddr, keystore, truststore)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcessArgs(t, "run", "--config", file)

	adm := newAdmin(clientFor(t, p.addr))
	ctx := testContext(t, 20*time.Second)
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Cluster != "clienttest-cluster-0001" || len(meta.Brokers) != 1 || meta.Brokers[0].NodeID != 3 ||
		meta.Brokers[0].Rack == nil || *meta.Brokers[0].Rack != "us-east-1a" {
		t.Fatalf("metadata %+v", meta)
	}
	cl := clientFor(t, p.addr, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("from-config"))
	produceSync(t, cl, "from-config", 10, "c")
	td, err := adm.ListTopics(ctx, "from-config")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(td["from-config"].Partitions); n != 3 {
		t.Fatalf("auto-created topic has %d partitions, want num.partitions=3", n)
	}
	if !p.logged(`key=tributary.controller.port`) {
		t.Error("no warning about the unknown key tributary.controller.port")
	}
	// The mutual TLS listener serves a client with its certificate, and
	// advertises itself, not the plaintext port.
	secure := p.listenerAddr(t, "CLIENT_SECURE")
	pair, err := clientCert.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	tadm := newAdmin(clientFor(t, secure, kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}})))
	tmeta, err := tadm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatalf("metadata over mutual TLS: %v", err)
	}
	if len(tmeta.Brokers) != 1 || net.JoinHostPort(tmeta.Brokers[0].Host, fmt.Sprint(tmeta.Brokers[0].Port)) != secure {
		t.Fatalf("over TLS the broker advertises %+v, want %s", tmeta.Brokers, secure)
	}
	// The metrics endpoint is up, ready, and counts the traffic above.
	for path, want := range map[string]string{"/readyz": "", "/metrics": `tributary_messages_in_total{topic="from-config"} 10`} {
		body := httpGet(t, "http://"+metricsAddr+path)
		if !strings.Contains(body, want) {
			t.Errorf("GET %s: no %q in:\n%.2000s", path, want, body)
		}
	}
}

// httpGet fetches a URL and fails the test unless it answers 200.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

// freeLoopbackAddr returns a 127.0.0.1 address whose port was free a
// moment ago (for listeners whose port cannot be read back).
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func clientFor(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
