package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tributary/tributary/provider/internal/kafkaacl"
)

const aclResourceName = "tributary_acl.test"

// aclAllowBlock lets the plaintext clients (User:ANONYMOUS, the provider
// among them) do everything on the test topic. Without it, the DENY below
// would lock them out of it altogether: once any ACL names a resource,
// allow.everyone.if.no.acl.found no longer applies to it, as in Kafka.
const aclAllowBlock = `
resource "tributary_acl" "allow" {
  cluster_id    = tributary_cluster.test.cluster_id
  resource_type = "TOPIC"
  resource_name = tributary_topic.test.name
  principal     = "User:ANONYMOUS"
  operation     = "ALL"
}
`

// aclDenyBlock denies the plaintext clients WRITE on the test topic: DENY
// wins over the ALLOW of ALL. Host and pattern type take their defaults.
const aclDenyBlock = `
resource "tributary_acl" "test" {
  cluster_id    = tributary_cluster.test.cluster_id
  resource_type = "TOPIC"
  resource_name = tributary_topic.test.name
  principal     = "User:ANONYMOUS"
  operation     = "WRITE"
  permission    = "DENY"
}
`

// TestAccACL_lockOut: an ACL on the CLUSTER resource for another principal
// takes the provider's own access away (it connects as User:ANONYMOUS, and
// a resource with ACLs allows only what they allow, as in Kafka). The
// apply fails at once, saying why and how to take the ACL over, where it
// polled CLUSTER_AUTHORIZATION_FAILED for the two minutes of the ACL
// timeout. The ACL is not in the state, so the destroy needs no Kafka.
func TestAccACL_lockOut(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	config := clusterConfig(name, accEnv.version, 1, 10) + `
resource "tributary_acl" "lock" {
  cluster_id    = tributary_cluster.test.cluster_id
  resource_type = "CLUSTER"
  resource_name = "kafka-cluster"
  principal     = "User:CN=app"
  operation     = "DESCRIBE"
  permission    = "DENY"
}
`
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config:      config,
			ExpectError: wrappedText("allow the provider's principal first (an ALLOW ACL this one depends on). The ACL is on the cluster; once the provider may describe the cluster's ACLs again, import it: terraform import <resource address>"),
		}},
	})
}

// TestAccACL_basic creates a cluster, a topic and two ACLs in one apply:
// the plaintext clients may do everything on the topic but WRITE. A real
// producer is refused with TOPIC_AUTHORIZATION_FAILED while the provider
// still reads the topic. The DENY is imported, found gone after a delete
// outside Terraform and created again, then removed from the configuration,
// after which the producer writes.
func TestAccACL_basic(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	base := clusterConfig(name, accEnv.version, 1, 10) + topicBlock("payments", 1, 3, nil) + aclAllowBlock
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: base + aclDenyBlock,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(aclResourceName, plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("tributary_acl.allow", plancheck.ResourceActionCreate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(aclResourceName, "host", "*"),
					resource.TestCheckResourceAttr("tributary_acl.allow", "permission", "ALLOW"),
					resource.TestCheckResourceAttr(aclResourceName, "pattern_type", "LITERAL"),
					testAccCheckACLID(),
					testAccCheckProduceRefused("payments"),
				),
			},
			{
				ResourceName:      aclResourceName,
				ImportState:       true,
				ImportStateVerify: true,
				ImportStateIdFunc: func(s *terraform.State) (string, error) {
					return s.RootModule().Resources[aclResourceName].Primary.ID, nil
				},
			},
			{
				// Deleted outside Terraform: the refresh notices, the apply
				// creates it again and the topic is refused again.
				Config: base + aclDenyBlock,
				Check:  testAccDeleteACLOutside(t),
				// The check deleted it after the apply, so the next plan
				// is not empty.
				ExpectNonEmptyPlan: true,
			},
			{
				Config: base + aclDenyBlock,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(aclResourceName, plancheck.ResourceActionCreate),
				}},
				Check: testAccCheckProduceRefused("payments"),
			},
			{
				Config: base,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(aclResourceName, plancheck.ResourceActionDestroy),
				}},
				Check: testAccProduceTo("payments", 0, 10),
			},
		},
	})
}

// TestAccACL_invalid refuses bad ACLs at plan time with the brokers' own
// rules, before anything is created (no brokers needed).
func TestAccACL_invalid(t *testing.T) {
	accParallel(t)
	acl := func(typ, name, op, principal, host string) string {
		return testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_acl" "test" {
  cluster_id    = "tc-0123456789abcdef"
  resource_type = %q
  resource_name = %q
  principal     = %q
  host          = %q
  operation     = %q
}
`, typ, name, principal, host, op)
	}
	steps := []struct {
		config string
		want   string
	}{
		{acl("TOPIC", "orders", "FLY", "User:alice", "*"), `operation "FLY": a TOPIC ACL may name`},
		{acl("GROUP", "app", "WRITE", "User:alice", "*"), `a GROUP ACL may name ALL, READ, DESCRIBE, DELETE`},
		{acl("topic", "orders", "READ", "User:alice", "*"), `"topic" is written TOPIC`},
		{acl("CLUSTER", "prod", "ALTER", "User:alice", "*"), `kafka-cluster`},
		{acl("TOPIC", "orders", "READ", "alice", "*"), `not Type:name`},
		{acl("TOPIC", "orders", "READ", "User:alice", "app.internal"), `not an IP address`},
		{acl("DELEGATION_TOKEN", "t", "DESCRIBE", "User:alice", "*"), `one of CLUSTER, GROUP, TOPIC, TRANSACTIONAL_ID`},
	}
	var tsteps []resource.TestStep
	for _, s := range steps {
		tsteps = append(tsteps, resource.TestStep{Config: s.config, PlanOnly: true, ExpectError: wrappedText(s.want)})
	}
	// Every mistake in one plan, each shown at its own argument's line
	// (the error's source snippet, then its message).
	multi := acl("GROUP", "app", "WRITE", "user:alice", "app.internal")
	for _, want := range []string{
		`operation = "WRITE" operation "WRITE": a GROUP ACL may name`,
		`principal = "user:alice" "user:alice" is written User:alice`,
		`host = "app.internal" host "app.internal" is not an IP address`,
	} {
		tsteps = append(tsteps, resource.TestStep{Config: multi, PlanOnly: true, ExpectError: wrappedText(want)})
	}
	tsteps = append(tsteps, resource.TestStep{
		Config: testAccProviderConfig() + `
resource "tributary_acl" "test" {
  cluster_id    = "tc-0123456789abcdef"
  resource_type = "TOPIC"
  resource_name = "orders"
  principal     = "User:alice"
  operation     = "READ"
}
`,
		ResourceName:  aclResourceName,
		ImportState:   true,
		ImportStateId: "tc-0123456789abcdef|TOPIC|orders",
		ExpectError:   wrappedText("an ACL id is cluster_id|resource_type|pattern_type|resource_name|principal|host|operation|permission"),
	})
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps:                    tsteps,
	})
}

func testAccCheckACLID() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		return resource.TestCheckResourceAttr(aclResourceName, "id", id+"|TOPIC|LITERAL|payments|User:ANONYMOUS|*|WRITE|DENY")(s)
	}
}

// testAccCheckProduceRefused checks that a real producer is refused on the
// topic with Kafka's authorization error.
func testAccCheckProduceRefused(topic string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err = produce(ctx, bootstrap, topic, 0, 1)
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			return fmt.Errorf("producing to %s with WRITE denied: %v, want TOPIC_AUTHORIZATION_FAILED", topic, err)
		}
		return nil
	}
}

// testAccDeleteACLOutside deletes the state's ACL through the Kafka
// protocol, as an operator with kafka-acls would.
func testAccDeleteACLOutside(t *testing.T) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs := s.RootModule().Resources[aclResourceName]
		if rs == nil {
			return errors.New("no ACL in state")
		}
		clusterID, acl, err := kafkaacl.ParseID(rs.Primary.ID)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := (&providerData{aws: accEnv.clients}).kafkaConn(ctx, clusterID)
		if err != nil {
			return err
		}
		a := &kafkaacl.Admin{Conn: conn, Log: func(_ context.Context, msg string, attrs ...any) { t.Log(append([]any{msg}, attrs...)...) }}
		if err := a.Delete(ctx, acl); err != nil {
			return fmt.Errorf("deleting %s outside Terraform: %w", strings.TrimSpace(rs.Primary.ID), err)
		}
		return nil
	}
}
