package iam_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/testenv"
)

// debianAWS is Debian's aws CLI (package awscli). The pyenv one on PATH is not used: the
// project's tools are Debian's.
const debianAWS = "/usr/bin/aws"

// awsCLI runs the aws CLI against the cloud with the default test credentials and returns its
// standard output; when wantErr is set the command must fail and its standard error is
// returned instead.
func (c *cloud) awsCLI(t *testing.T, wantErr bool, args ...string) string {
	t.Helper()
	return c.awsCLIAs(t, awsapi.Credential{AccessKeyID: "test", SecretAccessKey: "test"}, wantErr, args...)
}

// awsCLIAs is awsCLI signing with the given credentials (a session's token included).
func (c *cloud) awsCLIAs(t *testing.T, cred awsapi.Credential, wantErr bool, args ...string) string {
	t.Helper()
	if _, err := os.Stat(debianAWS); err != nil {
		testenv.Missing(t, "Debian's aws CLI is not installed (apt-get install awscli; make tools does it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianAWS, append([]string{"--endpoint-url", c.URL, "--output", "json"}, args...)...)
	home := t.TempDir()
	cmd.Env = []string{
		"HOME=" + home,
		"PATH=/usr/bin:/bin",
		"AWS_ACCESS_KEY_ID=" + cred.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + cred.SecretAccessKey,
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_PAGER=",
		"AWS_MAX_ATTEMPTS=1",
		"AWS_EC2_METADATA_DISABLED=true",
	}
	if cred.SessionToken != "" {
		cmd.Env = append(cmd.Env, "AWS_SESSION_TOKEN="+cred.SessionToken)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	switch {
	case wantErr && err == nil:
		t.Fatalf("aws %s succeeded, want a failure: %s", strings.Join(args, " "), stdout.String())
	case wantErr:
		return stderr.String()
	case err != nil:
		t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

func decodeJSON(t *testing.T, text string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(text), v); err != nil {
		t.Fatalf("decoding %q: %v", text, err)
	}
}

// TestDebianCLI drives a representative call of each service through Debian's aws CLI, which
// speaks awsQuery to IAM, STS and CloudWatch and awsJson1_1 to KMS.
func TestDebianCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the aws CLI several times")
	}
	c := newCloud(t, "")

	var who struct{ Arn, Account string }
	decodeJSON(t, c.awsCLI(t, false, "sts", "get-caller-identity"), &who)
	if who.Arn != "arn:aws:iam::000000000000:root" || who.Account != "000000000000" {
		t.Fatalf("sts get-caller-identity: %+v", who)
	}

	var role struct {
		Role struct {
			Arn                      string
			AssumeRolePolicyDocument map[string]any // botocore decodes IAM's URL-encoded documents
		}
	}
	decodeJSON(t, c.awsCLI(t, false, "iam", "create-role", "--role-name", "cli-role", "--assume-role-policy-document", trustEC2,
		"--tags", "Key=team,Value=data"), &role)
	if role.Role.Arn != "arn:aws:iam::000000000000:role/cli-role" || role.Role.AssumeRolePolicyDocument["Version"] != "2012-10-17" {
		t.Fatalf("iam create-role: %+v", role)
	}
	if out := c.awsCLI(t, true, "iam", "get-role", "--role-name", "nobody"); !strings.Contains(out, "NoSuchEntity") {
		t.Fatalf("iam get-role of a missing role: %s", out)
	}

	var key struct{ KeyMetadata struct{ KeyId, Arn string } }
	decodeJSON(t, c.awsCLI(t, false, "kms", "create-key", "--description", "cli"), &key)
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("cli secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	var enc struct{ CiphertextBlob, KeyId string }
	decodeJSON(t, c.awsCLI(t, false, "kms", "encrypt", "--key-id", key.KeyMetadata.KeyId, "--plaintext", "fileb://"+plain,
		"--encryption-context", "cluster=c1"), &enc)
	blob, err := base64.StdEncoding.DecodeString(enc.CiphertextBlob)
	if err != nil {
		t.Fatal(err)
	}
	blobFile := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(blobFile, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	var dec struct{ Plaintext, KeyId string }
	decodeJSON(t, c.awsCLI(t, false, "kms", "decrypt", "--ciphertext-blob", "fileb://"+blobFile, "--encryption-context", "cluster=c1"), &dec)
	if got, _ := base64.StdEncoding.DecodeString(dec.Plaintext); string(got) != "cli secret" || dec.KeyId != key.KeyMetadata.Arn {
		t.Fatalf("kms decrypt: %+v", dec)
	}
	if out := c.awsCLI(t, true, "kms", "decrypt", "--ciphertext-blob", "fileb://"+blobFile, "--encryption-context", "cluster=c2"); !strings.Contains(out, "InvalidCiphertextException") {
		t.Fatalf("kms decrypt with the wrong context: %s", out)
	}

	// Both datapoints fall in the current hour, so one 3600-second period holds them.
	hour := time.Now().UTC().Truncate(time.Hour)
	c.awsCLI(t, false, "cloudwatch", "put-metric-data", "--namespace", "Tributary/Kafka", "--metric-data",
		`[{"MetricName":"BytesInPerSec","Dimensions":[{"Name":"Cluster Name","Value":"c1"}],"Timestamp":"`+hour.Add(time.Second).Format(time.RFC3339)+`","Value":7,"Unit":"Bytes/Second"},`+
			`{"MetricName":"BytesInPerSec","Dimensions":[{"Name":"Cluster Name","Value":"c1"}],"Timestamp":"`+hour.Add(2*time.Second).Format(time.RFC3339)+`","Values":[1,2],"Counts":[1,3],"Unit":"Bytes/Second"}]`)
	var stats struct {
		Label      string
		Datapoints []struct {
			Sum, Maximum, SampleCount float64
			Unit                      string
			ExtendedStatistics        map[string]float64
		}
	}
	decodeJSON(t, c.awsCLI(t, false, "cloudwatch", "get-metric-statistics", "--namespace", "Tributary/Kafka", "--metric-name", "BytesInPerSec",
		"--dimensions", "Name=Cluster Name,Value=c1", "--start-time", hour.Format(time.RFC3339), "--end-time", hour.Add(time.Hour).Format(time.RFC3339),
		"--period", "3600", "--statistics", "Sum", "Maximum", "SampleCount", "--extended-statistics", "p50"), &stats)
	if len(stats.Datapoints) != 1 {
		t.Fatalf("cloudwatch get-metric-statistics: %+v", stats)
	}
	var sum, count, maximum float64
	for _, dp := range stats.Datapoints {
		sum, count, maximum = sum+dp.Sum, count+dp.SampleCount, max(maximum, dp.Maximum)
	}
	// Values 7 (once), 1 (once) and 2 (three times): the median is 2.
	if p50 := stats.Datapoints[0].ExtendedStatistics["p50"]; p50 != 2 {
		t.Fatalf("p50 = %v, want 2 (%+v)", p50, stats)
	}
	if sum != 14 || count != 5 || maximum != 7 || stats.Datapoints[0].Unit != "Bytes/Second" {
		t.Fatalf("cloudwatch get-metric-statistics: %+v", stats)
	}
	var metrics struct {
		Metrics []struct {
			Namespace, MetricName string
			Dimensions            []struct{ Name, Value string }
		}
	}
	decodeJSON(t, c.awsCLI(t, false, "cloudwatch", "list-metrics", "--namespace", "Tributary/Kafka"), &metrics)
	if len(metrics.Metrics) != 1 || metrics.Metrics[0].Dimensions[0].Value != "c1" {
		t.Fatalf("cloudwatch list-metrics: %+v", metrics)
	}
	if out := c.awsCLI(t, true, "cloudwatch", "put-metric-data", "--namespace", "AWS/Kafka", "--metric-name", "x", "--value", "1"); !strings.Contains(out, "InvalidParameterValue") {
		t.Fatalf("cloudwatch put-metric-data in AWS/: %s", out)
	}
}
