package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// TestAccCluster_dataSourcesSecure reads an IAM-only cluster (TLS to
// clients, MSK's default, no plaintext listener) through the data sources,
// which must give the bootstrap strings the resource gives: the IAM one,
// and empty plaintext, TLS and SCRAM ones. They used to give the plaintext
// port of every broker, which nothing listens on, and an empty IAM string.
func TestAccCluster_dataSourcesSecure(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	config := testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  client_cidr_blocks = ["127.0.0.0/8"]

  client_authentication {
    unauthenticated = false
    sasl {
      iam = true
    }
  }

  timeouts {
    create = "4m"
    delete = "4m"
  }
}
`, name, accEnv.version, accInstanceType()) + dataSourcesConfig(accEnv.version)
	var checks []resource.TestCheckFunc
	for _, attr := range []string{"bootstrap_brokers", "bootstrap_brokers_tls", "bootstrap_brokers_sasl_scram", "bootstrap_brokers_sasl_iam"} {
		for _, ds := range []string{"data.tributary_cluster.by_name", "data.tributary_bootstrap_brokers.test"} {
			checks = append(checks, resource.TestCheckResourceAttrPair(ds, attr, clusterResourceName, attr))
		}
	}
	checks = append(checks,
		resource.TestCheckResourceAttr("data.tributary_bootstrap_brokers.test", "bootstrap_brokers", ""),
		resource.TestMatchResourceAttr("data.tributary_bootstrap_brokers.test", "bootstrap_brokers_sasl_iam", portList(9098)),
		// Each broker's endpoint is on the listener it serves (IAM only
		// here), not plaintext 9092, in the resource and both data sources.
		resource.TestMatchResourceAttr(clusterResourceName, "broker_nodes.0.endpoint", regexp.MustCompile(`^[0-9.]+:9098$`)),
		resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.0.endpoints.#", "1"),
	)
	for i := range 3 {
		for _, k := range []string{"endpoint", "endpoints.0"} {
			at := fmt.Sprintf("broker_nodes.%d.%s", i, k)
			checks = append(checks,
				resource.TestCheckResourceAttrPair("data.tributary_cluster.by_name", at, clusterResourceName, at),
				resource.TestCheckResourceAttrPair("data.tributary_broker_nodes.test", fmt.Sprintf("node_info_list.%d.%s", i, k), clusterResourceName, at))
		}
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps:                    []resource.TestStep{{Config: config, Check: resource.ComposeAggregateTestCheckFunc(checks...)}},
	})
}
