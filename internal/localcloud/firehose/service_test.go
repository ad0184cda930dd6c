package firehose_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsfirehose "github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"

	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/firehose"
	"github.com/tributary/tributary/internal/localcloud/s3"
)

// TestFullStreamRefusesRecordByRecord: a stream holding its most of
// undelivered records takes the records of a PutRecordBatch that still fit
// and refuses the others, each with Firehose's ServiceUnavailableException
// and FailedPutCount counting them, so a caller resends exactly those; a
// PutRecord that does not fit is refused whole.
func TestFullStreamRefusesRecordByRecord(t *testing.T) {
	c := awsapitest.Start(t)
	objects, err := s3.New(c.Env(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := firehose.New(firehose.Options{Env: c.Env(t.TempDir()), Objects: objects, MaxBufferedBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	c.Server.Register("s3", objects)
	c.Server.Register("firehose", svc)
	ctx := context.Background()
	fh := awsfirehose.NewFromConfig(c.Root())
	// A long interval and no bucket: nothing leaves the buffer.
	if _, err := fh.CreateDeliveryStream(ctx, &awsfirehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("full"),
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{RoleARN: aws.String("arn:aws:iam::000000000000:role/fh"),
			BucketARN: aws.String("arn:aws:s3:::no-such-bucket"), BufferingHints: &fhtypes.BufferingHints{IntervalInSeconds: aws.Int32(900)}}}); err != nil {
		t.Fatal(err)
	}
	rec := func(n int) fhtypes.Record { return fhtypes.Record{Data: make([]byte, n)} }
	out, err := fh.PutRecordBatch(ctx, &awsfirehose.PutRecordBatchInput{DeliveryStreamName: aws.String("full"),
		Records: []fhtypes.Record{rec(60), rec(30), rec(20), rec(10), rec(5)}})
	if err != nil {
		t.Fatal(err)
	}
	// 60 + 30 fit, 20 does not (110), 10 fits (100), 5 does not.
	want := []string{"", "", "ServiceUnavailableException", "", "ServiceUnavailableException"}
	if aws.ToInt32(out.FailedPutCount) != 2 || len(out.RequestResponses) != len(want) {
		t.Fatalf("FailedPutCount %d, %d answers: want 2 of %d", aws.ToInt32(out.FailedPutCount), len(out.RequestResponses), len(want))
	}
	for i, r := range out.RequestResponses {
		if got := aws.ToString(r.ErrorCode); got != want[i] || (got == "") == (aws.ToString(r.RecordId) == "") {
			t.Errorf("record %d: error %q, id %q; want error %q and an id only when taken", i, got, aws.ToString(r.RecordId), want[i])
		}
	}
	_, err = fh.PutRecord(ctx, &awsfirehose.PutRecordInput{DeliveryStreamName: aws.String("full"), Record: &fhtypes.Record{Data: []byte("x")}})
	if code := awsapitest.ErrorCode(t, err); code != "ServiceUnavailableException" {
		t.Fatalf("PutRecord to a full stream: %v, want ServiceUnavailableException", err)
	}
}
