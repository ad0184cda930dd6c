package provider

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/boot/bootstatus"
	"github.com/tributary/tributary/broker/security/tlsconf"
	"github.com/tributary/tributary/provider/internal/fleet"
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
// served certificates), and the apply renews the certificates in place,
// through each broker's sealed certificate secret and its certificate
// companion. Every broker then serves a certificate with another serial
// number, from the same CA, whose renewal is in the future, from the same
// instance and the same broker process (pid and start time) as before; no
// produce failed and every acknowledged record reads back; the next plan is
// empty.
func TestAccCluster_certRotation(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	config := rotationClusterConfig(name)
	served := map[int32]*x509.Certificate{}
	processes := map[string]string{}
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
				testAccRecordBrokerProcesses(processes),
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
				testAccCheckSameBrokerProcesses(processes),
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
			// Issued at launch or renewed in place, it names its node:
			// the other brokers bind its in-cluster requests to it.
			if id, ok, err := tlsconf.CertificateNodeID(c); err != nil || !ok || id != b.NodeID {
				return fmt.Errorf("broker %d serves a certificate naming node %d (named %v, %v; URIs %v)", b.NodeID, id, ok, err, c.URIs)
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

// testAccRecordBrokerProcesses records, per instance of the cluster's
// brokers, its broker process: pid and start time (from /proc) in the local
// cloud, where an instance is a process; elsewhere only the instance ids.
func testAccRecordBrokerProcesses(into map[string]string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		got, err := brokerProcesses(s)
		if err != nil {
			return err
		}
		maps.Copy(into, got)
		return nil
	}
}

// testAccCheckSameBrokerProcesses checks that the brokers run on the same
// instances, in the same processes, as recorded.
func testAccCheckSameBrokerProcesses(before map[string]string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		got, err := brokerProcesses(s)
		if err != nil {
			return err
		}
		if !maps.Equal(got, before) {
			return fmt.Errorf("the brokers' instances and processes changed: %v, before %v", got, before)
		}
		return nil
	}
}

func brokerProcesses(s *terraform.State) (map[string]string, error) {
	o, err := observedCluster(s)
	if err != nil {
		return nil, err
	}
	pids := map[string]int{}
	if accEnv.cloud != nil {
		for _, i := range accEnv.cloud.EC2().Instances() {
			pids[i.ID] = i.PID
		}
	}
	out := map[string]string{}
	for _, b := range o.Brokers {
		if !b.HasLiveInstance() {
			return nil, fmt.Errorf("broker %d has no live instance", b.NodeID)
		}
		out[b.InstanceID] = ""
		if accEnv.cloud == nil {
			continue
		}
		pid := pids[b.InstanceID]
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if pid == 0 || err != nil {
			return nil, fmt.Errorf("broker %d (instance %s) has no running process (pid %d): %v", b.NodeID, b.InstanceID, pid, err)
		}
		// Field 22 is the start time; the command name (field 2) may hold
		// spaces, so fields are counted after its closing parenthesis.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 20 {
			return nil, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
		}
		out[b.InstanceID] = fmt.Sprintf("pid %d started %s", pid, fields[19])
	}
	return out, nil
}

// TestAccCluster_certRenewedThenHealed: a renewal in place reseals the
// brokers' launch templates with the pairs it delivered, without a roll.
// Once the renewal is applied, broker 2's instance is terminated and its
// Auto Scaling group launches another from the resealed version; that
// instance's boot document holds the renewed certificate (its boot status
// names the document's certificate by the renewal's serial: the secret's
// expires no later), so the broker serves it from its first connection. The
// plan after that is empty. Before the reseal the template kept the
// certificate of the create and the boot agent took the secret's instead
// (broker/boot's TestBootPrefersTheRenewedCertificate covers that path).
func TestAccCluster_certRenewedThenHealed(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	config := rotationClusterConfig(name)
	first := map[int32]*x509.Certificate{}
	renewed := map[int32]*x509.Certificate{}
	var before []brokerIdentity
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeTestCheckFunc(
				testAccCheckServedCertificates(first, nil),
			),
		}, {
			PreConfig: func() {
				var due time.Time
				for _, c := range first {
					if at := pki.CertificateRenewalTime(c); at.After(due) {
						due = at
					}
				}
				t.Logf("waiting %s for the broker certificates to pass two thirds of their validity", time.Until(due).Round(time.Second))
				time.Sleep(time.Until(due) + time.Second)
			},
			Config: config,
			Check: resource.ComposeTestCheckFunc(
				testAccCheckServedCertificates(renewed, first),
				testAccRecordBrokers(&before),
				testAccTerminateBroker(2),
				testAccCheckBootTookRenewed(2, &before, renewed),
			),
		}},
	})
}

// testAccCheckBootTookRenewed waits (healBound at most) until the broker
// runs on another instance than before and completes a TLS handshake on
// its listener, then checks that the first certificate it served is the
// renewed one, and that its boot status's secrets step says its boot
// document held it (the template was resealed with the renewed pair).
func testAccCheckBootTookRenewed(nodeID int32, before *[]brokerIdentity, renewed map[int32]*x509.Certificate) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		var was string
		for _, b := range *before {
			if b.NodeID == nodeID {
				was = b.InstanceID
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), healBound)
		defer cancel()
		var b *fleet.Broker
		var first *x509.Certificate
		for first == nil {
			o, err := testFleet().Observe(ctx, id)
			if err != nil {
				return err
			}
			got, ok := o.Broker(nodeID)
			if ok && got.InstanceID != was && got.InstanceState == "running" {
				hctx, hcancel := context.WithTimeout(ctx, 3*time.Second)
				if c, err := servedCertificate(hctx, endpoint(got.PrivateIP, tlsPort)); err == nil {
					b, first = got, c
				}
				hcancel()
			}
			if first != nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("broker %d did not serve TLS on a new instance within %s", nodeID, healBound)
			case <-time.After(200 * time.Millisecond):
			}
		}
		if first.SerialNumber.Cmp(renewed[nodeID].SerialNumber) != 0 {
			return fmt.Errorf("broker %d's new instance %s served certificate %s (expires %s) first, not the renewed %s",
				nodeID, b.InstanceID, serial(first.SerialNumber), first.NotAfter.Format(time.RFC3339), serial(renewed[nodeID].SerialNumber))
		}
		resp, err := http.Get("http://" + net.JoinHostPort(b.PrivateIP, "11001") + "/bootz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var st bootstatus.Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return fmt.Errorf("broker %d's /bootz: %w", nodeID, err)
		}
		if st.InstanceID != b.InstanceID {
			return fmt.Errorf("broker %d's boot status is instance %s's, not %s's", nodeID, st.InstanceID, b.InstanceID)
		}
		var detail string
		for _, step := range st.Steps {
			if step.Step == bootstatus.StepSecrets {
				detail = step.Detail
			}
		}
		if want := fmt.Sprintf("the document's certificate (serial %s)", renewed[nodeID].SerialNumber.Text(16)); !strings.Contains(detail, want) {
			return fmt.Errorf("broker %d's instance %s booted from a document without the renewed certificate: secrets step %q, want %q",
				nodeID, b.InstanceID, detail, want)
		}
		return nil
	}
}

// rotationClusterConfig is a TLS cluster whose certificates last
// rotationValidity, so that the tests see them come due for renewal.
func rotationClusterConfig(name string) string {
	return testAccProviderConfig() + fmt.Sprintf(`
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
}
