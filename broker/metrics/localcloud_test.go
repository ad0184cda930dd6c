package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/tributary/tributary/internal/localcloud"
	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/imds"
)

// startLocalCloud runs the local cloud in-process on loopback and points
// the SDK's default chain at it through the environment, as an instance
// sees it (AWS_ENDPOINT_URL, AWS_REGION), with the given credentials in
// place of the instance role's (IMDS is turned off so nothing else is
// tried).
func startLocalCloud(t *testing.T) *localcloud.Cloud {
	t.Helper()
	c, err := localcloud.Start(context.Background(), localcloud.Options{StateDir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL":            c.Endpoint(),
		"AWS_REGION":                  c.Region(),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_PROFILE":                 "",
		"AWS_ENDPOINT_URL_CLOUDWATCH": "",
	} {
		t.Setenv(k, v)
	}
	useCredentials(t, localcloud.AccessKeyID, localcloud.SecretAccessKey, "")
	return c
}

func useCredentials(t *testing.T, id, secret, token string) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", id)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", token)
}

// bodySizer records the size of every request body the client sends.
type bodySizer struct {
	next  *cloudwatch.Client
	mu    sync.Mutex
	sizes []int
}

func (b *bodySizer) PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	optFns = append(optFns, func(o *cloudwatch.Options) { o.HTTPClient = b })
	return b.next.PutMetricData(ctx, in, optFns...)
}

func (b *bodySizer) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		data, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(data))
		b.mu.Lock()
		b.sizes = append(b.sizes, len(data))
		b.mu.Unlock()
	}
	return http.DefaultClient.Do(req)
}

// TestShipToLocalCloud ships through the real SDK to the local cloud's
// CloudWatch and reads the data back with ListMetrics and GetMetricData.
func TestShipToLocalCloud(t *testing.T) {
	c := startLocalCloud(t)
	ctx := context.Background()
	client, err := NewCloudWatchClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := New(Options{ClusterName: "orders-prod", BrokerID: 3, DataDir: t.TempDir(), Logger: quietLogger()})
	r.SetStateSource(func() BrokerState {
		return BrokerState{ActiveController: true, GlobalTopicCount: 1, GlobalPartitionCount: 2,
			Partitions: []PartitionState{{Topic: "payments", Partition: 0, Leader: true, Replicas: 1, InSync: 1, MinInsync: 1}, {Topic: "payments", Partition: 1, Leader: true, Replicas: 1, InSync: 1, MinInsync: 1}}}
	})
	r.SetLagSource(func() []GroupLag {
		return []GroupLag{{Group: "ledger", Partitions: []PartitionLag{{Topic: "payments", Partition: 1, Committed: 5, End: 47, Lag: 42}}}}
	})
	for i := range 1500 { // more than one PutMetricData's worth of topic data
		r.RecordProduce(topicName(i), 1, 1)
	}
	sizer := &bodySizer{next: client}
	sh, err := NewShipper(ShipperOptions{Registry: r, Client: sizer, Namespace: "Tributary/Kafka", Level: LevelPerTopicPerPartition, Interval: time.Minute, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	r.RecordProduce("payments", 4096, 32)
	time.Sleep(20 * time.Millisecond) // a measurable interval for the rates
	if err := sh.Ship(ctx); err != nil {
		t.Fatalf("Ship: %v", err)
	}
	st := sh.Stats()
	if st.Puts < 2 || st.Dropped != 0 {
		t.Fatalf("stats %+v: want every datum shipped in at least two calls", st)
	}
	sizer.mu.Lock()
	t.Logf("%d data in %d calls of %v bytes on the wire (gzipped CBOR)", st.Shipped, st.Puts, sizer.sizes)
	for _, n := range sizer.sizes {
		if n > maxPutBytes {
			t.Errorf("a request body of %d bytes exceeds PutMetricData's limit", n)
		}
	}
	sizer.mu.Unlock()

	cw := cloudwatch.NewFromConfig(aws.Config{Region: c.Region(), BaseEndpoint: aws.String(c.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider(localcloud.AccessKeyID, localcloud.SecretAccessKey, "")})
	listed := map[string]bool{}
	var next *string
	for {
		out, err := cw.ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String("Tributary/Kafka"), NextToken: next})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Metrics {
			listed[datumKey(types.MetricDatum{MetricName: m.MetricName, Dimensions: sortLikeShipped(m.Dimensions)})] = true
		}
		if next = out.NextToken; next == nil {
			break
		}
	}
	for _, k := range []string{
		"ActiveControllerCount{Cluster Name=orders-prod}",
		"PartitionCount{Cluster Name=orders-prod,Broker ID=3}",
		"BytesInPerSec{Cluster Name=orders-prod,Broker ID=3,Topic=payments}",
		"MessagesInPerSec{Cluster Name=orders-prod,Broker ID=3,Topic=payments}",
		"SumOffsetLag{Cluster Name=orders-prod,Consumer Group=ledger,Topic=payments}",
		"OffsetLag{Cluster Name=orders-prod,Consumer Group=ledger,Topic=payments,Partition=1}",
		"BytesInPerSec{Cluster Name=orders-prod,Broker ID=3,Topic=" + topicName(1499) + "}",
	} {
		if !listed[k] {
			t.Errorf("ListMetrics lacks %s", k)
		}
	}

	query := func(id, name string, d ...string) types.MetricDataQuery {
		return types.MetricDataQuery{Id: aws.String(id), MetricStat: &types.MetricStat{
			Metric: &types.Metric{Namespace: aws.String("Tributary/Kafka"), MetricName: aws.String(name), Dimensions: dims(nil, d...)},
			Period: aws.Int32(60), Stat: aws.String("Maximum"),
		}}
	}
	now := time.Now()
	out, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(now.Add(-10 * time.Minute)), EndTime: aws.Time(now.Add(time.Minute)),
		MetricDataQueries: []types.MetricDataQuery{
			query("partitions", "PartitionCount", DimClusterName, "orders-prod", DimBrokerID, "3"),
			query("lag", "OffsetLag", DimClusterName, "orders-prod", DimConsumerGroup, "ledger", DimTopic, "payments", DimPartition, "1"),
			query("bytes", "BytesInPerSec", DimClusterName, "orders-prod", DimBrokerID, "3", DimTopic, "payments"),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]float64{}
	for _, res := range out.MetricDataResults {
		got[aws.ToString(res.Id)] = res.Values
	}
	if v := got["partitions"]; len(v) != 1 || v[0] != 2 {
		t.Errorf("PartitionCount read back %v, want [2]", v)
	}
	if v := got["lag"]; len(v) != 1 || v[0] != 42 {
		t.Errorf("OffsetLag read back %v, want [42]", v)
	}
	if v := got["bytes"]; len(v) != 1 || v[0] <= 0 {
		t.Errorf("BytesInPerSec for payments read back %v, want one positive rate", v)
	}
}

// sortLikeShipped orders ListMetrics' dimensions (CloudWatch returns them
// sorted) in the order the shipper sends them, for datumKey.
func sortLikeShipped(ds []types.Dimension) []types.Dimension {
	order := []string{DimClusterName, DimBrokerID, DimConsumerGroup, DimTopic, DimPartition}
	var out []types.Dimension
	for _, name := range order {
		for _, d := range ds {
			if aws.ToString(d.Name) == name {
				out = append(out, d)
			}
		}
	}
	return out
}

func topicName(i int) string { return fmt.Sprintf("topic-%04d", i) }

// instanceRole serves an instance's metadata with the local cloud's IMDS
// server, whose role credentials are sessions of role, and points the SDK's
// default chain at it in place of static credentials: the broker gets its
// credentials exactly as on an instance (IMDSv2 token, then the role's
// credentials).
type instanceRole struct {
	cloud *localcloud.Cloud
	role  *iamtypes.Role
}

func (ir *instanceRole) Metadata(id string) (imds.Metadata, bool) {
	return imds.Metadata{
		InstanceID: id, AccountID: awsapi.DefaultAccount, Region: ir.cloud.Region(), AZ: ir.cloud.Region() + "a",
		PrivateIP: "127.0.0.1", HTTPTokensRequired: true, RoleName: aws.ToString(ir.role.RoleName),
		InstanceProfileARN: "arn:aws:iam::" + awsapi.DefaultAccount + ":instance-profile/broker", InstanceProfileID: "AIPAEXAMPLE",
	}, true
}

func (ir *instanceRole) RoleCredentials(id string) (imds.RoleCredentials, error) {
	session, err := ir.cloud.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(ir.role.Arn), aws.ToString(ir.role.RoleId), id), time.Hour, "test")
	if err != nil {
		return imds.RoleCredentials{}, err
	}
	now := time.Now()
	return imds.RoleCredentials{AccessKeyID: session.AccessKeyID, SecretAccessKey: session.SecretAccessKey, Token: session.SessionToken,
		Expiration: now.Add(time.Hour), LastUpdated: now}, nil
}

func useInstanceRole(t *testing.T, c *localcloud.Cloud, role *iamtypes.Role) {
	t.Helper()
	srv, err := imds.Start("127.0.0.1:0", "i-0123456789abcdef0", &instanceRole{cloud: c, role: role}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	useCredentials(t, "", "", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.Endpoint())
}

// TestShipWithRoleWithoutPermission: the broker's credentials are its
// instance role's, from IMDS, and the role lacks cloudwatch:PutMetricData.
// The local cloud's IAM denies the call; the shipper logs it once, the
// broker's metrics keep working; once the role is granted the permission,
// the next shipment lands.
func TestShipWithRoleWithoutPermission(t *testing.T) {
	c := startLocalCloud(t)
	ctx := context.Background()
	admin := iam.NewFromConfig(aws.Config{Region: c.Region(), BaseEndpoint: aws.String(c.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider(localcloud.AccessKeyID, localcloud.SecretAccessKey, "")})
	role, err := admin.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("broker"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	useInstanceRole(t, c, role.Role)
	client, err := NewCloudWatchClient(ctx)
	if err != nil {
		t.Fatal(err)
	}

	r := New(Options{ClusterName: "c1", BrokerID: 1, Logger: quietLogger()})
	logs := &logRecorder{}
	sh, err := NewShipper(ShipperOptions{Registry: r, Client: client, Namespace: "Tributary/Kafka", Interval: time.Minute, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		r.RecordProduce("orders", 10, 1)
		err := sh.Ship(ctx)
		if !isDenied(err) || noCredentials(err) {
			t.Fatalf("Ship with a role lacking the permission: %v, want AccessDenied", err)
		}
		// The caller CloudWatch saw is the instance's role session.
		if !strings.Contains(err.Error(), "assumed-role/broker/i-0123456789abcdef0") {
			t.Errorf("denied caller: %v", err)
		}
	}
	if n := logs.count(slog.LevelError, "cloudwatch:PutMetricData"); n != 1 {
		t.Errorf("the denial was logged %d times at error level, want once", n)
	}
	// The broker is unaffected: recording and reading go on.
	r.RecordProduce("orders", 10, 1)
	if s := r.Snapshot(); s.BytesIn != 30 {
		t.Errorf("BytesIn = %d after denied shipments, want 30", s.BytesIn)
	}

	if _, err := admin.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("broker"), PolicyName: aws.String("metrics"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"cloudwatch:PutMetricData","Resource":"*","Condition":{"StringEquals":{"cloudwatch:namespace":"Tributary/Kafka"}}}]}`)}); err != nil {
		t.Fatal(err)
	}
	if err := sh.Ship(ctx); err != nil {
		t.Fatalf("Ship once the role may put metrics: %v", err)
	}
	if st := sh.Stats(); st.Puts != 1 || st.Denied != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestShipWithoutCredentials: no instance role (IMDS has none, here IMDS is
// off) is told apart from a refusal and logged once, clearly.
func TestShipWithoutCredentials(t *testing.T) {
	startLocalCloud(t)
	useCredentials(t, "", "", "")
	client, err := NewCloudWatchClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := New(Options{ClusterName: "c1", BrokerID: 1, Logger: quietLogger()})
	logs := &logRecorder{}
	sh, err := NewShipper(ShipperOptions{Registry: r, Client: client, Namespace: "Tributary/Kafka", Interval: time.Minute, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := sh.Ship(context.Background()); !noCredentials(err) {
			t.Fatalf("Ship without credentials: %v", err)
		}
	}
	if n := logs.count(slog.LevelError, "no AWS credentials"); n != 1 {
		t.Errorf("logged %d times at error level, want once", n)
	}
	if st := sh.Stats(); st.Denied != 3 || st.Puts != 0 {
		t.Errorf("stats %+v", st)
	}
}
