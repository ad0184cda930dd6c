package provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
)

// healBound is how long a broker may take to be back after its instance
// died, with nobody running Terraform: EC2 Auto Scaling's check, a launch,
// the boot agent taking over the ENI and volume once EC2 released them, and
// the broker rejoining.
const healBound = 3 * time.Minute

// TestAccCluster_heal: broker 2's instance is terminated through the EC2
// API and broker 3's instance dies (the local cloud's fault API kills it and
// it ends stopped; elsewhere it is stopped through the EC2 API). Nobody runs
// Terraform: within healBound each comes back on a new instance with the
// same address and volume, serves Kafka, and the 300 records written to
// broker 2 alone are read back from it. The plans after that are empty.
func TestAccCluster_heal(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	var before []brokerIdentity
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: clusterConfig(name, accEnv.version, 1, 10),
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckClusterInfrastructure(3),
					testAccRecordBrokers(&before),
					testAccProduceOn(2, "survivor", 300),
					testAccHealsAlone(t, &before, map[int32]func(int32) resource.TestCheckFunc{2: testAccTerminateBroker, 3: testAccCrashBroker}),
					testAccConsumeFrom(2, "survivor", 300),
					testAccCheckClusterInfrastructure(3),
				),
				// No ExpectNonEmptyPlan: the plan after the heal is empty.
			},
			{
				Config: clusterConfig(name, accEnv.version, 1, 10),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
			},
		},
	})
}

// testAccHealsAlone applies the faults, one per broker, and waits, doing
// nothing else, until every broker runs again on a new instance with its
// ENI, address and volume, and the cluster is whole; it logs each heal's
// time.
func testAccHealsAlone(t *testing.T, before *[]brokerIdentity, faults map[int32]func(int32) resource.TestCheckFunc) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		was := map[int32]brokerIdentity{}
		for _, b := range *before {
			was[b.NodeID] = b
		}
		start := time.Now()
		for id, fault := range faults {
			if err := fault(id)(s); err != nil {
				return fmt.Errorf("fault on broker %d: %w", id, err)
			}
		}
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), healBound)
		defer cancel()
		healed := map[int32]time.Duration{}
		for len(healed) < len(faults) {
			o, err := testFleet().Observe(ctx, id)
			if err != nil {
				return err
			}
			for nodeID := range faults {
				b, ok := o.Broker(nodeID)
				if _, done := healed[nodeID]; done || !ok {
					continue
				}
				w := was[nodeID]
				if b.ENIID != w.ENIID || b.PrivateIP != w.PrivateIP || b.VolumeID != w.VolumeID {
					return fmt.Errorf("broker %d lost its identity: %+v -> ENI %s IP %s volume %s", nodeID, w, b.ENIID, b.PrivateIP, b.VolumeID)
				}
				if b.InstanceID == w.InstanceID || b.InstanceState != "running" || !b.ENIAttached || !b.VolumeAttached {
					continue
				}
				if err := brokerServes(ctx, b); err != nil {
					continue
				}
				healed[nodeID] = time.Since(start)
				t.Logf("heal: broker %d back on instance %s (was %s), same address %s and volume %s, serving Kafka %s after the fault",
					nodeID, b.InstanceID, w.InstanceID, b.PrivateIP, b.VolumeID, healed[nodeID].Round(time.Second))
			}
			if len(healed) == len(faults) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("after %s only brokers %v were healed (of %d): nothing heals them without Terraform", healBound, healed, len(faults))
			case <-time.After(time.Second):
			}
		}
		return waitClusterFormed(s)
	}
}

// brokerServes asks one broker for Kafka metadata on its address.
func brokerServes(ctx context.Context, b *fleet.Broker) error {
	cl, err := kafkaClient(endpoint(b.PrivateIP, plaintextPort))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// TestAccCluster_rollResumes simulates a rolling replacement that stopped
// after Ensure gave broker 2's group a new template version but before its
// instance was replaced: the next plan is not empty although the settings
// match, and the apply replaces that broker alone.
func TestAccCluster_rollResumes(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	var before []brokerIdentity
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: clusterConfig(name, accEnv.version, 1, 10),
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccRecordBrokers(&before),
					testAccMarkHalfRolled(2),
				),
				ExpectNonEmptyPlan: true,
			},
			{
				Config:           clusterConfig(name, accEnv.version, 1, 10),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckBrokersKept(&before, false),
					testAccCheckReplacedOnly(&before, 2),
				),
			},
		},
	})
}

// testAccMarkHalfRolled gives one broker's group a new version of its
// template (a copy of the current one) without replacing its instance.
func testAccMarkHalfRolled(nodeID int32) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		b, ok := o.Broker(nodeID)
		if !ok || b.GroupName == "" {
			return fmt.Errorf("no broker %d with a group", nodeID)
		}
		ctx := context.Background()
		cur, err := accEnv.clients.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
			LaunchTemplateId: aws.String(b.TemplateID), Versions: []string{b.GroupVersion},
		})
		if err != nil {
			return err
		}
		v, err := accEnv.clients.EC2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
			LaunchTemplateId: aws.String(b.TemplateID), SourceVersion: aws.String(b.GroupVersion),
			VersionDescription: cur.LaunchTemplateVersions[0].VersionDescription, LaunchTemplateData: &ec2types.RequestLaunchTemplateData{},
		})
		if err != nil {
			return err
		}
		version := strconv.FormatInt(aws.ToInt64(v.LaunchTemplateVersion.VersionNumber), 10)
		_, err = accEnv.clients.AutoScaling.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
			AutoScalingGroupName: aws.String(b.GroupName),
			LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(b.TemplateID), Version: aws.String(version)},
		})
		return err
	}
}

// TestAccCluster_movesIntoGroups: a cluster as the previous provider built
// it (each broker an instance of no group, launched on its ENI, with a
// version 1 boot document and the volume attached by the provider) is moved
// by the next apply into Auto Scaling groups, one broker at a time and gated
// on the cluster's health, while a producer writes with acks=all: no failed
// produce, no record lost, every broker keeps its address and volume.
func TestAccCluster_movesIntoGroups(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	var before []brokerIdentity
	prod := &backgroundProducer{topic: "moving"}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: clusterConfig(name, accEnv.version, 1, 10),
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckClusterInfrastructure(3),
					testAccProduceOn(3, "kept-on-3", 200),
					testAccMakeEarlierCluster(),
					testAccRecordBrokers(&before),
					prod.start(),
				),
				// The refresh sees brokers of no group: the plan moves them.
				ExpectNonEmptyPlan: true,
			},
			{
				Config:           clusterConfig(name, accEnv.version, 1, 10),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckClusterInfrastructure(3),
					testAccCheckBrokersKept(&before, false),
					prod.stopAndVerify(t),
					testAccConsumeFrom(3, "kept-on-3", 200),
				),
			},
		},
	})
}

// testAccMakeEarlierCluster turns the cluster into what the previous
// provider built: its groups and launch templates are deleted (the group
// terminates its instance), and each broker gets an instance of no group,
// launched on its ENI (device 0) with a version 1 boot document (no
// attachments: the broker listens on the instance's primary address, the
// ENI's), its volume attached by the caller.
func testAccMakeEarlierCluster() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		o, err := testFleet().Observe(ctx, id)
		if err != nil {
			return err
		}
		docs := map[int32][]byte{}
		for _, b := range o.Brokers {
			if b.Launch == nil {
				return fmt.Errorf("broker %d has no launch template", b.NodeID)
			}
			v1, err := versionOneDocument(b.Launch.UserData)
			if err != nil {
				return fmt.Errorf("broker %d: %w", b.NodeID, err)
			}
			docs[b.NodeID] = v1
		}
		c := accEnv.clients
		for _, g := range o.Groups {
			if _, err := c.AutoScaling.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String(g), ForceDelete: aws.Bool(true)}); err != nil {
				return fmt.Errorf("deleting group %s: %w", g, err)
			}
		}
		for _, lt := range o.Templates {
			if _, err := c.EC2.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(lt)}); err != nil {
				return fmt.Errorf("deleting launch template %s: %w", lt, err)
			}
		}
		f := testFleet()
		for _, b := range o.Brokers {
			if err := waitAvailable(ctx, b); err != nil {
				return err
			}
			tags := []ec2types.Tag{
				{Key: aws.String(fleet.TagClusterID), Value: aws.String(id)},
				{Key: aws.String(fleet.TagNodeID), Value: aws.String(strconv.Itoa(int(b.NodeID)))},
				{Key: aws.String("tributary:launch-hash"), Value: aws.String("an earlier provider's")},
			}
			out, err := c.EC2.RunInstances(ctx, &ec2.RunInstancesInput{
				ImageId: aws.String(b.Launch.ImageID), InstanceType: ec2types.InstanceType(b.Launch.InstanceType),
				MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
				NetworkInterfaces:  []ec2types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), NetworkInterfaceId: aws.String(b.ENIID)}},
				UserData:           aws.String(encodeUserData(docs[b.NodeID])),
				MetadataOptions:    &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired, HttpEndpoint: ec2types.InstanceMetadataEndpointStateEnabled},
				IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String(b.Launch.InstanceProfile)},
				TagSpecifications:  []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: tags}},
			})
			if err != nil {
				return fmt.Errorf("launching broker %d as the earlier provider did: %w", b.NodeID, err)
			}
			inst := aws.ToString(out.Instances[0].InstanceId)
			if err := waitInstance(ctx, inst, ec2types.InstanceStateNameRunning); err != nil {
				return err
			}
			if _, err := c.EC2.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(b.VolumeID), InstanceId: aws.String(inst), Device: aws.String(fleet.DataDeviceName)}); err != nil {
				return fmt.Errorf("attaching volume %s to %s: %w", b.VolumeID, inst, err)
			}
		}
		o, err = f.Observe(ctx, id)
		if err != nil {
			return err
		}
		for _, b := range o.Brokers {
			if !b.Legacy() {
				return fmt.Errorf("broker %d is not an earlier provider's broker: group %q, instance %s %s", b.NodeID, b.GroupName, b.InstanceID, b.InstanceState)
			}
		}
		return waitClusterFormed(s)
	}
}

// versionOneDocument rewrites a boot document as the previous provider wrote
// it: version 1, no attachments.
func versionOneDocument(userData []byte) ([]byte, error) {
	doc, err := bootconfig.Decode(userData)
	if err != nil {
		return nil, err
	}
	doc.Version, doc.Attachments = 1, nil
	return json.Marshal(doc)
}

// waitAvailable waits until EC2 released a broker's ENI and volume.
func waitAvailable(ctx context.Context, b fleet.Broker) error {
	for {
		eni, err := accEnv.clients.EC2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{b.ENIID}})
		if err != nil {
			return err
		}
		vol, err := accEnv.clients.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{b.VolumeID}})
		if err != nil {
			return err
		}
		if eni.NetworkInterfaces[0].Status == ec2types.NetworkInterfaceStatusAvailable && vol.Volumes[0].State == ec2types.VolumeStateAvailable {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker %d's ENI %s (%s) and volume %s (%s) not released: %w", b.NodeID, b.ENIID, eni.NetworkInterfaces[0].Status, b.VolumeID, vol.Volumes[0].State, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waitInstance(ctx context.Context, id string, want ec2types.InstanceStateName) error {
	for {
		out, err := accEnv.clients.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err == nil && len(out.Reservations) > 0 && out.Reservations[0].Instances[0].State.Name == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("instance %s not %s: %v (%w)", id, want, err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func encodeUserData(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
