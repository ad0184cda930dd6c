package localcloud_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// TestSecretsManagerCLI drives the local cloud's Secrets Manager through Debian's aws CLI: a
// secret created, read by name and by ARN, given a new value (the old one stays readable as
// AWSPREVIOUS), described, deleted with a recovery window (then unreadable), restored, and
// deleted for good; the value is nowhere in clear in the emulator's state directory.
func TestSecretsManagerCLI(t *testing.T) {
	c := startCloud(t, "")
	cli := func(args ...string) map[string]any {
		t.Helper()
		out, err := awsCLI(t, c.Endpoint(), append([]string{"secretsmanager"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("decoding %s: %v", out, err)
		}
		return v
	}
	const first, second = `{"username":"app","password":"first-secret-1"}`, `{"username":"app","password":"second-secret-2"}`
	created := cli("create-secret", "--name", "AmazonMSK_app", "--secret-string", first, "--description", "SCRAM user app")
	arn, _ := created["ARN"].(string)
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:us-east-1:") || !strings.Contains(arn, ":secret:AmazonMSK_app-") {
		t.Fatalf("create-secret: %v", created)
	}
	for _, id := range []string{"AmazonMSK_app", arn, strings.TrimSuffix(arn, arn[len(arn)-7:])} {
		if got := cli("get-secret-value", "--secret-id", id); got["SecretString"] != first || got["Name"] != "AmazonMSK_app" {
			t.Fatalf("get-secret-value --secret-id %s: %v", id, got)
		}
	}
	put := cli("put-secret-value", "--secret-id", "AmazonMSK_app", "--secret-string", second)
	if got := cli("get-secret-value", "--secret-id", "AmazonMSK_app"); got["SecretString"] != second || got["VersionId"] != put["VersionId"] {
		t.Fatalf("after put-secret-value: %v (put %v)", got, put)
	}
	if got := cli("get-secret-value", "--secret-id", "AmazonMSK_app", "--version-stage", "AWSPREVIOUS"); got["SecretString"] != first {
		t.Fatalf("AWSPREVIOUS: %v", got)
	}
	if d := cli("describe-secret", "--secret-id", "AmazonMSK_app"); d["Description"] != "SCRAM user app" || len(d["VersionIdsToStages"].(map[string]any)) != 2 {
		t.Fatalf("describe-secret: %v", d)
	}
	// The values are sealed at rest.
	err := filepath.Walk(c.StateDir(), func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err == nil && (strings.Contains(string(data), "first-secret-1") || strings.Contains(string(data), "second-secret-2")) {
			t.Errorf("%s holds a secret value in clear", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := awsCLI(t, c.Endpoint(), "secretsmanager", "create-secret", "--name", "AmazonMSK_app", "--secret-string", "x"); err == nil || !strings.Contains(err.Error(), "ResourceExistsException") {
		t.Fatalf("creating it twice: %v", err)
	}
	cli("delete-secret", "--secret-id", "AmazonMSK_app", "--recovery-window-in-days", "7")
	if _, err := awsCLI(t, c.Endpoint(), "secretsmanager", "get-secret-value", "--secret-id", "AmazonMSK_app"); err == nil || !strings.Contains(err.Error(), "marked for deletion") {
		t.Fatalf("reading a secret marked for deletion: %v", err)
	}
	cli("restore-secret", "--secret-id", "AmazonMSK_app")
	if got := cli("get-secret-value", "--secret-id", "AmazonMSK_app"); got["SecretString"] != second {
		t.Fatalf("after restore-secret: %v", got)
	}
	cli("delete-secret", "--secret-id", arn, "--force-delete-without-recovery")
	if _, err := awsCLI(t, c.Endpoint(), "secretsmanager", "get-secret-value", "--secret-id", arn); err == nil || !strings.Contains(err.Error(), "ResourceNotFoundException") {
		t.Fatalf("reading a deleted secret: %v", err)
	}
}

// TestSecretsManagerIsAuthorizedByIAM: a role may read a secret only once a policy allows it
// secretsmanager:GetSecretValue on that secret's ARN; another secret stays refused.
func TestSecretsManagerIsAuthorizedByIAM(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	secretARN := func(name string) string {
		out, err := awsCLI(t, c.Endpoint(), "secretsmanager", "create-secret", "--name", name, "--secret-string", "s3cret-"+name)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ ARN string }
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatal(err)
		}
		return v.ARN
	}
	mine, other := secretARN("app"), secretARN("other")
	admin := iam.NewFromConfig(sdkConfig(c))
	role, err := admin.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("reader"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	session, err := c.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(role.Role.Arn), aws.ToString(role.Role.RoleId), "test"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	creds := []string{"AWS_ACCESS_KEY_ID=" + session.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + session.SecretAccessKey, "AWS_SESSION_TOKEN=" + session.SessionToken}
	get := func(id string) error {
		_, err := awsCLIAs(t, c.Endpoint(), creds, "secretsmanager", "get-secret-value", "--secret-id", id)
		return err
	}
	if err := get("app"); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("reading without a policy: %v", err)
	}
	if _, err := admin.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("reader"), PolicyName: aws.String("read-app"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"` + mine + `"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if err := get("app"); err != nil {
		t.Fatalf("reading with secretsmanager:GetSecretValue on %s: %v", mine, err)
	}
	if err := get(other); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("reading another secret: %v", err)
	}
}
