package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/internal/privatecatest"
	"github.com/tributary/tributary/provider/internal/pki"
)

// privateCA makes an ACTIVE root CA in the test's AWS Private CA and deletes
// it when the test ends.
func privateCA(t *testing.T, name string) *privatecatest.CA {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca, err := privatecatest.ActivateRootCA(ctx, accEnv.clients.ACMPCA, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := privatecatest.Delete(ctx, accEnv.clients.ACMPCA, ca.ARN); err != nil {
			t.Errorf("deleting the test's Private CA: %v", err)
		}
	})
	return ca
}

func privateCAConfig(name string, admin iamUser, arns ...string) string {
	quoted := make([]string, len(arns))
	for i, a := range arns {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	return providerConfigAs(admin) + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  client_cidr_blocks = ["127.0.0.0/8"]

  client_authentication {
    sasl {
      iam = true
    }
    tls {
      certificate_authority_arns = [%[4]s]
    }
  }

  timeouts {
    create = "4m"
    update = "8m"
    delete = "4m"
  }
}
`, name, accEnv.version, accInstanceType(), strings.Join(quoted, ", "))
}

// TestAccCluster_mtlsPrivateCA builds a cluster whose mutual TLS listener
// trusts an AWS Private CA named by its ARN (as with MSK), produces and
// consumes through 9094 with a client certificate that CA issued, and checks
// that certificates of another CA, and of a second Private CA not yet named,
// are refused. Then the second CA's ARN is added: an in-place roll, during
// which a producer with the first CA's certificate writes with acks=all
// through 9094 without a failure; afterwards every broker accepts both CAs'
// certificates.
func TestAccCluster_mtlsPrivateCA(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	admin := createIAMUser(t, name+"-admin", adminPolicy)
	first, second := privateCA(t, name+"-first"), privateCA(t, name+"-second")
	ctx := context.Background()
	firstCert, err := privatecatest.IssueClientCertificate(ctx, accEnv.clients.ACMPCA, first.ARN, "pca-app")
	if err != nil {
		t.Fatal(err)
	}
	secondCert, err := privatecatest.IssueClientCertificate(ctx, accEnv.clients.ACMPCA, second.ARN, "pca-other")
	if err != nil {
		t.Fatal(err)
	}
	outsider, err := pki.NewCA("outsider", name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	outsiderLeaf, err := outsider.Issue(pki.Request{Subject: pkix.Name{CommonName: "pca-app"}, NotBefore: time.Now(), Validity: time.Hour, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	outsiderCert, err := tls.X509KeyPair([]byte(outsiderLeaf.CertPEM), []byte(outsiderLeaf.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	trust := func(s *terraform.State, certs ...tls.Certificate) *tls.Config {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(s.RootModule().Resources[clusterResourceName].Primary.Attributes["certificate_authority_pem"]))
		return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, Certificates: certs}
	}
	rolling := &backgroundProducer{topic: "pca-rolling", bootstrapAttr: "bootstrap_brokers_tls", opts: func(s *terraform.State) []kgo.Opt {
		return []kgo.Opt{kgo.DialTLSConfig(trust(s, firstCert))}
	}}

	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config: privateCAConfig(name, admin, first.ARN),
			Check: resource.ComposeTestCheckFunc(
				resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers_tls", portList(9094)),
				testAccAllowPrincipal(admin, "User:CN=pca-app", "pca-", trust),
				testAccCheckPrivateCAProduces(firstCert, trust),
				testAccCheckClientCertificates(trust, map[string]tls.Certificate{"the first Private CA's": firstCert},
					map[string]tls.Certificate{"the second Private CA's (not named yet)": secondCert, "another CA's": outsiderCert}),
				rolling.start(),
			),
		}, {
			Config:           privateCAConfig(name, admin, first.ARN, second.ARN),
			ConfigPlanChecks: expectInPlaceUpdate(),
			Check: resource.ComposeTestCheckFunc(
				rolling.stopAndVerify(t),
				testAccCheckClientCertificates(trust, map[string]tls.Certificate{"the first Private CA's": firstCert, "the second Private CA's": secondCert},
					map[string]tls.Certificate{"another CA's": outsiderCert}),
			),
		}},
	})
}

// testAccAllowPrincipal lets a principal do anything with the topics of a
// prefix, through the IAM listener as the administrator.
func testAccAllowPrincipal(admin iamUser, principal, prefix string, trust func(*terraform.State, ...tls.Certificate) *tls.Config) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs := s.RootModule().Resources[clusterResourceName].Primary.Attributes
		cl, err := kafkaClient(rs["bootstrap_brokers_sasl_iam"], kgo.DialTLSConfig(trust(s)), kgo.SASL(iamauth.FranzGoMechanism(awsConfigOf(admin), rs["cluster_id"])))
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		acls := kadm.NewACLs().Allow(principal).AllowHosts().Topics(prefix).Groups("*").
			Operations(kadm.OpAll).ResourcePatternType(kadm.ACLPatternPrefixed)
		results, err := kadm.NewClient(cl).CreateACLs(ctx, acls)
		if err != nil {
			return fmt.Errorf("allowing %s topics %s*: %w", principal, prefix, err)
		}
		for _, r := range results {
			if r.Err != nil {
				return fmt.Errorf("allowing %s topics %s*: %w", principal, prefix, r.Err)
			}
		}
		return nil
	}
}

// testAccCheckPrivateCAProduces produces and consumes through 9094 with a
// client certificate, once every broker applied the ACLs that allow it.
func testAccCheckPrivateCAProduces(cert tls.Certificate, trust func(*terraform.State, ...tls.Certificate) *tls.Config) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		bootstrap := s.RootModule().Resources[clusterResourceName].Primary.Attributes["bootstrap_brokers_tls"]
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		mtls := kgo.DialTLSConfig(trust(s, cert))
		if err := createTopic(ctx, bootstrap, "pca-orders", mtls); err != nil {
			return fmt.Errorf("creating pca-orders with the Private CA's certificate: %w", err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := produceOne(c, bootstrap, "pca-orders", mtls)
			cancel()
			if err == nil {
				break
			}
			refused := errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed)
			if !refused || time.Now().After(deadline) {
				return fmt.Errorf("producing through %s with the Private CA's certificate: %w", bootstrap, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		return produceConsume(ctx, bootstrap, "pca-orders", 100, 100, mtls)
	}
}

// testAccCheckClientCertificates connects to every broker's 9094 with each
// certificate: those of accepted must be let in, those of refused not.
func testAccCheckClientCertificates(trust func(*terraform.State, ...tls.Certificate) *tls.Config, accepted, refused map[string]tls.Certificate) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		for _, b := range o.Brokers {
			addr := net.JoinHostPort(b.PrivateIP, "9094")
			for what, cert := range accepted {
				if err := metadataOnce(addr, kgo.DialTLSConfig(trust(s, cert))); err != nil {
					return fmt.Errorf("broker %d refused %s client certificate: %w", b.NodeID, what, err)
				}
			}
			for what, cert := range refused {
				if err := metadataOnce(addr, kgo.DialTLSConfig(trust(s, cert))); err == nil {
					return fmt.Errorf("broker %d accepted %s client certificate", b.NodeID, what)
				}
			}
		}
		return nil
	}
}

// TestAccCluster_privateCAPlan needs no running broker, so it runs against
// moto too: a CA that has no certificate yet (PENDING_CERTIFICATE) is refused
// at plan, naming it; an ACTIVE one's certificate reaches every broker's boot
// document as a client CA of the mutual TLS listener, which requires client
// certificates.
func TestAccCluster_privateCAPlan(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	name := accName(t)
	active := privateCA(t, name+"-active")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pending, err := privatecatest.CreatePending(ctx, accEnv.clients.ACMPCA, name+"-pending")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := privatecatest.Delete(ctx, accEnv.clients.ACMPCA, pending); err != nil {
			t.Errorf("deleting the test's pending Private CA: %v", err)
		}
	})
	config := func(arn string) string {
		return testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  wait_for_brokers   = false
  client_cidr_blocks = ["127.0.0.0/8"]

  client_authentication {
    tls {
      certificate_authority_arns = [%[4]q]
    }
  }

  timeouts {
    create = "4m"
    delete = "4m"
  }
}
`, name, accEnv.version, accInstanceType(), arn)
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config:      config(pending),
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(`(?s)Reading the client CAs from AWS Private CA.*` + regexp.QuoteMeta(pending)),
		}, {
			Config: config(active.ARN),
			Check: resource.ComposeTestCheckFunc(
				resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers_tls", portList(9094)),
				testAccCheckDocumentsTrust(active.CertPEM),
			),
		}},
	})
}

// testAccCheckDocumentsTrust checks that every broker's boot document (its
// launch template's user data) trusts a CA for client certificates on a
// listener that requires them.
func testAccCheckDocumentsTrust(caPEM string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		want, err := pki.ParseCertificates(caPEM)
		if err != nil {
			return err
		}
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		if len(o.Brokers) == 0 {
			return errors.New("no brokers")
		}
		for _, b := range o.Brokers {
			if b.Launch == nil {
				return fmt.Errorf("broker %d: no launch template version", b.NodeID)
			}
			doc, err := bootconfig.Decode(b.Launch.UserData)
			if err != nil {
				return fmt.Errorf("broker %d: %w", b.NodeID, err)
			}
			if doc.TLS == nil {
				return fmt.Errorf("broker %d: the boot document has no TLS settings", b.NodeID)
			}
			got, err := pki.ParseCertificates(doc.TLS.ClientCertificateAuthoritiesPEM)
			if err != nil {
				return fmt.Errorf("broker %d: client CAs: %w", b.NodeID, err)
			}
			if len(got) != 1 || !got[0].Equal(want[0]) {
				return fmt.Errorf("broker %d trusts %d client CAs, not exactly the Private CA's certificate", b.NodeID, len(got))
			}
			required := false
			for _, l := range doc.Listeners {
				required = required || (l.Port == 9094 && l.ClientAuth == "required")
			}
			if !required {
				return fmt.Errorf("broker %d: 9094 does not require client certificates: %+v", b.NodeID, doc.Listeners)
			}
		}
		return nil
	}
}
