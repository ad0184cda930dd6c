package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	fscram "github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/pki"
)

// lockedDownCluster is a cluster whose clients must authenticate with what
// auth says, and no IAM: the provider (root credentials of the test
// environment, no kafka-cluster policy involved) manages it with its own
// login; a topic and ACLs for User:alice and for the certificate subject
// CN=app,OU=payments in the same apply.
func lockedDownCluster(name, auth string) string {
	return testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  client_cidr_blocks = ["127.0.0.0/8"]

  client_authentication {
%[4]s
  }

  timeouts {
    create = "4m"
    update = "6m"
    delete = "4m"
  }
}

resource "tributary_acl" "alice" {
  cluster_id    = tributary_cluster.test.cluster_id
  resource_type = "TOPIC"
  resource_name = tributary_topic.test.name
  principal     = "User:alice"
  operation     = "ALL"
}

resource "tributary_acl" "app" {
  cluster_id    = tributary_cluster.test.cluster_id
  resource_type = "TOPIC"
  resource_name = tributary_topic.test.name
  principal     = "User:CN=app,OU=payments"
  operation     = "ALL"
}
`, name, accEnv.version, accInstanceType(), auth) + topicBlock("orders", 3, 3, map[string]string{"min.insync.replicas": "2"})
}

// TestAccCluster_scram builds a SASL/SCRAM-only cluster (nothing
// unauthenticated, no IAM) with a topic, a tributary_scram_user and its ACL
// in one apply: the provider logs in with the SCRAM administrator it made
// (a super user; its password only in the resource's private state, the
// brokers given the salted form in the sealed secrets, the provider's copy
// sealed for the provider alone). Alice produces and consumes with acks=all
// through bootstrap_brokers_sasl_scram; a wrong password is refused; no
// instance's user data holds the admin password or a private key; the
// provider still manages the cluster (the next plan is empty, a refresh
// reads the topic).
func TestAccCluster_scram(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	config := lockedDownCluster(name, `    sasl {
      scram = true
    }`) + scramUserBlock("tributary_cluster.test.cluster_id", 1, 0, "alice-password-1")
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr(clusterResourceName, "bootstrap_brokers", ""),
				resource.TestCheckResourceAttr(clusterResourceName, "bootstrap_brokers_tls", ""),
				resource.TestCheckResourceAttr(clusterResourceName, "bootstrap_brokers_sasl_iam", ""),
				resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers_sasl_scram", portList(9096)),
				testAccCheckNoSecretInUserData,
				testAccCheckProviderLoginSealed(true, false),
				testAccCheckSCRAMTraffic(),
			),
		}},
	})
}

// TestAccCluster_mtls builds a mutual-TLS-only cluster (a client CA, nothing
// unauthenticated, no IAM) with a topic and ACLs in one apply: the provider
// authenticates with a client certificate of the cluster CA it issued
// itself (a super user; sealed for the provider alone in every boot
// document). A client certificate of the client CA produces and consumes
// with acks=all through bootstrap_brokers_tls; a client without one is
// refused; the provider still manages the cluster.
func TestAccCluster_mtls(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	clientCA, err := pki.NewCA("clients", name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	app, err := clientCA.Issue(pki.Request{
		Subject:   pkix.Name{CommonName: "app", OrganizationalUnit: []string{"payments"}},
		NotBefore: time.Now(), Validity: time.Hour, Client: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	config := lockedDownCluster(name, fmt.Sprintf(`    tls {
      certificate_authority_pems = [%q]
    }`, clientCA.CertPEM))
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr(clusterResourceName, "bootstrap_brokers_sasl_scram", ""),
				resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers_tls", portList(9094)),
				testAccCheckNoSecretInUserData,
				testAccCheckProviderLoginSealed(false, true),
				testAccCheckMTLSTraffic(app),
			),
		}},
	})
}

// testAccCheckProviderLoginSealed checks every broker's user data: the
// provider's login is there sealed (ProviderSecrets under the provider's
// encryption context), never in clear, and the document names the
// provider's principals as super users.
func testAccCheckProviderLoginSealed(scramLogin, certificate bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		for _, b := range o.Brokers {
			out, err := accEnv.clients.EC2.DescribeInstanceAttribute(context.Background(), &ec2.DescribeInstanceAttributeInput{
				InstanceId: aws.String(b.InstanceID), Attribute: ec2types.InstanceAttributeNameUserData,
			})
			if err != nil {
				return err
			}
			raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.UserData.Value))
			if err != nil {
				return err
			}
			doc, err := bootconfig.Decode(raw)
			if err != nil {
				return err
			}
			if doc.ProviderSecrets == nil || doc.ProviderSecrets.EncryptionContext[bootconfig.ContextKeyPurpose] != bootconfig.PurposeProvider {
				return fmt.Errorf("broker %d: no provider login sealed for the provider: %+v", b.NodeID, doc.ProviderSecrets)
			}
			for _, clear := range []string{"scram_password", "client_key_pem"} {
				if strings.Contains(string(raw), clear) {
					return fmt.Errorf("broker %d: the user data holds %s in clear", b.NodeID, clear)
				}
			}
			want := map[string]bool{"User:tributary-admin": scramLogin, "User:CN=tributary-admin,OU=" + o.ClusterID + ",O=Tributary": certificate}
			for p, on := range want {
				has := strings.Contains(strings.Join(doc.SuperUsers, ";"), p)
				if has != on {
					return fmt.Errorf("broker %d: super users %v, want %s named %v", b.NodeID, doc.SuperUsers, p, on)
				}
			}
		}
		return nil
	}
}

// clusterTrust is TLS trusting the cluster's CA.
func clusterTrust(s *terraform.State) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(s.RootModule().Resources[clusterResourceName].Primary.Attributes["certificate_authority_pem"]))
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// produceWhenAllowed produces one record, retrying while the brokers still
// apply the ACLs the apply just wrote, within a bound.
func produceWhenAllowed(ctx context.Context, bootstrap, topic string, opts ...kgo.Opt) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := produceOne(c, bootstrap, topic, opts...)
		cancel()
		if err == nil {
			return nil
		}
		refused := errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed)
		if !refused || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// testAccCheckSCRAMTraffic produces and consumes as alice through the SCRAM
// listener and checks that a wrong password is refused.
func testAccCheckSCRAMTraffic() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		bootstrap := s.RootModule().Resources[clusterResourceName].Primary.Attributes["bootstrap_brokers_sasl_scram"]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		as := func(password string) []kgo.Opt {
			return []kgo.Opt{kgo.DialTLSConfig(clusterTrust(s)), kgo.SASL(fscram.Auth{User: "alice", Pass: password}.AsSha512Mechanism())}
		}
		if err := produceWhenAllowed(ctx, bootstrap, "orders", as("alice-password-1")...); err != nil {
			return fmt.Errorf("alice through %s: %w", bootstrap, err)
		}
		if err := produceConsume(ctx, bootstrap, "orders", 0, 100, as("alice-password-1")...); err != nil {
			return fmt.Errorf("alice through %s: %w", bootstrap, err)
		}
		c, cancel2 := context.WithTimeout(ctx, 15*time.Second)
		defer cancel2()
		if err := produceOne(c, bootstrap, "orders", as("wrong")...); err == nil {
			return errors.New("a wrong SCRAM password produced")
		}
		return nil
	}
}

// testAccCheckMTLSTraffic produces and consumes with the client CA's
// certificate through the TLS listener and checks that a client without a
// certificate is refused.
func testAccCheckMTLSTraffic(app *pki.Leaf) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		bootstrap := s.RootModule().Resources[clusterResourceName].Primary.Attributes["bootstrap_brokers_tls"]
		cert, err := tls.X509KeyPair([]byte(app.CertPEM), []byte(app.KeyPEM))
		if err != nil {
			return err
		}
		cfg := clusterTrust(s)
		cfg.Certificates = []tls.Certificate{cert}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := produceWhenAllowed(ctx, bootstrap, "orders", kgo.DialTLSConfig(cfg)); err != nil {
			return fmt.Errorf("mutual TLS through %s: %w", bootstrap, err)
		}
		if err := produceConsume(ctx, bootstrap, "orders", 0, 100, kgo.DialTLSConfig(cfg)); err != nil {
			return fmt.Errorf("mutual TLS through %s: %w", bootstrap, err)
		}
		host, _, _ := net.SplitHostPort(strings.Split(bootstrap, ",")[0])
		if err := metadataOnce(net.JoinHostPort(host, "9094"), kgo.DialTLSConfig(clusterTrust(s))); err == nil {
			return errors.New("a TLS client without a certificate was served")
		}
		return nil
	}
}
