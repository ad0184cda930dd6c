package provider

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/tributary/tributary/provider/internal/fleet"
)

// firehoseLoggingConfig is the logging tests' cluster sending its logs to
// the delivery stream.
func firehoseLoggingConfig(name, stream string) string {
	return clusterWithLogging(name, fmt.Sprintf(`
  logging {
    firehose {
      enabled         = true
      delivery_stream = %q
    }
  }`, stream))
}

// accDeliveryStream makes, for the test, a Direct PUT delivery stream that
// writes into bucket under prefix as soon as records arrive, with the role
// Firehose writes as, and deletes both when the test ends. It returns the
// stream's ARN.
func accDeliveryStream(t *testing.T, stream, bucket, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	role := stream + "-delivery"
	created, err := accEnv.clients.IAM.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(role),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"firehose.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatalf("creating role %s: %v", role, err)
	}
	if _, err := accEnv.clients.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String("deliver"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::` + bucket + `/*"}]}`)}); err != nil {
		t.Fatalf("granting role %s: %v", role, err)
	}
	out, err := accFirehose().CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String(stream),
		DeliveryStreamType: fhtypes.DeliveryStreamTypeDirectPut,
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{RoleARN: created.Role.Arn, BucketARN: aws.String("arn:aws:s3:::" + bucket),
			Prefix: aws.String(prefix), BufferingHints: &fhtypes.BufferingHints{IntervalInSeconds: aws.Int32(0), SizeInMBs: aws.Int32(1)}}})
	if err != nil {
		t.Fatalf("creating delivery stream %s: %v", stream, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := accFirehose().DeleteDeliveryStream(ctx, &firehose.DeleteDeliveryStreamInput{DeliveryStreamName: aws.String(stream)}); err != nil {
			t.Errorf("deleting delivery stream %s: %v", stream, err)
		}
		_, _ = accEnv.clients.IAM.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String("deliver")})
		if _, err := accEnv.clients.IAM.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String(role)}); err != nil {
			t.Errorf("deleting role %s: %v", role, err)
		}
	})
	return aws.ToString(out.DeliveryStreamARN)
}

// accFirehose is a Firehose client of the acceptance tests' endpoint.
func accFirehose() *firehose.Client {
	return firehose.NewFromConfig(accEnv.clients.Config, func(o *firehose.Options) {
		if accEnv.endpoint != "" {
			o.BaseEndpoint = aws.String(accEnv.endpoint)
		}
	})
}

// TestAccCluster_loggingFirehose: a missing delivery stream is refused at
// plan; the brokers send their logs to the stream, and the created role may
// put records to that stream only. In the local cloud each broker's start
// line arrives in the objects the stream writes into its bucket, and
// turning sending off is an in-place roll after which the role may no
// longer put records. Against an emulator that runs no instances (moto) it
// checks plan, apply, the role policy and destroy.
func TestAccCluster_loggingFirehose(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	name := accName(t)
	bucket, stream := "tributary-"+name, "tributary-"+name+"-logs"
	accBucket(t, bucket)
	arn := accDeliveryStream(t, stream, bucket, "firehose/")
	checks := []resource.TestCheckFunc{
		resource.TestCheckResourceAttr(clusterResourceName, "logging.firehose.enabled", "true"),
		resource.TestCheckResourceAttr(clusterResourceName, "logging.firehose.delivery_stream", stream),
		resource.TestCheckNoResourceAttr(clusterResourceName, "logging.s3.enabled"),
		testAccCheckRoleMaySend(arn, true),
	}
	if accEnv.noInstances == "" {
		checks = append(checks, testAccCheckServesKafka("sent", 20), testAccCheckStreamObjects(bucket, "firehose/"))
	}
	steps := []resource.TestStep{{
		// A stream that does not exist is refused at plan, before
		// anything is made.
		Config:      firehoseLoggingConfig(name, stream+"-missing"),
		PlanOnly:    true,
		ExpectError: regexp.MustCompile(`Firehose delivery stream not found`),
	}, {
		Config: firehoseLoggingConfig(name, stream),
		Check:  resource.ComposeAggregateTestCheckFunc(checks...),
	}}
	// Turning sending off rolls the brokers, which an emulator without
	// instances cannot do.
	if accEnv.noInstances == "" {
		steps = append(steps, resource.TestStep{
			Config:           s3LoggingConfig(name, "", ""),
			ConfigPlanChecks: expectInPlaceUpdate(),
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckNoResourceAttr(clusterResourceName, "logging.firehose.enabled"),
				testAccCheckRoleMaySend(arn, false),
			),
		})
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps:                    steps,
	})
}

// testAccCheckStreamObjects waits until the objects the delivery stream
// wrote under prefix hold every broker's start line.
func testAccCheckStreamObjects(bucket, prefix string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		client := accS3()
		for {
			text, err := bucketObjects(ctx, client, bucket, prefix)
			missing := []int32{}
			for _, b := range o.Brokers {
				if !hasStartLine(text, b.NodeID) {
					missing = append(missing, b.NodeID)
				}
			}
			if err == nil && len(missing) == 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("after 2 minutes the objects under s3://%s/%s lack the start lines of brokers %v (last error: %v)", bucket, prefix, missing, err)
			case <-time.After(2 * time.Second):
			}
		}
	}
}

// hasStartLine reports whether one line of text is broker nodeID's start
// line, whatever the order of its fields.
func hasStartLine(text string, nodeID int32) bool {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, `"msg":"starting tributary broker"`) && strings.Contains(line, fmt.Sprintf(`"node_id":%d`, nodeID)) {
			return true
		}
	}
	return false
}

// bucketObjects is every object under prefix, concatenated.
func bucketObjects(ctx context.Context, client *s3.Client, bucket, prefix string) (string, error) {
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, o := range list.Contents {
		obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		if err != nil {
			return "", err
		}
		data, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil {
			return "", err
		}
		b.Write(data)
	}
	return b.String(), nil
}

// testAccCheckRoleMaySend checks the created broker role's policy allows
// firehose:PutRecord and firehose:PutRecordBatch on the stream and nothing
// else of Firehose, or nothing of Firehose at all.
func testAccCheckRoleMaySend(streamARN string, may bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[clusterResourceName]
		if !ok {
			return fmt.Errorf("%s not in state", clusterResourceName)
		}
		role := fleet.BrokerRoleName(rs.Primary.Attributes["cluster_id"], 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := accEnv.clients.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String("tributary-broker")})
		if err != nil {
			return fmt.Errorf("reading the broker role's policy: %w", err)
		}
		doc, err := url.QueryUnescape(aws.ToString(out.PolicyDocument))
		if err != nil {
			return err
		}
		if !may {
			if strings.Contains(doc, "firehose") {
				return fmt.Errorf("broker role may still use Firehose: %s", doc)
			}
			return nil
		}
		want := `"Action":["firehose:PutRecord","firehose:PutRecordBatch"],"Effect":"Allow","Resource":"` + streamARN + `"`
		if !strings.Contains(doc, want) || strings.Count(doc, `"firehose:`) != 2 {
			return fmt.Errorf("broker role's Firehose permission is not putting records to %s only: %s", streamARN, doc)
		}
		return nil
	}
}
