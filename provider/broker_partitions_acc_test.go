package provider

import (
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
)

// TestAccCluster_brokerPartitionsByInstanceType: a cluster of small
// brokers (t3.small, MSK's 300 partition replicas per broker; t4g.small,
// the same 2 GiB, on arm64) refuses a topic of 301 partitions of 3
// replicas (301 on each of its 3 brokers) with the brokers'
// POLICY_VIOLATION naming the limit, set by the provider from
// instance_type; broker_config's max.broker.partitions overrides it, and
// the same topic is created.
func TestAccCluster_brokerPartitionsByInstanceType(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	small := "t3.small"
	if runtime.GOARCH == "arm64" {
		small = "t4g.small"
	}
	config := func(settings map[string]string) string {
		cfg := clusterConfigSettings(name, 1, 10, settings)
		from := fmt.Sprintf("instance_type      = %q", accInstanceType())
		if !strings.Contains(cfg, from) {
			t.Fatalf("the test cluster's configuration has no %s", from)
		}
		return strings.Replace(cfg, from, fmt.Sprintf("instance_type      = %q", small), 1) + topicBlock("wide", 301, 3, nil)
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: config(nil),
				ExpectError: regexp.MustCompile(`(?s)POLICY_VIOLATION.*holds\s+0\s+partition\s+replicas\s+and\s+this\s+would\s+add\s+301,\s+` +
					`over\s+max\.broker\.partitions\s+\(300\)`),
			},
			{
				Config: config(map[string]string{"max.broker.partitions": "400"}),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "instance_type", small),
					resource.TestCheckResourceAttr(clusterResourceName, "broker_config.max.broker.partitions", "400"),
					testAccCheckTopicOnEveryBroker("wide", 301, 3, nil, nil),
				),
			},
			{
				Config: config(map[string]string{"max.broker.partitions": "400"}),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
			},
		},
	})
}
