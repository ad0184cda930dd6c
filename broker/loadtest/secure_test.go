package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/testenv"
)

// TestSecureBrokerListeners runs the TLS table's workload, shortened,
// through each listener of a SecureBroker: every record produced through
// PLAINTEXT, SSL and SASL_SSL with an IAM token is read back through the
// same listener, and a client without TLS is refused on the SSL one.
func TestSecureBrokerListeners(t *testing.T) {
	bin := testenv.Binary(t, "TRIBUTARY_LOADTEST_BROKER", "a built tributary-broker (go build -o bin/tributary-broker ./broker/cmd/tributary-broker)")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := StartSecureBroker(ctx, bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for _, l := range []string{ListenerPlaintext, ListenerTLS, ListenerIAM} {
		res, err := Throughput(ctx, b.Listeners[l], Options{Topic: "t-" + l, Partitions: 2, RecordBytes: 100, Duration: 5 * time.Second, MaxRecords: 500, Client: b.ClientOpts(l)})
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		if res.Produce.Records != 500 || res.ConsumeMiBps <= 0 {
			t.Fatalf("%s: %+v, want 500 records produced and read back", l, res)
		}
	}
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if err := createTopic(cctx, []string{b.Listeners[ListenerTLS]}, "plain-on-tls", 1, 1); err == nil {
		t.Fatal("a plaintext client was served on the SSL listener")
	}
}

// TestSecureClusterThroughput runs the three-broker TLS table's workload,
// shortened, on a cluster with TLS everywhere: every record produced with
// acks=all through the SSL listeners, replicated over TLS, is read back,
// the CPU time of the brokers and of the client is measured, and a client
// without TLS is refused.
func TestSecureClusterThroughput(t *testing.T) {
	bin := testenv.Binary(t, "TRIBUTARY_LOADTEST_BROKER", "a built tributary-broker (go build -o bin/tributary-broker ./broker/cmd/tributary-broker)")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := StartSecureCluster(ctx, bin, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	res, err := ClusterThroughput(ctx, c.Bootstrap(), ClusterSize, Options{Topic: "t", Partitions: 3, RecordBytes: 1024, Duration: 5 * time.Second,
		MaxRecords: 2000, Client: c.ClientOpts(), BrokerPIDs: PIDs(c)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Produce.Records != 2000 || res.ConsumeMiBps <= 0 || res.ConsumeBytes != res.Produce.Bytes {
		t.Fatalf("%+v, want 2000 records produced and read back", res)
	}
	if len(PIDs(c)) != ClusterSize || res.ConsumeCPU.Client <= 0 {
		t.Fatalf("consume CPU %+v of %d brokers, want the client's measured", res.ConsumeCPU, len(PIDs(c)))
	}
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if err := createTopic(cctx, c.Bootstrap(), "plain-on-tls", 1, 1); err == nil {
		t.Fatal("a plaintext client was served on the SSL listener")
	}
}
