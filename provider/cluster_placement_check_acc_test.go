package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// TestAccCluster_placementInvalid refuses at plan time the instance types
// and subnets the create could not use, before anything is made: a
// mistyped instance type (whose Auto Scaling groups would retry their
// launch until the create timed out), subnets that do not exist, and
// subnets in fewer than three Availability Zones. It needs no running broker, so it runs
// against moto too.
func TestAccCluster_placementInvalid(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := accEnv.clients.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{
		Filters: []ec2types.Filter{{Name: aws.String("default-for-az"), Values: []string{"true"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Subnets) < 2 {
		t.Fatalf("the region has %d default subnets; the test needs two", len(out.Subnets))
	}
	first, second := aws.ToString(out.Subnets[0].SubnetId), aws.ToString(out.Subnets[1].SubnetId)
	name := accName(t)
	config := func(instanceType, subnets string) string {
		return testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  wait_for_brokers   = false
  client_cidr_blocks = ["127.0.0.0/8"]
  %[4]s
}
`, name, accEnv.version, instanceType, subnets)
	}
	mistyped := strings.SplitN(accInstanceType(), ".", 2)[0] + ".huge"
	steps := []struct {
		config string
		want   string
	}{
		{config(mistyped, ""), fmt.Sprintf("instance_type %q is not an EC2 instance type in %s", mistyped, accEnv.region)},
		{config(accInstanceType(), `subnet_ids = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002", "subnet-0a1b2c3d4e5f60003"]`),
			"Subnets not found"},
		{config(accInstanceType(), fmt.Sprintf(`subnet_ids = [%q, %q]`, first, second)),
			"a cluster needs subnets in at least three Availability Zones, got 2"},
	}
	var tsteps []resource.TestStep
	for _, s := range steps {
		tsteps = append(tsteps, resource.TestStep{Config: s.config, PlanOnly: true, ExpectError: wrappedText(s.want)})
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps:                    tsteps,
	})
}
