package metrics

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/internal/localcloud"
)

// TestRunShipsToCloudWatch runs `tributary-broker run` as the boot agent
// starts it: a properties file with the tributary.metrics.cloudwatch.*
// keys, credentials from an instance role through IMDS, the endpoint from
// AWS_ENDPOINT_URL. The broker's metrics must reach the local cloud's
// CloudWatch with MSK's names at the configured level, and the process must
// stop cleanly on SIGTERM.
func TestRunShipsToCloudWatch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a broker process")
	}
	c := startLocalCloud(t)
	ctx := context.Background()
	admin := iam.NewFromConfig(aws.Config{Region: c.Region(), BaseEndpoint: aws.String(c.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider(localcloud.AccessKeyID, localcloud.SecretAccessKey, "")})
	role, err := admin.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("broker"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("broker"), PolicyName: aws.String("metrics"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"cloudwatch:PutMetricData","Resource":"*","Condition":{"StringEquals":{"cloudwatch:namespace":"Tributary/ProcessTest"}}}]}`)}); err != nil {
		t.Fatal(err)
	}
	useInstanceRole(t, c, role.Role)

	dir := t.TempDir()
	bin := filepath.Join(dir, "tributary-broker")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/tributary/tributary/broker/cmd/tributary-broker").CombinedOutput(); err != nil {
		t.Fatalf("building the broker: %v\n%s", err, out)
	}
	metricsAddr, kafkaAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	conf := fmt.Sprintf(`node.id=4
listeners=PLAINTEXT://%s
log.dirs=%s
metrics.listen=%s
tributary.cluster.name=proc-test
tributary.metrics.cloudwatch.enable=true
tributary.metrics.cloudwatch.namespace=Tributary/ProcessTest
tributary.metrics.cloudwatch.level=PER_BROKER
tributary.metrics.cloudwatch.interval.ms=1000
`, kafkaAddr, filepath.Join(dir, "data"), metricsAddr)
	confPath := filepath.Join(dir, "broker.properties")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd := exec.Command(bin, "run", "--config", confPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
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
			t.Logf("broker output:\n%s", logs.String())
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + metricsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the broker never became ready")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A client produces and consumes a payload: TrafficBytes (both
	// directions, replication excluded) must cover it.
	const payload = 256 << 10
	clientTraffic(t, kafkaAddr, payload)

	cw := cloudwatch.NewFromConfig(aws.Config{Region: c.Region(), BaseEndpoint: aws.String(c.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider(localcloud.AccessKeyID, localcloud.SecretAccessKey, "")})
	want := []string{
		"ConnectionCount{Cluster Name=proc-test,Broker ID=4}",
		"PartitionCount{Cluster Name=proc-test,Broker ID=4}",
		"ActiveControllerCount{Cluster Name=proc-test}",
		"ConnectionCreationRate{Cluster Name=proc-test,Broker ID=4}", // PER_BROKER
	}
	for {
		listed := map[string]bool{}
		out, err := cw.ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String("Tributary/ProcessTest")})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Metrics {
			listed[datumKey(types.MetricDatum{MetricName: m.MetricName, Dimensions: sortLikeShipped(m.Dimensions)})] = true
		}
		missing := 0
		for _, k := range want {
			if !listed[k] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s CloudWatch lists %d metrics, missing %d of %v", len(listed), missing, want)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The shipped TrafficBytes of every interval add up to the payload
	// each way plus the protocol's framing; Prometheus has the same
	// counter by direction.
	var traffic float64
	deadline = time.Now().Add(30 * time.Second)
	for {
		now := time.Now()
		out, err := cw.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{
			Namespace: aws.String("Tributary/ProcessTest"), MetricName: aws.String("TrafficBytes"),
			Dimensions: dims(nil, DimClusterName, "proc-test", DimBrokerID, "4"),
			StartTime:  aws.Time(now.Add(-10 * time.Minute)), EndTime: aws.Time(now.Add(time.Minute)),
			Period: aws.Int32(60), Statistics: []types.Statistic{types.StatisticSum},
		})
		if err != nil {
			t.Fatal(err)
		}
		traffic = 0
		for _, p := range out.Datapoints {
			traffic += aws.ToFloat64(p.Sum)
			if p.Unit != types.StandardUnitBytes {
				t.Errorf("TrafficBytes in %s, want Bytes", p.Unit)
			}
		}
		if traffic >= 2*payload || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("TrafficBytes sums to %.0f for %d bytes produced and consumed", traffic, payload)
	if traffic < 2*payload || traffic > 2*payload+64<<10 {
		t.Errorf("TrafficBytes sums to %.0f for %d bytes produced and consumed: want %d to %d", traffic, payload, 2*payload, 2*payload+64<<10)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"in", "out"} {
		if v, ok := promValue(string(body), `tributary_client_traffic_bytes_total{direction="`+dir+`"}`); !ok || v < payload {
			t.Errorf("tributary_client_traffic_bytes_total{direction=%q} = %v (found %v), want at least %d", dir, v, ok, payload)
		}
	}

	stopped = true
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("broker exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatal("the broker did not stop within 30 s of SIGTERM")
	}
}

// clientTraffic produces payload bytes of incompressible values to the
// broker at addr with a franz-go client and consumes them back with
// another.
func clientTraffic(t *testing.T, addr string, payload int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const size = 16 << 10
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("traffic"), kgo.AllowAutoTopicCreation(), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var recs []*kgo.Record
	for range payload / size {
		v := make([]byte, size)
		_, _ = rand.Read(v)
		recs = append(recs, &kgo.Record{Value: v})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("traffic"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for got := 0; got < len(recs); {
		fs := cons.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("consume after %d records: %v", got, err)
		}
		got += fs.NumRecords()
	}
}

// promValue finds a sample of the Prometheus text format by its series.
func promValue(body, series string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// freeLoopbackAddr returns a loopback address with a port free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
