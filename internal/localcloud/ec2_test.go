package localcloud_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestDefaultVPCAndZones(t *testing.T) {
	c := startCloud(t, "")
	client := ec2Client(c)
	ctx := context.Background()
	azs, err := client.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, z := range azs.AvailabilityZones {
		names = append(names, aws.ToString(z.ZoneName)+"="+string(z.State))
	}
	if got := strings.Join(names, ","); got != "us-east-1a=available,us-east-1b=available,us-east-1c=available" {
		t.Fatalf("zones: %s", got)
	}
	vpcs, err := client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []ec2types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(vpcs.Vpcs) != 1 || aws.ToString(vpcs.Vpcs[0].CidrBlock) != "172.31.0.0/16" {
		t.Fatalf("default VPC: %+v", vpcs.Vpcs)
	}
	for _, az := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
		sn := defaultSubnet(t, client, az)
		if aws.ToString(sn.VpcId) != aws.ToString(vpcs.Vpcs[0].VpcId) {
			t.Fatalf("subnet %s in VPC %s", aws.ToString(sn.SubnetId), aws.ToString(sn.VpcId))
		}
	}
	groups, err := client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups.SecurityGroups) != 1 || len(groups.SecurityGroups[0].IpPermissionsEgress) != 1 {
		t.Fatalf("default group: %+v", groups.SecurityGroups)
	}
}

func TestBadSignatureRefusedByEC2(t *testing.T) {
	c := startCloud(t, "")
	tests := []struct {
		name, key, secret, code string
	}{
		{"wrong secret", "test", "wrong", "SignatureDoesNotMatch"},
		{"unknown key", "AKIAIOSFODNN7EXAMPLE", "test", "AuthFailure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := sdkConfig(c)
			cfg.Credentials = credentials.NewStaticCredentialsProvider(tt.key, tt.secret, "")
			_, err := ec2.NewFromConfig(cfg).DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
			wantCode(t, err, tt.code)
		})
	}
}

func TestSecurityGroupsAndDependencies(t *testing.T) {
	c := startCloud(t, "")
	client := ec2Client(c)
	ctx := context.Background()
	sg, err := client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("brokers"), Description: aws.String("Kafka brokers")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("brokers"), Description: aws.String("again")})
	wantCode(t, err, "InvalidGroup.Duplicate")

	ingress := &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: []ec2types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(9092), ToPort: aws.Int32(9098),
		IpRanges:         []ec2types.IpRange{{CidrIp: aws.String("10.0.0.0/8"), Description: aws.String("clients")}},
		UserIdGroupPairs: []ec2types.UserIdGroupPair{{GroupId: sg.GroupId}},
	}}}
	auth, err := client.AuthorizeSecurityGroupIngress(ctx, ingress)
	if err != nil {
		t.Fatal(err)
	}
	if len(auth.SecurityGroupRules) != 2 {
		t.Fatalf("rules created: %d", len(auth.SecurityGroupRules))
	}
	_, err = client.AuthorizeSecurityGroupIngress(ctx, ingress)
	wantCode(t, err, "InvalidPermission.Duplicate")

	got, err := client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aws.ToString(sg.GroupId)}})
	if err != nil {
		t.Fatal(err)
	}
	perms := got.SecurityGroups[0].IpPermissions
	if len(perms) != 1 || aws.ToInt32(perms[0].FromPort) != 9092 || len(perms[0].IpRanges) != 1 || len(perms[0].UserIdGroupPairs) != 1 {
		t.Fatalf("ingress: %+v", perms)
	}

	// A group used by a network interface cannot be deleted.
	sn := defaultSubnet(t, client, "us-east-1a")
	eni, err := client.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: sn.SubnetId, Groups: []string{aws.ToString(sg.GroupId)}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId})
	wantCode(t, err, "DependencyViolation")

	// Move the interface to another group, then the first can go (after revoking the
	// self-reference, which also counts as a dependency of nothing but itself).
	other, err := client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("other"), Description: aws.String("other")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: eni.NetworkInterface.NetworkInterfaceId, Groups: []string{aws.ToString(other.GroupId)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: ingress.IpPermissions}); err != nil {
		t.Fatal(err)
	}
	_, err = client.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: ingress.IpPermissions})
	wantCode(t, err, "InvalidPermission.NotFound")
	if _, err := client.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}); err != nil {
		t.Fatal(err)
	}
	_, err = client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aws.ToString(sg.GroupId)}})
	wantCode(t, err, "InvalidGroup.NotFound")
}

func TestNetworkInterfacesGetLoopbackAddresses(t *testing.T) {
	c := startCloud(t, "")
	client := ec2Client(c)
	ctx := context.Background()
	seen := map[string]bool{}
	for _, az := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
		sn := defaultSubnet(t, client, az)
		for range 2 {
			out, err := client.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: sn.SubnetId})
			if err != nil {
				t.Fatal(err)
			}
			ip := aws.ToString(out.NetworkInterface.PrivateIpAddress)
			if !strings.HasPrefix(ip, "127.") || seen[ip] {
				t.Fatalf("private IP %q (seen before: %v)", ip, seen[ip])
			}
			seen[ip] = true
			if aws.ToString(out.NetworkInterface.AvailabilityZone) != az || out.NetworkInterface.Status != ec2types.NetworkInterfaceStatusAvailable {
				t.Fatalf("interface: %+v", out.NetworkInterface)
			}
		}
	}
	_, err := client.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{"eni-0123456789abcdef0"}})
	wantCode(t, err, "InvalidNetworkInterfaceID.NotFound")

	// A second interface attached after launch, then detached; the primary one cannot be.
	ami := registerImage(t, c, "virtual", "")
	sn := defaultSubnet(t, client, "us-east-1a")
	run, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: sn.SubnetId})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	waitInstanceState(t, client, id, ec2types.InstanceStateNameRunning)
	second, err := client.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: sn.SubnetId})
	if err != nil {
		t.Fatal(err)
	}
	att, err := client.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: second.NetworkInterface.NetworkInterfaceId, InstanceId: aws.String(id), DeviceIndex: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(describeInstance(t, client, id).NetworkInterfaces); n != 2 {
		t.Fatalf("%d interfaces after attaching a second", n)
	}
	primary := describeInstance(t, client, id).NetworkInterfaces
	for _, ni := range primary {
		if aws.ToInt32(ni.Attachment.DeviceIndex) == 0 {
			_, err := client.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: ni.Attachment.AttachmentId})
			wantCode(t, err, "OperationNotPermitted")
		}
	}
	if _, err := client.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: att.AttachmentId}); err != nil {
		t.Fatal(err)
	}
	if n := len(describeInstance(t, client, id).NetworkInterfaces); n != 1 {
		t.Fatalf("%d interfaces after detaching the second", n)
	}
}

func TestDescribeFiltersAndPagination(t *testing.T) {
	c := startCloud(t, "")
	client := ec2Client(c)
	ctx := context.Background()
	for i := range 7 {
		az := []string{"us-east-1a", "us-east-1b"}[i%2]
		_, err := client.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(az), Size: aws.Int32(int32(10 + i)), VolumeType: ec2types.VolumeTypeGp3,
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: []ec2types.Tag{
				{Key: aws.String("cluster"), Value: aws.String(fmt.Sprintf("c%d", i%3))}, {Key: aws.String(fmt.Sprintf("k%d", i)), Value: aws.String("v")}}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Pagination: 7 volumes in pages of 5.
	var ids []string
	var token *string
	pages := 0
	for {
		out, err := client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(5), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, v := range out.Volumes {
			ids = append(ids, aws.ToString(v.VolumeId))
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(ids) != 7 || pages != 2 {
		t.Fatalf("%d volumes in %d pages", len(ids), pages)
	}
	_, err := client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(2)})
	wantCode(t, err, "InvalidParameterValue")
	_, err = client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{NextToken: aws.String("!!")})
	wantCode(t, err, "InvalidPaginationToken")

	tests := []struct {
		name    string
		filters []ec2types.Filter
		want    int
	}{
		{"tag value", []ec2types.Filter{{Name: aws.String("tag:cluster"), Values: []string{"c0"}}}, 3},
		{"tag values ored", []ec2types.Filter{{Name: aws.String("tag:cluster"), Values: []string{"c0", "c1"}}}, 5},
		{"tag key", []ec2types.Filter{{Name: aws.String("tag-key"), Values: []string{"k3"}}}, 1},
		{"tag wildcard", []ec2types.Filter{{Name: aws.String("tag:cluster"), Values: []string{"c*"}}}, 7},
		{"zone and tag anded", []ec2types.Filter{{Name: aws.String("availability-zone"), Values: []string{"us-east-1a"}}, {Name: aws.String("tag:cluster"), Values: []string{"c0"}}}, 2},
		{"status", []ec2types.Filter{{Name: aws.String("status"), Values: []string{"available", "creating"}}}, 7},
		{"size", []ec2types.Filter{{Name: aws.String("size"), Values: []string{"12"}}}, 1},
		{"no match", []ec2types.Filter{{Name: aws.String("tag:cluster"), Values: []string{"nope"}}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: tt.filters})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Volumes) != tt.want {
				t.Fatalf("%d volumes, want %d", len(out.Volumes), tt.want)
			}
		})
	}
	_, err = client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("bogus"), Values: []string{"x"}}}})
	wantCode(t, err, "InvalidParameterValue")

	tags, err := client.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{{Name: aws.String("key"), Values: []string{"cluster"}}, {Name: aws.String("resource-type"), Values: []string{"volume"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(tags.Tags) != 7 {
		t.Fatalf("DescribeTags: %d tags", len(tags.Tags))
	}
}

func TestInstancesWithoutProcess(t *testing.T) {
	c := startCloud(t, "")
	client := ec2Client(c)
	ctx := context.Background()
	ami := registerImage(t, c, "virtual", "")
	sn := defaultSubnet(t, client, "us-east-1b")
	small, large := localTypes()

	t.Run("client token idempotency", func(t *testing.T) {
		in := &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: small,
			SubnetId: sn.SubnetId, ClientToken: aws.String("token-1")}
		first, err := client.RunInstances(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		second, err := client.RunInstances(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(first.Instances[0].InstanceId) != aws.ToString(second.Instances[0].InstanceId) || aws.ToString(first.ReservationId) != aws.ToString(second.ReservationId) {
			t.Fatalf("same client token launched twice: %s, %s", aws.ToString(first.Instances[0].InstanceId), aws.ToString(second.Instances[0].InstanceId))
		}
		out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("client-token"), Values: []string{"token-1"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
			t.Fatalf("instances with the token: %+v", out.Reservations)
		}
		in.InstanceType = large
		_, err = client.RunInstances(ctx, in)
		wantCode(t, err, "IdempotentParameterMismatch")
	})

	t.Run("state machine and attributes", func(t *testing.T) {
		run, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			InstanceType: small, SubnetId: sn.SubnetId,
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String("b1")}}}}})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(run.Instances[0].InstanceId)
		if run.Instances[0].State.Name != ec2types.InstanceStateNamePending {
			t.Fatalf("launched %s", run.Instances[0].State.Name)
		}
		waitInstanceState(t, client, id, ec2types.InstanceStateNameRunning)
		_, err = client.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), InstanceType: &ec2types.AttributeValue{Value: aws.String(string(large))}})
		wantCode(t, err, "IncorrectInstanceState")
		if _, err := client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
			t.Fatal(err)
		}
		inst := waitInstanceState(t, client, id, ec2types.InstanceStateNameStopped)
		if aws.ToString(inst.StateReason.Code) != "Client.UserInitiatedShutdown" || !strings.HasPrefix(aws.ToString(inst.StateTransitionReason), "User initiated (") {
			t.Fatalf("stopped: reason %+v, transition %q", inst.StateReason, aws.ToString(inst.StateTransitionReason))
		}
		if _, err := client.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), InstanceType: &ec2types.AttributeValue{Value: aws.String(string(large))}}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
			t.Fatal(err)
		}
		inst = waitInstanceState(t, client, id, ec2types.InstanceStateNameRunning)
		if inst.InstanceType != large {
			t.Fatalf("instance type %s", inst.InstanceType)
		}
		status, err := client.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{InstanceIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		if len(status.InstanceStatuses) != 1 || status.InstanceStatuses[0].InstanceStatus.Status != ec2types.SummaryStatusOk {
			t.Fatalf("status: %+v", status.InstanceStatuses)
		}
		if _, err := client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
			t.Fatal(err)
		}
		inst = waitInstanceState(t, client, id, ec2types.InstanceStateNameTerminated)
		if len(inst.NetworkInterfaces) != 0 || len(inst.BlockDeviceMappings) != 0 {
			t.Fatalf("terminated instance still has interfaces or volumes: %+v", inst)
		}
		_, err = client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
		wantCode(t, err, "IncorrectInstanceState")
		// The root volume (DeleteOnTermination) is gone.
		vols, err := client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{id}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(vols.Volumes) != 0 {
			t.Fatalf("volumes left attached to a terminated instance: %d", len(vols.Volumes))
		}
	})

	t.Run("not found and malformed ids", func(t *testing.T) {
		_, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
		wantCode(t, err, "InvalidInstanceID.NotFound")
		_, err = client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"nope"}})
		wantCode(t, err, "InvalidInstanceID.Malformed")
		_, err = client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-0123456789abcdef0"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
		wantCode(t, err, "InvalidAMIID.NotFound")
		_, err = client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
		wantCode(t, err, "InvalidInstanceID.NotFound")
	})

	t.Run("instance types and architecture", func(t *testing.T) {
		other := ec2types.InstanceTypeM7gLarge
		if small == other {
			other = ec2types.InstanceTypeM7iLarge
		}
		_, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: other})
		wantCode(t, err, "InvalidParameterValue")
		_, err = client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: "m99.huge"})
		wantCode(t, err, "InvalidParameterValue")
		out, err := client.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{ec2types.InstanceTypeM7gLarge, ec2types.InstanceTypeR6iXlarge}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[ec2types.InstanceType]string{}
		for _, it := range out.InstanceTypes {
			got[it.InstanceType] = fmt.Sprintf("%s/%d/%d", it.ProcessorInfo.SupportedArchitectures[0], aws.ToInt32(it.VCpuInfo.DefaultVCpus), aws.ToInt64(it.MemoryInfo.SizeInMiB))
		}
		if got[ec2types.InstanceTypeM7gLarge] != "arm64/2/8192" || got[ec2types.InstanceTypeR6iXlarge] != "x86_64/4/32768" {
			t.Fatalf("instance types: %v", got)
		}
		arm, err := client.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{Filters: []ec2types.Filter{{Name: aws.String("processor-info.supported-architecture"), Values: []string{"arm64"}}}, MaxResults: aws.Int32(100)})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range arm.InstanceTypes {
			if it.ProcessorInfo.SupportedArchitectures[0] != ec2types.ArchitectureTypeArm64 {
				t.Fatalf("%s in the arm64 filter", it.InstanceType)
			}
		}
		if len(arm.InstanceTypes) == 0 {
			t.Fatal("no arm64 instance types")
		}
	})

	t.Run("images by owner and tag", func(t *testing.T) {
		out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []ec2types.Filter{{Name: aws.String("tag:purpose"), Values: []string{"test"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Images) != 1 || aws.ToString(out.Images[0].ImageId) != ami {
			t.Fatalf("images: %+v", out.Images)
		}
		out, err = client.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Images) != 0 {
			t.Fatalf("amazon-owned images: %d", len(out.Images))
		}
	})
}

// TestKeepInterfacesOnTerminateFault: under the fault a terminated instance's
// interfaces stay attached (moto's behaviour); detaching the primary one is
// still refused and so is deleting an attached one; without it they are
// released as on AWS.
func TestKeepInterfacesOnTerminateFault(t *testing.T) {
	c := startCloud(t, "")
	client := ec2Client(c)
	ctx := context.Background()
	ami := registerImage(t, c, "virtual", "")
	sn := defaultSubnet(t, client, "us-east-1a")
	launch := func() (instanceID, eniID string) {
		t.Helper()
		eni, err := client.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: sn.SubnetId})
		if err != nil {
			t.Fatal(err)
		}
		run, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			NetworkInterfaces: []ec2types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), NetworkInterfaceId: eni.NetworkInterface.NetworkInterfaceId}}})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(run.Instances[0].InstanceId)
		waitInstanceState(t, client, id, ec2types.InstanceStateNameRunning)
		if _, err := client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
			t.Fatal(err)
		}
		waitInstanceState(t, client, id, ec2types.InstanceStateNameTerminated)
		return id, aws.ToString(eni.NetworkInterface.NetworkInterfaceId)
	}
	describeENI := func(id string) ec2types.NetworkInterface {
		t.Helper()
		out, err := client.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		return out.NetworkInterfaces[0]
	}

	c.KeepInterfacesOnTerminate(true)
	instID, eniID := launch()
	eni := describeENI(eniID)
	if eni.Status != ec2types.NetworkInterfaceStatusInUse || eni.Attachment == nil || aws.ToString(eni.Attachment.InstanceId) != instID {
		t.Fatalf("under the fault, the interface of terminated %s is %s attached %+v; want in-use, attached to it", instID, eni.Status, eni.Attachment)
	}
	_, err := client.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: eni.Attachment.AttachmentId, Force: aws.Bool(true)})
	wantCode(t, err, "OperationNotPermitted")
	_, err = client.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String(eniID)})
	wantCode(t, err, "InvalidNetworkInterface.InUse")

	c.KeepInterfacesOnTerminate(false)
	_, eniID = launch()
	if eni := describeENI(eniID); eni.Status != ec2types.NetworkInterfaceStatusAvailable || eni.Attachment != nil {
		t.Fatalf("without the fault, the interface of a terminated instance is %s attached %+v; want available", eni.Status, eni.Attachment)
	}
}
