package provider

import (
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
)

// TestAccCluster_importOptionalBlocks imports a cluster whose optional
// blocks with defaults are set (monitoring with alarms, a consumer-lag
// alarm and the dashboard; logging to CloudWatch Logs; open monitoring
// with both exporters) at a second address, and plans the configuration it
// was created from there: the plan is empty, as it is for the creating
// state (terraform import, then plan, with the Terraform CLI). Then the
// same with monitoring's defaults turned off (no dashboard, two alarms
// off, SNS topics, two consumer-lag alarms). Before importMonitoring the
// first plan added the whole monitoring block. The first configuration
// lists its two consumer-lag alarms in another order than their names
// (ledger before audit): while consumer_lag was a list, read back in the
// alarms' name order, the plan after the import reordered it.
func TestAccCluster_importOptionalBlocks(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	monitoring := `
  monitoring {
    alarms {
      data_disk_used_percent = 70
      consumer_lag {
        group     = "ledger"
        topic     = "payments"
        threshold = 1000
      }
      consumer_lag {
        group     = "audit"
        topic     = "payments"
        threshold = 10
      }
    }
  }`
	block := func(address string) string {
		return fmt.Sprintf(`
resource "tributary_cluster" %[1]q {
  name                   = %[2]q
  broker_version         = %[3]q
  instance_type          = %[4]q
  brokers_per_az         = 1
  client_cidr_blocks     = ["127.0.0.0/8"]
  monitoring_cidr_blocks = ["127.0.0.0/8"]
`+plaintextCluster+`
`+monitoring+`

  logging {
    cloudwatch_logs {
      enabled   = true
      log_group = "%[2]s-logs"
    }
  }

  open_monitoring {
    prometheus {
      jmx_exporter {
        enabled_in_broker = true
      }
      node_exporter {
        enabled_in_broker = true
      }
    }
  }
}
`, address, name, accEnv.version, accInstanceType())
	}
	topic := testAccSNSTopic(t, name+"-alarms")
	turnedOff := fmt.Sprintf(`
  monitoring {
    dashboard = false
    alarms {
      sns_topic_arns     = [%q]
      under_min_isr      = false
      offline_partitions = false
      consumer_lag {
        group     = "audit"
        topic     = "payments"
        threshold = 10
      }
      consumer_lag {
        group     = "ledger"
        topic     = "payments"
        threshold = 1000
      }
    }
  }`, topic)
	var clusterID string
	forget := "\nremoved {\n  from = tributary_cluster.imported\n\n  lifecycle {\n    destroy = false\n  }\n}\n"
	var steps []resource.TestStep
	for i, m := range []string{monitoring, turnedOff} {
		monitoring = m
		both := testAccProviderConfig() + block("test") + block("imported")
		if i == 0 {
			steps = append(steps, resource.TestStep{
				Config: testAccProviderConfig() + block("test"),
				Check: func(s *terraform.State) error {
					clusterID = s.RootModule().Resources[clusterResourceName].Primary.Attributes["cluster_id"]
					return nil
				},
			})
		} else {
			steps = append(steps, resource.TestStep{Config: testAccProviderConfig() + block("test") + forget})
		}
		steps = append(steps, resource.TestStep{
			Config:             both,
			ResourceName:       "tributary_cluster.imported",
			ImportState:        true,
			ImportStatePersist: true,
			ImportStateIdFunc:  func(*terraform.State) (string, error) { return clusterID, nil },
		}, resource.TestStep{Config: both, PlanOnly: true})
	}
	// The imported address is forgotten, so that destroying the creating
	// one is the end of the cluster.
	steps = append(steps, resource.TestStep{Config: testAccProviderConfig() + block("test") + forget})
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps:                    steps,
	})
}

// TestAccCluster_importMonitoringAskingNothing pins what the import cannot
// read back (docs/terraform-provider.md): `monitoring { dashboard = false }`
// creates nothing in CloudWatch, so an import reads no block and the plan of
// the creating configuration after it is an in-place update adding the
// block. Applying it creates nothing either (no alarm, no dashboard of the
// cluster), and the plan after it is empty.
func TestAccCluster_importMonitoringAskingNothing(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	block := func(address string) string {
		return fmt.Sprintf(`
resource "tributary_cluster" %[1]q {
  name               = %[2]q
  broker_version     = %[3]q
  instance_type      = %[4]q
  brokers_per_az     = 1
  client_cidr_blocks = ["127.0.0.0/8"]
`+plaintextCluster+`

  monitoring {
    dashboard = false
  }
}
`, address, name, accEnv.version, accInstanceType())
	}
	var clusterID string
	nothing := resource.ComposeTestCheckFunc(testAccCheckAlarms(name, map[string]float64{}, ""), testAccCheckDashboard(name, false))
	both := testAccProviderConfig() + block("test") + block("imported")
	forget := "\nremoved {\n  from = tributary_cluster.imported\n\n  lifecycle {\n    destroy = false\n  }\n}\n"
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config: testAccProviderConfig() + block("test"),
			Check: resource.ComposeTestCheckFunc(nothing, func(s *terraform.State) error {
				clusterID = s.RootModule().Resources[clusterResourceName].Primary.Attributes["cluster_id"]
				return nil
			}),
		}, {
			Config:             both,
			ResourceName:       "tributary_cluster.imported",
			ImportState:        true,
			ImportStatePersist: true,
			ImportStateIdFunc:  func(*terraform.State) (string, error) { return clusterID, nil },
		}, {
			Config: both,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction("tributary_cluster.imported", plancheck.ResourceActionUpdate),
				plancheck.ExpectResourceAction(clusterResourceName, plancheck.ResourceActionNoop),
			}},
			Check: nothing,
		}, {
			Config: testAccProviderConfig() + block("test") + forget,
		}},
	})
}
