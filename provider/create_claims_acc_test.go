package provider

import (
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// TestAccCluster_duplicateDeclarations declares an ACL, a SCRAM
// credential and a quota entity twice each, beside their cluster, in one
// apply. Kafka takes each of them twice without complaint, and the
// resources are created in parallel, so the check that the cluster does
// not hold one yet passes for both: only one of each pair may be created,
// the other refused with what to do.
func TestAccCluster_duplicateDeclarations(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	var twice strings.Builder
	for _, n := range []string{"first", "second"} {
		twice.WriteString(strings.NewReplacer("NAME", n).Replace(`
resource "tributary_acl" "NAME" {
  cluster_id    = tributary_cluster.test.cluster_id
  resource_type = "TOPIC"
  resource_name = "payments."
  pattern_type  = "PREFIXED"
  principal     = "User:payments"
  operation     = "WRITE"
}

resource "tributary_scram_user" "NAME" {
  cluster_id          = tributary_cluster.test.cluster_id
  name                = "alice"
  password_wo         = "a password of alice"
  password_wo_version = 1
}

resource "tributary_quota" "NAME" {
  cluster_id         = tributary_cluster.test.cluster_id
  user               = "importer"
  producer_byte_rate = 2097152
}
`))
	}
	refused := func(kind string) string {
		return `Another\s+resource\s+of\s+this\s+configuration\s+declares\s+the\s+same\s+` + strings.ReplaceAll(regexp.QuoteMeta(kind), " ", `\s+`)
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config:      clusterConfig(name, accEnv.version, 1, 10) + twice.String(),
			ExpectError: allOf(refused("ACL"), refused("SCRAM credential"), refused("quota entity")),
		}},
	})
}

// allOf matches text holding a match of each pattern, in any order (the
// resources' errors come in the order their creates ended).
func allOf(patterns ...string) *regexp.Regexp {
	var orders []string
	var permute func(done []string, rest []string)
	permute = func(done []string, rest []string) {
		if len(rest) == 0 {
			orders = append(orders, strings.Join(done, `.*`))
			return
		}
		for i := range rest {
			others := append(append([]string{}, rest[:i]...), rest[i+1:]...)
			permute(append(done, rest[i]), others)
		}
	}
	permute(nil, patterns)
	return regexp.MustCompile(`(?s)(?:` + strings.Join(orders, `|`) + `)`)
}
