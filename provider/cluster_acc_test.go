package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/kafkacheck"
)

const clusterResourceName = "tributary_cluster.test"

// plaintextCluster is the security of the clusters of the tests about
// infrastructure, rolls and topics: plaintext, unauthenticated, so their
// clients stay simple. The security tests (cluster_security_acc_test.go)
// use MSK's defaults.
const plaintextCluster = `  encryption_in_transit {
    client_broker = "PLAINTEXT"
    in_cluster    = false
  }`

// clusterConfig renders a tributary_cluster for the acceptance tests.
func clusterConfig(name, version string, brokersPerAZ, volumeSize int) string {
	return clusterConfigWith(name, version, brokersPerAZ, volumeSize, "604800000", name)
}

// clusterConfigWith also sets log.retention.ms and the value of the "test" tag.
func clusterConfigWith(name, version string, brokersPerAZ, volumeSize int, retentionMs, tag string) string {
	return testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[7]q
  brokers_per_az     = %[3]d
  client_cidr_blocks = ["127.0.0.0/8"]
`+plaintextCluster+`

  storage {
    volume_size = %[4]d
  }

  broker_config = {
    "auto.create.topics.enable" = "false"
    "log.retention.ms"          = %[5]q
  }

  tags = {
    test = %[6]q
  }

  timeouts {
    create = "4m"
    update = "6m"
    delete = "4m"
  }
}
`, name, version, brokersPerAZ, volumeSize, retentionMs, tag, accInstanceType())
}

// wrappedText matches text in Terraform's output, which wraps long lines.
func wrappedText(text string) *regexp.Regexp {
	words := strings.Fields(text)
	for i, w := range words {
		words[i] = regexp.QuoteMeta(w)
	}
	return regexp.MustCompile(strings.Join(words, `\s+`))
}

// clusterConfigSettings renders the test cluster with the given
// broker_config (none when nil) and the "changed" tag.
func clusterConfigSettings(name string, brokersPerAZ, volumeSize int, settings map[string]string) string {
	var cfg strings.Builder
	if settings != nil {
		cfg.WriteString("broker_config = {\n")
		for _, k := range slices.Sorted(maps.Keys(settings)) {
			fmt.Fprintf(&cfg, "    %q = %q\n", k, settings[k])
		}
		cfg.WriteString("  }")
	}
	return testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  brokers_per_az     = %[4]d
  client_cidr_blocks = ["127.0.0.0/8"]
`+plaintextCluster+`

  storage {
    volume_size = %[5]d
  }

  %[6]s

  tags = {
    test = "changed"
  }

  timeouts {
    create = "4m"
    update = "6m"
    delete = "4m"
  }
}
`, name, accEnv.version, accInstanceType(), brokersPerAZ, volumeSize, cfg.String())
}

// accInstanceType is an instance type of this machine's architecture: the
// local cloud registers images built for it (on AWS, images are built for
// the instance type instead; TRIBUTARY_ACC_INSTANCE_TYPE overrides).
func accInstanceType() string {
	if v := os.Getenv("TRIBUTARY_ACC_INSTANCE_TYPE"); v != "" {
		return v
	}
	if runtime.GOARCH == "arm64" {
		return "t4g.medium"
	}
	return "t3.medium"
}

// accNames counts the names accName handed out in this test binary.
var accNames atomic.Int64

// accName is a cluster name no other test uses: the tests run in parallel
// against one cloud, and the cluster's IAM role, log group, SNS topic and
// alarms are named after it. The time part keeps names apart across runs
// against an emulator or account that outlives the test binary; the
// counter keeps them apart inside one run, whatever the clock's grain.
func accName(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("acc-%d-%d", time.Now().UnixNano()%1_000_000_000, accNames.Add(1))
	t.Cleanup(func() {
		if t.Failed() {
			logClusterConsoles(t, name)
		}
	})
	return name
}

// logClusterConsoles prints the end of the console log of every instance
// the local cloud ran for cluster name, when a test of it failed: the
// local cloud's directory is gone by the time CI keeps a failing run's
// output, and a broker that never joined says why only there.
func logClusterConsoles(t *testing.T, name string) {
	if accEnv.localCloudDir == "" || accEnv.clients == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := accEnv.clients.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("tag:" + fleet.TagClusterName), Values: []string{name}}},
	})
	if err != nil {
		t.Logf("listing the instances of %s for their console logs: %v", name, err)
		return
	}
	const lines, width = 30, 400
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			id := aws.ToString(in.InstanceId)
			b, err := os.ReadFile(filepath.Join(accEnv.localCloudDir, "ec2", "instances", id, "console.log"))
			if err != nil {
				t.Logf("console log of %s (%s): %v", id, in.State.Name, err)
				continue
			}
			tail := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			tail = tail[max(0, len(tail)-lines):]
			for i, l := range tail {
				if len(l) > width {
					tail[i] = l[:width] + " ..."
				}
			}
			t.Logf("last %d lines of the console log of %s (%s, %s):\n%s", len(tail), id, in.State.Name, aws.ToString(in.PrivateIpAddress), strings.Join(tail, "\n"))
		}
	}
}

func TestAccCluster_basic(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: clusterConfig(name, accEnv.version, 1, 10),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "name", name),
					resource.TestMatchResourceAttr(clusterResourceName, "cluster_id", regexp.MustCompile(`^tc-[0-9a-f]{16}$`)),
					resource.TestCheckResourceAttrPair(clusterResourceName, "id", clusterResourceName, "cluster_id"),
					resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.#", "3"),
					resource.TestMatchResourceAttr(clusterResourceName, "kms_key_arn", regexp.MustCompile(`^arn:aws:kms:`)),
					resource.TestMatchResourceAttr(clusterResourceName, "security_group_id", regexp.MustCompile(`^sg-`)),
					resource.TestMatchResourceAttr(clusterResourceName, "image_id", regexp.MustCompile(`^ami-`)),
					resource.TestCheckResourceAttr(clusterResourceName, "bootstrap_brokers_tls", ""),
					testAccCheckClusterInfrastructure(3),
					testAccCheckBootstrapIsEveryBroker(),
					testAccCheckServesKafka("basic", 100),
				),
			},
			{
				ResourceName:            clusterResourceName,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts", "broker_load"},
			},
			{
				// Dynamic settings changed and added with kafka-configs
				// outside Terraform: the refresh sees both.
				Config: clusterConfig(name, accEnv.version, 1, 10),
				Check: testAccSetBrokerConfigOutside(map[string]string{
					"log.retention.ms": "3600000", "log.retention.bytes": "1073741824",
				}),
				ExpectNonEmptyPlan: true,
			},
			{
				// The apply puts broker_config back: the changed value, and
				// the added one removed. It touches no broker, so the plan
				// keeps broker_load as the refresh measured it.
				Config: clusterConfig(name, accEnv.version, 1, 10),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(clusterResourceName, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(clusterResourceName, tfjsonpath.New("broker_load"), knownvalue.ListSizeExact(3)),
				}},
				// And max.broker.partitions, which the provider sets by
				// instance type (t3.medium and t4g.medium: 600).
				Check: testAccCheckDynamicBrokerConfig(map[string]string{"log.retention.ms": "604800000",
					"max.broker.partitions": sizedBrokerConfig(nil, accInstanceType())["max.broker.partitions"]}),
			},
			{
				// The data sources see the same cluster.
				Config: clusterConfig(name, accEnv.version, 1, 10) + dataSourcesConfig(accEnv.version),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrPair("data.tributary_cluster.by_name", "cluster_id", clusterResourceName, "cluster_id"),
					resource.TestCheckResourceAttrPair("data.tributary_cluster.by_name", "bootstrap_brokers", clusterResourceName, "bootstrap_brokers"),
					resource.TestCheckResourceAttrPair("data.tributary_cluster.by_name", "security_group_id", clusterResourceName, "security_group_id"),
					resource.TestCheckResourceAttrPair("data.tributary_cluster.by_name", "kms_key_arn", clusterResourceName, "kms_key_arn"),
					resource.TestCheckResourceAttr("data.tributary_cluster.by_name", "number_of_broker_nodes", "3"),
					resource.TestCheckResourceAttrPair("data.tributary_bootstrap_brokers.test", "bootstrap_brokers", clusterResourceName, "bootstrap_brokers"),
					resource.TestCheckResourceAttr("data.tributary_broker_nodes.test", "node_info_list.#", "3"),
					resource.TestCheckResourceAttrPair("data.tributary_broker_nodes.test", "node_info_list.1.eni_id", clusterResourceName, "broker_nodes.1.eni_id"),
					resource.TestCheckResourceAttrPair("data.tributary_broker_image.test", "id", clusterResourceName, "image_id"),
					resource.TestMatchResourceAttr("data.tributary_broker_image.test", "name", regexp.MustCompile(`^tributary-broker-`+regexp.QuoteMeta(accEnv.version)+`-`)),
				),
			},
		},
	})
}

func dataSourcesConfig(version string) string {
	return fmt.Sprintf(`
data "tributary_cluster" "by_name" {
  name = tributary_cluster.test.name
}

data "tributary_bootstrap_brokers" "test" {
  cluster_id = tributary_cluster.test.cluster_id
}

data "tributary_broker_nodes" "test" {
  cluster_id = tributary_cluster.test.cluster_id
}

data "tributary_broker_image" "test" {
  version      = %q
  architecture = %q
}
`, version, instanceArchitecture(accInstanceType()))
}

func TestAccCluster_update(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	var before []brokerIdentity
	prod := &backgroundProducer{topic: "scaling-out"}
	shrinking := &backgroundProducer{topic: "scaling-in"}
	wide := &accTopic{name: "four-copies", replicationFactor: 4}
	denied := &accDenyAlter{}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: clusterConfig(name, accEnv.version, 1, 10),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.#", "3"),
					testAccRecordBrokers(&before),
					testAccCheckServesKafka("before-growth", 50),
					// Measured when the apply ended, before any topic.
					testAccCheckBrokerLoad(3, false),
					prod.start(),
					// ALTER on the cluster denied (everything else allowed):
					// the rebalance after the scale-out below fails.
					denied.deny(),
				),
			},
			{
				// Storage grows in place and three brokers join; moving
				// partitions onto them is refused, which fails the apply
				// with the brokers in state.
				Config:           clusterConfig(name, accEnv.version, 2, 20),
				ConfigPlanChecks: expectInPlaceUpdate(),
				ExpectError:      wrappedText(`Brokers [4 5 6] joined the cluster and are in the state, but moving existing partitions onto them failed`),
			},
			{
				// ALTER allowed again, the same configuration: the plan is
				// not empty (a rebalance is pending) and the apply resumes
				// it; the first three brokers kept their instances,
				// addresses and volumes throughout.
				PreConfig:        func() { denied.lift(t) },
				Config:           clusterConfig(name, accEnv.version, 2, 20),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.#", "6"),
					testAccCheckBrokerLoad(6, true),
					resource.TestCheckResourceAttr(clusterResourceName, "storage.volume_size", "20"),
					testAccCheckClusterInfrastructure(6),
					testAccCheckVolumeSizes(20),
					testAccCheckBrokersKept(&before, true),
					testAccCheckBootstrapIsEveryBroker(),
					// The apply moved the existing topics' replicas onto the
					// new brokers while the producer wrote with acks=all.
					testAccCheckReplicasSpread(t, 6, "before-growth", "scaling-out"),
					prod.stopAndVerify(t),
					testAccCheckServesKafka("after-growth", 50),
					testAccRecordBrokers(&before),
				),
			},
			{
				// A dynamic broker setting and a tag change in place: no
				// broker is replaced.
				Config:           clusterConfigWith(name, accEnv.version, 2, 20, "3600000", "changed"),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "tags.test", "changed"),

					testAccCheckBrokersKept(&before, true),
					testAccCheckBrokerSetting("log.retention.ms", "3600000"),
					testAccCheckTagEverywhere("test", "changed"),
				),
			},
			{
				// A dynamic setting added, changed, then removed: live on
				// every broker each time (no broker replaced), and once
				// removed every broker is back on its default. A bad value
				// or name fails the plan, naming the setting.
				Config:           clusterConfigSettings(name, 2, 20, map[string]string{"auto.create.topics.enable": "false", "log.retention.ms": "3600000", "message.max.bytes": "2097152"}),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckBrokersKept(&before, true),
					testAccCheckBrokerConfig("message.max.bytes", "2097152", kmsg.ConfigSourceDynamicDefaultBrokerConfig),
				),
			},
			{
				Config:           clusterConfigSettings(name, 2, 20, map[string]string{"auto.create.topics.enable": "false", "log.retention.ms": "3600000", "message.max.bytes": "3145728"}),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckBrokersKept(&before, true),
					testAccCheckBrokerConfig("message.max.bytes", "3145728", kmsg.ConfigSourceDynamicDefaultBrokerConfig),
				),
			},
			{
				Config:      clusterConfigSettings(name, 2, 20, map[string]string{"auto.create.topics.enable": "false", "min.insync.replicas": "0"}),
				ExpectError: wrappedText(`broker_config["min.insync.replicas"] must be between 1 and 32767, got "0"`),
			},
			{
				Config:      clusterConfigSettings(name, 2, 20, map[string]string{"auto.create.topics.enable": "false", "message.max.byte": "3145728"}),
				ExpectError: wrappedText(`broker_config["message.max.byte"] is not a broker setting (did you mean "message.max.bytes"?)`),
			},
			{
				Config:           clusterConfigSettings(name, 2, 20, map[string]string{"auto.create.topics.enable": "false"}),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckNoResourceAttr(clusterResourceName, "broker_config.message.max.bytes"),
					testAccCheckBrokersKept(&before, true),
					testAccCheckBrokerConfig("message.max.bytes", "1048588", kmsg.ConfigSourceDefaultConfig),
					testAccCheckBrokerConfig("log.retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig),
					testAccCheckBrokerConfig("auto.create.topics.enable", "false", kmsg.ConfigSourceStaticBrokerConfig),
					// Set by nobody: Amazon MSK's defaults, which the boot
					// agent writes.
					testAccCheckBrokerConfig("min.insync.replicas", "2", kmsg.ConfigSourceStaticBrokerConfig),
					testAccCheckBrokerConfig("default.replication.factor", "3", kmsg.ConfigSourceStaticBrokerConfig),
					testAccCheckBrokerConfig("unclean.leader.election.enable", "false", kmsg.ConfigSourceStaticBrokerConfig),
					// A topic three brokers cannot hold, and a producer
					// writing with acks=all through the scale-in below.
					wide.create(),
					shrinking.start(),
				),
			},
			{
				// Shrinking to three brokers is refused at plan time while
				// a topic has four replicas, before anything changes.
				Config:      clusterConfigSettings(name, 1, 20, map[string]string{"auto.create.topics.enable": "false"}),
				ExpectError: wrappedText(`topics four-copies (partition 0 has 4 replicas)`),
			},
			{
				Config:      clusterConfigWith(name, accEnv.version, 2, 15, "3600000", "changed"),
				ExpectError: regexp.MustCompile(`Storage cannot shrink`),
			},
			{
				// Without it, brokers 4-6 are drained (their replicas move to
				// brokers 1-3, leaders with them, every ISR full again) and
				// removed with their groups, templates, instances, volumes
				// and interfaces, while the producer writes: nothing it was
				// told was written is lost, and nothing it wrote failed.
				PreConfig:        func() { wide.delete(t) },
				Config:           clusterConfigSettings(name, 1, 20, map[string]string{"auto.create.topics.enable": "false"}),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "brokers_per_az", "1"),
					resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.#", "3"),
					testAccCheckBrokerLoad(3, true),
					testAccCheckClusterInfrastructure(3),
					testAccCheckNothingLeftOfRemoved(3),
					testAccCheckBootstrapIsEveryBroker(),
					testAccCheckReplicasSpread(t, 3, "before-growth", "scaling-out", "after-growth", "scaling-in"),
					shrinking.stopAndVerify(t),
					testAccCheckServesKafka("after-shrink", 50),
				),
			},
			{
				ResourceName:            clusterResourceName,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts", "broker_load"},
			},
		},
	})
}

func TestAccCluster_rolling(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	var before []brokerIdentity
	prod := &backgroundProducer{topic: "rolling"}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: clusterConfig(name, accEnv.version, 1, 10),
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccRecordBrokers(&before),
					prod.start(),
				),
			},
			{
				// A new image rolls the brokers one at a time while the
				// producer writes with acks=all.
				Config:           clusterConfig(name, accEnv.versionNext, 1, 10),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "broker_version", accEnv.versionNext),
					testAccCheckBrokersKept(&before, false),
					testAccCheckImage(accEnv.versionNext),
					prod.stopAndVerify(t),
				),
			},
		},
	})
}

// testAccCheckReplacedOnly checks that exactly the given broker got a new instance.
func testAccCheckReplacedOnly(before *[]brokerIdentity, nodeID int32) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		for _, was := range *before {
			b, _ := o.Broker(was.NodeID)
			replaced := b.InstanceID != was.InstanceID
			if replaced != (was.NodeID == nodeID) {
				return fmt.Errorf("broker %d replaced=%v (%s -> %s), want only broker %d replaced", was.NodeID, replaced, was.InstanceID, b.InstanceID, nodeID)
			}
		}
		return nil
	}
}

// TestAccCluster_failedCreate makes the create fail midway (an instance
// profile that does not exist, found after the security group, the KMS key
// and the ENIs were made): the error names the cluster, the state keeps its
// id, and the destroy at the end of the test removes everything
// (CheckDestroy, which also sees the key scheduled for deletion).
func TestAccCluster_failedCreate(t *testing.T) {
	accParallel(t)
	name := accName(t)
	config := strings.Replace(clusterConfig(name, accEnv.version, 1, 10),
		"brokers_per_az", `instance_profile   = "tributary-acc-missing-profile"
  brokers_per_az`, 1)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config:      config,
			ExpectError: regexp.MustCompile(`(?s)Creating Tributary cluster tc-[0-9a-f]{16}.*does not exist.*terraform destroy`),
		}},
	})
}

// TestAccCluster_missingKey refuses, at plan time, a KMS key that does not exist.
func TestAccCluster_missingKey(t *testing.T) {
	accParallel(t)
	missingKey := fmt.Sprintf("arn:aws:kms:%s:000000000000:key/00000000-0000-4000-8000-000000000000", accEnv.region)
	config := strings.Replace(clusterConfig(accName(t), accEnv.version, 1, 10),
		"volume_size = 10", fmt.Sprintf("volume_size = 10\n    kms_key_arn = %q", missingKey), 1)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      config,
			ExpectError: regexp.MustCompile(`KMS key not found`),
		}},
	})
}

// TestAccCluster_imageArchitecture refuses, at plan time, an image whose
// architecture the instance type cannot run.
func TestAccCluster_imageArchitecture(t *testing.T) {
	accParallel(t)
	arch := instanceArchitecture(accInstanceType())
	other := map[string]string{"x86_64": "m7g.large", "arm64": "m7i.large"}[arch]
	config := testAccProviderConfig() + fmt.Sprintf(`
data "tributary_broker_image" "test" {
  version = %[1]q
}

resource "tributary_cluster" "test" {
  name          = %[2]q
  image_id      = data.tributary_broker_image.test.id
  instance_type = %[3]q
}
`, accEnv.version, accName(t), other)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      config,
			ExpectError: regexp.MustCompile(`Image and instance type do not match`),
		}},
	})
}

// expectInPlaceUpdate asserts the plan updates the cluster, never replaces it.
func expectInPlaceUpdate() resource.ConfigPlanChecks {
	return resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
		plancheck.ExpectResourceAction(clusterResourceName, plancheck.ResourceActionUpdate),
	}}
}

// TestAccCluster_refusesAuthenticationInClear refuses, at plan time, SCRAM
// on a cluster whose clients connect in plaintext only.
func TestAccCluster_refusesAuthenticationInClear(t *testing.T) {
	accParallel(t)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: testAccProviderConfig() + `
resource "tributary_cluster" "test" {
  name           = "refused"
  broker_version = "acc-1"
  instance_type  = "t3.medium"
  encryption_in_transit {
    client_broker = "PLAINTEXT"
  }
  client_authentication {
    sasl {
      scram = true
    }
  }
}
`,
			ExpectError: regexp.MustCompile(`Authentication needs TLS`),
		}},
	})
}

// --- checks ---

// clusterState returns the cluster id and bootstrap brokers from the state.
// observedCluster is what the local cloud (or AWS) holds of the cluster in state.
func observedCluster(s *terraform.State) (*fleet.Observed, error) {
	id, _, err := clusterState(s)
	if err != nil {
		return nil, err
	}
	return testFleet().Observe(context.Background(), id)
}

func clusterState(s *terraform.State) (id, bootstrap string, err error) {
	rs, ok := s.RootModule().Resources[clusterResourceName]
	if !ok {
		return "", "", fmt.Errorf("%s not in state", clusterResourceName)
	}
	return rs.Primary.Attributes["cluster_id"], rs.Primary.Attributes["bootstrap_brokers"], nil
}

func testFleet() *fleet.Fleet {
	c := accEnv.clients
	return &fleet.Fleet{EC2: c.EC2, KMS: c.KMS, IAM: c.IAM, AutoScaling: c.AutoScaling, PollInterval: 200 * time.Millisecond}
}

// testAccCheckClusterInfrastructure checks what AWS holds: n brokers spread
// over three AZs, volumes encrypted with the cluster key, each broker an
// Auto Scaling group of one in its subnet launching from its own template
// (IMDSv2 required, a boot document for that broker that has the agent
// attach the broker's ENI at device 1 and its volume). Where instances run,
// each broker's instance holds its ENI (device 1) and volume, attached by
// its boot agent, and requires IMDSv2.
func testAccCheckClusterInfrastructure(n int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		keyARN := s.RootModule().Resources[clusterResourceName].Primary.Attributes["kms_key_arn"]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		o, err := testFleet().Observe(ctx, id)
		if err != nil {
			return err
		}
		if len(o.Brokers) != n {
			return fmt.Errorf("%d brokers in AWS, want %d", len(o.Brokers), n)
		}
		azs := map[string]int{}
		for _, b := range o.Brokers {
			azs[b.AvailabilityZone]++
			if !b.VolumeEncrypted || b.VolumeKMSKeyID != keyARN {
				return fmt.Errorf("broker %d: volume %s encrypted=%v with %q, want the cluster key %q", b.NodeID, b.VolumeID, b.VolumeEncrypted, b.VolumeKMSKeyID, keyARN)
			}
			if b.GroupName != fleet.GroupName(id, b.NodeID) || b.GroupMin != 1 || b.GroupMax != 1 || b.GroupDesired != 1 || b.GroupSubnets != b.SubnetID {
				return fmt.Errorf("broker %d: Auto Scaling group %q (min %d, max %d, desired %d, subnets %q); want a group of one in %s",
					b.NodeID, b.GroupName, b.GroupMin, b.GroupMax, b.GroupDesired, b.GroupSubnets, b.SubnetID)
			}
			if b.Launch == nil {
				return fmt.Errorf("broker %d: no launch template version for group %s", b.NodeID, b.GroupName)
			}
			v, err := accEnv.clients.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
				LaunchTemplateId: aws.String(b.TemplateID), Versions: []string{b.GroupVersion},
			})
			if err != nil {
				return err
			}
			if md := v.LaunchTemplateVersions[0].LaunchTemplateData.MetadataOptions; md == nil || md.HttpTokens != ec2types.LaunchTemplateHttpTokensStateRequired {
				return fmt.Errorf("broker %d: launch template %s does not require IMDSv2: %+v", b.NodeID, b.TemplateID, md)
			}
			doc, err := bootconfig.Decode(b.Launch.UserData)
			if err != nil {
				return fmt.Errorf("broker %d: the launch template's user data is not a valid boot document: %w", b.NodeID, err)
			}
			if doc.NodeID != b.NodeID || doc.ClusterID != id || doc.DataVolume.VolumeID != b.VolumeID || doc.Rack != b.AvailabilityZone ||
				doc.Attachments == nil || doc.Attachments.NetworkInterfaceDeviceIndex != fleet.InterfaceDeviceIndex {
				return fmt.Errorf("broker %d: boot document is for node %d, cluster %s, volume %s, rack %s, attachments %+v",
					b.NodeID, doc.NodeID, doc.ClusterID, doc.DataVolume.VolumeID, doc.Rack, doc.Attachments)
			}
		}
		if len(azs) != 3 {
			return fmt.Errorf("brokers in %d AZs (%v), want 3", len(azs), azs)
		}
		for az, c := range azs {
			if c != n/3 {
				return fmt.Errorf("%d brokers in %s, want %d", c, az, n/3)
			}
		}
		if accEnv.noInstances != "" {
			return nil
		}
		// The boot agents attach: wait for them (Terraform does not, with
		// wait_for_brokers = false).
		for {
			o, err := testFleet().Observe(ctx, id)
			if err != nil {
				return err
			}
			var missing []string
			for _, b := range o.Brokers {
				if b.InstanceState != "running" || !b.ENIAttached || !b.VolumeAttached {
					missing = append(missing, fmt.Sprintf("broker %d (instance %s %s, ENI attached %v, volume attached %v)",
						b.NodeID, b.InstanceID, b.InstanceState, b.ENIAttached, b.VolumeAttached))
					continue
				}
				out, err := accEnv.clients.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{b.InstanceID}})
				if err != nil {
					return err
				}
				in := out.Reservations[0].Instances[0]
				if in.MetadataOptions == nil || in.MetadataOptions.HttpTokens != ec2types.HttpTokensStateRequired {
					return fmt.Errorf("broker %d: instance %s does not require IMDSv2: %+v", b.NodeID, b.InstanceID, in.MetadataOptions)
				}
				onDevice1 := slices.ContainsFunc(in.NetworkInterfaces, func(ni ec2types.InstanceNetworkInterface) bool {
					return aws.ToString(ni.NetworkInterfaceId) == b.ENIID && ni.Attachment != nil && aws.ToInt32(ni.Attachment.DeviceIndex) == fleet.InterfaceDeviceIndex
				})
				if !onDevice1 {
					return fmt.Errorf("broker %d: instance %s does not hold ENI %s at device %d", b.NodeID, b.InstanceID, b.ENIID, fleet.InterfaceDeviceIndex)
				}
			}
			if len(missing) == 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("brokers not running on their ENI and volume: %s", strings.Join(missing, "; "))
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

func testAccCheckBootstrapIsEveryBroker() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		attrs := s.RootModule().Resources[clusterResourceName].Primary.Attributes
		n, _ := strconv.Atoi(attrs["broker_nodes.#"])
		var want []string
		for i := range n {
			want = append(want, attrs[fmt.Sprintf("broker_nodes.%d.endpoint", i)])
		}
		if got := attrs["bootstrap_brokers"]; got != strings.Join(want, ",") {
			return fmt.Errorf("bootstrap_brokers = %q, want every broker in node order %q", got, strings.Join(want, ","))
		}
		return nil
	}
}

func testAccCheckVolumeSizes(gib int32) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		for _, b := range o.Brokers {
			if b.VolumeSizeGiB != gib {
				return fmt.Errorf("broker %d: volume %s is %d GiB, want %d", b.NodeID, b.VolumeID, b.VolumeSizeGiB, gib)
			}
		}
		return nil
	}
}

func testAccCheckImage(version string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		imgs, err := findBrokerImages(context.Background(), accEnv.clients.EC2, version, "")
		if err != nil || len(imgs) == 0 {
			return fmt.Errorf("image of %s: %v", version, err)
		}
		o, err := testFleet().Observe(context.Background(), id)
		if err != nil {
			return err
		}
		for _, b := range o.Brokers {
			if b.ImageID != imgs[0].ID {
				return fmt.Errorf("broker %d runs %s, want %s (%s)", b.NodeID, b.ImageID, imgs[0].ID, version)
			}
		}
		return nil
	}
}

// brokerIdentity is what must survive an instance replacement.
type brokerIdentity struct {
	NodeID                     int32
	ENIID, PrivateIP, VolumeID string
	InstanceID                 string
}

func testAccRecordBrokers(into *[]brokerIdentity) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		*into = nil
		for _, b := range o.Brokers {
			*into = append(*into, brokerIdentity{b.NodeID, b.ENIID, b.PrivateIP, b.VolumeID, b.InstanceID})
		}
		return nil
	}
}

// testAccCheckBrokersKept checks every recorded broker still has its ENI,
// address and volume; sameInstance also requires the same instance.
func testAccCheckBrokersKept(before *[]brokerIdentity, sameInstance bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		for _, was := range *before {
			b, ok := o.Broker(was.NodeID)
			switch {
			case !ok:
				return fmt.Errorf("broker %d is gone", was.NodeID)
			case b.ENIID != was.ENIID || b.PrivateIP != was.PrivateIP || b.VolumeID != was.VolumeID:
				return fmt.Errorf("broker %d lost its identity: ENI %s->%s, IP %s->%s, volume %s->%s",
					was.NodeID, was.ENIID, b.ENIID, was.PrivateIP, b.PrivateIP, was.VolumeID, b.VolumeID)
			case sameInstance && b.InstanceID != was.InstanceID:
				return fmt.Errorf("broker %d was replaced (%s -> %s) by a change that should be in place", was.NodeID, was.InstanceID, b.InstanceID)
			case !b.HasLiveInstance():
				return fmt.Errorf("broker %d has no live instance", was.NodeID)
			}
		}
		return nil
	}
}

// testAccTerminateBroker terminates a broker's instance behind Terraform's back.
func testAccTerminateBroker(nodeID int32) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		o, err := testFleet().Observe(ctx, id)
		if err != nil {
			return err
		}
		b, ok := o.Broker(nodeID)
		if !ok || b.InstanceID == "" {
			return fmt.Errorf("broker %d has no instance to terminate", nodeID)
		}
		if _, err := accEnv.clients.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{b.InstanceID}}); err != nil {
			return err
		}
		for ctx.Err() == nil {
			out, err := accEnv.clients.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{b.InstanceID}})
			if err != nil {
				return err
			}
			if out.Reservations[0].Instances[0].State.Name == ec2types.InstanceStateNameTerminated {
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("instance %s did not terminate: %w", b.InstanceID, ctx.Err())
	}
}

// testAccCrashBroker kills a broker's instance process with the local
// cloud's fault API (the instance ends stopped, as after a crash); against
// other endpoints it stops the instance through the EC2 API.
func testAccCrashBroker(nodeID int32) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		o, err := testFleet().Observe(ctx, id)
		if err != nil {
			return err
		}
		b, ok := o.Broker(nodeID)
		if !ok || b.InstanceID == "" {
			return fmt.Errorf("broker %d has no instance to crash", nodeID)
		}
		if accEnv.cloud != nil {
			if err := accEnv.cloud.KillInstance(b.InstanceID); err != nil {
				return fmt.Errorf("killing %s: %w", b.InstanceID, err)
			}
		} else if _, err := accEnv.clients.EC2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{b.InstanceID}, Force: aws.Bool(true)}); err != nil {
			return err
		}
		for ctx.Err() == nil {
			out, err := accEnv.clients.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{b.InstanceID}})
			if err != nil {
				return err
			}
			if out.Reservations[0].Instances[0].State.Name == ec2types.InstanceStateNameStopped {
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("instance %s did not stop: %w", b.InstanceID, ctx.Err())
	}
}

// --- Kafka through bootstrap_brokers ---

func kafkaClient(bootstrap string, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(90 * time.Second),
	}, opts...)...)
}

// rf3Patience is how long a cluster may refuse replication factor 3 right
// after it formed (brokers listed in metadata before they can take
// replicas); a refusal past it fails the test.
const rf3Patience = 30 * time.Second

// createTopic creates a three-partition topic replicated to every AZ with
// min.insync.replicas=2. A cluster that answers INVALID_REPLICATION_FACTOR
// for longer than rf3Patience cannot replicate: that is an error, never a
// reason to settle for fewer replicas.
func createTopic(ctx context.Context, bootstrap, topic string, opts ...kgo.Opt) error {
	cl, err := kafkaClient(bootstrap, opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	minISR := "2"
	deadline := time.Now().Add(rf3Patience)
	for {
		resp, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": &minISR}, topic)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, kerr.InvalidReplicationFactor):
			return fmt.Errorf("creating topic %s: %w (%s)", topic, err, resp.ErrMessage)
		case time.Now().After(deadline):
			return fmt.Errorf("the brokers refused replication factor 3 for topic %s for %s: %w (%s)", topic, rf3Patience, err, resp.ErrMessage)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("creating topic %s with replication factor 3: %w (last refusal: %s)", topic, ctx.Err(), resp.ErrMessage)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func produce(ctx context.Context, bootstrap, topic string, from, n int) error {
	cl, err := kafkaClient(bootstrap)
	if err != nil {
		return err
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte(fmt.Sprintf("record-%d", i))})
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// consume reads the topic from the start until it has n records, and
// returns the values seen.
func consume(ctx context.Context, bootstrap, topic string, n int, opts ...kgo.Opt) (map[string]bool, error) {
	cl, err := kafkaClient(bootstrap, append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	seen := map[string]bool{}
	for len(seen) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return seen, fmt.Errorf("consumed %d of %d records: %w", len(seen), n, ctx.Err())
		}
		fetches.EachError(func(t string, p int32, err error) {
			// Transient while a broker restarts; the deadline bounds it.
		})
		fetches.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	return seen, nil
}

// brokerEndpoint returns a broker's endpoint from the state.
func brokerEndpoint(s *terraform.State, nodeID int32) (string, error) {
	attrs := s.RootModule().Resources[clusterResourceName].Primary.Attributes
	n, _ := strconv.Atoi(attrs["broker_nodes.#"])
	for i := range n {
		if attrs[fmt.Sprintf("broker_nodes.%d.node_id", i)] == strconv.Itoa(int(nodeID)) {
			return attrs[fmt.Sprintf("broker_nodes.%d.endpoint", i)], nil
		}
	}
	return "", fmt.Errorf("broker %d not in state", nodeID)
}

// waitClusterFormed waits until every broker of the cluster in state
// answers Kafka metadata listing all brokers and a controller. A broker that
// cannot be reached, or brokers that do not form one cluster, fail the
// check.
func waitClusterFormed(s *terraform.State) error {
	o, err := observedCluster(s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	chk := (&providerData{aws: accEnv.clients}).checker(o.ClusterID, o.Brokers, kafkaAccess{Port: plaintextPort}, nil)
	chk.Log = nil
	if err := chk.WaitReady(ctx, 30*time.Second); err != nil {
		return fmt.Errorf("the brokers of cluster %s did not form one cluster: %w", o.ClusterID, err)
	}
	return nil
}

// testAccCheckServesKafka checks the brokers form one cluster, then
// produces n records with acks=all through bootstrap_brokers to a topic
// with replication factor 3 and reads them all back.
func testAccCheckServesKafka(topic string, n int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		if err := waitClusterFormed(s); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := createTopic(ctx, bootstrap, topic); err != nil {
			return err
		}
		if err := produce(ctx, bootstrap, topic, 0, n); err != nil {
			return fmt.Errorf("producing to %s through %s: %w", topic, bootstrap, err)
		}
		seen, err := consume(ctx, bootstrap, topic, n)
		if err != nil {
			return fmt.Errorf("consuming %s through %s: %w", topic, bootstrap, err)
		}
		for i := range n {
			if !seen[fmt.Sprintf("record-%d", i)] {
				return fmt.Errorf("record-%d of %s is lost", i, topic)
			}
		}
		return nil
	}
}

// testAccProduceOn writes n records to a one-partition topic stored only on
// the given broker (replica assignment), so reading them back later proves
// they survived on that broker's volume.
func testAccProduceOn(nodeID int32, topic string, n int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ep, err := brokerEndpoint(s, nodeID)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := createTopicOn(ctx, ep, topic, nodeID); err != nil {
			return err
		}
		if err := produce(ctx, ep, topic, 0, n); err != nil {
			return fmt.Errorf("producing to %s on broker %d: %w", topic, nodeID, err)
		}
		return nil
	}
}

// createTopicOn creates a one-partition topic stored only on the given
// broker (replica assignment; min.insync.replicas 1), through that broker.
func createTopicOn(ctx context.Context, ep, topic string, nodeID int32) error {
	cl, err := kafkaClient(ep)
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	// One copy by design, so acks=all needs only that one (the
	// cluster's default min.insync.replicas is 2).
	minISR := kmsg.NewCreateTopicsRequestTopicConfig()
	minISR.Name, minISR.Value = "min.insync.replicas", kmsg.StringPtr("1")
	rt.Configs = append(rt.Configs, minISR)
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{nodeID}
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("creating %s on broker %d: %w", topic, nodeID, err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		if !errors.Is(err, kerr.InvalidReplicaAssignment) && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating %s on broker %d: %w (%s)", topic, nodeID, err, aws.ToString(resp.Topics[0].ErrorMessage))
		}
		// A cluster that just formed may create the topic where it
		// likes and fail to move it yet: move it with the admin API,
		// with the same patience as for replication factor 3. The client
		// retries a request the loaded broker answered too late, so the
		// topic may exist already from the first try: it is checked and
		// moved the same way.
		if err := moveTo(ctx, cl, topic, nodeID); err != nil {
			return fmt.Errorf("creating %s on broker %d: %s; then: %w", topic, nodeID, aws.ToString(resp.Topics[0].ErrorMessage), err)
		}
	}
	return nil
}

// moveTo reassigns partition 0 of topic to nodeID alone and waits until
// the metadata shows it there.
func moveTo(ctx context.Context, cl *kgo.Client, topic string, nodeID int32) error {
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(rf3Patience)
	var last error
	for time.Now().Before(deadline) {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if p, ok := md.Topics[topic].Partitions[0]; ok && slices.Equal(p.Replicas, []int32{nodeID}) && p.Leader == nodeID {
				return nil
			}
		}
		var req kadm.AlterPartitionAssignmentsReq
		req.Assign(topic, 0, []int32{nodeID})
		resps, err := adm.AlterPartitionAssignments(ctx, req)
		if err == nil {
			err = resps.Error()
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("partition 0 of %s did not move to broker %d in %s (last error: %v)", topic, nodeID, rf3Patience, last)
}

func testAccConsumeFrom(nodeID int32, topic string, n int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ep, err := brokerEndpoint(s, nodeID)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		seen, err := consume(ctx, ep, topic, n)
		if err != nil {
			return fmt.Errorf("reading %s back from broker %d: %w", topic, nodeID, err)
		}
		for i := range n {
			if !seen[fmt.Sprintf("record-%d", i)] {
				return fmt.Errorf("record-%d of %s did not survive on broker %d's volume", i, topic, nodeID)
			}
		}
		return nil
	}
}

// backgroundProducer writes with acks=all while Terraform rolls the cluster
// and remembers every record the brokers acknowledged.
type backgroundProducer struct {
	topic string
	// bootstrapAttr is the cluster attribute to connect through
	// (bootstrap_brokers when empty), and opts the client's options for
	// it, from the state (TLS, SASL).
	bootstrapAttr string
	opts          func(s *terraform.State) []kgo.Opt
	clientOpts    []kgo.Opt
	cancel        context.CancelFunc
	done          chan struct{}
	mu            sync.Mutex
	acked         []string
	// where each acknowledged record was written: partition and offset.
	where     map[string][2]int64
	failures  []error
	attempted atomic.Int64
	bootstrap string
}

// testAccCheckReplicasSpread checks that the topics' replicas are spread
// over all n brokers as the rebalance after a scale-out leaves them: every
// broker holds its fair share (replicas / n, rounded down), every
// partition's replicas are in sync and span as many AZs as before (three),
// and its leader is its preferred replica.
func testAccCheckReplicasSpread(t *testing.T, n int, topics ...string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		cl, err := kafkaClient(bootstrap)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		md, err := kadm.NewClient(cl).Metadata(ctx, topics...)
		if err != nil {
			return err
		}
		rack := map[int32]string{}
		for _, b := range md.Brokers {
			if b.Rack != nil {
				rack[b.NodeID] = *b.Rack
			}
		}
		if len(md.Brokers) != n {
			return fmt.Errorf("the cluster lists %d brokers, want %d", len(md.Brokers), n)
		}
		held := map[int32]int{}
		total := 0
		for _, topic := range topics {
			td, ok := md.Topics[topic]
			if !ok || td.Err != nil {
				return fmt.Errorf("topic %s: %v", topic, td.Err)
			}
			for _, p := range td.Partitions.Sorted() {
				zones := map[string]bool{}
				for _, r := range p.Replicas {
					held[r]++
					total++
					zones[rack[r]] = true
				}
				if len(zones) != 3 || len(p.ISR) != len(p.Replicas) || p.Leader != p.Replicas[0] {
					return fmt.Errorf("%s-%d: replicas %v (%d AZs), ISR %v, leader %d: want three AZs, all in sync, led by its preferred replica",
						topic, p.Partition, p.Replicas, len(zones), p.ISR, p.Leader)
				}
			}
		}
		for _, b := range md.Brokers {
			if held[b.NodeID] < total/n {
				return fmt.Errorf("broker %d holds %d of the %d replicas of %v, under its share of %d: %v", b.NodeID, held[b.NodeID], total, topics, total/n, held)
			}
		}
		t.Logf("rebalance: %d replicas of %v over %d brokers: %v", total, topics, n, held)
		return nil
	}
}

func (p *backgroundProducer) start() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		if p.bootstrapAttr == "" {
			if err := waitClusterFormed(s); err != nil {
				return err
			}
		} else {
			bootstrap = s.RootModule().Resources[clusterResourceName].Primary.Attributes[p.bootstrapAttr]
		}
		if p.opts != nil {
			p.clientOpts = p.opts(s)
		}
		p.bootstrap = bootstrap
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		if err := createTopic(ctx, bootstrap, p.topic, p.clientOpts...); err != nil {
			cancel()
			return err
		}
		cl, err := kafkaClient(bootstrap, p.clientOpts...)
		if err != nil {
			cancel()
			return err
		}
		p.cancel, p.done = cancel, make(chan struct{})
		go func() {
			defer close(p.done)
			defer cl.Close()
			var wg sync.WaitGroup
			for i := 0; ctx.Err() == nil; i++ {
				value := fmt.Sprintf("rolling-%d", i)
				p.attempted.Add(1)
				wg.Add(1)
				cl.Produce(context.Background(), &kgo.Record{Topic: p.topic, Value: []byte(value)}, func(r *kgo.Record, err error) {
					defer wg.Done()
					p.mu.Lock()
					defer p.mu.Unlock()
					if err != nil {
						p.failures = append(p.failures, err)
						return
					}
					p.acked = append(p.acked, value)
					if p.where == nil {
						p.where = map[string][2]int64{}
					}
					p.where[value] = [2]int64{int64(r.Partition), r.Offset}
				})
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond): // ~50 records/s
				}
			}
			wg.Wait()
		}()
		return nil
	}
}

func (p *backgroundProducer) stopAndVerify(t *testing.T) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		if p.cancel == nil {
			return errors.New("the background producer never started")
		}
		p.cancel()
		<-p.done
		p.mu.Lock()
		acked, failures := slices.Clone(p.acked), slices.Clone(p.failures)
		p.mu.Unlock()
		t.Logf("producer: %d records attempted, %d acknowledged, %d failed during the roll (replication factor 3, min.insync.replicas 2)", p.attempted.Load(), len(acked), len(failures))
		if len(failures) > 0 {
			return fmt.Errorf("%d produce requests failed during the roll, first: %w", len(failures), failures[0])
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		seen, err := consume(ctx, p.bootstrap, p.topic, len(acked), p.clientOpts...)
		if err != nil {
			return fmt.Errorf("%w; %s", err, p.describeMissing(acked, seen))
		}
		for _, v := range acked {
			if !seen[v] {
				return fmt.Errorf("acknowledged record %s is lost", v)
			}
		}
		return nil
	}
}

// describeMissing says where the acknowledged records not read back were
// written, and what the cluster says of those partitions now: replicas,
// leader, ISR and high watermark, so a record lost is told from one not
// yet readable.
func (p *backgroundProducer) describeMissing(acked []string, seen map[string]bool) string {
	p.mu.Lock()
	where := maps.Clone(p.where)
	p.mu.Unlock()
	var missing []string
	for _, v := range acked {
		if !seen[v] {
			w := where[v]
			missing = append(missing, fmt.Sprintf("%s at %s-%d offset %d", v, p.topic, w[0], w[1]))
		}
	}
	out := fmt.Sprintf("not read back: %s", strings.Join(missing, ", "))
	cl, err := kafkaClient(p.bootstrap, p.clientOpts...)
	if err != nil {
		return out
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	if md, err := adm.Metadata(ctx, p.topic); err == nil {
		for _, pd := range md.Topics[p.topic].Partitions.Sorted() {
			out += fmt.Sprintf("; %s-%d replicas %v leader %d epoch %d ISR %v", p.topic, pd.Partition, pd.Replicas, pd.Leader, pd.LeaderEpoch, pd.ISR)
		}
	}
	if ends, err := adm.ListEndOffsets(ctx, p.topic); err == nil {
		ends.Each(func(o kadm.ListedOffset) {
			out += fmt.Sprintf("; %s-%d high watermark %d (%v)", o.Topic, o.Partition, o.Offset, o.Err)
		})
	}
	// What each such offset holds now, read directly: the record (the
	// consumer above skipped it), another one (it was overwritten), or
	// nothing readable.
	for _, v := range acked {
		if seen[v] {
			continue
		}
		w := where[v]
		got := "nothing readable"
		rc, err := kafkaClient(p.bootstrap, append(slices.Clone(p.clientOpts), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			p.topic: {int32(w[0]): kgo.NewOffset().At(w[1])},
		}))...)
		if err != nil {
			continue
		}
		fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
		fetches := rc.PollFetches(fctx)
		fcancel()
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset == w[1] {
				got = fmt.Sprintf("%q", r.Value)
			}
		})
		rc.Close()
		out += fmt.Sprintf("; offset %d of %s-%d holds %s", w[1], p.topic, w[0], got)
	}
	return out
}

// testAccCheckBrokerSetting asks every broker for its cluster-wide setting.
func testAccCheckBrokerSetting(key, want string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, ep := range strings.Split(bootstrap, ",") {
			cl, err := kgo.NewClient(kgo.SeedBrokers(ep))
			if err != nil {
				return err
			}
			req := kmsg.NewPtrDescribeConfigsRequest()
			rr := kmsg.NewDescribeConfigsRequestResource()
			rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeBroker, "", []string{key}
			req.Resources = append(req.Resources, rr)
			seeds := cl.SeedBrokers()
			kresp, err := seeds[0].Request(ctx, req)
			cl.Close()
			if err != nil {
				return fmt.Errorf("describing configs of %s: %w", ep, err)
			}
			got := ""
			for _, r := range kresp.(*kmsg.DescribeConfigsResponse).Resources {
				for _, c := range r.Configs {
					if c.Name == key && c.Value != nil {
						got = *c.Value
					}
				}
			}
			if got != want {
				return fmt.Errorf("broker %s: %s = %q, want %q (the change was not applied live)", ep, key, got, want)
			}
		}
		return nil
	}
}

// testAccCheckBrokerConfig asks every broker for its own value of a setting
// (DescribeConfigs of its broker resource) and where the value comes from.
func testAccCheckBrokerConfig(key, want string, source kmsg.ConfigSource) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, b := range o.Brokers {
			ep := endpoint(b.PrivateIP, plaintextPort)
			cl, err := kgo.NewClient(kgo.SeedBrokers(ep))
			if err != nil {
				return err
			}
			req := kmsg.NewPtrDescribeConfigsRequest()
			rr := kmsg.NewDescribeConfigsRequestResource()
			rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeBroker, strconv.Itoa(int(b.NodeID)), []string{key}
			req.Resources = append(req.Resources, rr)
			kresp, err := cl.SeedBrokers()[0].Request(ctx, req)
			cl.Close()
			if err != nil {
				return fmt.Errorf("describing the configs of broker %d (%s): %w", b.NodeID, ep, err)
			}
			var got *kmsg.DescribeConfigsResponseResourceConfig
			for _, r := range kresp.(*kmsg.DescribeConfigsResponse).Resources {
				if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
					return fmt.Errorf("describing the configs of broker %d: %w", b.NodeID, err)
				}
				for i := range r.Configs {
					if r.Configs[i].Name == key {
						got = &r.Configs[i]
					}
				}
			}
			switch {
			case got == nil:
				return fmt.Errorf("broker %d does not report %s", b.NodeID, key)
			case got.Value == nil || *got.Value != want || got.Source != source:
				return fmt.Errorf("broker %d: %s = %q from %s, want %q from %s", b.NodeID, key, aws.ToString(got.Value), got.Source, want, source)
			}
		}
		return nil
	}
}

// testAccCheckTagEverywhere checks a user tag on every EC2 object of the
// cluster and on every Auto Scaling group (which propagates it to the
// instances it launches); want "" checks that no object carries it. Launch
// templates carry only the provider's tags.
func testAccCheckTagEverywhere(key, want string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		out, err := accEnv.clients.EC2.DescribeTags(context.Background(), &ec2.DescribeTagsInput{
			Filters: []ec2types.Filter{{Name: aws.String("key"), Values: []string{fleet.TagClusterID}}, {Name: aws.String("value"), Values: []string{id}}},
		})
		if err != nil {
			return err
		}
		var objects []string
		for _, t := range out.Tags {
			if !strings.HasPrefix(aws.ToString(t.ResourceId), "lt-") {
				objects = append(objects, aws.ToString(t.ResourceId))
			}
		}
		groups, err := accEnv.clients.AutoScaling.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{
			Filters: []astypes.Filter{{Name: aws.String("tag:" + fleet.TagClusterID), Values: []string{id}}},
		})
		if err != nil {
			return err
		}
		if len(groups.AutoScalingGroups) == 0 {
			return fmt.Errorf("no Auto Scaling groups tagged with cluster %s", id)
		}
		for _, g := range groups.AutoScalingGroups {
			got := ""
			for _, tg := range g.Tags {
				if aws.ToString(tg.Key) == key {
					got = aws.ToString(tg.Value)
					if !aws.ToBool(tg.PropagateAtLaunch) {
						return fmt.Errorf("group %s does not propagate tag %s to its instances", aws.ToString(g.AutoScalingGroupName), key)
					}
				}
			}
			if got != want {
				return fmt.Errorf("group %s has tag %s=%q, want %q", aws.ToString(g.AutoScalingGroupName), key, got, want)
			}
		}
		if len(objects) == 0 {
			return fmt.Errorf("no objects tagged with cluster %s", id)
		}
		tags, err := accEnv.clients.EC2.DescribeTags(context.Background(), &ec2.DescribeTagsInput{
			Filters: []ec2types.Filter{{Name: aws.String("resource-id"), Values: objects}, {Name: aws.String("key"), Values: []string{key}}},
		})
		if err != nil {
			return err
		}
		have := map[string]string{}
		for _, t := range tags.Tags {
			have[aws.ToString(t.ResourceId)] = aws.ToString(t.Value)
		}
		for _, o := range objects {
			if have[o] != want {
				return fmt.Errorf("%s has tag %s=%q, want %q", o, key, have[o], want)
			}
		}
		return nil
	}
}

// testAccSetBrokerConfigOutside sets cluster-wide dynamic broker settings
// with IncrementalAlterConfigs, as kafka-configs --entity-default would.
func testAccSetBrokerConfigOutside(set map[string]string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := (&providerData{aws: accEnv.clients}).kafkaConn(ctx, id)
		if err != nil {
			return err
		}
		return (&kafkacheck.Checker{Conn: conn}).SetClusterConfig(ctx, set, nil)
	}
}

// testAccCheckDynamicBrokerConfig checks the cluster-wide dynamic broker
// settings the brokers hold are exactly want.
func testAccCheckDynamicBrokerConfig(want map[string]string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := (&providerData{aws: accEnv.clients}).kafkaConn(ctx, id)
		if err != nil {
			return err
		}
		got, err := (&kafkacheck.Checker{Conn: conn}).DynamicClusterConfig(ctx)
		if err != nil {
			return err
		}
		if !maps.Equal(got, want) {
			return fmt.Errorf("cluster-wide dynamic broker settings %v, want %v", got, want)
		}
		return nil
	}
}
