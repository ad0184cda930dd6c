package boot

import (
	"context"
	cryptotls "crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/boot/bootstatus"
	"github.com/tributary/tributary/broker/security/scram"
	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/internal/testenv"
)

// EnvBrokerBinary names a built tributary-broker binary for
// TestBootProcessBecomesTheBroker; `make test` sets it to the
// bin/tributary-broker it built, so this package does not build the broker
// again (that takes longer than its other tests together):
//
//	go build -o /tmp/tributary-broker ./broker/cmd/tributary-broker
//	TRIBUTARY_BROKER_BINARY=/tmp/tributary-broker go test -run TestBootProcess ./broker/boot/
const EnvBrokerBinary = "TRIBUTARY_BROKER_BINARY"

// freePort returns a port nothing listens on at the moment on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l := listenLoopback(t)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// bootProcess is what `tributary-broker boot` needs to run as the local
// cloud runs it: the binary, its whole environment (its own IMDS, the local
// KMS, a volume directory, no credentials), and the listeners' ports.
type bootProcess struct {
	binary     string
	env        []string
	e          *bootEnv
	ca         *tlstest.CA
	plain, tls int
}

func newBootProcess(t *testing.T) bootProcess {
	t.Helper()
	binary := testenv.Binary(t, EnvBrokerBinary, "a built tributary-broker (go build -o /tmp/tributary-broker ./broker/cmd/tributary-broker)")
	e := newBootEnv(t)
	l := startLocalKMS(t, e.doc.ClusterID)
	// Ports of this test's own choosing: other tests on the machine may use MSK's.
	plain, tls := freePort(t), freePort(t)
	// The listeners a document can describe whole: a mutual-TLS listener
	// needs a truststore, which boot documents do not carry yet.
	e.doc.Listeners = []bootconfig.Listener{
		{Name: "PLAINTEXT", Port: plain, SecurityProtocol: "PLAINTEXT"},
		{Name: "TLS", Port: tls, SecurityProtocol: "SSL"},
	}
	e.doc.Ports = bootconfig.Ports{InterBroker: freePort(t), Controller: freePort(t), Metrics: freePort(t)}
	e.doc.Controllers = []bootconfig.Peer{{NodeID: e.doc.NodeID, Host: "127.0.0.1", Port: e.doc.Ports.Controller}}
	e.imds.PrivateIP = "127.0.0.1"
	ca, err := tlstest.NewCA("process test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("broker-2", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	secrets := testSecrets
	secrets.TLSPrivateKeyPEM, secrets.TLSCertificatePEM = cert.KeyPEM, cert.CertPEM
	// The broker's certificate comes from the cluster CA the document
	// names, as the provider issues it: the in-cluster listeners accept
	// only peers of that CA and refuse to start without it.
	e.doc.TLS.CertificateAuthorityPEM = ca.PEM
	// A salted credential the broker accepts, as the provider derives it.
	admin, err := scram.NewCredential(scram.SHA512, "admin-secret", 4096)
	if err != nil {
		t.Fatal(err)
	}
	secrets.SCRAMCredentials = []bootconfig.SCRAMCredential{{Username: "tributary-admin", Mechanism: "SCRAM-SHA-512",
		Salt: admin.Salt, Iterations: admin.Iterations, StoredKey: admin.StoredKey, ServerKey: admin.ServerKey}}
	e.useLocalKMS(t, l, bootconfig.EncryptionContext(e.doc.ClusterID, e.doc.NodeID), secrets)

	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + e.imds.URL,
		"AWS_ENDPOINT_URL=" + l.url,
		EnvVolumeDir + "=" + e.volumeDir,
		EnvRuntimeDir + "=" + e.runtimeDir,
	}
	e.imds.published()
	return bootProcess{binary: binary, env: env, e: e, ca: ca, plain: plain, tls: tls}
}

// TestBootProcessBecomesTheBroker runs `tributary-broker boot` as the local
// cloud does (its own IMDS, the local KMS, a volume directory, no
// credentials in the environment) and checks that the process execs the
// broker, which then serves Kafka on the instance's private IP with the
// rendered config, and stops on SIGTERM.
func TestBootProcessBecomesTheBroker(t *testing.T) {
	p := newBootProcess(t)
	cmd := exec.Command(p.binary, "boot")
	cmd.Env = p.env
	var console strings.Builder
	cmd.Stdout, cmd.Stderr = &console, &console
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the process has ended; waitErr is then its result.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	waitServing(t, p.plain, exited, console.String)

	// The TLS listener serves the document's certificate.
	tcl, err := kgo.NewClient(kgo.SeedBrokers(net.JoinHostPort("127.0.0.1", strconv.Itoa(p.tls))),
		kgo.DialTLSConfig(&cryptotls.Config{RootCAs: p.ca.Pool(), ServerName: "127.0.0.1"}))
	if err != nil {
		t.Fatal(err)
	}
	defer tcl.Close()
	pctx, pcancel := context.WithTimeout(t.Context(), 10*time.Second)
	if err := tcl.Ping(pctx); err != nil {
		t.Errorf("no Kafka answer over TLS on port %d: %v", p.tls, err)
	}
	pcancel()

	st, err := bootstatus.Read(filepath.Join(p.e.runtimeDir, bootstatus.FileName))
	if err != nil || st.Step != bootstatus.StepExec || st.State != bootstatus.StateDone {
		t.Errorf("status = %+v, %v; want exec/done", st, err)
	}
	if _, err := os.Stat(filepath.Join(p.e.volumeDir, testVolumeID, DataDirName)); err != nil {
		t.Errorf("the broker's data directory is not on the volume: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("the broker exited with %v on SIGTERM; console:\n%s", waitErr, console.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the broker did not stop within 30s of SIGTERM; console:\n%s", console.String())
	}
	t.Logf("console:\n%s", console.String())
}

// waitServing waits until the broker answers Kafka (ApiVersions) on its
// plaintext port, for 30 s at most, failing at once when exited closes.
// Serving Kafka, not only listening: the broker accepts connections on its
// client port before it has joined its cluster and answers them once it
// has.
func waitServing(t *testing.T, port int, exited <-chan struct{}, console func() string) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		err := cl.Ping(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("the process ended before serving Kafka on %s; console:\n%s", addr, console())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Kafka answer (ApiVersions) on %s after 30s: %v; console:\n%s", addr, err, console())
		}
	}
}
