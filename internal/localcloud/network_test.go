package localcloud_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestVPCsSubnetsAndTheirDependencies(t *testing.T) {
	c := startCloud(t, "")
	client := ec2Client(c)
	ctx := context.Background()
	vpc, err := client.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.1.0.0/16"),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVpc, Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String("kafka")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	vpcID := vpc.Vpc.VpcId
	_, err = client.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/8")})
	wantCode(t, err, "InvalidVpc.Range")

	sn, err := client.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpcID, CidrBlock: aws.String("10.1.1.0/24"), AvailabilityZone: aws.String("us-east-1c")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, cidr, az, code string
	}{
		{"overlap", "10.1.1.128/25", "us-east-1a", "InvalidSubnet.Conflict"},
		{"outside the VPC", "10.2.0.0/24", "us-east-1a", "InvalidSubnet.Range"},
		{"unknown zone", "10.1.2.0/24", "us-east-1z", "InvalidParameterValue"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpcID, CidrBlock: aws.String(tt.cidr), AvailabilityZone: aws.String(tt.az)})
			wantCode(t, err, tt.code)
		})
	}

	// Interfaces in the new subnet get the subnet's own loopback /24.
	def := defaultSubnet(t, client, "us-east-1c")
	a, err := client.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: def.SubnetId})
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: sn.Subnet.SubnetId, PrivateIpAddress: nil})
	if err != nil {
		t.Fatal(err)
	}
	block := func(ip *string) string { return aws.ToString(ip)[:strings.LastIndex(aws.ToString(ip), ".")] }
	if block(a.NetworkInterface.PrivateIpAddress) == block(b.NetworkInterface.PrivateIpAddress) {
		t.Fatalf("two subnets share a loopback block: %s and %s", aws.ToString(a.NetworkInterface.PrivateIpAddress), aws.ToString(b.NetworkInterface.PrivateIpAddress))
	}
	// A group of another VPC cannot go on the interface.
	_, err = client.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: sn.Subnet.SubnetId, Groups: []string{defaultGroupID(t, client)}})
	wantCode(t, err, "InvalidParameter")

	_, err = client.DeleteSubnet(ctx, &ec2.DeleteSubnetInput{SubnetId: sn.Subnet.SubnetId})
	wantCode(t, err, "DependencyViolation")
	_, err = client.DeleteVpc(ctx, &ec2.DeleteVpcInput{VpcId: vpcID})
	wantCode(t, err, "DependencyViolation")
	if _, err := client.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: b.NetworkInterface.NetworkInterfaceId}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteSubnet(ctx, &ec2.DeleteSubnetInput{SubnetId: sn.Subnet.SubnetId}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteVpc(ctx, &ec2.DeleteVpcInput{VpcId: vpcID}); err != nil {
		t.Fatal(err)
	}
	_, err = client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{aws.ToString(vpcID)}})
	wantCode(t, err, "InvalidVpcID.NotFound")

	regions, err := client.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	if err != nil || len(regions.Regions) != 1 || aws.ToString(regions.Regions[0].RegionName) != "us-east-1" {
		t.Fatalf("regions: %+v %v", regions, err)
	}
	attrs, err := client.DescribeAccountAttributes(ctx, &ec2.DescribeAccountAttributesInput{AttributeNames: []ec2types.AccountAttributeName{ec2types.AccountAttributeNameDefaultVpc}})
	if err != nil || len(attrs.AccountAttributes) != 1 || !strings.HasPrefix(aws.ToString(attrs.AccountAttributes[0].AttributeValues[0].AttributeValue), "vpc-") {
		t.Fatalf("account attributes: %+v %v", attrs, err)
	}
}

func defaultGroupID(t *testing.T, client *ec2.Client) string {
	t.Helper()
	out, err := client.DescribeSecurityGroups(context.Background(), &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.SecurityGroups[0].GroupId)
}

func TestTagsAttributesAndInstanceFilters(t *testing.T) {
	c := startCloud(t, "")
	client := ec2Client(c)
	ctx := context.Background()
	ami := registerImage(t, c, "virtual", "")
	small, _ := localTypes()
	sn := defaultSubnet(t, client, "us-east-1a")
	eni, err := client.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: sn.SubnetId})
	if err != nil {
		t.Fatal(err)
	}
	ud := base64.StdEncoding.EncodeToString([]byte(`{"hello":"world"}`))
	run, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: small, UserData: aws.String(ud),
		NetworkInterfaces: []ec2types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), NetworkInterfaceId: eni.NetworkInterface.NetworkInterfaceId}}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	waitInstanceState(t, client, id, ec2types.InstanceStateNameRunning)
	other, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(2), MaxCount: aws.Int32(2), InstanceType: small,
		Placement: &ec2types.Placement{AvailabilityZone: aws.String("us-east-1b")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(other.Instances) != 2 || aws.ToInt32(other.Instances[1].AmiLaunchIndex) != 1 {
		t.Fatalf("MaxCount 2 launched %+v", other.Instances)
	}

	if _, err := client.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id, aws.ToString(eni.NetworkInterface.NetworkInterfaceId)},
		Tags: []ec2types.Tag{{Key: aws.String("tributary:cluster"), Value: aws.String("c1")}, {Key: aws.String("role"), Value: aws.String("broker")}}}); err != nil {
		t.Fatal(err)
	}
	_, err = client.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"i-0123456789abcdef0"}, Tags: []ec2types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	_, err = client.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{{Key: aws.String("aws:reserved"), Value: aws.String("v")}}})
	wantCode(t, err, "InvalidParameterValue")
	// A value that does not match keeps the tag; a bare key removes it.
	if _, err := client.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{{Key: aws.String("role"), Value: aws.String("other")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{aws.ToString(eni.NetworkInterface.NetworkInterfaceId)}, Tags: []ec2types.Tag{{Key: aws.String("role")}}}); err != nil {
		t.Fatal(err)
	}
	tags, err := client.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{{Name: aws.String("key"), Values: []string{"role"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].ResourceId) != id || tags.Tags[0].ResourceType != ec2types.ResourceTypeInstance {
		t.Fatalf("role tags left: %+v", tags.Tags)
	}

	for _, tt := range []struct {
		name    string
		filters []ec2types.Filter
		want    int
	}{
		{"running", []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"running", "pending"}}}, 3},
		{"cluster tag", []ec2types.Filter{{Name: aws.String("tag:tributary:cluster"), Values: []string{"c1"}}}, 1},
		{"zone", []ec2types.Filter{{Name: aws.String("availability-zone"), Values: []string{"us-east-1b"}}}, 2},
		{"network interface", []ec2types.Filter{{Name: aws.String("network-interface.network-interface-id"), Values: []string{aws.ToString(eni.NetworkInterface.NetworkInterfaceId)}}}, 1},
		{"subnet", []ec2types.Filter{{Name: aws.String("subnet-id"), Values: []string{aws.ToString(sn.SubnetId)}}}, 1},
		{"private ip", []ec2types.Filter{{Name: aws.String("private-ip-address"), Values: []string{aws.ToString(eni.NetworkInterface.PrivateIpAddress)}}}, 1},
		{"reservation", []ec2types.Filter{{Name: aws.String("reservation-id"), Values: []string{aws.ToString(other.ReservationId)}}}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: tt.filters})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range out.Reservations {
				n += len(r.Instances)
			}
			if n != tt.want {
				t.Fatalf("%d instances, want %d", n, tt.want)
			}
		})
	}
	// Instances paginate across reservations.
	var seen int
	var token *string
	for range 5 {
		out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Reservations {
			seen += len(r.Instances)
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	if seen != 3 {
		t.Fatalf("paginated %d instances, want 3", seen)
	}

	attr, err := client.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: ec2types.InstanceAttributeNameUserData})
	if err != nil || aws.ToString(attr.UserData.Value) != ud {
		t.Fatalf("userData attribute: %+v %v", attr, err)
	}
	attr, err = client.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: ec2types.InstanceAttributeNameInstanceType})
	if err != nil || aws.ToString(attr.InstanceType.Value) != string(small) {
		t.Fatalf("instanceType attribute: %+v %v", attr, err)
	}
	if _, err := client.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(id), HttpTokens: ec2types.HttpTokensStateRequired}); err != nil {
		t.Fatal(err)
	}
	if got := describeInstance(t, client, id).MetadataOptions.HttpTokens; got != ec2types.HttpTokensStateRequired {
		t.Fatalf("HttpTokens after ModifyInstanceMetadataOptions: %s", got)
	}
	if _, err := client.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), DisableApiTermination: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}}); err != nil {
		t.Fatal(err)
	}
	_, err = client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	wantCode(t, err, "OperationNotPermitted")

	// Deregistering the image leaves its instances alone; new launches fail.
	if _, err := client.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(ami)}); err != nil {
		t.Fatal(err)
	}
	_, err = client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: small})
	wantCode(t, err, "InvalidAMIID.NotFound")
	if s := describeInstance(t, client, id).State.Name; s != ec2types.InstanceStateNameRunning {
		t.Fatalf("instance of a deregistered image is %s", s)
	}
}

func TestEgressRules(t *testing.T) {
	c := startCloud(t, "")
	client := ec2Client(c)
	ctx := context.Background()
	sg, err := client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("locked"), Description: aws.String("no egress")})
	if err != nil {
		t.Fatal(err)
	}
	all := []ec2types.IpPermission{{IpProtocol: aws.String("-1"), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}
	if _, err := client.RevokeSecurityGroupEgress(ctx, &ec2.RevokeSecurityGroupEgressInput{GroupId: sg.GroupId, IpPermissions: all}); err != nil {
		t.Fatal(err)
	}
	tls := []ec2types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}}}
	if _, err := client.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: sg.GroupId, IpPermissions: tls}); err != nil {
		t.Fatal(err)
	}
	rules, err := client.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{Filters: []ec2types.Filter{{Name: aws.String("group-id"), Values: []string{aws.ToString(sg.GroupId)}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rules.SecurityGroupRules) != 1 || !aws.ToBool(rules.SecurityGroupRules[0].IsEgress) || aws.ToInt32(rules.SecurityGroupRules[0].FromPort) != 443 {
		t.Fatalf("rules: %+v", rules.SecurityGroupRules)
	}
	_, err = client.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: sg.GroupId, IpPermissions: []ec2types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(10), ToPort: aws.Int32(5), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}}}})
	wantCode(t, err, "InvalidParameterValue")
	if _, err := client.RevokeSecurityGroupEgress(ctx, &ec2.RevokeSecurityGroupEgressInput{GroupId: sg.GroupId, SecurityGroupRuleIds: []string{aws.ToString(rules.SecurityGroupRules[0].SecurityGroupRuleId)}}); err != nil {
		t.Fatal(err)
	}
	got, err := client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aws.ToString(sg.GroupId)}})
	if err != nil || len(got.SecurityGroups[0].IpPermissionsEgress) != 0 {
		t.Fatalf("egress after revoking every rule: %+v %v", got, err)
	}
}
