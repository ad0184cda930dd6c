package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/internal/bootconfig"
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
	block := func(address, extra string) string { return importedClusterBlock(address, name, extra) }
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

// TestAccCluster_importedEarlierTLSCluster is TestAccCluster_importedTLSRoll
// for a cluster whose brokers an earlier provider launched: their boot
// documents carry no CA sealed for the provider. The test takes the sealed
// secrets out of every broker's launch template behind Terraform's back
// (stripSealedSecrets), so an import finds no CA and its change is refused
// at plan, as it was for such clusters. Then an apply from the creating
// state (a tag) writes the CA into the templates without replacing any
// broker, and an import at a second address changes a static setting, which
// rolls every broker onto the original CA.
func TestAccCluster_importedEarlierTLSCluster(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	block := func(address, extra string) string { return importedClusterBlock(address, name, extra) }
	const (
		importedName = "tributary_cluster.imported"
		tagged       = "  tags = {\n    sealed = \"yes\"\n  }\n"
		static       = "  broker_config = {\n    \"num.partitions\" = \"4\"\n  }\n"
		forget       = "\nremoved {\n  from = tributary_cluster.%s\n\n  lifecycle {\n    destroy = false\n  }\n}\n"
	)
	created := testAccProviderConfig() + block("test", "")
	var (
		clusterID, caPEM string
		before           []brokerIdentity
	)
	importStep := func(config string) resource.TestStep {
		return resource.TestStep{
			Config:             config,
			ResourceName:       importedName,
			ImportState:        true,
			ImportStatePersist: true,
			ImportStateIdFunc:  func(*terraform.State) (string, error) { return clusterID, nil },
		}
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
					return stripSealedSecrets(clusterID)
				},
			),
		},
			importStep(created + block("imported", "")),
			{
				// What an import of an earlier provider's cluster met.
				Config:      created + block("imported", static),
				PlanOnly:    true,
				ExpectError: wrappedText("The cluster's CA is not in this state"),
			}, {
				// The state that created the cluster applies a change that
				// touches no broker: the templates get the sealed CA, and
				// every broker keeps its instance.
				Config: testAccProviderConfig() + block("test", tagged) + fmt.Sprintf(forget, "imported"),
				Check: resource.ComposeTestCheckFunc(
					func(s *terraform.State) error {
						o, err := testFleet().Observe(context.Background(), clusterID)
						if err != nil {
							return err
						}
						for _, was := range before {
							b, ok := o.Broker(was.NodeID)
							if !ok || b.InstanceID != was.InstanceID || b.NeedsRoll() {
								return fmt.Errorf("broker %d: instance %s (was %s), needs roll %v; want the same instance, nothing to roll", was.NodeID, b.InstanceID, was.InstanceID, b.NeedsRoll())
							}
							doc, err := bootconfig.Decode(b.Launch.UserData)
							if err != nil || doc.ProviderSecrets == nil {
								return fmt.Errorf("broker %d's group launches a document without the provider's sealed secrets (%v)", b.NodeID, err)
							}
						}
						return nil
					},
				),
			},
			importStep(testAccProviderConfig() + block("test", tagged) + block("imported", tagged)),
			{
				Config: testAccProviderConfig() + block("imported", tagged+static) + fmt.Sprintf(forget, "test"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(importedName, plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttrPtr(importedName, "certificate_authority_pem", &caPEM),
					func(s *terraform.State) error { return checkRolledOnCA(clusterID, caPEM, before) },
				),
			}},
	})
}

// stripSealedSecrets makes a cluster look launched by a provider that
// sealed nothing for itself: each broker's group launches a new version of
// its template whose boot document has no provider_secrets. The version is
// described as resealing the instance's own (as Update's versions that
// only add the sealed CA are), so the brokers are not rolled for it.
func stripSealedSecrets(clusterID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := testFleet().Observe(ctx, clusterID)
	if err != nil {
		return err
	}
	c := accEnv.clients
	for _, b := range o.Brokers {
		out, err := c.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
			LaunchTemplateId: aws.String(b.TemplateID), Versions: []string{b.GroupVersion},
		})
		if err != nil || len(out.LaunchTemplateVersions) != 1 {
			return fmt.Errorf("broker %d's template version %s: %v", b.NodeID, b.GroupVersion, err)
		}
		v := out.LaunchTemplateVersions[0]
		doc, err := bootconfig.Decode(b.Launch.UserData)
		if err != nil {
			return err
		}
		if doc.ProviderSecrets == nil {
			return fmt.Errorf("broker %d's document has no provider_secrets to strip", b.NodeID)
		}
		doc.ProviderSecrets = nil
		ud, err := doc.Encode()
		if err != nil {
			return err
		}
		data := v.LaunchTemplateData
		req := &ec2types.RequestLaunchTemplateData{
			ImageId: data.ImageId, InstanceType: data.InstanceType, SecurityGroupIds: data.SecurityGroupIds,
			IamInstanceProfile: &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{Name: data.IamInstanceProfile.Name},
			UserData:           aws.String(base64.StdEncoding.EncodeToString(ud)),
			MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{
				HttpTokens: ec2types.LaunchTemplateHttpTokensStateRequired, HttpEndpoint: ec2types.LaunchTemplateInstanceMetadataEndpointStateEnabled,
				HttpPutResponseHopLimit: aws.Int32(1),
			},
		}
		nv, err := c.EC2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
			LaunchTemplateId: aws.String(b.TemplateID), LaunchTemplateData: req,
			VersionDescription: aws.String(aws.ToString(v.VersionDescription) + " reseals version " + b.InstanceVersion),
		})
		if err != nil {
			return err
		}
		version := strconv.FormatInt(aws.ToInt64(nv.LaunchTemplateVersion.VersionNumber), 10)
		if _, err := c.AutoScaling.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
			AutoScalingGroupName: aws.String(b.GroupName),
			LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(b.TemplateID), Version: aws.String(version)},
		}); err != nil {
			return err
		}
	}
	o, err = testFleet().Observe(ctx, clusterID)
	if err != nil {
		return err
	}
	for _, b := range o.Brokers {
		if b.NeedsRoll() || b.GroupReseals == "" {
			return fmt.Errorf("broker %d after the strip: group version %s reseals %q, instance version %s", b.NodeID, b.GroupVersion, b.GroupReseals, b.InstanceVersion)
		}
	}
	return nil
}

// importedClusterBlock is a TLS cluster named name at address (the tests
// import it at a second one), with extra written into the block.
func importedClusterBlock(address, name, extra string) string {
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
