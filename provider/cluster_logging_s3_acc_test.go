package provider

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/internal/testenv"
	"github.com/tributary/tributary/provider/internal/fleet"
)

// s3LoggingConfig is the logging tests' cluster delivering its logs to
// bucket under prefix, or without a logging block when bucket is "".
func s3LoggingConfig(name, bucket, prefix string) string {
	logging := ""
	if bucket != "" {
		logging = fmt.Sprintf(`
  logging {
    s3 {
      enabled = true
      bucket  = %q
      prefix  = %q
    }
  }`, bucket, prefix)
	}
	return clusterWithLogging(name, logging)
}

// accS3 is an S3 client of the acceptance tests' endpoint (path-style, as
// emulators serve it).
func accS3() *s3.Client {
	return s3.NewFromConfig(accEnv.clients.Config, func(o *s3.Options) {
		if accEnv.endpoint != "" {
			o.BaseEndpoint = aws.String(accEnv.endpoint)
			o.UsePathStyle = true
		}
	})
}

// accBucket creates bucket for the test and empties and deletes it when the
// test ends.
func accBucket(t *testing.T, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := accS3()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("creating bucket %s: %v", bucket, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		if err != nil {
			t.Errorf("listing bucket %s: %v", bucket, err)
			return
		}
		var ids []s3types.ObjectIdentifier
		for _, o := range list.Contents {
			ids = append(ids, s3types.ObjectIdentifier{Key: o.Key})
		}
		if len(ids) > 0 {
			if _, err := client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &s3types.Delete{Objects: ids}}); err != nil {
				t.Errorf("emptying bucket %s: %v", bucket, err)
			}
		}
		if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Errorf("deleting bucket %s: %v", bucket, err)
		}
	})
}

// TestAccCluster_loggingS3: a missing bucket is refused at plan; the brokers deliver their logs to S3 as gzip
// objects under the prefix in MSK's key layout; each broker's start line is
// in an object Debian's `aws s3 cp` fetches, and the instance role may put
// objects under that prefix of that bucket only. Turning delivery off is an
// in-place roll after which the role may no longer put objects. Against an
// emulator that runs no instances (moto) it checks plan, apply, the role
// policy, the in-place update and destroy.
func TestAccCluster_loggingS3(t *testing.T) {
	accParallel(t)
	if _, err := os.Stat(awsCLI); err != nil {
		testenv.Missing(t, "Debian's aws CLI is not installed (%s): run make tools or apt-get install awscli", awsCLI)
	}
	testAccPreCheck(t)
	name := accName(t)
	bucket := "tributary-" + name
	accBucket(t, bucket)
	checks := []resource.TestCheckFunc{
		resource.TestCheckResourceAttr(clusterResourceName, "logging.s3.enabled", "true"),
		resource.TestCheckResourceAttr(clusterResourceName, "logging.s3.bucket", bucket),
		resource.TestCheckResourceAttr(clusterResourceName, "logging.s3.prefix", "kafka/"),
		resource.TestCheckNoResourceAttr(clusterResourceName, "logging.cloudwatch_logs.enabled"),
		testAccCheckRoleMayDeliver(bucket, "kafka/", true),
	}
	if accEnv.noInstances == "" {
		checks = append(checks, testAccCheckServesKafka("delivered", 20), testAccCheckLogObjects(t, bucket, "kafka/", name))
	}
	steps := []resource.TestStep{{
		// A bucket that does not exist is refused at plan, before
		// anything is made.
		Config:      s3LoggingConfig(name, bucket+"-missing", "kafka/"),
		PlanOnly:    true,
		ExpectError: regexp.MustCompile(`S3 bucket not found`),
	}, {
		Config: s3LoggingConfig(name, bucket, "kafka/"),
		Check:  resource.ComposeAggregateTestCheckFunc(checks...),
	}}
	// Turning delivery off rolls the brokers, which an emulator without
	// instances cannot do (moto answers TerminateInstanceInAutoScalingGroup
	// with HTTP 500).
	if accEnv.noInstances == "" {
		steps = append(steps, resource.TestStep{
			Config:           s3LoggingConfig(name, "", ""),
			ConfigPlanChecks: expectInPlaceUpdate(),
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckNoResourceAttr(clusterResourceName, "logging.s3.enabled"),
				testAccCheckRoleMayDeliver(bucket, "kafka/", false),
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

// testAccCheckLogObjects waits until every broker's log objects under the
// cluster's key prefix hold its start line, fetching each with Debian's
// `aws s3 cp`, and checks the keys follow MSK's layout.
func testAccCheckLogObjects(t *testing.T, bucket, prefix, name string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		id := s.RootModule().Resources[clusterResourceName].Primary.Attributes["cluster_id"]
		keyPrefix := bootconfig.S3LogKeyPrefix(prefix, accEnv.clients.AccountID, accEnv.region, name, id)
		// Objects are written every minute: the first holds the start line.
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		dir := t.TempDir()
		for _, b := range o.Brokers {
			marker := fmt.Sprintf("/Broker-%d_", b.NodeID)
			for {
				found, err := brokerStartObject(ctx, bucket, keyPrefix, marker, b.NodeID, dir)
				if err == nil && found {
					break
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("no object under s3://%s/%s with broker %d's start line within 4 minutes (last error: %v)", bucket, keyPrefix, b.NodeID, err)
				case <-time.After(5 * time.Second):
				}
			}
		}
		return nil
	}
}

// brokerStartObject lists the objects under keyPrefix with `aws s3 ls` and
// reports whether one of broker nodeID's (its key holds marker), fetched
// with `aws s3 cp` and gunzipped, holds that broker's start line.
func brokerStartObject(ctx context.Context, bucket, keyPrefix, marker string, nodeID int32, dir string) (bool, error) {
	ls, err := awsRun(ctx, "s3", "ls", "--recursive", "s3://"+bucket+"/"+keyPrefix)
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(ls), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 4 || !strings.Contains(fields[3], marker) {
			continue
		}
		key := fields[3]
		if !strings.HasPrefix(key, keyPrefix) || !strings.HasSuffix(key, ".log.gz") {
			return false, fmt.Errorf("object %s is not in MSK's layout under %s", key, keyPrefix)
		}
		file := filepath.Join(dir, filepath.Base(key))
		if _, err := awsRun(ctx, "s3", "cp", "s3://"+bucket+"/"+key, file); err != nil {
			return false, err
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return false, err
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return false, fmt.Errorf("object %s is not gzip: %w", key, err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			return false, fmt.Errorf("gunzipping %s: %w", key, err)
		}
		if strings.Contains(string(plain), `"msg":"starting tributary broker"`) {
			if !strings.Contains(string(plain), fmt.Sprintf(`"node_id":%d`, nodeID)) {
				return false, fmt.Errorf("object %s holds another broker's start line", key)
			}
			return true, nil
		}
	}
	return false, nil
}

// testAccCheckRoleMayDeliver checks the created broker role's policy allows
// s3:PutObject under prefix of bucket and nothing else of S3, or nothing of
// S3 at all.
func testAccCheckRoleMayDeliver(bucket, prefix string, may bool) resource.TestCheckFunc {
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
		// An action is `"s3:...`; bucket ARNs hold s3: too.
		if has := strings.Contains(doc, `"s3:`); has != may {
			return fmt.Errorf("broker role may use S3 = %v, want %v: %s", has, may, doc)
		}
		want := `"Action":"s3:PutObject","Effect":"Allow","Resource":"arn:aws:s3:::` + bucket + `/` + strings.Trim(prefix, "/") + `/*"`
		if may && (!strings.Contains(doc, want) || strings.Count(doc, `"s3:`) != 1) {
			return fmt.Errorf("broker role's S3 permission is not s3:PutObject under s3://%s/%s only: %s", bucket, prefix, doc)
		}
		return nil
	}
}
