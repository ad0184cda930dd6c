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
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/provider/internal/pki"
)

// iamUser is an IAM user the security tests make: its credentials and ARN.
type iamUser struct {
	ARN                  string
	AccessKey, SecretKey string
}

// createIAMUser makes a user with an inline policy and an access key,
// removed when the test ends.
func createIAMUser(t *testing.T, name, policy string) iamUser {
	t.Helper()
	ctx := context.Background()
	c := accEnv.clients.IAM
	out, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name)})
	if err != nil {
		t.Fatalf("creating IAM user %s: %v", name, err)
	}
	if _, err := c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String(name), PolicyName: aws.String("test"), PolicyDocument: aws.String(policy)}); err != nil {
		t.Fatalf("putting the policy of IAM user %s: %v", name, err)
	}
	key, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
	if err != nil {
		t.Fatalf("creating an access key of IAM user %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = c.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(name), AccessKeyId: key.AccessKey.AccessKeyId})
		_, _ = c.DeleteUserPolicy(ctx, &iam.DeleteUserPolicyInput{UserName: aws.String(name), PolicyName: aws.String("test")})
		_, _ = c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String(name)})
	})
	return iamUser{ARN: aws.ToString(out.User.Arn), AccessKey: aws.ToString(key.AccessKey.AccessKeyId), SecretKey: aws.ToString(key.AccessKey.SecretAccessKey)}
}

// awsConfigOf is the test clients' AWS configuration with a user's keys.
func awsConfigOf(u iamUser) aws.Config {
	cfg := accEnv.clients.STSConfig.Copy()
	cfg.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(u.AccessKey, u.SecretKey, ""))
	return cfg
}

// providerConfigAs is testAccProviderConfig with a user's keys: the
// provider authenticates to IAM-only brokers with its own identity, which
// must be an IAM principal with kafka-cluster:* permissions.
func providerConfigAs(u iamUser) string {
	cfg := testAccProviderConfig()
	cfg = strings.Replace(cfg, `access_key = "test"`, fmt.Sprintf("access_key = %q", u.AccessKey), 1)
	return strings.Replace(cfg, `secret_key = "test"`, fmt.Sprintf("secret_key = %q", u.SecretKey), 1)
}

const (
	adminPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`
	// readOnlyPolicy lets a client in and read, but not write.
	readOnlyPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kafka-cluster:Connect","kafka-cluster:DescribeTopic",` +
		`"kafka-cluster:ReadData","kafka-cluster:DescribeGroup","kafka-cluster:AlterGroup"],"Resource":"*"}]}`
)

// TestAccCluster_tlsIAM builds a cluster with MSK's default encryption
// (TLS to clients and between brokers), IAM and mutual TLS for clients and
// no unauthenticated access, and a topic, in one apply by a provider whose
// only way in is its IAM identity. It produces and consumes through
// bootstrap_brokers_sasl_iam and bootstrap_brokers_tls with franz-go,
// checks that clients without credentials, and an IAM user without
// kafka-cluster:WriteData, are refused, and that no instance's user data
// holds a private key; then imports the cluster.
func TestAccCluster_tlsIAM(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	admin := createIAMUser(t, name+"-admin", adminPolicy)
	reader := createIAMUser(t, name+"-reader", readOnlyPolicy)
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
	config := providerConfigAs(admin) + fmt.Sprintf(`
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
      certificate_authority_pems = [%[4]q]
    }
  }

  timeouts {
    create = "4m"
    update = "6m"
    delete = "4m"
  }
}

data "tributary_iam_policy_document" "writer" {
  cluster_arn  = tributary_cluster.test.arn
  write_topics = ["ord*"]
  read_topics  = ["orders"]
}
`, name, accEnv.version, accInstanceType(), clientCA.CertPEM) + topicBlock("orders", 3, 3, map[string]string{"min.insync.replicas": "2"})

	// The same cluster block at a second address, for the import.
	block := config[strings.Index(config, `resource "tributary_cluster" "test" {`):strings.Index(config, `data "tributary_iam_policy_document"`)]
	// Without timeouts, which an import cannot read: they would be a diff.
	block = strings.Replace(block, "  timeouts {\n    create = \"4m\"\n    update = \"6m\"\n    delete = \"4m\"\n  }\n", "", 1)
	imported := "\n" + strings.Replace(block, `"test"`, `"imported"`, 1)

	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr(clusterResourceName, "bootstrap_brokers", ""),
				resource.TestCheckResourceAttr(clusterResourceName, "bootstrap_brokers_sasl_scram", ""),
				resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers_tls", portList(9094)),
				resource.TestMatchResourceAttr(clusterResourceName, "bootstrap_brokers_sasl_iam", portList(9098)),
				resource.TestMatchResourceAttr(clusterResourceName, "certificate_authority_pem", regexp.MustCompile(`^-----BEGIN CERTIFICATE-----`)),
				resource.TestMatchResourceAttr(clusterResourceName, "arn", regexp.MustCompile(`^arn:aws:kafka:[a-z0-9-]+:[0-9]{12}:cluster/`+name+`/tc-[0-9a-f]{16}$`)),
				testAccCheckNoSecretInUserData,
				testAccCheckSecureTraffic(admin, reader, app),
				testAccCheckPolicyDocumentWorks(t, name),
			),
		}, {
			// Import reads the listeners back from a broker's boot
			// document into the security blocks.
			ResourceName:            clusterResourceName,
			ImportState:             true,
			ImportStateVerify:       true,
			ImportStateVerifyIgnore: []string{"timeouts", "broker_load"},
		}, {
			// terraform import of the cluster in another configuration,
			// here a second address: its state has none of the private
			// state the creating apply kept (the CA's private key).
			Config:             config + imported,
			ResourceName:       "tributary_cluster.imported",
			ImportState:        true,
			ImportStatePersist: true,
			ImportStateIdFunc: func(s *terraform.State) (string, error) {
				id, _, err := clusterState(s)
				return id, err
			},
		}, {
			// Nothing to change after the import.
			Config:   config + imported,
			PlanOnly: true,
		}, {
			// A change from the imported state plans: its refresh read the
			// CA sealed for the provider in the boot documents
			// (TestAccCluster_importedTLSRoll applies one that rolls).
			Config:             config + strings.Replace(imported, "  client_cidr_blocks", "  tags = {\n    after = \"import\"\n  }\n  client_cidr_blocks", 1),
			PlanOnly:           true,
			ExpectNonEmptyPlan: true,
		}, {
			// The second address forgets the cluster, so that only the
			// first destroys it.
			Config: config + "\nremoved {\n  from = tributary_cluster.imported\n\n  lifecycle {\n    destroy = false\n  }\n}\n",
		}},
	})
}

// portList matches a bootstrap string of three brokers on a port.
func portList(port int) *regexp.Regexp {
	return regexp.MustCompile(fmt.Sprintf(`^[0-9.]+:%[1]d,[0-9.]+:%[1]d,[0-9.]+:%[1]d$`, port))
}

// testAccCheckNoSecretInUserData reads every broker instance's user data
// back from EC2 (what anyone with ec2:DescribeInstanceAttribute sees) and
// checks that it holds no private key.
func testAccCheckNoSecretInUserData(s *terraform.State) error {
	o, err := observedCluster(s)
	if err != nil {
		return err
	}
	ctx := context.Background()
	for _, b := range o.Brokers {
		out, err := accEnv.clients.EC2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
			InstanceId: aws.String(b.InstanceID), Attribute: ec2types.InstanceAttributeNameUserData,
		})
		if err != nil {
			return fmt.Errorf("reading the user data of broker %d: %w", b.NodeID, err)
		}
		raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.UserData.Value))
		if err != nil {
			return err
		}
		if strings.Contains(string(raw), "PRIVATE KEY") {
			return fmt.Errorf("the user data of broker %d holds a private key in clear", b.NodeID)
		}
		if !strings.Contains(string(raw), `"secrets"`) {
			return fmt.Errorf("the user data of broker %d has no secrets envelope", b.NodeID)
		}
	}
	return nil
}

// testAccCheckSecureTraffic produces and consumes with acks=all through
// IAM (9098) and mutual TLS (9094), and checks the refusals.
func testAccCheckSecureTraffic(admin, reader iamUser, app *pki.Leaf) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs := s.RootModule().Resources[clusterResourceName].Primary.Attributes
		clusterID, iamBootstrap, tlsBootstrap := rs["cluster_id"], rs["bootstrap_brokers_sasl_iam"], rs["bootstrap_brokers_tls"]
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(rs["certificate_authority_pem"])) {
			return errors.New("certificate_authority_pem holds no certificate")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		trust := kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		asIAM := func(u iamUser) []kgo.Opt {
			return []kgo.Opt{trust, kgo.SASL(iamauth.FranzGoMechanism(awsConfigOf(u), clusterID))}
		}

		// The topic Terraform made, through IAM.
		if err := produceConsume(ctx, iamBootstrap, "orders", 0, 100, asIAM(admin)...); err != nil {
			return fmt.Errorf("IAM (%s): %w", iamBootstrap, err)
		}

		// Mutual TLS: the certificate's subject is the principal, allowed
		// by ACLs that the IAM administrator writes.
		adm, err := kafkaClient(iamBootstrap, asIAM(admin)...)
		if err != nil {
			return err
		}
		defer adm.Close()
		principal := "User:CN=app,OU=payments"
		acls := kadm.NewACLs().Allow(principal).AllowHosts().Topics("orders").Groups("*").
			Operations(kadm.OpRead, kadm.OpWrite, kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral)
		results, err := kadm.NewClient(adm).CreateACLs(ctx, acls)
		if err != nil {
			return fmt.Errorf("creating the ACLs of %s through IAM: %w", principal, err)
		}
		for _, r := range results {
			if r.Err != nil {
				return fmt.Errorf("creating the ACLs of %s: %w", principal, r.Err)
			}
		}
		cert, err := tls.X509KeyPair([]byte(app.CertPEM), []byte(app.KeyPEM))
		if err != nil {
			return err
		}
		mtls := kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}})
		// Every broker applies the ACLs from the metadata log: wait
		// until the principal may write, within a bound.
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := produceOne(c, tlsBootstrap, "orders", mtls)
			cancel()
			if err == nil {
				break
			}
			// Until a broker applied the ACLs, the idempotent producer's
			// InitProducerId is refused too (Write on a topic is what
			// allows IdempotentWrite on the cluster).
			refused := errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed)
			if !refused || time.Now().After(deadline) {
				return fmt.Errorf("mutual TLS (%s) after the ACLs: %w", tlsBootstrap, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err := produceConsume(ctx, tlsBootstrap, "orders", 100, 100, mtls); err != nil {
			return fmt.Errorf("mutual TLS (%s): %w", tlsBootstrap, err)
		}

		// Refusals. Each client gets a short deadline: a refused client
		// retries until it, and the error says why it was refused.
		brief := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 15*time.Second) }
		first := strings.Split(tlsBootstrap, ",")[0]
		host, _, _ := net.SplitHostPort(first)
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(host, "9092"), 2*time.Second); err == nil {
			c.Close()
			return fmt.Errorf("the plaintext port 9092 of %s accepts connections", host)
		}
		for _, tc := range []struct {
			what      string
			bootstrap string
			opts      []kgo.Opt
		}{
			{"a TLS client without a certificate on 9094", tlsBootstrap, []kgo.Opt{trust}},
			{"a TLS client without SASL on 9098", iamBootstrap, []kgo.Opt{trust}},
		} {
			c, cancel := brief()
			err := produceOne(c, tc.bootstrap, "orders", tc.opts...)
			cancel()
			if err == nil {
				return fmt.Errorf("%s produced", tc.what)
			}
		}
		c, cancel2 := brief()
		defer cancel2()
		// Not idempotent, so the denial is WriteData's on the topic, not
		// WriteDataIdempotently's on the cluster.
		err = produceOne(c, iamBootstrap, "orders", append(asIAM(reader), kgo.DisableIdempotentWrite())...)
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			return fmt.Errorf("an IAM user without kafka-cluster:WriteData: produce error %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		return nil
	}
}

// produceConsume writes n records with acks=all, then reads them back.
func produceConsume(ctx context.Context, bootstrap, topic string, from, n int, opts ...kgo.Opt) error {
	cl, err := kafkaClient(bootstrap, opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for i := from; i < from+n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "record-%d", i)}).FirstErr(); err != nil {
			return fmt.Errorf("producing record-%d: %w", i, err)
		}
	}
	cons, err := kafkaClient(bootstrap, append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return err
	}
	defer cons.Close()
	seen := map[string]bool{}
	for !allSeen(seen, from, n) {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consumed %d of records %d-%d: %w", len(seen), from, from+n-1, err)
		}
		for _, e := range fs.Errors() {
			return fmt.Errorf("consuming %s partition %d: %w", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	return nil
}

func allSeen(seen map[string]bool, from, n int) bool {
	for i := from; i < from+n; i++ {
		if !seen[fmt.Sprintf("record-%d", i)] {
			return false
		}
	}
	return true
}

// produceOne produces one record and returns its error.
func produceOne(ctx context.Context, bootstrap, topic string, opts ...kgo.Opt) error {
	cl, err := kafkaClient(bootstrap, append(opts, kgo.RecordRetries(1))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("probe")}).FirstErr()
}

// testAccCheckPolicyDocumentWorks gives a new IAM user the policy of the
// tributary_iam_policy_document in the configuration and produces and
// consumes through IAM as that user.
func testAccCheckPolicyDocumentWorks(t *testing.T, name string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ds, ok := s.RootModule().Resources["data.tributary_iam_policy_document.writer"]
		if !ok {
			return errors.New("data.tributary_iam_policy_document.writer not in state")
		}
		writer := createIAMUser(t, name+"-writer", ds.Primary.Attributes["json"])
		rs := s.RootModule().Resources[clusterResourceName].Primary.Attributes
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(rs["certificate_authority_pem"]))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		opts := []kgo.Opt{
			kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
			kgo.SASL(iamauth.FranzGoMechanism(awsConfigOf(writer), rs["cluster_id"])),
		}
		if err := produceConsume(ctx, rs["bootstrap_brokers_sasl_iam"], "orders", 200, 50, opts...); err != nil {
			return fmt.Errorf("as an IAM user with the tributary_iam_policy_document policy: %w", err)
		}
		return nil
	}
}
