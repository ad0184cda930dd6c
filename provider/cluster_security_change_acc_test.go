package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/provider/internal/pki"
)

// authSettings are the security blocks of one step of
// TestAccCluster_authChangeInPlace.
type authSettings struct {
	clientBroker    string
	unauthenticated bool
	iam, scram      bool
	clientCAs       []string
}

func authChangeConfig(name string, admin iamUser, a authSettings) string {
	// Only what differs from the defaults is written, as a user would
	// (and as the import at the end reads it back).
	var auth strings.Builder
	if a.clientBroker != "TLS" {
		fmt.Fprintf(&auth, "  encryption_in_transit {\n    client_broker = %q\n  }\n", a.clientBroker)
	}
	auth.WriteString("  client_authentication {\n")
	if a.unauthenticated {
		auth.WriteString("    unauthenticated = true\n")
	}
	if a.iam || a.scram {
		auth.WriteString("    sasl {\n")
		if a.iam {
			auth.WriteString("      iam = true\n")
		}
		if a.scram {
			auth.WriteString("      scram = true\n")
		}
		auth.WriteString("    }\n")
	}
	if len(a.clientCAs) > 0 {
		quoted := make([]string, 0, len(a.clientCAs))
		for _, c := range a.clientCAs {
			quoted = append(quoted, fmt.Sprintf("%q", c))
		}
		fmt.Fprintf(&auth, "    tls {\n      certificate_authority_pems = [%s]\n    }\n", strings.Join(quoted, ", "))
	}
	auth.WriteString("  }\n")
	return providerConfigAs(admin) + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  client_cidr_blocks = ["127.0.0.0/8"]
%[4]s
  timeouts {
    create = "4m"
    update = "8m"
    delete = "4m"
  }
}
`, name, accEnv.version, accInstanceType(), auth.String()) + topicBlock("orders", 3, 3, map[string]string{"min.insync.replicas": "2"})
}

// TestAccCluster_authChangeInPlace changes a cluster's client security in
// place, step by step, as a user moves a plaintext cluster to MSK's
// locked-down default without downtime: PLAINTEXT -> TLS_PLAINTEXT -> TLS
// (unauthenticated) -> IAM turned on -> unauthenticated off with mutual TLS
// and SCRAM on -> a second client CA added and SCRAM off. Each step rolls the
// brokers one at a time (an in-place update, never a replacement) while a
// producer writes with acks=all through a listener served before and after
// the step; no produce may fail and every acknowledged record must read
// back. The provider, whose identity is an IAM user, manages the cluster and
// a topic throughout: each plan refreshes the topic through the listeners
// the brokers serve, and each roll reaches every broker through what it
// serves while the others still serve the old listeners.
func TestAccCluster_authChangeInPlace(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	admin := createIAMUser(t, name+"-admin", adminPolicy)
	caOne, err := pki.NewCA("clients-one", name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caTwo, err := pki.NewCA("clients-two", name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	trust := func(s *terraform.State) *tls.Config {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(s.RootModule().Resources[clusterResourceName].Primary.Attributes["certificate_authority_pem"]))
		return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	// The plaintext producer, then an anonymous TLS one (not idempotent:
	// once IAM is on it is allowed its topic by an ACL, not the cluster's
	// IdempotentWrite), then one with the administrator's IAM identity.
	plain := &backgroundProducer{topic: "auth-plaintext"}
	anonymous := &backgroundProducer{topic: "auth-tls", bootstrapAttr: "bootstrap_brokers_tls", opts: func(s *terraform.State) []kgo.Opt {
		return []kgo.Opt{kgo.DialTLSConfig(trust(s)), kgo.DisableIdempotentWrite()}
	}}
	withIAM := &backgroundProducer{topic: "auth-iam", bootstrapAttr: "bootstrap_brokers_sasl_iam", opts: func(s *terraform.State) []kgo.Opt {
		id := s.RootModule().Resources[clusterResourceName].Primary.Attributes["cluster_id"]
		return []kgo.Opt{kgo.DialTLSConfig(trust(s)), kgo.SASL(iamauth.FranzGoMechanism(awsConfigOf(admin), id))}
	}}
	step := func(a authSettings) string { return authChangeConfig(name, admin, a) }

	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config: step(authSettings{clientBroker: "PLAINTEXT", unauthenticated: true}),
			Check: resource.ComposeTestCheckFunc(
				resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers", portList(9092)),
				resource.TestCheckResourceAttr(clusterResourceName, "bootstrap_brokers_tls", ""),
				plain.start(),
			),
		}, {
			Config:           step(authSettings{clientBroker: "TLS_PLAINTEXT", unauthenticated: true}),
			ConfigPlanChecks: expectInPlaceUpdate(),
			Check: resource.ComposeTestCheckFunc(
				resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers", portList(9092)),
				resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers_tls", portList(9094)),
				testAccCheckClientPorts(9092, 9094),
				plain.stopAndVerify(t),
				testAccAllowAnonymous(anonymous.topic, trust),
				anonymous.start(),
			),
		}, {
			Config:           step(authSettings{clientBroker: "TLS", unauthenticated: true}),
			ConfigPlanChecks: expectInPlaceUpdate(),
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr(clusterResourceName, "bootstrap_brokers", ""),
				resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers_tls", portList(9094)),
				testAccCheckClientPorts(9094),
				testAccCheckPortClosed(9092),
			),
		}, {
			Config:           step(authSettings{clientBroker: "TLS", unauthenticated: true, iam: true}),
			ConfigPlanChecks: expectInPlaceUpdate(),
			Check: resource.ComposeTestCheckFunc(
				resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers_sasl_iam", portList(9098)),
				testAccCheckClientPorts(9094, 9098),
				anonymous.stopAndVerify(t),
				withIAM.start(),
			),
		}, {
			Config:           step(authSettings{clientBroker: "TLS", iam: true, scram: true, clientCAs: []string{caOne.CertPEM}}),
			ConfigPlanChecks: expectInPlaceUpdate(),
			Check: resource.ComposeTestCheckFunc(
				resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers_sasl_scram", portList(9096)),
				testAccCheckClientPorts(9094, 9096, 9098),
				testAccCheckClientCAs(trust, map[*pki.CA]bool{caOne: true, caTwo: false}),
			),
		}, {
			Config:           step(authSettings{clientBroker: "TLS", iam: true, clientCAs: []string{caOne.CertPEM, caTwo.CertPEM}}),
			ConfigPlanChecks: expectInPlaceUpdate(),
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr(clusterResourceName, "bootstrap_brokers_sasl_scram", ""),
				testAccCheckClientPorts(9094, 9098),
				testAccCheckPortClosed(9096),
				testAccCheckClientCAs(trust, map[*pki.CA]bool{caOne: true, caTwo: true}),
				withIAM.stopAndVerify(t),
			),
		}, {
			ResourceName:      clusterResourceName,
			ImportState:       true,
			ImportStateVerify: true,
			// broker_load is measured by a refresh, never by an import.
			ImportStateVerifyIgnore: []string{"timeouts", "broker_load"},
		}},
	})
}

// testAccCheckClientPorts checks that the cluster's security group opens
// exactly these client ports (besides the brokers' own 9093 and 9095).
func testAccCheckClientPorts(want ...int32) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		out, err := accEnv.clients.EC2.DescribeSecurityGroups(context.Background(), &ec2.DescribeSecurityGroupsInput{GroupIds: []string{o.SecurityGroupID}})
		if err != nil {
			return err
		}
		if len(out.SecurityGroups) != 1 {
			return fmt.Errorf("security group %s not found", o.SecurityGroupID)
		}
		var got []int32
		for _, p := range out.SecurityGroups[0].IpPermissions {
			port := aws.ToInt32(p.FromPort)
			if port != 9093 && port != 9095 && !containsPort(got, port) {
				got = append(got, port)
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("security group %s opens client ports %v, want %v", o.SecurityGroupID, got, want)
		}
		for _, p := range want {
			if !containsPort(got, p) {
				return fmt.Errorf("security group %s opens client ports %v, want %v", o.SecurityGroupID, got, want)
			}
		}
		return nil
	}
}

func containsPort(ports []int32, p int32) bool {
	for _, q := range ports {
		if q == p {
			return true
		}
	}
	return false
}

// testAccCheckPortClosed checks that no broker accepts connections on a port.
func testAccCheckPortClosed(port int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		for _, b := range o.Brokers {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(b.PrivateIP, fmt.Sprint(port)), 2*time.Second); err == nil {
				c.Close()
				return fmt.Errorf("broker %d still accepts connections on %d", b.NodeID, port)
			}
		}
		return nil
	}
}

// testAccAllowAnonymous lets User:ANONYMOUS do anything with a topic, through
// the TLS listener while nothing authenticates (so anyone may write ACLs):
// what keeps an unauthenticated client working once a listener
// authenticates and everything no ACL allows is denied.
func testAccAllowAnonymous(topic string, trust func(*terraform.State) *tls.Config) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		bootstrap := s.RootModule().Resources[clusterResourceName].Primary.Attributes["bootstrap_brokers_tls"]
		cl, err := kafkaClient(bootstrap, kgo.DialTLSConfig(trust(s)))
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		acls := kadm.NewACLs().Allow("User:ANONYMOUS").AllowHosts().Topics(topic).
			Operations(kadm.OpAll).ResourcePatternType(kadm.ACLPatternLiteral)
		results, err := kadm.NewClient(cl).CreateACLs(ctx, acls)
		if err != nil {
			return fmt.Errorf("allowing User:ANONYMOUS topic %s: %w", topic, err)
		}
		for _, r := range results {
			if r.Err != nil {
				return fmt.Errorf("allowing User:ANONYMOUS topic %s: %w", topic, r.Err)
			}
		}
		return nil
	}
}

// testAccCheckClientCAs connects to every broker's TLS listener with a
// client certificate of each CA and checks the broker accepts exactly the
// certificates of the CAs marked true (a Metadata request, which lists the
// brokers to any authenticated client).
func testAccCheckClientCAs(trust func(*terraform.State) *tls.Config, cas map[*pki.CA]bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		for ca, accepted := range cas {
			leaf, err := ca.Issue(pki.Request{Subject: pkix.Name{CommonName: "app-" + ca.Cert.Subject.CommonName}, NotBefore: time.Now(), Validity: time.Hour, Client: true})
			if err != nil {
				return err
			}
			cert, err := tls.X509KeyPair([]byte(leaf.CertPEM), []byte(leaf.KeyPEM))
			if err != nil {
				return err
			}
			cfg := trust(s)
			cfg.Certificates = []tls.Certificate{cert}
			for _, b := range o.Brokers {
				addr := net.JoinHostPort(b.PrivateIP, "9094")
				err := metadataOnce(addr, kgo.DialTLSConfig(cfg))
				switch {
				case accepted && err != nil:
					return fmt.Errorf("broker %d refused a client certificate of %s: %w", b.NodeID, ca.Cert.Subject.CommonName, err)
				case !accepted && err == nil:
					return fmt.Errorf("broker %d accepted a client certificate of %s, which is not a client CA", b.NodeID, ca.Cert.Subject.CommonName)
				}
			}
		}
		return nil
	}
}

// metadataOnce sends one Metadata request for no topics to exactly addr.
func metadataOnce(addr string, opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RetryTimeout(5 * time.Second), kgo.RequestRetries(1)}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seeds := cl.SeedBrokers()
	if len(seeds) == 0 {
		return errors.New("no seed broker")
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	_, err = seeds[0].Request(ctx, req)
	return err
}
