package localcloud_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// TestEC2CallsAreAuthorizedByIAM checks the seam between the front door and IAM: a role
// session may call EC2 only as far as its identity policies allow, as on AWS.
func TestEC2CallsAreAuthorizedByIAM(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
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
	cfg := sdkConfig(c)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(session.AccessKeyID, session.SecretAccessKey, session.SessionToken)
	client := ec2.NewFromConfig(cfg)

	_, err = client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	wantCode(t, err, "UnauthorizedOperation")

	if _, err := admin.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("reader"), PolicyName: aws.String("describe"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatalf("DescribeInstances with ec2:Describe* allowed: %v", err)
	}
	_, err = client.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)})
	wantCode(t, err, "UnauthorizedOperation")
}
