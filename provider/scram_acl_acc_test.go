package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tributary/tributary/provider/internal/kafkascram"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	fscram "github.com/twmb/franz-go/pkg/sasl/scram"
)

// scramOneApplyConfig is a cluster with SASL/SCRAM and IAM for clients
// (the provider gets in with its IAM identity), two topics, a SCRAM user
// and, with acl, an ACL that lets the user write one of the topics.
func scramOneApplyConfig(admin iamUser, name, secretARN string, acl bool) string {
	cfg := providerConfigAs(admin) + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  client_cidr_blocks = ["127.0.0.0/8"]

  client_authentication {
    sasl {
      scram = true
      iam   = true
    }
  }

  timeouts {
    create = "4m"
    update = "6m"
    delete = "4m"
  }
}

resource "tributary_topic" "orders" {
  cluster_id         = tributary_cluster.test.cluster_id
  name               = "orders"
  partitions         = 3
  replication_factor = 3
}

resource "tributary_topic" "other" {
  cluster_id         = tributary_cluster.test.cluster_id
  name               = "other"
  partitions         = 1
  replication_factor = 3
}

resource "tributary_scram_user" "app" {
  cluster_id          = tributary_cluster.test.cluster_id
  name                = "app"
  password_wo         = "app-secret-1"
  password_wo_version = 1
}

resource "tributary_scram_user" "vault" {
  cluster_id          = tributary_cluster.test.cluster_id
  name                = "vault"
  password_secret_arn = %[4]q
}
`, name, accEnv.version, accInstanceType(), secretARN)
	if acl {
		cfg += `
resource "tributary_acl" "app_write" {
  cluster_id    = tributary_cluster.test.cluster_id
  resource_type = "TOPIC"
  resource_name = tributary_topic.orders.name
  principal     = "User:${tributary_scram_user.app.name}"
  operation     = "WRITE"
}
`
	}
	return cfg
}

// TestAccCluster_scramOneApply creates, in one apply, a cluster with
// SASL/SCRAM and IAM, two topics, a SCRAM user and an ACL letting the user
// write one topic; then produces AS the user with franz-go's SCRAM-SHA-512
// through the cluster's SCRAM listener (9096, TLS): allowed on that topic,
// TOPIC_AUTHORIZATION_FAILED on the other. A second user takes its password
// from a Secrets Manager secret (password_secret_arn) and logs in with it;
// a rotation of the secret shows in the next plan and, applied, replaces
// the password. With the ACL removed the first user is refused on the
// first topic too.
func TestAccCluster_scramOneApply(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	admin := createIAMUser(t, name+"-admin", adminPolicy)
	secretARN := createSCRAMSecret(t, "AmazonMSK_"+name, "vault", "vault-secret-1")
	const vaultUser = "tributary_scram_user.vault"
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: scramOneApplyConfig(admin, name, secretARN, true),
				Check: resource.ComposeTestCheckFunc(
					resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers_sasl_scram", portList(9096)),
					resource.TestCheckResourceAttr(clusterResourceName, "bootstrap_brokers", ""),
					testAccCheckProduceAsScram("app", "app-secret-1", "orders", nil),
					testAccCheckProduceAsScram("app", "app-secret-1", "other", kerr.TopicAuthorizationFailed),
					// The secret's user logs in (then has no ACL).
					testAccCheckProduceAsScram("vault", "vault-secret-1", "other", kerr.TopicAuthorizationFailed),
					testAccCheckNoSecretInState("vault-secret-1"),
					resource.TestCheckResourceAttrSet(vaultUser, "password_secret_version_id"),
					testAccCheckMechanismServed(kafkascram.SHA512, true),
					testAccCheckMechanismServed(kafkascram.SHA256, true),
				),
			},
			{
				// The secret is rotated outside Terraform: the next plan
				// sets the new password.
				Config:             scramOneApplyConfig(admin, name, secretARN, true),
				Check:              testAccRotateSCRAMSecret(t, secretARN, "vault", "vault-secret-2"),
				ExpectNonEmptyPlan: true,
			},
			{
				Config: scramOneApplyConfig(admin, name, secretARN, true),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(vaultUser, plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeTestCheckFunc(
					testAccCheckProduceAsScram("vault", "vault-secret-2", "other", kerr.TopicAuthorizationFailed),
					testAccCheckProduceAsScram("vault", "vault-secret-1", "other", kerr.SaslAuthenticationFailed),
				),
			},
			{
				Config: scramOneApplyConfig(admin, name, secretARN, false),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("tributary_acl.app_write", plancheck.ResourceActionDestroy),
				}},
				Check: testAccCheckProduceAsScram("app", "app-secret-1", "orders", kerr.TopicAuthorizationFailed),
			},
		},
	})
}

// createSCRAMSecret stores a SCRAM user's password in Secrets Manager in
// Amazon MSK's format, deleted when the test ends.
func createSCRAMSecret(t *testing.T, name, user, password string) string {
	t.Helper()
	ctx := context.Background()
	value, _ := json.Marshal(map[string]string{"username": user, "password": password})
	out, err := accEnv.clients.SecretsManager.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(string(value))})
	if err != nil {
		t.Fatalf("creating secret %s: %v", name, err)
	}
	t.Cleanup(func() {
		_, _ = accEnv.clients.SecretsManager.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: out.ARN, ForceDeleteWithoutRecovery: aws.Bool(true)})
	})
	return aws.ToString(out.ARN)
}

// testAccRotateSCRAMSecret puts a new password in the secret, as a
// rotation would.
func testAccRotateSCRAMSecret(t *testing.T, arn, user, password string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		value, _ := json.Marshal(map[string]string{"username": user, "password": password})
		_, err := accEnv.clients.SecretsManager.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String(string(value))})
		return err
	}
}

// testAccCheckProduceAsScram produces one record as a SCRAM-SHA-512 user
// through bootstrap_brokers_sasl_scram, trusting only the cluster CA, and
// checks the outcome: success for want nil, else that error.
func testAccCheckProduceAsScram(user, password, topic string, want error) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs := s.RootModule().Resources[clusterResourceName].Primary.Attributes
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(rs["certificate_authority_pem"])) {
			return errors.New("certificate_authority_pem holds no certificate")
		}
		bootstrap := rs["bootstrap_brokers_sasl_scram"]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := produceOne(ctx, bootstrap, topic,
			kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
			kgo.SASL(fscram.Auth{User: user, Pass: password}.AsSha512Mechanism()))
		switch {
		case want == nil && err != nil:
			return fmt.Errorf("producing to %s as %s through %s: %w", topic, user, bootstrap, err)
		case want != nil && !errors.Is(err, want):
			return fmt.Errorf("producing to %s as %s through %s: %v, want %v", topic, user, bootstrap, err, want)
		}
		return nil
	}
}
