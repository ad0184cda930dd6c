package localcloud_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
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

// TestAttachCallsAreAuthorizedOnTaggedResources is a broker's instance role that may attach only
// its cluster's tagged interfaces and volumes to its cluster's instances, as the boot agent of an
// Auto Scaling group's instance does with its own ENI and data volume.
func TestAttachCallsAreAuthorizedOnTaggedResources(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	admin := iam.NewFromConfig(sdkConfig(c))
	root := ec2Client(c)
	role, err := admin.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("broker"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("broker"), PolicyName: aws.String("attach"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[
		  {"Effect":"Allow","Action":["ec2:AttachVolume","ec2:DetachVolume","ec2:AttachNetworkInterface","ec2:DetachNetworkInterface","ec2:ModifyVolume"],"Resource":"*",
		   "Condition":{"StringEquals":{"ec2:ResourceTag/tributary:cluster":"c1"}}},
		  {"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`)}); err != nil {
		t.Fatal(err)
	}
	session, err := c.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(role.Role.Arn), aws.ToString(role.Role.RoleId), "i-0123456789abcdef0"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sdkConfig(c)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(session.AccessKeyID, session.SecretAccessKey, session.SessionToken)
	broker := ec2.NewFromConfig(cfg)

	ami := registerImage(t, c, "virtual", "")
	small, _ := localTypes()
	sn := defaultSubnet(t, root, "us-east-1a")
	cluster := func(name string) []ec2types.TagSpecification {
		return []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String("tributary:cluster"), Value: aws.String(name)}}}}
	}
	launch := func(tags []ec2types.TagSpecification) string {
		t.Helper()
		out, err := root.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: small, SubnetId: sn.SubnetId, TagSpecifications: tags})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.Instances[0].InstanceId)
		waitInstanceState(t, root, id, ec2types.InstanceStateNameRunning)
		return id
	}
	volume := func(cluster string) string {
		t.Helper()
		out, err := root.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: []ec2types.Tag{{Key: aws.String("tributary:cluster"), Value: aws.String(cluster)}}}}})
		if err != nil {
			t.Fatal(err)
		}
		waitVolumeState(t, root, aws.ToString(out.VolumeId), ec2types.VolumeStateAvailable)
		return aws.ToString(out.VolumeId)
	}
	eni := func(cluster string) string {
		t.Helper()
		out, err := root.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: sn.SubnetId,
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeNetworkInterface, Tags: []ec2types.Tag{{Key: aws.String("tributary:cluster"), Value: aws.String(cluster)}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.NetworkInterface.NetworkInterfaceId)
	}
	own, other := launch(cluster("c1")), launch(nil)
	ownVol, otherVol := volume("c1"), volume("c2")
	ownENI, otherENI := eni("c1"), eni("c2")

	attachVolume := func(vol, inst string) error {
		_, err := broker.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(inst), Device: aws.String("/dev/sdf")})
		return err
	}
	attachENI := func(e, inst string) (*ec2.AttachNetworkInterfaceOutput, error) {
		return broker.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: aws.String(e), InstanceId: aws.String(inst), DeviceIndex: aws.Int32(1)})
	}
	wantCode(t, attachVolume(otherVol, own), "UnauthorizedOperation")
	wantCode(t, attachVolume(ownVol, other), "UnauthorizedOperation")
	if _, err := attachENI(otherENI, own); errorCode(err) != "UnauthorizedOperation" {
		t.Fatalf("another cluster's interface: %v", err)
	}
	if err := attachVolume(ownVol, own); err != nil {
		t.Fatalf("the cluster's volume to the cluster's instance: %v", err)
	}
	att, err := attachENI(ownENI, own)
	if err != nil {
		t.Fatalf("the cluster's interface to the cluster's instance: %v", err)
	}
	waitVolumeState(t, root, ownVol, ec2types.VolumeStateInUse)
	if _, err := broker.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: att.AttachmentId}); err != nil {
		t.Fatalf("detaching its interface: %v", err)
	}
	if _, err := broker.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(ownVol)}); err != nil {
		t.Fatalf("detaching its volume: %v", err)
	}
	// ModifyVolume too: the role may grow its cluster's volume only.
	_, err = broker.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(otherVol), Size: aws.Int32(2)})
	wantCode(t, err, "UnauthorizedOperation")
	if _, err := broker.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(ownVol), Size: aws.Int32(2)}); err != nil {
		t.Fatalf("growing the cluster's volume: %v", err)
	}
	// Other calls stay authorized on "*": the role may not create volumes.
	_, err = broker.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)})
	wantCode(t, err, "UnauthorizedOperation")
}
