package iam_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/awsapitest"
)

// instanceRole creates a role trusted by EC2 with the given inline policy (none when "") and
// returns a KMS client signing as an instance session of it, the role's ARN and the session's
// credentials.
func instanceRole(t *testing.T, c *cloud, name, inline string) (*awskms.Client, string, awsapi.Credential) {
	t.Helper()
	ctx := context.Background()
	root := awsiam.NewFromConfig(c.Root())
	role := awsapitest.CreateRole(t, root, name, trustEC2)
	if inline != "" {
		if _, err := root.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: role.RoleName, PolicyName: aws.String("kms"), PolicyDocument: aws.String(inline)}); err != nil {
			t.Fatal(err)
		}
	}
	cred, err := c.Server.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(role.Arn), aws.ToString(role.RoleId), "i-0123456789abcdef0"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	return awskms.NewFromConfig(c.Config(cred.AccessKeyID, cred.SecretAccessKey, cred.SessionToken)), aws.ToString(role.Arn), cred
}

// TestKMSEncryptionContextConditions checks that a broker's instance role can be limited to
// its own node's encryption context, by its identity policy or by the key policy, with the
// kms:EncryptionContext:<key> and kms:EncryptionContextKeys condition keys.
func TestKMSEncryptionContextConditions(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	rootKMS := awskms.NewFromConfig(c.Root())
	key, err := rootKMS.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	keyARN := aws.ToString(key.KeyMetadata.Arn)
	seal := func(encCtx map[string]string) []byte {
		t.Helper()
		out, err := rootKMS.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(keyARN), Plaintext: []byte("node secret"), EncryptionContext: encCtx})
		if err != nil {
			t.Fatal(err)
		}
		return out.CiphertextBlob
	}
	type op func(client *awskms.Client, encCtx map[string]string) error
	decrypt := func(client *awskms.Client, encCtx map[string]string) error {
		_, err := client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: seal(encCtx), EncryptionContext: encCtx})
		return err
	}
	encrypt := func(client *awskms.Client, encCtx map[string]string) error {
		_, err := client.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(keyARN), Plaintext: []byte("x"), EncryptionContext: encCtx})
		return err
	}
	dataKey := func(client *awskms.Client, encCtx map[string]string) error {
		_, err := client.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(keyARN), KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: encCtx})
		return err
	}

	// Node 1 of cluster c: exactly its own context, nothing more.
	node1, _, _ := instanceRole(t, c, "broker-c-1", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
	  "Action":["kms:Decrypt","kms:Encrypt","kms:GenerateDataKey"],"Resource":"`+keyARN+`",
	  "Condition":{"StringEquals":{"kms:EncryptionContext:cluster":"c","kms:EncryptionContext:node":"1"},
	               "ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["cluster","node"]}}}]}`)
	// Any node of clusters c*, but the context must name a node.
	anyNode, _, _ := instanceRole(t, c, "broker-c-any", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
	  "Action":"kms:Decrypt","Resource":"`+keyARN+`",
	  "Condition":{"StringLike":{"kms:EncryptionContext:cluster":"c*"},
	               "ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"node"}}}]}`)

	tests := []struct {
		name    string
		client  *awskms.Client
		op      op
		encCtx  map[string]string
		allowed bool
	}{
		{"own node decrypts", node1, decrypt, map[string]string{"cluster": "c", "node": "1"}, true},
		{"another node's secret", node1, decrypt, map[string]string{"cluster": "c", "node": "2"}, false},
		{"another cluster's secret", node1, decrypt, map[string]string{"cluster": "d", "node": "1"}, false},
		{"an extra context key", node1, decrypt, map[string]string{"cluster": "c", "node": "1", "purpose": "x"}, false},
		{"no context", node1, decrypt, nil, false},
		{"context values are case-sensitive", node1, decrypt, map[string]string{"cluster": "C", "node": "1"}, false},
		{"own node encrypts", node1, encrypt, map[string]string{"cluster": "c", "node": "1"}, true},
		{"encrypt for another node", node1, encrypt, map[string]string{"cluster": "c", "node": "2"}, false},
		{"own node's data key", node1, dataKey, map[string]string{"cluster": "c", "node": "1"}, true},
		{"another node's data key", node1, dataKey, map[string]string{"cluster": "c", "node": "2"}, false},
		{"StringLike matches", anyNode, decrypt, map[string]string{"cluster": "c-prod", "node": "7"}, true},
		{"StringLike does not match", anyNode, decrypt, map[string]string{"cluster": "d", "node": "7"}, false},
		{"ForAnyValue needs the node key", anyNode, decrypt, map[string]string{"cluster": "c-prod"}, false},
		{"not allowed to encrypt", anyNode, encrypt, map[string]string{"cluster": "c-prod", "node": "7"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op(tt.client, tt.encCtx)
			switch {
			case tt.allowed && err != nil:
				t.Fatalf("refused: %v", err)
			case !tt.allowed && err == nil:
				t.Fatal("allowed, want AccessDeniedException")
			case !tt.allowed:
				if got := awsapitest.ErrorCode(t, err); got != "AccessDeniedException" {
					t.Fatalf("code %s, want AccessDeniedException (%v)", got, err)
				}
			}
		})
	}
}

// TestKMSKeyPolicyContextConditions puts the condition in the key policy instead, and checks
// that an explicit Deny in the role's own policy refuses what the key policy allows.
func TestKMSKeyPolicyContextConditions(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	rootKMS := awskms.NewFromConfig(c.Root())
	broker, brokerARN, _ := instanceRole(t, c, "broker-kp", "")
	keyPolicy := `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:*","Resource":"*"},
	  {"Sid":"BrokerOwnNode","Effect":"Allow","Principal":{"AWS":"` + brokerARN + `"},"Action":"kms:Decrypt","Resource":"*",
	   "Condition":{"StringEquals":{"kms:EncryptionContext:node":"1"},"ForAllValues:StringLike":{"kms:EncryptionContextKeys":["cluster","node"]}}}]}`
	key, err := rootKMS.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(keyPolicy)})
	if err != nil {
		t.Fatal(err)
	}
	decrypt := func(encCtx map[string]string) error {
		t.Helper()
		enc, err := rootKMS.Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte("s"), EncryptionContext: encCtx})
		if err != nil {
			t.Fatal(err)
		}
		_, err = broker.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
		return err
	}
	if err := decrypt(map[string]string{"cluster": "c", "node": "1"}); err != nil {
		t.Fatalf("own node through the key policy: %v", err)
	}
	for _, encCtx := range []map[string]string{{"cluster": "c", "node": "2"}, {"cluster": "c", "node": "1", "other": "x"}} {
		// The key policy's own statement does not match; its account statement delegates to
		// the role's identity policies, which allow nothing.
		if got := awsapitest.ErrorCode(t, decrypt(encCtx)); got != "AccessDeniedException" {
			t.Fatalf("context %v: %s", encCtx, got)
		}
	}
	deny := `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*",
	  "Condition":{"StringEquals":{"kms:EncryptionContext:cluster":"c"}}}}`
	if _, err := awsiam.NewFromConfig(c.Root()).PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: aws.String("broker-kp"), PolicyName: aws.String("deny"), PolicyDocument: aws.String(deny)}); err != nil {
		t.Fatal(err)
	}
	if got := awsapitest.ErrorCode(t, decrypt(map[string]string{"cluster": "c", "node": "1"})); got != "AccessDeniedException" {
		t.Fatalf("an identity Deny against a key policy Allow: %s", got)
	}
	if err := decrypt(map[string]string{"cluster": "e", "node": "1"}); err != nil {
		t.Fatalf("outside the Deny's condition: %v", err)
	}
}
