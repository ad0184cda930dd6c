package localcloud_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tributary/tributary/internal/localcloud"
	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// firehoseRole makes a role Firehose may act as, allowed s3:PutObject under bucket/prefix.
func firehoseRole(t *testing.T, c *localcloud.Cloud, name, bucket, prefix string) string {
	t.Helper()
	ctx := context.Background()
	iamc := iam.NewFromConfig(sdkConfig(c))
	role, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"firehose.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("deliver"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::` + bucket + `/` + prefix + `*"}]}`)}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(role.Role.Arn)
}

// objectsUnder lists the keys and contents (gunzipped when the key ends in .gz) under prefix.
func objectsUnder(t *testing.T, client *awss3.Client, bucket, prefix string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out, err := client.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range out.Contents {
		obj, err := client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = obj.Body
		if strings.HasSuffix(aws.ToString(o.Key), ".gz") {
			if r, err = gzip.NewReader(obj.Body); err != nil {
				t.Fatalf("%s: %v", aws.ToString(o.Key), err)
			}
		}
		body, err := io.ReadAll(r)
		obj.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got[aws.ToString(o.Key)] = string(body)
	}
	return got
}

// TestFirehoseSDK drives the local cloud's Firehose through the AWS SDK: a stream to a bucket,
// PutRecord and PutRecordBatch delivered concatenated into one gzip object under the prefix
// and Firehose's date path once the buffering interval passes, Firehose's limits and errors,
// list and describe, the stream and its buffered records kept across a restart, and delete.
func TestFirehoseSDK(t *testing.T) {
	dir := t.TempDir()
	c := startCloud(t, dir)
	ctx := context.Background()
	s3c := s3Client(c, sdkConfig(c))
	if _, err := s3c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("logs-fh")}); err != nil {
		t.Fatal(err)
	}
	role := firehoseRole(t, c, "firehose-logs", "logs-fh", "brokers/")
	fh := firehose.NewFromConfig(sdkConfig(c))
	create := func(name string, interval int32, prefix string) error {
		_, err := fh.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{
			DeliveryStreamName: aws.String(name), DeliveryStreamType: fhtypes.DeliveryStreamTypeDirectPut,
			ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{
				RoleARN: aws.String(role), BucketARN: aws.String("arn:aws:s3:::logs-fh"), Prefix: aws.String(prefix),
				BufferingHints:    &fhtypes.BufferingHints{IntervalInSeconds: aws.Int32(interval), SizeInMBs: aws.Int32(1)},
				CompressionFormat: fhtypes.CompressionFormatGzip,
			},
		})
		return err
	}
	if err := create("broker-logs", 1, "brokers/"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, create("broker-logs", 1, "brokers/"), "ResourceInUseException")
	wantCode(t, create("bad name!", 1, "brokers/"), "InvalidArgumentException")
	wantCode(t, create("too-long-interval", 901, "brokers/"), "InvalidArgumentException")

	desc, err := fh.DescribeDeliveryStream(ctx, &firehose.DescribeDeliveryStreamInput{DeliveryStreamName: aws.String("broker-logs")})
	if err != nil {
		t.Fatal(err)
	}
	d := desc.DeliveryStreamDescription
	if d.DeliveryStreamStatus != fhtypes.DeliveryStreamStatusActive || aws.ToString(d.DeliveryStreamARN) != "arn:aws:firehose:us-east-1:"+awsapi.DefaultAccount+":deliverystream/broker-logs" ||
		len(d.Destinations) != 1 || d.Destinations[0].ExtendedS3DestinationDescription == nil ||
		aws.ToString(d.Destinations[0].ExtendedS3DestinationDescription.BucketARN) != "arn:aws:s3:::logs-fh" {
		t.Fatalf("describe: %+v", d)
	}
	_, err = fh.DescribeDeliveryStream(ctx, &firehose.DescribeDeliveryStreamInput{DeliveryStreamName: aws.String("nope")})
	wantCode(t, err, "ResourceNotFoundException")

	if _, err := fh.PutRecord(ctx, &firehose.PutRecordInput{DeliveryStreamName: aws.String("broker-logs"), Record: &fhtypes.Record{Data: []byte("line 1\n")}}); err != nil {
		t.Fatal(err)
	}
	batch := []fhtypes.Record{{Data: []byte("line 2\n")}, {Data: []byte("line 3\n")}}
	out, err := fh.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("broker-logs"), Records: batch})
	if err != nil || aws.ToInt32(out.FailedPutCount) != 0 || len(out.RequestResponses) != 2 || aws.ToString(out.RequestResponses[0].RecordId) == "" {
		t.Fatalf("PutRecordBatch: %+v %v", out, err)
	}
	_, err = fh.PutRecord(ctx, &firehose.PutRecordInput{DeliveryStreamName: aws.String("broker-logs"), Record: &fhtypes.Record{Data: make([]byte, 1000<<10+1)}})
	wantCode(t, err, "InvalidArgumentException")
	tooMany := make([]fhtypes.Record, 501)
	for i := range tooMany {
		tooMany[i].Data = []byte("x")
	}
	_, err = fh.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("broker-logs"), Records: tooMany})
	wantCode(t, err, "InvalidArgumentException")
	_, err = fh.PutRecord(ctx, &firehose.PutRecordInput{DeliveryStreamName: aws.String("nope"), Record: &fhtypes.Record{Data: []byte("x")}})
	wantCode(t, err, "ResourceNotFoundException")

	var objects map[string]string
	eventually(t, "the records delivered to S3", 10*time.Second, func() error {
		objects = objectsUnder(t, s3c, "logs-fh", "brokers/")
		if len(objects) == 0 {
			return io.EOF
		}
		return nil
	})
	day := time.Now().UTC().Format("2006/01/02/")
	for key, body := range objects {
		if !strings.HasPrefix(key, "brokers/"+day) || !strings.Contains(key, "/broker-logs-1-") || !strings.HasSuffix(key, ".gz") {
			t.Errorf("object key %s is not <prefix><yyyy/MM/dd/HH>/<stream>-1-<time>-<uuid>.gz", key)
		}
		if body != "line 1\nline 2\nline 3\n" {
			t.Errorf("object %s holds %q", key, body)
		}
	}

	// A stream with a long interval keeps its records across a restart of the emulator.
	if err := create("slow", 900, "brokers/slow/"); err != nil {
		t.Fatal(err)
	}
	if _, err := fh.PutRecord(ctx, &firehose.PutRecordInput{DeliveryStreamName: aws.String("slow"), Record: &fhtypes.Record{Data: []byte("kept")}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = startCloud(t, dir)
	fh, s3c = firehose.NewFromConfig(sdkConfig(c)), s3Client(c, sdkConfig(c))
	list, err := fh.ListDeliveryStreams(ctx, &firehose.ListDeliveryStreamsInput{})
	if err != nil || strings.Join(list.DeliveryStreamNames, ",") != "broker-logs,slow" || aws.ToBool(list.HasMoreDeliveryStreams) {
		t.Fatalf("list after restart: %+v %v", list, err)
	}
	list, err = fh.ListDeliveryStreams(ctx, &firehose.ListDeliveryStreamsInput{Limit: aws.Int32(1)})
	if err != nil || len(list.DeliveryStreamNames) != 1 || !aws.ToBool(list.HasMoreDeliveryStreams) {
		t.Fatalf("list of 1: %+v %v", list, err)
	}
	// Deleting the stream delivers what it buffered.
	if _, err := fh.DeleteDeliveryStream(ctx, &firehose.DeleteDeliveryStreamInput{DeliveryStreamName: aws.String("slow")}); err != nil {
		t.Fatal(err)
	}
	slow := objectsUnder(t, s3c, "logs-fh", "brokers/slow/")
	if len(slow) != 1 {
		t.Fatalf("the slow stream's record, kept over the restart, was delivered as %v", slow)
	}
	for _, body := range slow {
		if body != "kept" {
			t.Fatalf("the slow stream delivered %q", body)
		}
	}
	_, err = fh.DescribeDeliveryStream(ctx, &firehose.DescribeDeliveryStreamInput{DeliveryStreamName: aws.String("slow")})
	wantCode(t, err, "ResourceNotFoundException")
}

// TestFirehoseIsAuthorizedByIAM: a caller needs firehose:<Operation> on the stream's ARN
// (PutRecordBatch on another stream is AccessDeniedException), creating a stream needs
// iam:PassRole on its role, and a stream whose role may not write under the bucket's prefix
// keeps its records until the role may.
func TestFirehoseIsAuthorizedByIAM(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	if _, err := s3Client(c, sdkConfig(c)).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("logs-fh")}); err != nil {
		t.Fatal(err)
	}
	// The role may write under allowed/ only; the stream writes under denied/.
	role := firehoseRole(t, c, "firehose-logs", "logs-fh", "allowed/")
	admin := firehose.NewFromConfig(sdkConfig(c))
	for _, s := range []struct{ name, prefix string }{{"mine", "denied/"}, {"other", "allowed/"}} {
		if _, err := admin.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String(s.name),
			ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{RoleARN: aws.String(role), BucketARN: aws.String("arn:aws:s3:::logs-fh"),
				Prefix: aws.String(s.prefix), BufferingHints: &fhtypes.BufferingHints{IntervalInSeconds: aws.Int32(0)}}}); err != nil {
			t.Fatal(err)
		}
	}
	iamc := iam.NewFromConfig(sdkConfig(c))
	broker, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("broker"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("broker"), PolicyName: aws.String("logs"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["firehose:PutRecord","firehose:PutRecordBatch"],"Resource":"arn:aws:firehose:us-east-1:` + awsapi.DefaultAccount + `:deliverystream/mine"}]}`)}); err != nil {
		t.Fatal(err)
	}
	session, err := c.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(broker.Role.Arn), aws.ToString(broker.Role.RoleId), "i-1"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sdkConfig(c)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(session.AccessKeyID, session.SecretAccessKey, session.SessionToken)
	fh := firehose.NewFromConfig(cfg)
	if _, err := fh.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("mine"), Records: []fhtypes.Record{{Data: []byte("a")}}}); err != nil {
		t.Fatalf("PutRecordBatch on the allowed stream: %v", err)
	}
	_, err = fh.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("other"), Records: []fhtypes.Record{{Data: []byte("a")}}})
	wantCode(t, err, "AccessDeniedException")
	_, err = fh.DescribeDeliveryStream(ctx, &firehose.DescribeDeliveryStreamInput{DeliveryStreamName: aws.String("mine")})
	wantCode(t, err, "AccessDeniedException")
	_, err = fh.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("made-by-broker"),
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{RoleARN: aws.String(role), BucketARN: aws.String("arn:aws:s3:::logs-fh")}})
	wantCode(t, err, "AccessDeniedException")

	// The stream's role may not write under denied/: nothing arrives, and once it may, the
	// buffered record does.
	s3c := s3Client(c, sdkConfig(c))
	time.Sleep(time.Second) // several delivery attempts, each refused
	if got := objectsUnder(t, s3c, "logs-fh", "denied/"); len(got) != 0 {
		t.Fatalf("delivered without s3:PutObject: %v", got)
	}
	if _, err := iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("firehose-logs"), PolicyName: aws.String("deliver"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::logs-fh/*"}]}`)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the buffered record delivered once the role may write", 10*time.Second, func() error {
		got := objectsUnder(t, s3c, "logs-fh", "denied/")
		for _, body := range got {
			if body == "a" {
				return nil
			}
		}
		return io.EOF
	})
}

// TestFirehoseCLI drives Firehose through Debian's aws CLI: create, list, describe, put-record,
// put-record-batch (blobs as base64, as the CLI sends them), delete.
func TestFirehoseCLI(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	s3c := s3Client(c, sdkConfig(c))
	if _, err := s3c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("logs-cli")}); err != nil {
		t.Fatal(err)
	}
	role := firehoseRole(t, c, "firehose-cli", "logs-cli", "")
	run := func(args ...string) []byte {
		t.Helper()
		out, err := awsCLI(t, c.Endpoint(), append([]string{"firehose"}, args...)...)
		if err != nil {
			t.Fatalf("aws firehose %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	run("create-delivery-stream", "--delivery-stream-name", "cli-stream", "--delivery-stream-type", "DirectPut",
		"--s3-destination-configuration", `{"RoleARN":"`+role+`","BucketARN":"arn:aws:s3:::logs-cli","BufferingHints":{"SizeInMBs":1,"IntervalInSeconds":60}}`)
	var list struct{ DeliveryStreamNames []string }
	if err := json.Unmarshal(run("list-delivery-streams"), &list); err != nil || strings.Join(list.DeliveryStreamNames, ",") != "cli-stream" {
		t.Fatalf("list-delivery-streams: %+v %v", list, err)
	}
	var desc struct {
		DeliveryStreamDescription struct {
			DeliveryStreamStatus string
			Destinations         []struct{ S3DestinationDescription struct{ BucketARN string } }
		}
	}
	if err := json.Unmarshal(run("describe-delivery-stream", "--delivery-stream-name", "cli-stream"), &desc); err != nil ||
		desc.DeliveryStreamDescription.DeliveryStreamStatus != "ACTIVE" || len(desc.DeliveryStreamDescription.Destinations) != 1 ||
		desc.DeliveryStreamDescription.Destinations[0].S3DestinationDescription.BucketARN != "arn:aws:s3:::logs-cli" {
		t.Fatalf("describe-delivery-stream: %+v %v", desc, err)
	}
	// The CLI (v2 and v1 alike with this flag) takes blobs as base64.
	run("put-record", "--delivery-stream-name", "cli-stream", "--cli-binary-format", "base64", "--record", `{"Data":"b25lCg=="}`)
	var batch struct{ FailedPutCount int }
	if err := json.Unmarshal(run("put-record-batch", "--delivery-stream-name", "cli-stream", "--cli-binary-format", "base64",
		"--records", `[{"Data":"dHdvCg=="},{"Data":"dGhyZWUK"}]`), &batch); err != nil || batch.FailedPutCount != 0 {
		t.Fatalf("put-record-batch: %+v %v", batch, err)
	}
	// The CLI's smallest interval is 60 s: deleting the stream delivers its buffer at once.
	run("delete-delivery-stream", "--delivery-stream-name", "cli-stream")
	var all bytes.Buffer
	for _, body := range objectsUnder(t, s3c, "logs-cli", "") {
		all.WriteString(body)
	}
	if all.String() != "one\ntwo\nthree\n" {
		t.Fatalf("the bucket holds %q", all.String())
	}
	if _, err := awsCLI(t, c.Endpoint(), "firehose", "describe-delivery-stream", "--delivery-stream-name", "cli-stream"); err == nil || !strings.Contains(err.Error(), "ResourceNotFoundException") {
		t.Fatalf("describe after delete: %v", err)
	}
}
