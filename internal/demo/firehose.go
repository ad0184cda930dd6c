package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/tributary/tributary/internal/awsbody"
)

// The demo's Firehose delivery (examples/local's logs_delivery_stream): a
// Direct PUT stream that writes the brokers' log records into a bucket as
// soon as they arrive, as the role Firehose writes with.
const (
	logsStream   = "tributary-demo-logs"
	logsBucket   = "tributary-demo-logs"
	firehoseRole = "tributary-demo-firehose"
)

// prepareFirehose makes the bucket, the role and the delivery stream the
// demo cluster sends its logs to; what a previous run made is kept. As with
// MSK, the stream must exist before the cluster names it.
func (d *demo) prepareFirehose(ctx context.Context) error {
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), HTTPClient: awsbody.NewClient()}
	exists := func(err error, codes ...string) bool {
		var ae smithy.APIError
		return err == nil || errors.As(err, &ae) && func() bool {
			for _, c := range codes {
				if ae.ErrorCode() == c {
					return true
				}
			}
			return false
		}()
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(logsBucket)}); !exists(err, "BucketAlreadyOwnedByYou") {
		return fmt.Errorf("creating bucket %s: %w", logsBucket, err)
	}
	iamc := iam.NewFromConfig(cfg)
	role, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(firehoseRole),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"firehose.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	var taken *iamtypes.EntityAlreadyExistsException
	var roleARN string
	switch {
	case err == nil:
		roleARN = aws.ToString(role.Role.Arn)
	case errors.As(err, &taken):
		got, err := iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(firehoseRole)})
		if err != nil {
			return fmt.Errorf("reading role %s: %w", firehoseRole, err)
		}
		roleARN = aws.ToString(got.Role.Arn)
	default:
		return fmt.Errorf("creating role %s: %w", firehoseRole, err)
	}
	if _, err := iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(firehoseRole), PolicyName: aws.String("deliver"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::` + logsBucket + `/*"}]}`)}); err != nil {
		return fmt.Errorf("granting role %s: %w", firehoseRole, err)
	}
	_, err = firehose.NewFromConfig(cfg).CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String(logsStream),
		DeliveryStreamType: fhtypes.DeliveryStreamTypeDirectPut,
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{RoleARN: aws.String(roleARN), BucketARN: aws.String("arn:aws:s3:::" + logsBucket),
			Prefix: aws.String("brokers/"), BufferingHints: &fhtypes.BufferingHints{IntervalInSeconds: aws.Int32(0), SizeInMBs: aws.Int32(1)}}})
	if !exists(err, "ResourceInUseException") {
		return fmt.Errorf("creating delivery stream %s: %w", logsStream, err)
	}
	return nil
}

// showFirehose finds, with the aws CLI, each broker's start line in the
// objects the delivery stream wrote into its bucket.
func (d *demo) showFirehose(ctx context.Context, brokers int) error {
	if _, err := os.Stat(awsCLI); err != nil {
		return nil // showLogs said why
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	dir := filepath.Join(d.cache, "firehose")
	var lastErr error
	for {
		// Each run copies what the stream wrote so far.
		_ = os.RemoveAll(dir)
		cmd := exec.CommandContext(ctx, awsCLI, "s3", "cp", "--recursive", "--quiet", "s3://"+logsBucket+"/brokers/", dir,
			"--endpoint-url", endpoint, "--region", "us-east-1")
		cmd.Env = cliEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			lastErr = fmt.Errorf("aws s3 cp: %w: %s", err, strings.TrimSpace(string(out)))
		} else {
			found, objects, err := startLinesUnder(dir, brokers)
			if err == nil && found == brokers {
				d.say("Firehose: a start line of each of %d brokers in the %d objects delivery stream %s wrote to s3://%s/brokers/", brokers, objects, logsStream, logsBucket)
				return nil
			}
			lastErr = fmt.Errorf("start lines of %d of %d brokers in %d objects (%v)", found, brokers, objects, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the brokers' start lines did not arrive through Firehose stream %s within a minute: %v", logsStream, lastErr)
		case <-time.After(time.Second):
		}
	}
}

// startLinesUnder counts the brokers (node ids 1..brokers) whose start line
// is in the files under dir, and the files.
func startLinesUnder(dir string, brokers int) (found, files int, err error) {
	seen := map[int]bool{}
	err = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		files++
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.Contains(line, `"msg":"starting tributary broker"`) {
				continue
			}
			for id := 1; id <= brokers; id++ {
				if strings.Contains(line, fmt.Sprintf(`"node_id":%d,`, id)) || strings.Contains(line, fmt.Sprintf(`"node_id":%d}`, id)) {
					seen[id] = true
				}
			}
		}
		return nil
	})
	return len(seen), files, err
}
