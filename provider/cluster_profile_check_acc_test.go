package provider

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// userProfile makes an instance profile whose role has policy, and deletes
// both when the test ends.
func userProfile(t *testing.T, name, policy string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := accEnv.clients.IAM
	if _, err := c.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("broker"), PolicyDocument: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String(name), RoleName: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = c.RemoveRoleFromInstanceProfile(ctx, &iam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: aws.String(name), RoleName: aws.String(name)})
		_, _ = c.DeleteInstanceProfile(ctx, &iam.DeleteInstanceProfileInput{InstanceProfileName: aws.String(name)})
		_, _ = c.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("broker")})
		if _, err := c.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String(name)}); err != nil {
			t.Errorf("deleting role %s: %v", name, err)
		}
	})
}

// decryptPolicy allows kms:Decrypt of the brokers' secrets of any cluster
// for the node ids matching nodes (an IAM string pattern).
func decryptPolicy(nodes string) string {
	return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"StringLike":{` +
		`"kms:EncryptionContext:tributary:cluster-id":"tc-*","kms:EncryptionContext:tributary:node-id":"` + nodes + `"}}}]}`
}

// TestAccCluster_instanceProfileChecked plans clusters with a user's
// instance profile. A role that may decrypt only broker 1's secrets is
// refused at plan, naming brokers 2 and 3, before anything is created; a
// role that may decrypt every broker's plans a create. It needs IAM's
// policy simulation (iam:SimulatePrincipalPolicy), which moto lacks.
func TestAccCluster_instanceProfileChecked(t *testing.T) {
	accParallel(t)
	testAccPreCheck(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	userProfile(t, name+"-narrow", decryptPolicy("1"))
	userProfile(t, name+"-wide", decryptPolicy("*"))
	config := func(profile string) string {
		return testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  client_cidr_blocks = ["127.0.0.0/8"]
  instance_profile   = %[4]q
}
`, name, accEnv.version, accInstanceType(), profile)
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config:      config(name + "-narrow"),
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(`(?s)cannot open the brokers' secrets.*brokers 2, 3`),
		}, {
			Config:             config(name + "-wide"),
			PlanOnly:           true,
			ExpectNonEmptyPlan: true,
		}},
	})
}
