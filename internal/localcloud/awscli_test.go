package localcloud_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tributary/tributary/internal/testenv"
)

// awsCLI runs Debian's aws CLI against the local cloud (testenv.Missing when it is not installed).
func awsCLI(t *testing.T, endpoint string, args ...string) ([]byte, error) {
	t.Helper()
	return awsCLIAs(t, endpoint, []string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test"}, args...)
}

// awsCLIAs is awsCLI with other credentials (AWS_ACCESS_KEY_ID=..., AWS_SECRET_ACCESS_KEY=...,
// AWS_SESSION_TOKEN=...).
func awsCLIAs(t *testing.T, endpoint string, creds []string, args ...string) ([]byte, error) {
	t.Helper()
	const cli = "/usr/bin/aws"
	if _, err := os.Stat(cli); err != nil {
		testenv.Missing(t, "Debian's aws CLI is not installed (/usr/bin/aws): run make tools or apt-get install awscli")
	}
	cmd := exec.Command(cli, append([]string{"--endpoint-url", endpoint, "--output", "json"}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "AWS_DEFAULT_REGION=us-east-1", "AWS_PAGER="}, creds...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &cliError{err, stderr.String()}
	}
	return out, nil
}

type cliError struct {
	err    error
	stderr string
}

func (e *cliError) Error() string { return e.err.Error() + ": " + e.stderr }

func TestAWSCLI(t *testing.T) {
	c := startCloud(t, "")
	registerImage(t, c, "cli-image", "")

	// An empty answer is an empty list, not a missing key.
	out, err := awsCLI(t, c.Endpoint(), "ec2", "describe-instances")
	if err != nil {
		t.Fatal(err)
	}
	var empty map[string]json.RawMessage
	if err := json.Unmarshal(out, &empty); err != nil || string(empty["Reservations"]) != "[]" {
		t.Fatalf("describe-instances with no instances: %s", out)
	}

	out, err = awsCLI(t, c.Endpoint(), "ec2", "describe-subnets", "--filters", "Name=default-for-az,Values=true")
	if err != nil {
		t.Fatal(err)
	}
	var subnets struct {
		Subnets []struct{ SubnetId, AvailabilityZone string }
	}
	if err := json.Unmarshal(out, &subnets); err != nil {
		t.Fatalf("decoding %s: %v", out, err)
	}
	if len(subnets.Subnets) != 3 {
		t.Fatalf("default subnets through the CLI: %s", out)
	}

	out, err = awsCLI(t, c.Endpoint(), "ec2", "run-instances", "--image-id", imageID(t, c, "cli-image"), "--subnet-id", subnets.Subnets[0].SubnetId,
		"--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=cli}]")
	if err != nil {
		t.Fatal(err)
	}
	var run struct {
		Instances []struct {
			InstanceId, PrivateIpAddress string
			State                        struct{ Name string }
		}
	}
	if err := json.Unmarshal(out, &run); err != nil {
		t.Fatalf("decoding %s: %v", out, err)
	}
	if len(run.Instances) != 1 || run.Instances[0].State.Name != "pending" || !strings.HasPrefix(run.Instances[0].PrivateIpAddress, "127.") {
		t.Fatalf("run-instances through the CLI: %s", out)
	}

	_, err = awsCLI(t, c.Endpoint(), "ec2", "describe-volumes", "--volume-ids", "vol-0123456789abcdef0")
	if err == nil || !strings.Contains(err.Error(), "InvalidVolume.NotFound") {
		t.Fatalf("CLI error for a missing volume: %v", err)
	}

	cmd := exec.Command("/usr/bin/aws", "--endpoint-url", c.Endpoint(), "ec2", "describe-instances")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=wrong", "AWS_DEFAULT_REGION=us-east-1"}
	if msg, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(msg), "SignatureDoesNotMatch") {
		t.Fatalf("CLI with a wrong secret: %v %s", err, msg)
	}
}
