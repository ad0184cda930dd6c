package awsapitest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	awssts "github.com/aws/aws-sdk-go-v2/service/sts"
)

// TrustAccount is a role trust policy that lets the principals of the default account assume
// the role.
const TrustAccount = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"sts:AssumeRole"}]}`

// CreateRole creates the role name with the trust policy trust through c and fails the test
// when IAM refuses.
func CreateRole(t testing.TB, c *awsiam.Client, name, trust string) *iamtypes.Role {
	t.Helper()
	out, err := c.CreateRole(context.Background(), &awsiam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust)})
	if err != nil {
		t.Fatalf("CreateRole %s: %v", name, err)
	}
	return out.Role
}

// AssumeRole has the account root assume roleARN for seconds through the cloud's STS service
// (which the test registers) and returns a Config signing as the new session, with STS's
// answer. It fails the test when STS refuses.
func (c *Cloud) AssumeRole(t testing.TB, roleARN string, seconds int32) (aws.Config, *awssts.AssumeRoleOutput) {
	t.Helper()
	out, err := awssts.NewFromConfig(c.Root()).AssumeRole(context.Background(), &awssts.AssumeRoleInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String("test-session"), DurationSeconds: aws.Int32(seconds),
	})
	if err != nil {
		t.Fatalf("AssumeRole %s: %v", roleARN, err)
	}
	cr := out.Credentials
	return c.Config(aws.ToString(cr.AccessKeyId), aws.ToString(cr.SecretAccessKey), aws.ToString(cr.SessionToken)), out
}
