package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/tributary/tributary/provider/internal/kafkascram"
)

const scramUserResourceName = "tributary_scram_user.test"

func scramUserBlock(clusterID string, version, iterations int, password string) string {
	iter := ""
	if iterations > 0 {
		iter = fmt.Sprintf("  iterations          = %d\n", iterations)
	}
	return fmt.Sprintf(`
resource "tributary_scram_user" "test" {
  cluster_id          = %s
  name                = "alice"
  password_wo         = %q
  password_wo_version = %d
%s}
`, clusterID, password, version, iter)
}

// TestAccScramUser_basic creates a cluster and a SCRAM user in one apply,
// checks the credential on the brokers and that no password is in the
// state, changes password and iterations in place, imports the user, and
// finds it deleted outside Terraform and creates it again. (Logging in as
// the user needs the cluster's SASL/SCRAM listener; the provider package's
// kafkascram tests log in against a broker serving one.)
func TestAccScramUser_basic(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	cluster := clusterConfig(name, accEnv.version, 1, 10)
	ref := "tributary_cluster.test.cluster_id"
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: cluster + scramUserBlock(ref, 1, 0, "first password"),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(scramUserResourceName, "mechanism", kafkascram.SHA512),
					resource.TestCheckResourceAttr(scramUserResourceName, "iterations", fmt.Sprint(kafkascram.DefaultIterations)),
					resource.TestCheckNoResourceAttr(scramUserResourceName, "password_wo"),
					testAccCheckNoSecretInState("first password"),
					testAccCheckScramIterations(t, kafkascram.DefaultIterations),
					// This cluster serves no SASL/SCRAM listener: the
					// create warned that nobody can log in with it.
					testAccCheckMechanismServed(kafkascram.SHA512, false),
				),
			},
			{
				Config: cluster + scramUserBlock(ref, 2, 4096, "second password"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(scramUserResourceName, plancheck.ResourceActionUpdate),
					// A password_wo user has no secret version to learn.
					plancheck.ExpectKnownValue(scramUserResourceName, tfjsonpath.New("password_secret_version_id"), knownvalue.Null()),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckNoSecretInState("second password"),
					testAccCheckScramIterations(t, 4096),
				),
			},
			{
				ResourceName:      scramUserResourceName,
				ImportState:       true,
				ImportStateVerify: true,
				// Terraform cannot read back what it never stored.
				ImportStateVerifyIgnore: []string{"password_wo_version"},
				ImportStateIdFunc: func(s *terraform.State) (string, error) {
					return s.RootModule().Resources[scramUserResourceName].Primary.ID, nil
				},
			},
			{
				Config:             cluster + scramUserBlock(ref, 2, 4096, "second password"),
				Check:              testAccDeleteScramOutside(t),
				ExpectNonEmptyPlan: true,
			},
			{
				Config: cluster + scramUserBlock(ref, 2, 4096, "second password"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(scramUserResourceName, plancheck.ResourceActionCreate),
				}},
				Check: testAccCheckScramIterations(t, 4096),
			},
		},
	})
}

// TestAccScramUser_invalid refuses bad users at plan time (no brokers
// needed).
func TestAccScramUser_invalid(t *testing.T) {
	accParallel(t)
	id := `"tc-0123456789abcdef"`
	steps := []struct {
		config string
		want   string
	}{
		{scramUserBlock(id, 1, 100, "long enough"), `Attribute iterations value must be between 4096 and 16384`},
		{scramUserBlock(id, 1, 0, "short"), `string length must be at least 8`},
		{strings.Replace(scramUserBlock(id, 1, 0, "long enough"), `name                = "alice"`, "name = \"alice\"\n  mechanism = \"SCRAM-SHA-1\"", 1), `value must be one of`},
		{strings.Replace(scramUserBlock(id, 1, 0, "long enough"), `"alice"`, `"al\u0007ice"`, 1), `control characters`},
	}
	var tsteps []resource.TestStep
	for _, s := range steps {
		tsteps = append(tsteps, resource.TestStep{Config: testAccProviderConfig() + s.config, PlanOnly: true, ExpectError: wrappedText(s.want)})
	}
	tsteps = append(tsteps, resource.TestStep{
		Config:        testAccProviderConfig() + scramUserBlock(id, 1, 0, "long enough"),
		ResourceName:  scramUserResourceName,
		ImportState:   true,
		ImportStateId: "tc-0123456789abcdef/alice",
		ExpectError:   wrappedText("A SCRAM user is imported as <cluster_id>/<name>/<mechanism>"),
	})
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps:                    tsteps,
	})
}

// testAccCheckNoSecretInState looks for the password in every attribute
// of every resource in the state.
func testAccCheckNoSecretInState(secret string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		for addr, rs := range s.RootModule().Resources {
			for k, v := range rs.Primary.Attributes {
				if strings.Contains(v, secret) {
					return fmt.Errorf("the password is in the state: %s.%s", addr, k)
				}
			}
		}
		return nil
	}
}

func testScramAdmin(t *testing.T, s *terraform.State) (*kafkascram.Admin, error) {
	id, _, err := clusterState(s)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := (&providerData{aws: accEnv.clients}).kafkaConn(ctx, id)
	if err != nil {
		return nil, err
	}
	return &kafkascram.Admin{Conn: conn, Log: func(_ context.Context, msg string, attrs ...any) { t.Log(append([]any{msg}, attrs...)...) }}, nil
}

// testAccCheckScramIterations asks the cluster for alice's SCRAM-SHA-512
// credential.
func testAccCheckScramIterations(t *testing.T, want int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		a, err := testScramAdmin(t, s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		got, err := a.Iterations(ctx, "alice", kafkascram.SHA512)
		if err != nil || got != want {
			return fmt.Errorf("alice's credential on the cluster: %d iterations, %v; want %d", got, err, want)
		}
		return nil
	}
}

// testAccDeleteScramOutside deletes alice's credential through the Kafka
// protocol, as an operator with kafka-configs would.
func testAccDeleteScramOutside(t *testing.T) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		a, err := testScramAdmin(t, s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := a.Delete(ctx, "alice", kafkascram.SHA512); err != nil && !errors.Is(err, kafkascram.ErrNotFound) {
			return err
		}
		return nil
	}
}

// testAccCheckMechanismServed checks what the SCRAM user resource's
// warning decides: whether some broker of the cluster in state serves a
// listener that accepts mechanism.
func testAccCheckMechanismServed(mechanism string, served bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id := s.RootModule().Resources[clusterResourceName].Primary.Attributes["cluster_id"]
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		w := (&scramUserResource{data: &providerData{aws: accEnv.clients}}).unservedMechanism(ctx, id, mechanism)
		if (w == "") != served {
			return fmt.Errorf("%s served by cluster %s: warning %q, want served=%v", mechanism, id, w, served)
		}
		return nil
	}
}
