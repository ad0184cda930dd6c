package logship

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tributary/tributary/internal/localcloud"
)

func firehoseTestClient(endpoint, id, secret, token string) *firehose.Client {
	return firehose.NewFromConfig(aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, token),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	})
}

// deliveryStream makes, as the local cloud's root, a bucket and a delivery
// stream writing to it under prefix at once (buffering interval 0), with a
// role Firehose writes as.
func deliveryStream(t *testing.T, c *localcloud.Cloud, stream, bucket, prefix string) {
	t.Helper()
	ctx := context.Background()
	s3c := s3TestClient(c.Endpoint(), localcloud.AccessKeyID, localcloud.SecretAccessKey, "")
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	admin := iam.NewFromConfig(aws.Config{Region: c.Region(), BaseEndpoint: aws.String(c.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider(localcloud.AccessKeyID, localcloud.SecretAccessKey, "")})
	role, err := admin.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(stream + "-delivery"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"firehose.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(stream + "-delivery"), PolicyName: aws.String("s3"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::` + bucket + `/*"}]}`)}); err != nil {
		t.Fatal(err)
	}
	fh := firehoseTestClient(c.Endpoint(), localcloud.AccessKeyID, localcloud.SecretAccessKey, "")
	if _, err := fh.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String(stream),
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{RoleARN: role.Role.Arn, BucketARN: aws.String("arn:aws:s3:::" + bucket),
			Prefix: aws.String(prefix), BufferingHints: &fhtypes.BufferingHints{IntervalInSeconds: aws.Int32(0)}}}); err != nil {
		t.Fatal(err)
	}
}

// bucketText is every object under prefix, concatenated, once it holds
// every one of want (polled: Firehose writes its objects on its own time).
func bucketText(t *testing.T, c *localcloud.Cloud, bucket, prefix string, want ...string) string {
	t.Helper()
	ctx := context.Background()
	s3c := s3TestClient(c.Endpoint(), localcloud.AccessKeyID, localcloud.SecretAccessKey, "")
	var all string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		list, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, o := range list.Contents {
			obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(obj.Body)
			obj.Body.Close()
			b.Write(data)
		}
		all = b.String()
		missing := false
		for _, w := range want {
			missing = missing || !strings.Contains(all, w)
		}
		if !missing {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s s3://%s/%s holds %q, lacking one of %q", bucket, prefix, all, want)
		}
	}
}

// TestFirehoseShipToLocalCloud: a broker role that may put records only to
// its cluster's delivery stream sends its log and audit trail there, a
// record per line, and Firehose writes them into the stream's bucket; the
// same role aimed at another stream is refused and keeps its lines queued.
func TestFirehoseShipToLocalCloud(t *testing.T) {
	c := startLocalCloud(t)
	ctx := context.Background()
	deliveryStream(t, c, "orders-logs", "fh-logs", "brokers/")
	deliveryStream(t, c, "other-logs", "fh-other", "")
	creds := roleCredentials(t, c, "broker-fh", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["firehose:PutRecord","firehose:PutRecordBatch"],"Resource":"arn:aws:firehose:us-east-1:000000000000:deliverystream/orders-logs"}]}`)
	client := firehoseTestClient(c.Endpoint(), creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)

	log, h, _ := testLogger(t, HandlerOptions{}, DestFirehose)
	sh, err := NewFirehoseShipper(FirehoseShipperOptions{Handler: h, Client: client, DeliveryStream: "orders-logs"})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("starting tributary broker", "node_id", 3)
	log.Info("topic created", AuditKey, AuditValue, "principal", "User:alice", "resource", "orders")
	if err := sh.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := sh.Stats(); st.Puts != 2 || st.Shipped != 2 || st.Queued != 0 {
		t.Fatalf("stats %+v, want two calls of one record each (the log, the audit trail)", st)
	}
	text := bucketText(t, c, "fh-logs", "brokers/", `"msg":"starting tributary broker"`, `"principal":"User:alice"`)
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if !strings.HasPrefix(line, "{") || !strings.HasSuffix(line, "}") {
			t.Errorf("a delivered line is not one JSON object: %q", line)
		}
	}
	if !strings.Contains(text, `"log":"audit"`) {
		t.Errorf("the audit line lost its log=audit mark: %q", text)
	}

	log2, h2, _ := testLogger(t, HandlerOptions{}, DestFirehose)
	other, err := NewFirehoseShipper(FirehoseShipperOptions{Handler: h2, Client: client, DeliveryStream: "other-logs"})
	if err != nil {
		t.Fatal(err)
	}
	log2.Info("elsewhere")
	if err := other.Flush(ctx); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("putting to another stream: %v, want AccessDeniedException", err)
	}
	if st := other.Stats(); st.Denied != 1 || st.Queued != 1 {
		t.Fatalf("stats after a refusal: %+v", st)
	}
}

// partialFirehose refuses, in its first answer, the records whose data
// contains refuse, with Firehose's per-record error, and takes the rest;
// later calls take everything. It records what it took.
type partialFirehose struct {
	mu     sync.Mutex
	refuse string
	calls  int
	sizes  []int
	taken  []string
}

func (f *partialFirehose) PutRecordBatch(_ context.Context, in *firehose.PutRecordBatchInput, _ ...func(*firehose.Options)) (*firehose.PutRecordBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.sizes = append(f.sizes, len(in.Records))
	out := &firehose.PutRecordBatchOutput{FailedPutCount: aws.Int32(0)}
	bytes := 0
	for _, r := range in.Records {
		bytes += len(r.Data)
		if f.calls == 1 && strings.Contains(string(r.Data), f.refuse) {
			out.FailedPutCount = aws.Int32(aws.ToInt32(out.FailedPutCount) + 1)
			out.RequestResponses = append(out.RequestResponses, fhtypes.PutRecordBatchResponseEntry{ErrorCode: aws.String("ServiceUnavailableException"), ErrorMessage: aws.String("Slow down.")})
			continue
		}
		f.taken = append(f.taken, string(r.Data))
		out.RequestResponses = append(out.RequestResponses, fhtypes.PutRecordBatchResponseEntry{RecordId: aws.String("id")})
	}
	if len(in.Records) > maxRecordsPerBatch || bytes > maxBatchDataBytes {
		return nil, errors.New("a batch over Firehose's limits")
	}
	return out, nil
}

// TestFirehosePartialFailureRetried: of a PutRecordBatch that Firehose
// answers with FailedPutCount > 0, only the refused records are sent again,
// once, in their order; batches keep to 500 records.
func TestFirehosePartialFailureRetried(t *testing.T) {
	log, h, _ := testLogger(t, HandlerOptions{}, DestFirehose)
	fake := &partialFirehose{refuse: "refused"}
	sh, err := NewFirehoseShipper(FirehoseShipperOptions{Handler: h, Client: fake, DeliveryStream: "s"})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 1200 {
		msg := "line"
		if i%100 == 7 {
			msg = "refused line"
		}
		log.Info(msg, "i", i)
		want = append(want, `"i":`+strconv.Itoa(i)+`}`)
	}
	ctx := context.Background()
	if err := sh.Flush(ctx); err == nil || !strings.Contains(err.Error(), "ServiceUnavailableException") {
		t.Fatalf("first flush: %v, want the partial failure", err)
	}
	if st := sh.Stats(); st.Queued != 1200-500+5 {
		t.Fatalf("after the partial failure %+v: want the 5 refused records back in the queue with the 700 not yet sent", st)
	}
	if err := sh.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(fake.taken) != 1200 {
		t.Fatalf("Firehose took %d records, want each of 1200 once", len(fake.taken))
	}
	seen := map[string]int{}
	for _, r := range fake.taken {
		if !strings.HasSuffix(r, "}\n") {
			t.Fatalf("record %q is not a line", r)
		}
		for _, w := range want {
			if strings.HasSuffix(r, w+"\n") {
				seen[w]++
			}
		}
	}
	for _, w := range want {
		if seen[w] != 1 {
			t.Fatalf("record %s taken %d times", w, seen[w])
		}
	}
	// The refused records went back to the front in their order.
	if !strings.Contains(fake.taken[495], `"i":7}`) || !strings.Contains(fake.taken[499], `"i":407}`) {
		t.Errorf("the resent records are not first, in order: %q ... %q", fake.taken[495], fake.taken[499])
	}
	for _, n := range fake.sizes {
		if n > maxRecordsPerBatch {
			t.Errorf("a batch of %d records", n)
		}
	}
	if st := sh.Stats(); st.Shipped != 1200 || st.Failed != 1 || st.Queued != 0 {
		t.Errorf("stats %+v", st)
	}
}
