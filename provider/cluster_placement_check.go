package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
)

// checkInstanceType asks EC2 whether instanceType exists in the region
// (ec2:DescribeInstanceTypes). A name EC2 does not know is refused at plan:
// the apply would otherwise create the network interfaces, volumes and Auto
// Scaling groups, and each group would fail to launch its instance until
// the create timed out. When EC2 cannot answer (the credentials may not
// ask, an emulator without the call) the plan goes on with a warning, as
// the launch itself is the check then.
func checkInstanceType(ctx context.Context, client *ec2.Client, instanceType, region string) diag.Diagnostics {
	var diags diag.Diagnostics
	at := path.Root("instance_type")
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := client.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{ec2types.InstanceType(instanceType)}})
	var apiErr smithy.APIError
	switch {
	case err == nil && len(out.InstanceTypes) > 0:
	case err == nil, errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidInstanceType":
		diags.AddAttributeError(at, "Unknown instance type",
			fmt.Sprintf("instance_type %q is not an EC2 instance type in %s (ec2:DescribeInstanceTypes does not know it). "+
				"Set a type of the form family.size, such as m7g.large (Graviton) or m7i.large (x86_64), that the region offers: "+
				"aws ec2 describe-instance-types --region %s --query 'InstanceTypes[].InstanceType' lists them.", instanceType, region, region))
	default:
		diags.AddAttributeWarning(at, "Instance type not checked",
			fmt.Sprintf("Checking that instance type %q exists in %s failed (ec2:DescribeInstanceTypes): %v. "+
				"If it does not, the brokers' Auto Scaling groups cannot launch their instances and the apply waits until it times out.", instanceType, region, err))
	}
	return diags
}

// checkSubnets looks up the subnets a new cluster (or a changed subnet_ids)
// will use, as the create does first, so that a subnet that does not exist,
// two subnets in one Availability Zone, fewer than three zones or a region
// without a default VPC fail the plan rather than the apply.
func checkSubnets(ctx context.Context, client *ec2.Client, ids []string, region string) diag.Diagnostics {
	var diags diag.Diagnostics
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := describeSubnets(ctx, client, ids)
	var apiErr smithy.APIError
	switch {
	case err == nil:
	case errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidSubnetID.NotFound":
		diags.AddAttributeError(path.Root("subnet_ids"), "Subnets not found",
			fmt.Sprintf("%s. subnet_ids must name existing subnets of %s, one in each of at least three Availability Zones "+
				"(aws ec2 describe-subnets --region %s lists them), or be omitted for the default VPC's.", apiErr.ErrorMessage(), region, region))
	case errors.As(err, &apiErr):
		// EC2 could not answer: the create asks again and says so then.
		diags.AddAttributeWarning(path.Root("subnet_ids"), "Subnets not checked",
			fmt.Sprintf("Looking up the cluster's subnets in %s failed: %v", region, err))
	default:
		diags.AddAttributeError(path.Root("subnet_ids"), "Unusable subnets", strings.TrimSuffix(err.Error(), ".")+".")
	}
	return diags
}
