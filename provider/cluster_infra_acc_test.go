package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/tributary/tributary/internal/awsconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/pricing"
)

// infraCluster is a cluster whose brokers the provider does not wait for
// (wait_for_brokers = false): what the infrastructure test checks is what
// AWS holds, so it runs the same against the local cloud, AWS, and
// emulators that run no instances (moto).
type infraCluster struct {
	name             string
	volumeSize       int
	securityGroupIDs []string
	clientCIDRs      []string
	tags             map[string]string
}

func (c infraCluster) config() string {
	quote := func(items []string) string {
		q := make([]string, len(items))
		for i, s := range items {
			q[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	groups := ""
	if len(c.securityGroupIDs) > 0 {
		groups = "  security_group_ids = " + quote(c.securityGroupIDs) + "\n"
	}
	var tags strings.Builder
	for _, k := range slices.Sorted(maps.Keys(c.tags)) {
		fmt.Fprintf(&tags, "    %q = %q\n", k, c.tags[k])
	}
	return testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  wait_for_brokers   = false
  client_cidr_blocks = %[4]s
`+plaintextCluster+`
%[5]s
  storage {
    volume_size = %[6]d
  }

  tags = {
%[7]s  }

  timeouts {
    create = "4m"
    update = "4m"
    delete = "4m"
  }
}
`, c.name, accEnv.version, accInstanceType(), quote(c.clientCIDRs), groups, c.volumeSize, tags.String())
}

// TestAccCluster_infrastructure builds a three-AZ cluster without waiting
// for its brokers, checks that a second plan is empty, changes storage,
// security groups, client CIDRs and tags (one changed, one added, one
// removed) in place, imports it, reads it
// through the data sources, and destroys it; CheckDestroy then asks AWS
// directly for anything left behind. It is the test that runs against
// emulators that run no instances (make test runs it against moto).
func TestAccCluster_infrastructure(t *testing.T) {
	accParallel(t)
	name := accName(t)
	extraSG := testAccSecurityGroup(t, name+"-extra")
	before := infraCluster{
		name: name, volumeSize: 10,
		clientCIDRs: []string{"127.0.0.0/8"},
		tags:        map[string]string{"test": name, "owner": "acceptance"},
	}
	after := infraCluster{
		name: name, volumeSize: 20,
		securityGroupIDs: []string{extraSG},
		clientCIDRs:      []string{"10.0.0.0/8", "127.0.0.0/8"},
		tags:             map[string]string{"test": "changed", "team": "streaming"},
	}
	var kept []brokerIdentity
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: before.config(),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestMatchResourceAttr(clusterResourceName, "cluster_id", regexp.MustCompile(`^tc-[0-9a-f]{16}$`)),
					resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.#", "3"),
					resource.TestMatchResourceAttr(clusterResourceName, "kms_key_arn", regexp.MustCompile(`^arn:aws:kms:`)),
					testAccCheckClusterInfrastructure(3),
					testAccCheckBootstrapIsEveryBroker(),
					testAccCheckIngress([]string{"127.0.0.0/8"}),
					testAccCheckENIGroups(nil),
					testAccCheckTagEverywhere("test", name),
					testAccCheckKeyAndRoleTags(before.tags),
					testAccRecordBrokers(&kept),
					testAccCheckCost(10),
				),
			},
			{
				// Nothing changed: the plan after a refresh is empty.
				Config: before.config(),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
			},
			{
				Config:           after.config(),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "storage.volume_size", "20"),
					testAccCheckCost(20),
					resource.TestCheckResourceAttr(clusterResourceName, "security_group_ids.#", "1"),
					resource.TestCheckResourceAttr(clusterResourceName, "tags.team", "streaming"),
					testAccCheckBrokersKept(&kept, true),
					testAccCheckVolumeSizes(20),
					testAccCheckENIGroups([]string{extraSG}),
					testAccCheckIngress([]string{"10.0.0.0/8", "127.0.0.0/8"}),
					testAccCheckTagEverywhere("test", "changed"),
					testAccCheckTagEverywhere("team", "streaming"),
					// Removed from the configuration, so from every object.
					testAccCheckTagEverywhere("owner", ""),
					resource.TestCheckNoResourceAttr(clusterResourceName, "tags_all.owner"),
					testAccCheckKeyAndRoleTags(after.tags),
				),
			},
			{
				ResourceName:      clusterResourceName,
				ImportState:       true,
				ImportStateVerify: true,
				// Not held in AWS: how the provider waits is the configuration's.
				ImportStateVerifyIgnore: []string{"timeouts", "wait_for_brokers"},
			},
			{
				Config: after.config() + dataSourcesConfig(accEnv.version),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrPair("data.tributary_cluster.by_name", "cluster_id", clusterResourceName, "cluster_id"),
					resource.TestCheckResourceAttrPair("data.tributary_cluster.by_name", "bootstrap_brokers", clusterResourceName, "bootstrap_brokers"),
					resource.TestCheckResourceAttrPair("data.tributary_bootstrap_brokers.test", "bootstrap_brokers", clusterResourceName, "bootstrap_brokers"),
					resource.TestCheckResourceAttr("data.tributary_broker_nodes.test", "node_info_list.#", "3"),
					resource.TestCheckResourceAttrPair("data.tributary_broker_image.test", "id", clusterResourceName, "image_id"),
				),
			},
		},
	})
}

// testAccSecurityGroup creates a security group in the default VPC for a
// test to attach, and deletes it when the test ends (after the cluster
// that used it was destroyed).
func testAccSecurityGroup(t *testing.T, name string) string {
	t.Helper()
	testAccPreCheck(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := accEnv.clients.EC2
	vpcs, err := client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []ec2types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
	if err != nil || len(vpcs.Vpcs) == 0 {
		t.Fatalf("finding the default VPC: %v (%d VPCs)", err, len(vpcs.Vpcs))
	}
	out, err := client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String(name), Description: aws.String("Tributary acceptance test: an extra group for broker ENIs"),
		VpcId: vpcs.Vpcs[0].VpcId,
	})
	if err != nil {
		t.Fatalf("creating security group %s: %v", name, err)
	}
	id := aws.ToString(out.GroupId)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := client.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)}); err != nil {
			t.Errorf("deleting the test's security group %s: %v", id, err)
		}
	})
	return id
}

// testAccCheckENIGroups checks every broker ENI carries the cluster's own
// group plus exactly the given extra groups.
func testAccCheckENIGroups(extra []string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		want := append([]string{o.SecurityGroupID}, extra...)
		slices.Sort(want)
		for _, b := range o.Brokers {
			out, err := accEnv.clients.EC2.DescribeNetworkInterfaces(context.Background(), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{b.ENIID}})
			if err != nil {
				return fmt.Errorf("describing ENI %s: %w", b.ENIID, err)
			}
			var have []string
			for _, g := range out.NetworkInterfaces[0].Groups {
				have = append(have, aws.ToString(g.GroupId))
			}
			slices.Sort(have)
			if !slices.Equal(have, want) {
				return fmt.Errorf("broker %d: ENI %s has security groups %v, want %v", b.NodeID, b.ENIID, have, want)
			}
		}
		return nil
	}
}

// testAccCheckIngress checks the cluster's security group lets exactly the
// given CIDRs reach the client port, and keeps replication and the metadata
// quorum to itself.
func testAccCheckIngress(cidrs []string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		sg := s.RootModule().Resources[clusterResourceName].Primary.Attributes["security_group_id"]
		out, err := accEnv.clients.EC2.DescribeSecurityGroups(context.Background(), &ec2.DescribeSecurityGroupsInput{GroupIds: []string{sg}})
		if err != nil {
			return fmt.Errorf("describing security group %s: %w", sg, err)
		}
		byPort := map[int32][]string{}
		for _, p := range out.SecurityGroups[0].IpPermissions {
			port := aws.ToInt32(p.FromPort)
			for _, r := range p.IpRanges {
				byPort[port] = append(byPort[port], aws.ToString(r.CidrIp))
			}
			for _, g := range p.UserIdGroupPairs {
				byPort[port] = append(byPort[port], aws.ToString(g.GroupId))
			}
		}
		for port, want := range map[int32][]string{
			plaintextPort:         append(slices.Clone(cidrs), sg),
			fleet.InterBrokerPort: {sg},
			fleet.ControllerPort:  {sg},
		} {
			have := byPort[port]
			slices.Sort(have)
			slices.Sort(want)
			if !slices.Equal(have, want) {
				return fmt.Errorf("security group %s: port %d open to %v, want %v", sg, port, have, want)
			}
		}
		return nil
	}
}

// testAccCheckKeyAndRoleTags checks the user tags of the cluster's KMS key,
// IAM role and instance profile are exactly want (the provider's own
// tributary:* and Name tags aside).
func testAccCheckKeyAndRoleTags(want map[string]string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx := context.Background()
		c := accEnv.clients
		name := fleet.BrokerRoleName(id, 1)
		user := func(k string) bool { return !strings.HasPrefix(k, "tributary:") && k != "Name" }
		got := map[string]map[string]string{"KMS key": {}, "IAM role": {}, "IAM instance profile": {}}
		keyARN := s.RootModule().Resources[clusterResourceName].Primary.Attributes["kms_key_arn"]
		kt, err := c.KMS.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(keyARN)})
		if err != nil {
			return fmt.Errorf("listing the tags of key %s: %w", keyARN, err)
		}
		for _, t := range kt.Tags {
			if user(aws.ToString(t.TagKey)) {
				got["KMS key"][aws.ToString(t.TagKey)] = aws.ToString(t.TagValue)
			}
		}
		// Each broker's own role and profile carry the tags; broker 1's
		// are read. GetRole and GetInstanceProfile return the tags too;
		// moto 5.2 answers ListInstanceProfileTags with HTTP 500.
		role, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("reading role %s: %w", name, err)
		}
		for _, t := range role.Role.Tags {
			if user(aws.ToString(t.Key)) {
				got["IAM role"][aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
		}
		prof, err := c.IAM.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("reading instance profile %s: %w", name, err)
		}
		for _, t := range prof.InstanceProfile.Tags {
			if user(aws.ToString(t.Key)) {
				got["IAM instance profile"][aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
		}
		for what, tags := range got {
			if !maps.Equal(tags, want) {
				return fmt.Errorf("%s of cluster %s has tags %v, want %v", what, id, tags, want)
			}
		}
		return nil
	}
}

// testAccCheckClusterDestroyed asks AWS directly, not through the provider's
// own lookup, whether anything of a destroyed cluster is left: an instance
// that is not terminated, a volume, an ENI or a security group tagged with
// the cluster id (or named after it), the role, the instance profile or the
// key alias. A key the cluster created must be pending deletion.
func testAccCheckClusterDestroyed(s *terraform.State) error {
	for _, rs := range s.RootModule().Resources {
		if rs.Type != "tributary_cluster" {
			continue
		}
		id := rs.Primary.Attributes["cluster_id"]
		if id == "" {
			return fmt.Errorf("%s has no cluster_id in state", rs.Primary.ID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		left, err := leftovers(ctx, id)
		cancel()
		if err != nil {
			return fmt.Errorf("looking for what cluster %s left behind: %w", id, err)
		}
		if len(left) > 0 {
			return fmt.Errorf("cluster %s left objects behind after destroy: %s", id, strings.Join(left, ", "))
		}
		if arn := rs.Primary.Attributes["kms_key_arn"]; arn != "" && rs.Primary.Attributes["storage.kms_key_arn"] == "" {
			out, err := accEnv.clients.KMS.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(arn)})
			if err != nil {
				return fmt.Errorf("describing key %s: %w", arn, err)
			}
			if st := out.KeyMetadata.KeyState; st != "PendingDeletion" {
				return fmt.Errorf("key %s created for cluster %s is %s, want PendingDeletion", arn, id, st)
			}
		}
	}
	return nil
}

// leftovers lists what exists of a cluster id, each as "kind id (state)".
func leftovers(ctx context.Context, clusterID string) ([]string, error) {
	return leftoversIn(ctx, accEnv.clients, clusterID)
}

// leftoversIn is leftovers in the cloud the clients reach.
func leftoversIn(ctx context.Context, c *awsconfig.Clients, clusterID string) ([]string, error) {
	byTag := []ec2types.Filter{{Name: aws.String("tag:" + fleet.TagClusterID), Values: []string{clusterID}}}
	var left []string

	insts, err := c.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: byTag})
	if err != nil {
		return nil, fmt.Errorf("describing instances: %w", err)
	}
	for _, r := range insts.Reservations {
		for _, in := range r.Instances {
			if in.State != nil && in.State.Name != ec2types.InstanceStateNameTerminated {
				left = append(left, fmt.Sprintf("instance %s (%s)", aws.ToString(in.InstanceId), in.State.Name))
			}
		}
	}
	groups, err := c.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{
		Filters: []astypes.Filter{{Name: aws.String("tag:" + fleet.TagClusterID), Values: []string{clusterID}}},
	})
	if err != nil {
		return nil, fmt.Errorf("describing Auto Scaling groups: %w", err)
	}
	for _, g := range groups.AutoScalingGroups {
		left = append(left, fmt.Sprintf("Auto Scaling group %s (%d instances)", aws.ToString(g.AutoScalingGroupName), len(g.Instances)))
	}
	lts, err := c.EC2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{Filters: byTag})
	if err != nil {
		return nil, fmt.Errorf("describing launch templates: %w", err)
	}
	for _, lt := range lts.LaunchTemplates {
		left = append(left, fmt.Sprintf("launch template %s (%s)", aws.ToString(lt.LaunchTemplateId), aws.ToString(lt.LaunchTemplateName)))
	}
	vols, err := c.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: byTag})
	if err != nil {
		return nil, fmt.Errorf("describing volumes: %w", err)
	}
	for _, v := range vols.Volumes {
		left = append(left, fmt.Sprintf("volume %s (%s)", aws.ToString(v.VolumeId), v.State))
	}
	enis, err := c.EC2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: byTag})
	if err != nil {
		return nil, fmt.Errorf("describing network interfaces: %w", err)
	}
	for _, e := range enis.NetworkInterfaces {
		left = append(left, fmt.Sprintf("network interface %s (%s)", aws.ToString(e.NetworkInterfaceId), e.Status))
	}
	for _, f := range [][]ec2types.Filter{byTag, {{Name: aws.String("group-name"), Values: []string{"tributary-" + clusterID}}}} {
		sgs, err := c.EC2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: f})
		if err != nil {
			return nil, fmt.Errorf("describing security groups: %w", err)
		}
		for _, g := range sgs.SecurityGroups {
			item := fmt.Sprintf("security group %s", aws.ToString(g.GroupId))
			if !slices.Contains(left, item) {
				left = append(left, item)
			}
		}
	}

	// The brokers' own roles and profiles (and an older cluster's shared
	// one), by name under the provider's path.
	roles := iam.NewListRolesPaginator(c.IAM, &iam.ListRolesInput{PathPrefix: aws.String("/tributary/")})
	for roles.HasMorePages() {
		page, err := roles.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing IAM roles: %w", err)
		}
		for _, r := range page.Roles {
			if name := aws.ToString(r.RoleName); fleet.OwnsProfile(clusterID, name) {
				left = append(left, "IAM role "+name)
			}
		}
	}
	profiles := iam.NewListInstanceProfilesPaginator(c.IAM, &iam.ListInstanceProfilesInput{PathPrefix: aws.String("/tributary/")})
	for profiles.HasMorePages() {
		page, err := profiles.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing IAM instance profiles: %w", err)
		}
		for _, p := range page.InstanceProfiles {
			if name := aws.ToString(p.InstanceProfileName); fleet.OwnsProfile(clusterID, name) {
				left = append(left, "IAM instance profile "+name)
			}
		}
	}
	alias := fleet.KeyAlias(clusterID)
	aliases := kms.NewListAliasesPaginator(c.KMS, &kms.ListAliasesInput{})
	for aliases.HasMorePages() {
		page, err := aliases.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing KMS aliases: %w", err)
		}
		for _, a := range page.Aliases {
			if aws.ToString(a.AliasName) == alias {
				left = append(left, "KMS alias "+alias)
			}
		}
	}
	return left, nil
}

// testAccCheckCost compares the cost attributes with the price table's
// figures for three brokers of the test's instance type with volumes of
// volumeGiB in the test's region, at the default write rate: the inputs
// reach the estimate through plan, apply and refresh. (The arithmetic
// itself is pinned in provider/internal/pricing.)
func testAccCheckCost(volumeGiB int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		c := pricing.Cluster{Region: accEnv.region, InstanceType: accInstanceType(), Brokers: 3, VolumeType: "gp3", VolumeGiB: volumeGiB,
			IOPS: 3000, ThroughputMiBps: 125, ReplicationFactor: 3, WriteMiBps: defaultEstimatedWriteMiBps, OwnKMSKey: true}
		check := func(attr string, est func(pricing.Cluster) (pricing.Estimate, error)) error {
			e, err := est(c)
			if err != nil {
				return resource.TestCheckNoResourceAttr(clusterResourceName, attr)(s)
			}
			return resource.TestCheckResourceAttr(clusterResourceName, attr, strconv.FormatFloat(e.Total(), 'f', -1, 64))(s)
		}
		return errors.Join(check("estimated_monthly_cost_usd", pricing.Tributary), check("msk_equivalent_monthly_cost_usd", pricing.MSK))
	}
}
