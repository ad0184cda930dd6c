package logship

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/internal/localcloud"
)

// runBroker builds and starts `tributary-broker run` with log shipping to
// group through endpoint (AWS_ENDPOINT_URL, static credentials, as the
// SDK's default chain reads them), and returns its Kafka address, a stop
// function (SIGTERM; it fails the test unless the broker exits cleanly
// within limit) and its stderr. extra are more lines of its configuration.
func runBroker(t *testing.T, endpoint, group string, limit time.Duration, extra ...string) (addr string, stop func(), out *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "tributary-broker")
	if b, err := exec.Command("go", "build", "-o", bin, "github.com/tributary/tributary/broker/cmd/tributary-broker").CombinedOutput(); err != nil {
		t.Fatalf("building the broker: %v\n%s", err, b)
	}
	addr = freeLoopbackAddr(t)
	conf := fmt.Sprintf("node.id=7\nlisteners=PLAINTEXT://%s\nlog.dirs=%s\n%s=true\n%s=%s\n",
		addr, filepath.Join(dir, "data"), KeyCloudWatchEnable, KeyCloudWatchLogGroup, group)
	conf += strings.Join(extra, "\n") + "\n"
	confPath := filepath.Join(dir, "broker.properties")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out = &syncBuffer{}
	cmd := exec.Command(bin, "run", "--config", confPath)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+endpoint, "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ACCESS_KEY_ID="+localcloud.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+localcloud.SecretAccessKey, "AWS_SESSION_TOKEN=",
		"AWS_PROFILE=", "AWS_CONFIG_FILE="+filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("broker output:\n%s", out.String())
		}
	})
	stop = func() {
		t.Helper()
		stopped = true
		start := time.Now()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("broker exit after SIGTERM: %v", err)
			}
			t.Logf("the broker stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
		case <-time.After(limit):
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("the broker did not stop within %v of SIGTERM", limit)
		}
	}
	return addr, stop, out
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// produceRecords creates topic and produces n records with acks=all, each
// within a deadline, failing the test when the broker does not serve.
func produceRecords(t *testing.T, addr, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		_, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("creating %s: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("record-%d", i))}).FirstErr(); err != nil {
			t.Fatalf("producing record %d: %v", i, err)
		}
	}
	t.Logf("%d records produced (acks=all, one at a time) in %v", n, time.Since(start).Round(time.Millisecond))
}

// TestBrokerServesWhileCloudWatchLogsStalls: the broker's CloudWatch Logs
// endpoint accepts connections and never answers. The broker starts,
// serves produce and stops on SIGTERM as without log shipping (its last
// flush is bounded).
func TestBrokerServesWhileCloudWatchLogsStalls(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a broker process")
	}
	var calls atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	addr, stop, out := runBroker(t, srv.URL, "tributary/stalled", 45*time.Second)
	// Produce once the shipper's first call hangs.
	deadline := time.Now().Add(30 * time.Second)
	for calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the broker never called the stalled CloudWatch Logs endpoint: shipping was not on")
		}
		time.Sleep(50 * time.Millisecond)
	}
	produceRecords(t, addr, "served", 200)
	stop()
	if !strings.Contains(out.String(), "delivering logs to CloudWatch Logs failed") {
		t.Errorf("the broker did not say on its own log that shipping failed:\n%s", out.String())
	}
}

// TestBrokerShipsToLocalCloud: the broker ships to the local cloud's
// CloudWatch Logs, creating the group, and to its S3 bucket; its start line
// is in broker-7 and the creation of a topic in broker-7/audit, with the
// principal and the client address, and the same lines are in gzip objects
// under the S3 key prefix, the audit trail in objects of its own, and in
// the objects a Firehose delivery stream wrote into its bucket.
func TestBrokerShipsToLocalCloud(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a broker process")
	}
	c := startLocalCloud(t)
	s3c := s3TestClient(c.Endpoint(), localcloud.AccessKeyID, localcloud.SecretAccessKey, "")
	if _, err := s3c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("proc-logs")}); err != nil {
		t.Fatal(err)
	}
	const keyPrefix = "logs/AWSLogs/000000000000/KafkaBrokerLogs/us-east-1/proc-c1/"
	deliveryStream(t, c, "proc-broker-logs", "proc-fh", "firehose/")
	addr, stop, _ := runBroker(t, c.Endpoint(), "tributary/proc", 45*time.Second,
		KeyS3Enable+"=true", KeyS3Bucket+"=proc-logs", KeyS3KeyPrefix+"="+keyPrefix,
		KeyFirehoseEnable+"=true", KeyFirehoseStream+"=proc-broker-logs")
	produceRecords(t, addr, "audited", 10)
	stop() // the last flush ships what is queued

	client := logsClient(c.Endpoint(), localcloud.AccessKeyID, localcloud.SecretAccessKey, "")
	ctx := context.Background()
	find := func(stream, pattern string) []string {
		t.Helper()
		out, err := client.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("tributary/proc"),
			LogStreamNames: []string{stream}, FilterPattern: aws.String(pattern)})
		if err != nil {
			t.Fatalf("FilterLogEvents %s %s: %v", stream, pattern, err)
		}
		var msgs []string
		for _, e := range out.Events {
			msgs = append(msgs, aws.ToString(e.Message))
		}
		return msgs
	}
	if got := find("broker-7", `{ $.msg = "starting tributary broker" && $.node_id = 7 }`); len(got) != 1 {
		t.Errorf("broker-7 start line: %v", got)
	}
	if got := find("broker-7", `{ $.msg = "signal received, shutting down" }`); len(got) != 1 {
		t.Errorf("broker-7 shutdown line (shipped by the last flush): %v", got)
	}
	got := find("broker-7/audit", `{ $.object = "audited" || $.resource = "audited" }`)
	if len(got) == 0 || !strings.Contains(got[0], `"principal":"User:ANONYMOUS"`) || !strings.Contains(got[0], `"client":"127.0.0.1:`) {
		t.Errorf("broker-7/audit entry of the topic: %v", got)
	}
	if leaked := find("broker-7", `{ $.log = "audit" }`); len(leaked) != 0 {
		t.Errorf("audit lines in the broker's stream: %v", leaked)
	}

	list, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("proc-logs"), Prefix: aws.String(keyPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	var brokerLines, auditLines string
	for _, o := range list.Contents {
		obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("proc-logs"), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		if strings.Contains(aws.ToString(o.Key), "/Broker-7-audit_") {
			auditLines += gunzipString(t, data)
		} else if strings.Contains(aws.ToString(o.Key), "/Broker-7_") {
			brokerLines += gunzipString(t, data)
		} else {
			t.Errorf("object %s is neither the broker's nor its audit trail's", aws.ToString(o.Key))
		}
	}
	t.Logf("%d objects under s3://proc-logs/%s", len(list.Contents), keyPrefix)
	for _, want := range []string{`"msg":"starting tributary broker"`, `"msg":"signal received, shutting down"`} {
		if !strings.Contains(brokerLines, want) {
			t.Errorf("the broker's S3 objects lack %s", want)
		}
	}
	if !strings.Contains(auditLines, `"audited"`) || strings.Contains(brokerLines, `"log":"audit"`) {
		t.Errorf("the topic's audit entry is not (only) in the audit objects")
	}

	// The Firehose stream got every line, the audit trail's with
	// log=audit, and wrote them into its bucket.
	fh := bucketText(t, c, "proc-fh", "firehose/", `"msg":"starting tributary broker"`, `"msg":"signal received, shutting down"`, `"audited"`)
	if !strings.Contains(fh, `"node_id":7`) || !strings.Contains(fh, `"log":"audit"`) {
		t.Errorf("the Firehose stream's objects lack the start line's node id or the audit mark")
	}
}
