package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/provider/internal/pki"
)

// TestAccCluster_importedTLSRoll builds a cluster with MSK's default
// encryption (TLS to clients and between brokers, the CA made by the
// provider), writes 100 records through bootstrap_brokers_tls, then
// imports the cluster at a second address, forgets the first (so the
// cluster is managed only by a state that never held the CA's private
// key) and changes a static broker setting there, which rolls every
// broker. The import's refresh read the CA sealed for the provider in the
// boot documents, so the plan is an in-place update, not a refusal; after
// the apply every broker runs on a new instance and serves a certificate
// signed by the original CA, certificate_authority_pem is unchanged, and a
// client trusting only the original CA bundle reads the first 100 records
// and writes and reads 100 more.
func TestAccCluster_importedTLSRoll(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	block := func(address, extra string) string {
		return fmt.Sprintf(`
resource "tributary_cluster" %[1]q {
  name               = %[2]q
  broker_version     = %[3]q
  instance_type      = %[4]q
  client_cidr_blocks = ["127.0.0.0/8"]
%[5]s
  timeouts {
    create = "4m"
    update = "6m"
    delete = "4m"
  }
}
`, address, name, accEnv.version, accInstanceType(), extra)
	}
	created := testAccProviderConfig() + block("test", "")
	const importedName = "tributary_cluster.imported"
	var (
		clusterID, caPEM string
		before           []brokerIdentity
	)
	trust := func() kgo.Opt {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(caPEM))
		return kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config: created,
			Check: resource.ComposeTestCheckFunc(
				testAccRecordBrokers(&before),
				func(s *terraform.State) error {
					a := s.RootModule().Resources[clusterResourceName].Primary.Attributes
					clusterID, caPEM = a["cluster_id"], a["certificate_authority_pem"]
					if !strings.HasPrefix(caPEM, "-----BEGIN CERTIFICATE-----") {
						return fmt.Errorf("certificate_authority_pem = %q", caPEM)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					bootstrap := a["bootstrap_brokers_tls"]
					if err := createTopic(ctx, bootstrap, "kept", trust()); err != nil {
						return err
					}
					return produceConsume(ctx, bootstrap, "kept", 0, 100, trust())
				},
			),
		}, {
			// terraform import into a state that has none of the private
			// state the creating apply kept.
			Config:             created + block("imported", ""),
			ResourceName:       importedName,
			ImportState:        true,
			ImportStatePersist: true,
			ImportStateIdFunc:  func(*terraform.State) (string, error) { return clusterID, nil },
		}, {
			// The cluster now belongs to the imported state alone, which
			// changes a static setting: every broker is rolled.
			Config: testAccProviderConfig() + block("imported", "  broker_config = {\n    \"num.partitions\" = \"4\"\n  }\n") +
				"\nremoved {\n  from = tributary_cluster.test\n\n  lifecycle {\n    destroy = false\n  }\n}\n",
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(importedName, plancheck.ResourceActionUpdate),
				// A roll: the apply measures broker_load again.
				plancheck.ExpectUnknownValue(importedName, tfjsonpath.New("broker_load")),
			}},
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttrPtr(importedName, "certificate_authority_pem", &caPEM),
				resource.TestCheckResourceAttr(importedName, "broker_config.num.partitions", "4"),
				func(s *terraform.State) error {
					return checkRolledOnCA(clusterID, caPEM, before)
				},
				func(s *terraform.State) error {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					bootstrap := s.RootModule().Resources[importedName].Primary.Attributes["bootstrap_brokers_tls"]
					seen, err := consume(ctx, bootstrap, "kept", 100, trust())
					if err != nil {
						return fmt.Errorf("reading the records written before the roll with the original CA bundle: %w", err)
					}
					if !allSeen(seen, 0, 100) {
						return errors.New("records written before the roll are missing")
					}
					return produceConsume(ctx, bootstrap, "kept", 100, 100, trust())
				},
			),
		}},
	})
}

// checkRolledOnCA checks that every broker of the cluster runs on another
// instance than before and serves a certificate the CA signed.
func checkRolledOnCA(clusterID, caPEM string, before []brokerIdentity) error {
	o, err := testFleet().Observe(context.Background(), clusterID)
	if err != nil {
		return err
	}
	cas, err := pki.ParseCertificates(caPEM)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, was := range before {
		b, ok := o.Broker(was.NodeID)
		switch {
		case !ok:
			return fmt.Errorf("broker %d is gone", was.NodeID)
		case b.InstanceID == was.InstanceID || !b.HasLiveInstance():
			return fmt.Errorf("broker %d was not rolled onto a live instance (%s -> %s)", was.NodeID, was.InstanceID, b.InstanceID)
		}
		c, err := servedCertificate(ctx, endpoint(b.PrivateIP, tlsPort))
		if err != nil {
			return fmt.Errorf("broker %d: %w", b.NodeID, err)
		}
		if err := c.CheckSignatureFrom(cas[0]); err != nil {
			return fmt.Errorf("broker %d serves a certificate the original CA did not sign: %w", b.NodeID, err)
		}
	}
	return nil
}
