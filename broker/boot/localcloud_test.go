package boot

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tributary/tributary/broker/boot/bootstatus"
	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/kms"
)

// localKMS is the local cloud's KMS (internal/localcloud/kms behind the
// SigV4-verifying awsapi endpoint) on 127.0.0.1, with a key whose policy
// lets the broker role decrypt only under its cluster's encryption context,
// as the provider sets it up.
type localKMS struct {
	url        string
	admin      *awskms.Client
	keyARN     string
	brokerRole awsapi.Credential
}

func startLocalKMS(t *testing.T, allowedCluster string) *localKMS {
	t.Helper()
	creds, err := awsapi.NewCredentialStore("")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := kms.New(awsapi.Env{Account: awsapi.DefaultAccount, Region: "us-east-1", Credentials: creds, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := awsapi.NewServer(awsapi.ServerOptions{Credentials: creds, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv.Register("kms", svc)
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener = listenLoopback(t)
	hs.Start()
	t.Cleanup(hs.Close)

	l := &localKMS{url: hs.URL}
	l.admin = awskms.NewFromConfig(aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	roleARN := "arn:aws:iam::" + awsapi.DefaultAccount + ":role/tributary-broker"
	l.brokerRole, err = srv.Credentials().IssueSession(
		awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, roleARN, "AROABROKER", testInstanceID), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := l.admin.CreateKey(t.Context(), &awskms.CreateKeyInput{Description: aws.String("cluster key")})
	if err != nil {
		t.Fatal(err)
	}
	l.keyARN = aws.ToString(key.KeyMetadata.Arn)
	// No account (IAM-delegating) statement: the local cloud has no IAM
	// authorizer here, so the key policy alone decides, as a locked-down
	// cluster key's would. KMS refuses such a policy unless told that the
	// lockout is meant.
	policy := `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Principal":{"AWS":"` + roleARN + `"},"Action":"kms:Decrypt","Resource":"*",
	   "Condition":{"StringEquals":{"kms:EncryptionContext:` + bootconfig.ContextKeyClusterID + `":"` + allowedCluster + `"}}}]}`
	if _, err := l.admin.PutKeyPolicy(t.Context(), &awskms.PutKeyPolicyInput{KeyId: key.KeyMetadata.KeyId, Policy: aws.String(policy), PolicyName: aws.String("default"),
		BypassPolicyLockoutSafetyCheck: true}); err != nil {
		t.Fatal(err)
	}
	return l
}

// useLocalKMS re-points the boot environment at the local cloud's KMS:
// IMDS hands out the broker role's session and the document's secrets are
// really encrypted under encryptContext.
func (e *bootEnv) useLocalKMS(t *testing.T, l *localKMS, encryptContext map[string]string, secrets bootconfig.Secrets) {
	t.Helper()
	e.imds.AccessKeyID = l.brokerRole.AccessKeyID
	e.imds.SecretAccessKey = l.brokerRole.SecretAccessKey
	e.imds.SessionToken = l.brokerRole.SessionToken
	t.Setenv("AWS_ENDPOINT_URL", l.url)
	plaintext, err := json.Marshal(secrets)
	if err != nil {
		t.Fatal(err)
	}
	out, err := l.admin.Encrypt(context.Background(), &awskms.EncryptInput{
		KeyId: aws.String(l.keyARN), Plaintext: plaintext, EncryptionContext: encryptContext,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.doc.Secrets = &bootconfig.Envelope{
		Ciphertext: out.CiphertextBlob, KeyID: l.keyARN,
		EncryptionContext: bootconfig.EncryptionContext(e.doc.ClusterID, e.doc.NodeID),
	}
	e.reencode(t)
}

// TestBootWithLocalCloudKMS decrypts real KMS ciphertext, signed with the
// role credentials the agent's SDK fetched from IMDS, and checks the two
// refusals a person meets: a role the key policy does not allow, and
// ciphertext made under another node's encryption context.
func TestBootWithLocalCloudKMS(t *testing.T) {
	tests := []struct {
		name           string
		allowedCluster string
		encryptNode    int32
		step           string
		want           []string
	}{
		{"decrypts", "c-0123abcd", 2, bootstatus.StepExec, nil},
		{"key policy does not allow this cluster", "c-other", 2, bootstatus.StepSecrets,
			[]string{"AccessDeniedException", "instance role may not decrypt"}},
		{"encrypted under another node's context", "c-0123abcd", 3, bootstatus.StepSecrets,
			[]string{"InvalidCiphertextException", "context does not match"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBootEnv(t)
			l := startLocalKMS(t, tt.allowedCluster)
			e.useLocalKMS(t, l, bootconfig.EncryptionContext(e.doc.ClusterID, tt.encryptNode), testSecrets)
			opts := e.options()
			opts.KMSWait = time.Second
			_, st, err := e.run(t, opts)
			if st.Step != tt.step {
				t.Fatalf("boot stopped at %s/%s (%v), want %s\nlogs:\n%s", st.Step, st.State, err, tt.step, e.logs.String())
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("boot failed: %v", err)
				}
				keystore := string(mustRead(t, e.runtimeDir+"/secrets/tls-keystore.pem", 0o600))
				if keystore != testSecrets.TLSPrivateKeyPEM+testSecrets.TLSCertificatePEM {
					t.Errorf("keystore = %q", keystore)
				}
				return
			}
			if err == nil {
				t.Fatal("boot succeeded, want a KMS refusal")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}
