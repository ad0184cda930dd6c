package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/provider/internal/pki"
)

// rotationValidity is the certificate validity of TestAccCluster_certRotation:
// long enough for the create and its checks to end before two thirds of it
// (a refresh then would already renew), short enough to wait for, and
// leaving the roll a third of it (80 s) before the old certificates expire.
const rotationValidity = 4 * time.Minute

// TestAccCluster_certRotation builds a TLS cluster whose broker
// certificates are valid for four minutes, starts a producer with acks=all
// through bootstrap_brokers_tls, waits until the certificates the brokers
// serve pass two thirds of their validity, and plans again with the same
// configuration: the plan is an in-place update (the refresh read the
// served certificates), and the apply replaces the brokers one at a time
// with new certificates. Every broker then serves a certificate with
// another serial number, from the same CA, whose renewal is in the future;
// no produce failed and every acknowledged record reads back; the next plan
// is empty.
func TestAccCluster_certRotation(t *testing.T) {
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	config := testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name                 = %[1]q
  broker_version       = %[2]q
  instance_type        = %[3]q
  client_cidr_blocks   = ["127.0.0.0/8"]
  certificate_validity = %[4]q

  timeouts {
    create = "3m"
    update = "6m"
    delete = "4m"
  }
}
`, name, accEnv.version, accInstanceType(), rotationValidity.String())
	served := map[int32]*x509.Certificate{}
	prod := &backgroundProducer{topic: "rotation", bootstrapAttr: "bootstrap_brokers_tls", opts: func(s *terraform.State) []kgo.Opt {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(s.RootModule().Resources[clusterResourceName].Primary.Attributes["certificate_authority_pem"]))
		return []kgo.Opt{kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})}
	}}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr(clusterResourceName, "certificate_validity", "4m0s"),
				testAccCheckServedCertificates(served, nil),
				prod.start(),
			),
		}, {
			// Nothing changed in the configuration: the renewal is due.
			PreConfig: func() {
				var due time.Time
				for _, c := range served {
					if at := pki.CertificateRenewalTime(c); at.After(due) {
						due = at
					}
				}
				t.Logf("waiting %s for the broker certificates to pass two thirds of their validity", time.Until(due).Round(time.Second))
				time.Sleep(time.Until(due) + time.Second)
			},
			Config: config,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(clusterResourceName, plancheck.ResourceActionUpdate),
				plancheck.ExpectUnknownValue(clusterResourceName, tfjsonpath.New("broker_nodes")),
			}},
			Check: resource.ComposeTestCheckFunc(
				testAccCheckServedCertificates(map[int32]*x509.Certificate{}, served),
				prod.stopAndVerify(t),
			),
		}},
	})
}

// testAccCheckServedCertificates reads the certificate every broker serves
// on its TLS listener into into, checks that the cluster CA signed it and
// that its renewal is in the future, and, with before, that each is another
// certificate than the broker served before.
func testAccCheckServedCertificates(into, before map[int32]*x509.Certificate) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		cas, err := pki.ParseCertificates(s.RootModule().Resources[clusterResourceName].Primary.Attributes["certificate_authority_pem"])
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, b := range o.Brokers {
			c, err := servedCertificate(ctx, endpoint(b.PrivateIP, tlsPort))
			if err != nil {
				return fmt.Errorf("broker %d: %w", b.NodeID, err)
			}
			if err := c.CheckSignatureFrom(cas[0]); err != nil {
				return fmt.Errorf("broker %d serves a certificate the cluster CA did not sign: %w", b.NodeID, err)
			}
			if at := pki.CertificateRenewalTime(c); !time.Now().Before(at) {
				return fmt.Errorf("broker %d serves a certificate due for renewal since %s", b.NodeID, at.Format(time.RFC3339))
			}
			if _, validity := pki.IssuedFor(c); validity != rotationValidity {
				return fmt.Errorf("broker %d serves a certificate issued for %s, want certificate_validity %s", b.NodeID, validity, rotationValidity)
			}
			if old, ok := before[b.NodeID]; ok && old.SerialNumber.Cmp(c.SerialNumber) == 0 {
				return fmt.Errorf("broker %d still serves certificate %s", b.NodeID, serial(c.SerialNumber))
			}
			into[b.NodeID] = c
		}
		if len(into) == 0 {
			return fmt.Errorf("no broker serves a certificate")
		}
		return nil
	}
}

func serial(n *big.Int) string { return n.Text(16) }
