package iam_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	awssts "github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/cloudwatch"
	"github.com/tributary/tributary/internal/localcloud/iam"
	"github.com/tributary/tributary/internal/localcloud/kms"
	"github.com/tributary/tributary/internal/localcloud/sts"
)

// cloud is the IAM, STS, KMS and CloudWatch services behind one awsapi server, wired as the
// local cloud wires them.
type cloud struct {
	*awsapitest.Cloud
	iam *iam.Service
}

func newCloud(t *testing.T, dir string) *cloud {
	t.Helper()
	c := awsapitest.Start(t)
	iamSvc, err := iam.New(c.Env(dir))
	if err != nil {
		t.Fatal(err)
	}
	stsSvc, err := sts.New(c.Env(dir), iamSvc)
	if err != nil {
		t.Fatal(err)
	}
	kmsSvc, err := kms.New(c.Env(""))
	if err != nil {
		t.Fatal(err)
	}
	cwSvc, err := cloudwatch.New(c.Env(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cwSvc.Close() })
	c.Server.Register("iam", iamSvc)
	c.Server.Register("sts", stsSvc)
	c.Server.Register("kms", kmsSvc)
	c.Server.Register("monitoring", cwSvc)
	c.Server.SetAuthorizer(iamSvc)
	return &cloud{Cloud: c, iam: iamSvc}
}

const trustEC2 = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

func TestRolesPoliciesAndProfiles(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	client := awsiam.NewFromConfig(c.Root())
	r := awsapitest.CreateRole(t, client, "broker", trustEC2)
	if aws.ToString(r.Arn) != "arn:aws:iam::000000000000:role/broker" || !strings.HasPrefix(aws.ToString(r.RoleId), "AROA") {
		t.Fatalf("role %+v", r)
	}
	_, err := client.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("broker"), AssumeRolePolicyDocument: aws.String(trustEC2)})
	if got := awsapitest.ErrorCode(t, err); got != "EntityAlreadyExists" {
		t.Fatalf("duplicate role: %s", got)
	}
	for _, bad := range []string{"{", `{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole"}}`} {
		_, err = client.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("bad"), AssumeRolePolicyDocument: aws.String(bad)})
		if got := awsapitest.ErrorCode(t, err); got != "MalformedPolicyDocument" {
			t.Fatalf("malformed trust policy %s: %s", bad, got)
		}
	}
	_, err = client.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: aws.String("broker"), PolicyName: aws.String("p"),
		PolicyDocument: aws.String(`{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}}`)})
	if got := awsapitest.ErrorCode(t, err); got != "MalformedPolicyDocument" {
		t.Fatalf("identity policy with a principal: %s", got)
	}
	got, err := client.GetRole(ctx, &awsiam.GetRoleInput{RoleName: aws.String("broker")})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := url.QueryUnescape(aws.ToString(got.Role.AssumeRolePolicyDocument))
	if err != nil || doc != trustEC2 {
		t.Fatalf("trust policy round trip: %q %v", doc, err)
	}
	if len(got.Role.Tags) != 0 {
		t.Fatalf("untagged role with tags %+v", got.Role.Tags)
	}
	if _, err := client.TagRole(ctx, &awsiam.TagRoleInput{RoleName: aws.String("broker"), Tags: []iamtypes.Tag{{Key: aws.String("team"), Value: aws.String("data")}}}); err != nil {
		t.Fatal(err)
	}
	if got, err = client.GetRole(ctx, &awsiam.GetRoleInput{RoleName: aws.String("BROKER")}); err != nil || len(got.Role.Tags) != 1 || aws.ToString(got.Role.Tags[0].Value) != "data" {
		t.Fatalf("tagged role (by a differently cased name): %+v %v", got, err)
	}
	_, err = client.GetRole(ctx, &awsiam.GetRoleInput{RoleName: aws.String("nobody")})
	if got := awsapitest.ErrorCode(t, err); got != "NoSuchEntity" {
		t.Fatalf("missing role: %s", got)
	}

	inline := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}]}`
	if _, err := client.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: aws.String("broker"), PolicyName: aws.String("kms"), PolicyDocument: aws.String(inline)}); err != nil {
		t.Fatal(err)
	}
	rp, err := client.GetRolePolicy(ctx, &awsiam.GetRolePolicyInput{RoleName: aws.String("broker"), PolicyName: aws.String("kms")})
	if err != nil {
		t.Fatal(err)
	}
	if doc, _ := url.QueryUnescape(aws.ToString(rp.PolicyDocument)); doc != inline {
		t.Fatalf("inline policy round trip: %q", doc)
	}
	mp, err := client.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("metrics"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"cloudwatch:PutMetricData","Resource":"*"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.AttachRolePolicy(ctx, &awsiam.AttachRolePolicyInput{RoleName: aws.String("broker"), PolicyArn: mp.Policy.Arn}); err != nil {
		t.Fatal(err)
	}
	att, err := client.ListAttachedRolePolicies(ctx, &awsiam.ListAttachedRolePoliciesInput{RoleName: aws.String("broker")})
	if err != nil || len(att.AttachedPolicies) != 1 || aws.ToString(att.AttachedPolicies[0].PolicyName) != "metrics" {
		t.Fatalf("attached policies %+v %v", att, err)
	}
	_, err = client.DeletePolicy(ctx, &awsiam.DeletePolicyInput{PolicyArn: mp.Policy.Arn})
	if got := awsapitest.ErrorCode(t, err); got != "DeleteConflict" {
		t.Fatalf("deleting an attached policy: %s", got)
	}

	if _, err := client.CreateInstanceProfile(ctx, &awsiam.CreateInstanceProfileInput{InstanceProfileName: aws.String("broker")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AddRoleToInstanceProfile(ctx, &awsiam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String("broker"), RoleName: aws.String("broker")}); err != nil {
		t.Fatal(err)
	}
	profiles, err := client.ListInstanceProfilesForRole(ctx, &awsiam.ListInstanceProfilesForRoleInput{RoleName: aws.String("broker")})
	if err != nil || len(profiles.InstanceProfiles) != 1 || len(profiles.InstanceProfiles[0].Roles) != 1 {
		t.Fatalf("profiles for role %+v %v", profiles, err)
	}
	if !c.iam.TrustsService(aws.ToString(r.Arn), "ec2.amazonaws.com") || c.iam.TrustsService(aws.ToString(r.Arn), "lambda.amazonaws.com") {
		t.Fatal("TrustsService disagrees with the trust policy")
	}
	ip, err := c.iam.ResolveInstanceProfile(ctx, awsapi.DefaultAccount, "broker")
	if err != nil || ip.RoleARN != aws.ToString(r.Arn) || ip.RoleID != aws.ToString(r.RoleId) {
		t.Fatalf("ResolveInstanceProfile = %+v, %v", ip, err)
	}
	if _, err := c.iam.ResolveInstanceProfile(ctx, awsapi.DefaultAccount, "missing"); !errors.Is(err, awsapi.ErrNotFound) {
		t.Fatalf("ResolveInstanceProfile(missing) = %v", err)
	}

	// DeleteRole refuses until every dependency is gone, in IAM's order.
	steps := []struct {
		conflict string
		cleanup  func() error
	}{
		{"inline policy", func() error {
			_, err := client.DeleteRolePolicy(ctx, &awsiam.DeleteRolePolicyInput{RoleName: aws.String("broker"), PolicyName: aws.String("kms")})
			return err
		}},
		{"attached policy", func() error {
			_, err := client.DetachRolePolicy(ctx, &awsiam.DetachRolePolicyInput{RoleName: aws.String("broker"), PolicyArn: mp.Policy.Arn})
			return err
		}},
		{"instance profile", func() error {
			_, err := client.RemoveRoleFromInstanceProfile(ctx, &awsiam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: aws.String("broker"), RoleName: aws.String("broker")})
			return err
		}},
	}
	for _, step := range steps {
		_, err := client.DeleteRole(ctx, &awsiam.DeleteRoleInput{RoleName: aws.String("broker")})
		if got := awsapitest.ErrorCode(t, err); got != "DeleteConflict" {
			t.Fatalf("DeleteRole with %s: %s", step.conflict, got)
		}
		if err := step.cleanup(); err != nil {
			t.Fatalf("removing %s: %v", step.conflict, err)
		}
	}
	if _, err := client.DeleteRole(ctx, &awsiam.DeleteRoleInput{RoleName: aws.String("broker")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteInstanceProfile(ctx, &awsiam.DeleteInstanceProfileInput{InstanceProfileName: aws.String("broker")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeletePolicy(ctx, &awsiam.DeletePolicyInput{PolicyArn: mp.Policy.Arn}); err != nil {
		t.Fatal(err)
	}
}

func TestListRolesPaginates(t *testing.T) {
	c := newCloud(t, "")
	client := awsiam.NewFromConfig(c.Root())
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		awsapitest.CreateRole(t, client, "role-"+name, trustEC2)
	}
	var names []string
	p := awsiam.NewListRolesPaginator(client, &awsiam.ListRolesInput{MaxItems: aws.Int32(2)})
	for pages := 0; p.HasMorePages() && pages < 10; pages++ {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Roles {
			names = append(names, aws.ToString(r.RoleName))
		}
	}
	if strings.Join(names, ",") != "role-a,role-b,role-c,role-d,role-e" {
		t.Fatalf("paginated roles: %v", names)
	}
}

func TestAssumeRoleAndIdentityPolicies(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	iamClient := awsiam.NewFromConfig(c.Root())
	role := awsapitest.CreateRole(t, iamClient, "broker", awsapitest.TrustAccount)
	awsapitest.CreateRole(t, iamClient, "ec2-only", trustEC2)

	_, err := awssts.NewFromConfig(c.Root()).AssumeRole(ctx, &awssts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/ec2-only"), RoleSessionName: aws.String("x1")})
	if got := awsapitest.ErrorCode(t, err); got != "AccessDenied" {
		t.Fatalf("assuming a role that does not trust the caller: %s", got)
	}
	_, err = awssts.NewFromConfig(c.Root()).AssumeRole(ctx, &awssts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/missing"), RoleSessionName: aws.String("x1")})
	if got := awsapitest.ErrorCode(t, err); got != "AccessDenied" {
		t.Fatalf("assuming a missing role: %s", got)
	}

	session, out := c.AssumeRole(t, aws.ToString(role.Arn), 900)
	wantARN := "arn:aws:sts::000000000000:assumed-role/broker/test-session"
	if aws.ToString(out.AssumedRoleUser.Arn) != wantARN || aws.ToString(out.AssumedRoleUser.AssumedRoleId) != aws.ToString(role.RoleId)+":test-session" {
		t.Fatalf("AssumedRoleUser %+v", out.AssumedRoleUser)
	}
	who, err := awssts.NewFromConfig(session).GetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(who.Arn) != wantARN || aws.ToString(who.Account) != "000000000000" {
		t.Fatalf("GetCallerIdentity as the session: %+v %v", who, err)
	}

	// The root makes a key and encrypts with a context, as the provider does.
	rootKMS := awskms.NewFromConfig(c.Root())
	key, err := rootKMS.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	encCtx := map[string]string{"cluster": "c1", "node": "1"}
	enc, err := rootKMS.Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte("tls key"), EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	decrypt := func(ctxt map[string]string) error {
		_, err := awskms.NewFromConfig(session).Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ctxt})
		return err
	}
	// No identity policy: denied, as on AWS.
	err = decrypt(encCtx)
	if got := awsapitest.ErrorCode(t, err); got != "AccessDeniedException" || !strings.Contains(err.Error(), "kms:Decrypt") {
		t.Fatalf("decrypt without permission: %v", err)
	}
	allow := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"arn:aws:kms:*:000000000000:key/*",
	  "Condition":{"StringEquals":{"kms:EncryptionContext:cluster":"c1"}}}]}`
	if _, err := iamClient.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: aws.String("broker"), PolicyName: aws.String("decrypt"), PolicyDocument: aws.String(allow)}); err != nil {
		t.Fatal(err)
	}
	if err := decrypt(encCtx); err != nil {
		t.Fatalf("decrypt with permission: %v", err)
	}
	// A context the policy does not allow is refused before decryption is attempted.
	if got := awsapitest.ErrorCode(t, decrypt(map[string]string{"cluster": "c2", "node": "1"})); got != "AccessDeniedException" {
		t.Fatalf("decrypt with a context outside the policy: %s", got)
	}
	_, err = awskms.NewFromConfig(session).Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte("x")})
	if got := awsapitest.ErrorCode(t, err); got != "AccessDeniedException" {
		t.Fatalf("encrypt not allowed: %s", got)
	}
	// The session may not manage IAM either.
	_, err = awsiam.NewFromConfig(session).CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("x"), AssumeRolePolicyDocument: aws.String(trustEC2)})
	if got := awsapitest.ErrorCode(t, err); got != "AccessDenied" {
		t.Fatalf("CreateRole as a session: %s", got)
	}

	// Role chaining is limited to an hour, as on AWS.
	_, err = awssts.NewFromConfig(session).AssumeRole(ctx, &awssts.AssumeRoleInput{RoleArn: role.Arn, RoleSessionName: aws.String("chained"), DurationSeconds: aws.Int32(7200)})
	if got := awsapitest.ErrorCode(t, err); got != "AccessDenied" && got != "ValidationError" {
		t.Fatalf("chained AssumeRole: %s", got)
	}

	// Sessions expire.
	c.Clock.Advance(901 * time.Second)
	_, err = awssts.NewFromConfig(session).GetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{})
	if got := awsapitest.ErrorCode(t, err); got != "ExpiredToken" {
		t.Fatalf("expired session: %s", got)
	}
}

func TestStatePersists(t *testing.T) {
	dir := t.TempDir()
	c := newCloud(t, dir)
	ctx := context.Background()
	client := awsiam.NewFromConfig(c.Root())
	awsapitest.CreateRole(t, client, "keep", trustEC2)
	if _, err := client.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: aws.String("keep"), PolicyName: aws.String("p"),
		PolicyDocument: aws.String(`{"Statement":{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateInstanceProfile(ctx, &awsiam.CreateInstanceProfileInput{InstanceProfileName: aws.String("keep")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AddRoleToInstanceProfile(ctx, &awsiam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String("keep"), RoleName: aws.String("keep")}); err != nil {
		t.Fatal(err)
	}

	again := newCloud(t, dir)
	d, err := again.iam.Authorize(ctx, awsapi.AuthorizationRequest{
		Caller: awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, "arn:aws:iam::000000000000:role/keep", "AROAX", "s"),
		Action: "kms:Decrypt", Resource: "arn:aws:kms:us-east-1:000000000000:key/k",
	})
	if err != nil || !d.Allowed {
		t.Fatalf("restored inline policy: %+v %v", d, err)
	}
	ip, err := again.iam.ResolveInstanceProfile(ctx, "", "arn:aws:iam::000000000000:instance-profile/keep")
	if err != nil || ip.RoleName != "keep" {
		t.Fatalf("restored profile: %+v %v", ip, err)
	}
}

// TestInstanceRolePermissions checks the calls brokers make with instance-role credentials
// (issued as the instance metadata service does) against the role's policies.
func TestInstanceRolePermissions(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	iamClient := awsiam.NewFromConfig(c.Root())
	// The role as the provider makes it: a path, EC2 trust, and an inline policy that allows
	// kms:Decrypt of one key only under the cluster's encryption context.
	out, err := iamClient.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("broker-c1"), Path: aws.String("/tributary/"), AssumeRolePolicyDocument: aws.String(trustEC2)})
	if err != nil {
		t.Fatal(err)
	}
	role := out.Role
	if aws.ToString(role.Arn) != "arn:aws:iam::000000000000:role/tributary/broker-c1" {
		t.Fatalf("role ARN %s", aws.ToString(role.Arn))
	}
	rootKMS := awskms.NewFromConfig(c.Root())
	key, err := rootKMS.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	keyARN := aws.ToString(key.KeyMetadata.Arn)
	if _, err := iamClient.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: role.RoleName, PolicyName: aws.String("tributary-broker"), PolicyDocument: aws.String(`{
	  "Version":"2012-10-17",
	  "Statement":[{"Sid":"DecryptClusterSecrets","Effect":"Allow","Action":"kms:Decrypt","Resource":"` + keyARN + `",
	                "Condition":{"StringEquals":{"kms:EncryptionContext:tributary:cluster-id":"c1"}}}]}`)}); err != nil {
		t.Fatal(err)
	}
	cred, err := c.Server.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(role.Arn), aws.ToString(role.RoleId), "i-0123456789abcdef0"), time.Hour, "instance:i-0123456789abcdef0")
	if err != nil {
		t.Fatal(err)
	}
	instance := c.Config(cred.AccessKeyID, cred.SecretAccessKey, cred.SessionToken)
	put := func(namespace string) error {
		_, err := awscw.NewFromConfig(instance).PutMetricData(ctx, &awscw.PutMetricDataInput{Namespace: aws.String(namespace),
			MetricData: []cwtypes.MetricDatum{{MetricName: aws.String("BytesInPerSec"), Value: aws.Float64(1)}}})
		return err
	}
	if got := awsapitest.ErrorCode(t, put("Tributary/Kafka")); got != "AccessDenied" {
		t.Fatalf("PutMetricData without permission: %s", got)
	}
	encrypt := func(encCtx map[string]string) []byte {
		t.Helper()
		out, err := rootKMS.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(keyARN), Plaintext: []byte("secret"), EncryptionContext: encCtx})
		if err != nil {
			t.Fatal(err)
		}
		return out.CiphertextBlob
	}
	decrypt := func(blob []byte, encCtx map[string]string) error {
		_, err := awskms.NewFromConfig(instance).Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String(keyARN), EncryptionContext: encCtx})
		return err
	}
	own := map[string]string{"tributary:cluster-id": "c1", "tributary:node-id": "1"}
	other := map[string]string{"tributary:cluster-id": "c2", "tributary:node-id": "1"}
	if err := decrypt(encrypt(own), own); err != nil {
		t.Fatalf("decrypting the cluster's own secrets: %v", err)
	}
	if got := awsapitest.ErrorCode(t, decrypt(encrypt(other), other)); got != "AccessDeniedException" {
		t.Fatalf("decrypting another cluster's secrets: %s", got)
	}
	mp, err := iamClient.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("broker-metrics"), PolicyDocument: aws.String(`{
	  "Version":"2012-10-17",
	  "Statement":[{"Effect":"Allow","Action":"cloudwatch:PutMetricData","Resource":"*",
	                "Condition":{"StringLike":{"cloudwatch:namespace":"Tributary/*"}}}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iamClient.AttachRolePolicy(ctx, &awsiam.AttachRolePolicyInput{RoleName: role.RoleName, PolicyArn: mp.Policy.Arn}); err != nil {
		t.Fatal(err)
	}
	if err := put("Tributary/Kafka"); err != nil {
		t.Fatalf("PutMetricData with permission: %v", err)
	}
	if got := awsapitest.ErrorCode(t, put("Other")); got != "AccessDenied" {
		t.Fatalf("PutMetricData outside the allowed namespace: %s", got)
	}
	// A new default version of the managed policy takes effect at once.
	if _, err := iamClient.CreatePolicyVersion(ctx, &awsiam.CreatePolicyVersionInput{PolicyArn: mp.Policy.Arn, SetAsDefault: true,
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"cloudwatch:*","Resource":"*"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if got := awsapitest.ErrorCode(t, put("Tributary/Kafka")); got != "AccessDenied" {
		t.Fatalf("PutMetricData after an explicit deny: %s", got)
	}
}

// TestUsersAndAccessKeys checks IAM users: their access keys sign requests that their policies
// govern, deactivated keys are refused, and keys survive a restart of the emulator.
func TestUsersAndAccessKeys(t *testing.T) {
	dir := t.TempDir()
	c := newCloud(t, dir)
	ctx := context.Background()
	client := awsiam.NewFromConfig(c.Root())
	u, err := client.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("ci"), Path: aws.String("/robots/")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(u.User.Arn) != "arn:aws:iam::000000000000:user/robots/ci" || !strings.HasPrefix(aws.ToString(u.User.UserId), "AIDA") {
		t.Fatalf("user %+v", u.User)
	}
	key, err := client.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String("ci")})
	if err != nil {
		t.Fatal(err)
	}
	ak := key.AccessKey
	if len(aws.ToString(ak.AccessKeyId)) != 20 || !strings.HasPrefix(aws.ToString(ak.AccessKeyId), "AKIA") || ak.Status != iamtypes.StatusTypeActive {
		t.Fatalf("access key %+v", ak)
	}
	asUser := c.Config(aws.ToString(ak.AccessKeyId), aws.ToString(ak.SecretAccessKey), "")
	who, err := awssts.NewFromConfig(asUser).GetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(who.Arn) != "arn:aws:iam::000000000000:user/robots/ci" {
		t.Fatalf("GetCallerIdentity as the user: %+v %v", who, err)
	}
	me, err := awsiam.NewFromConfig(asUser).GetUser(ctx, &awsiam.GetUserInput{})
	if err != nil || aws.ToString(me.User.UserName) != "ci" {
		t.Fatalf("GetUser without a name: %+v %v", me, err)
	}
	_, err = awskms.NewFromConfig(asUser).ListKeys(ctx, &awskms.ListKeysInput{})
	if got := awsapitest.ErrorCode(t, err); got != "AccessDeniedException" {
		t.Fatalf("ListKeys without permission: %s", got)
	}
	if _, err := client.PutUserPolicy(ctx, &awsiam.PutUserPolicyInput{UserName: aws.String("ci"), PolicyName: aws.String("kms-read"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:List*","kms:Describe*"],"Resource":"*"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := awskms.NewFromConfig(asUser).ListKeys(ctx, &awskms.ListKeysInput{}); err != nil {
		t.Fatalf("ListKeys with permission: %v", err)
	}
	_, err = awskms.NewFromConfig(asUser).CreateKey(ctx, &awskms.CreateKeyInput{})
	if got := awsapitest.ErrorCode(t, err); got != "AccessDeniedException" {
		t.Fatalf("CreateKey without permission: %s", got)
	}

	// Deactivated keys are refused; reactivated ones work again.
	if _, err := client.UpdateAccessKey(ctx, &awsiam.UpdateAccessKeyInput{UserName: aws.String("ci"), AccessKeyId: ak.AccessKeyId, Status: iamtypes.StatusTypeInactive}); err != nil {
		t.Fatal(err)
	}
	_, err = awssts.NewFromConfig(asUser).GetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{})
	if got := awsapitest.ErrorCode(t, err); got != "InvalidClientTokenId" {
		t.Fatalf("inactive key: %s", got)
	}
	if _, err := client.UpdateAccessKey(ctx, &awsiam.UpdateAccessKeyInput{UserName: aws.String("ci"), AccessKeyId: ak.AccessKeyId, Status: iamtypes.StatusTypeActive}); err != nil {
		t.Fatal(err)
	}

	// A new emulator on the same state (with a fresh credential store) still knows the key.
	again := newCloud(t, dir)
	asUserAgain := again.Config(aws.ToString(ak.AccessKeyId), aws.ToString(ak.SecretAccessKey), "")
	if _, err := awskms.NewFromConfig(asUserAgain).ListKeys(ctx, &awskms.ListKeysInput{}); err != nil {
		t.Fatalf("ListKeys after a restart: %v", err)
	}
	client = awsiam.NewFromConfig(again.Root())
	_, err = client.DeleteUser(ctx, &awsiam.DeleteUserInput{UserName: aws.String("ci")})
	if got := awsapitest.ErrorCode(t, err); got != "DeleteConflict" {
		t.Fatalf("deleting a user with keys: %s", got)
	}
	keys, err := client.ListAccessKeys(ctx, &awsiam.ListAccessKeysInput{UserName: aws.String("ci")})
	if err != nil || len(keys.AccessKeyMetadata) != 1 {
		t.Fatalf("ListAccessKeys %+v %v", keys, err)
	}
	if _, err := client.DeleteAccessKey(ctx, &awsiam.DeleteAccessKeyInput{UserName: aws.String("ci"), AccessKeyId: ak.AccessKeyId}); err != nil {
		t.Fatal(err)
	}
	_, err = awssts.NewFromConfig(asUserAgain).GetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{})
	if got := awsapitest.ErrorCode(t, err); got != "InvalidClientTokenId" {
		t.Fatalf("deleted key: %s", got)
	}
	if _, err := client.DeleteUserPolicy(ctx, &awsiam.DeleteUserPolicyInput{UserName: aws.String("ci"), PolicyName: aws.String("kms-read")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteUser(ctx, &awsiam.DeleteUserInput{UserName: aws.String("ci")}); err != nil {
		t.Fatal(err)
	}
}

// TestTimeConditions checks that aws:CurrentTime conditions follow the emulator's clock.
func TestTimeConditions(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	deadline := c.Clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	roleARN := "arn:aws:iam::000000000000:role/temp"
	awsapitest.CreateRole(t, awsiam.NewFromConfig(c.Root()), "temp", trustEC2)
	if _, err := awsiam.NewFromConfig(c.Root()).PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: aws.String("temp"), PolicyName: aws.String("until"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:ListKeys","Resource":"*",
		  "Condition":{"DateLessThan":{"aws:CurrentTime":"` + deadline + `"},"StringEquals":{"aws:PrincipalType":"AssumedRole"}}}]}`)}); err != nil {
		t.Fatal(err)
	}
	d, err := c.iam.Authorize(ctx, awsapi.AuthorizationRequest{Caller: awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, roleARN, "AROAX", "s"), Action: "kms:ListKeys", Resource: "*"})
	if err != nil || !d.Allowed {
		t.Fatalf("before the deadline: %+v %v", d, err)
	}
	c.Clock.Advance(2 * time.Hour)
	d, err = c.iam.Authorize(ctx, awsapi.AuthorizationRequest{Caller: awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, roleARN, "AROAX", "s"), Action: "kms:ListKeys", Resource: "*"})
	if err != nil || d.Allowed {
		t.Fatalf("after the deadline: %+v %v", d, err)
	}
}

// TestGroups checks that a group's policies apply to its members, and IAM's delete conflicts.
func TestGroups(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	client := awsiam.NewFromConfig(c.Root())
	if _, err := client.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("dev")}); err != nil {
		t.Fatal(err)
	}
	key, err := client.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String("dev")})
	if err != nil {
		t.Fatal(err)
	}
	asUser := awskms.NewFromConfig(c.Config(aws.ToString(key.AccessKey.AccessKeyId), aws.ToString(key.AccessKey.SecretAccessKey), ""))
	if _, err := client.CreateGroup(ctx, &awsiam.CreateGroupInput{GroupName: aws.String("readers")}); err != nil {
		t.Fatal(err)
	}
	mp, err := client.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("kms-list"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:ListKeys","Resource":"*"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.AttachGroupPolicy(ctx, &awsiam.AttachGroupPolicyInput{GroupName: aws.String("readers"), PolicyArn: mp.Policy.Arn}); err != nil {
		t.Fatal(err)
	}
	_, err = asUser.ListKeys(ctx, &awskms.ListKeysInput{})
	if got := awsapitest.ErrorCode(t, err); got != "AccessDeniedException" {
		t.Fatalf("before joining the group: %s", got)
	}
	if _, err := client.AddUserToGroup(ctx, &awsiam.AddUserToGroupInput{GroupName: aws.String("readers"), UserName: aws.String("dev")}); err != nil {
		t.Fatal(err)
	}
	if _, err := asUser.ListKeys(ctx, &awskms.ListKeysInput{}); err != nil {
		t.Fatalf("as a group member: %v", err)
	}
	groups, err := client.ListGroupsForUser(ctx, &awsiam.ListGroupsForUserInput{UserName: aws.String("dev")})
	if err != nil || len(groups.Groups) != 1 || aws.ToString(groups.Groups[0].Arn) != "arn:aws:iam::000000000000:group/readers" {
		t.Fatalf("ListGroupsForUser %+v %v", groups, err)
	}
	entities, err := client.ListEntitiesForPolicy(ctx, &awsiam.ListEntitiesForPolicyInput{PolicyArn: mp.Policy.Arn})
	if err != nil || len(entities.PolicyGroups) != 1 || aws.ToString(entities.PolicyGroups[0].GroupName) != "readers" {
		t.Fatalf("ListEntitiesForPolicy %+v %v", entities, err)
	}
	_, err = client.DeleteGroup(ctx, &awsiam.DeleteGroupInput{GroupName: aws.String("readers")})
	if got := awsapitest.ErrorCode(t, err); got != "DeleteConflict" {
		t.Fatalf("deleting a group with members: %s", got)
	}
	if _, err := client.RemoveUserFromGroup(ctx, &awsiam.RemoveUserFromGroupInput{GroupName: aws.String("readers"), UserName: aws.String("dev")}); err != nil {
		t.Fatal(err)
	}
	_, err = asUser.ListKeys(ctx, &awskms.ListKeysInput{})
	if got := awsapitest.ErrorCode(t, err); got != "AccessDeniedException" {
		t.Fatalf("after leaving the group: %s", got)
	}
	if _, err := client.DetachGroupPolicy(ctx, &awsiam.DetachGroupPolicyInput{GroupName: aws.String("readers"), PolicyArn: mp.Policy.Arn}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteGroup(ctx, &awsiam.DeleteGroupInput{GroupName: aws.String("readers")}); err != nil {
		t.Fatal(err)
	}
}
