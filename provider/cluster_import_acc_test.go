package provider

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
)

// TestAccCluster_importTimeouts imports a TLS cluster (its CA's key stays
// in the creating state) at a second address, as terraform import in
// another configuration would. With the block as an import reads it back
// the plan is empty. With a timeouts block and the defaults spelled out
// (in_cluster = true, unauthenticated = true, volume_type = "gp3"), which
// an import cannot read, the plan updates only the state: it used to be
// refused as a change that would roll the brokers onto a new CA, so such
// a configuration could never be applied. The apply then leaves every
// broker instance and the CA alone, and the next plan is empty. With both
// broker_version and image_id, as terraform plan -generate-config-out
// writes them for an imported cluster, the plan is empty when they name
// the same image and refused when they do not.
func TestAccCluster_importTimeouts(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	block := func(address string, spelledOut bool, more ...string) string {
		extra := ""
		if spelledOut {
			extra = `
  client_authentication {
    unauthenticated = true
  }

  storage {
    volume_type = "gp3"
  }

  timeouts {
    create = "4m"
    update = "6m"
    delete = "4m"
  }
`
		}
		inCluster := ""
		if spelledOut {
			inCluster = "    in_cluster    = true\n"
		}
		extra += strings.Join(more, "")
		return fmt.Sprintf(`
resource "tributary_cluster" %[1]q {
  name               = %[2]q
  broker_version     = %[3]q
  instance_type      = %[4]q
  client_cidr_blocks = ["127.0.0.0/8"]

  encryption_in_transit {
    client_broker = "TLS_PLAINTEXT"
%[5]s  }
%[6]s}
`, address, name, accEnv.version, accInstanceType(), inCluster, extra)
	}
	config := testAccProviderConfig() + block("test", true)
	importedID := func(s *terraform.State) (string, error) {
		id, _, err := clusterState(s)
		return id, err
	}
	const imported = "tributary_cluster.imported"
	var instances []string
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr(clusterResourceName, "encryption_in_transit.in_cluster", "true"),
				resource.TestCheckResourceAttr(clusterResourceName, "client_authentication.unauthenticated", "true"),
				func(s *terraform.State) error {
					var err error
					instances, err = brokerInstances(s)
					return err
				},
			),
		}, {
			// What an import reads back: the same cluster, without what
			// only the configuration says.
			ResourceName:      clusterResourceName,
			ImportState:       true,
			ImportStateVerify: true,
			ImportStateVerifyIgnore: []string{
				"timeouts", "broker_load", "encryption_in_transit.in_cluster", "client_authentication", "storage",
			},
		}, {
			Config:             config + block("imported", false),
			ResourceName:       imported,
			ImportState:        true,
			ImportStatePersist: true,
			ImportStateIdFunc:  importedID,
		}, {
			// No timeouts and the defaults left out: nothing to change
			// (and the apply changes nothing; the framework plans again
			// after it and fails on a non-empty plan).
			Config: config + block("imported", false),
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
		}, {
			// The configuration it was created with: one update of the
			// state, nothing on the brokers.
			Config: config + block("imported", true),
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(imported, plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction(clusterResourceName, plancheck.ResourceActionNoop),
				},
			},
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr(imported, "timeouts.update", "6m"),
				resource.TestCheckResourceAttr(imported, "encryption_in_transit.in_cluster", "true"),
				resource.TestCheckResourceAttrPair(imported, "certificate_authority_pem", clusterResourceName, "certificate_authority_pem"),
				func(s *terraform.State) error {
					now, err := brokerInstances(s)
					if err != nil {
						return err
					}
					if !slices.Equal(now, instances) {
						return fmt.Errorf("broker instances %v after the update, %v before: the brokers were replaced", now, instances)
					}
					return nil
				},
			),
		}, {
			Config: config + block("imported", true),
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
		}, {
			// broker_version and image_id both, as terraform plan
			// -generate-config-out writes them for an imported cluster:
			// taken when they name the same image.
			Config: config + block("imported", true, "  image_id = tributary_cluster.test.image_id\n"),
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
		}, {
			// And refused at plan when they do not.
			Config: config + fmt.Sprintf("\ndata \"tributary_broker_image\" \"next\" {\n  version = %q\n}\n", accEnv.versionNext) +
				block("imported", true, "  image_id = data.tributary_broker_image.next.id\n"),
			PlanOnly:    true,
			ExpectError: wrappedText("broker_version and image_id name different images"),
		}, {
			// The second address forgets the cluster, so that only the
			// first destroys it.
			Config: config + "\nremoved {\n  from = " + imported + "\n\n  lifecycle {\n    destroy = false\n  }\n}\n",
		}},
	})
}

// brokerInstances lists the test cluster's broker instance ids, sorted.
func brokerInstances(s *terraform.State) ([]string, error) {
	o, err := observedCluster(s)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, b := range o.Brokers {
		if b.InstanceID == "" {
			return nil, fmt.Errorf("broker %d has no instance", b.NodeID)
		}
		ids = append(ids, b.InstanceID)
	}
	slices.Sort(ids)
	if len(ids) == 0 {
		return nil, fmt.Errorf("cluster has no brokers")
	}
	return ids, nil
}
