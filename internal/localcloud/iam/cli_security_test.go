package iam_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
)

// TestDebianCLISecurity drives what the brokers' IAM authentication and secrets rely on through
// Debian's aws CLI: the policy simulator, KMS decryption limited by encryption context, and a
// presigned GetCallerIdentity with an extra signed header, made by botocore (aws eks get-token
// signs x-k8s-aws-id the way a Tributary token signs the cluster id).
func TestDebianCLISecurity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the aws CLI several times")
	}
	c := newCloud(t, "")
	ctx := context.Background()
	appARN := simulateFixture(t, c)

	var sim struct {
		EvaluationResults []struct {
			EvalActionName, EvalDecision string
			MatchedStatements            []struct {
				SourcePolicyId, SourcePolicyType string
				StartPosition                    struct{ Line, Column int }
			}
			MissingContextValues    []string
			ResourceSpecificResults []struct{ EvalResourceName, EvalResourceDecision string }
		}
	}
	decodeJSON(t, c.awsCLI(t, false, "iam", "simulate-principal-policy", "--policy-source-arn", appARN,
		"--action-names", "kafka-cluster:WriteData", "kafka-cluster:DeleteTopic", "kafka-cluster:WriteDataIdempotently",
		"--resource-arns", topicARN+"payments-eu",
		"--context-entries", "ContextKeyName=aws:SecureTransport,ContextKeyValues=false,ContextKeyType=boolean"), &sim)
	if r := sim.EvaluationResults; len(r) != 3 || r[0].EvalDecision != "allowed" || r[0].MatchedStatements[0].SourcePolicyId != "role_app_kafka" ||
		r[0].MatchedStatements[0].SourcePolicyType != "IAM Policy" || r[0].MatchedStatements[0].StartPosition.Line < 2 ||
		r[0].ResourceSpecificResults[0].EvalResourceName != topicARN+"payments-eu" ||
		r[1].EvalDecision != "explicitDeny" || r[1].MatchedStatements[0].SourcePolicyId != "kafka-guardrails" ||
		r[2].EvalDecision != "implicitDeny" || len(r[2].MatchedStatements) != 0 {
		t.Fatalf("iam simulate-principal-policy: %+v", sim)
	}
	decodeJSON(t, c.awsCLI(t, false, "iam", "simulate-custom-policy",
		"--policy-input-list", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kafka-cluster:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2018-08-16T12:00:00Z"}}}}`,
		"--action-names", "kafka-cluster:Connect", "--context-entries", "ContextKeyName=aws:CurrentTime,ContextKeyValues=2019-04-25T11:00:00Z,ContextKeyType=date"), &sim)
	if r := sim.EvaluationResults; len(r) != 1 || r[0].EvalDecision != "allowed" || r[0].MatchedStatements[0].SourcePolicyId != "PolicyInputList.1" ||
		r[0].MatchedStatements[0].StartPosition.Column != 38 {
		t.Fatalf("iam simulate-custom-policy: %+v", sim)
	}
	if out := c.awsCLI(t, true, "iam", "simulate-principal-policy", "--policy-source-arn", "arn:aws:iam::000000000000:role/nobody", "--action-names", "kafka-cluster:Connect"); !strings.Contains(out, "NoSuchEntity") {
		t.Fatalf("simulating a missing role: %s", out)
	}

	// KMS: the node 1 role decrypts its own secret and not node 2's.
	rootKMS := awskms.NewFromConfig(c.Root())
	key, err := rootKMS.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, node1 := instanceRole(t, c, "broker-c-1", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"`+aws.ToString(key.KeyMetadata.Arn)+`",
	  "Condition":{"StringEquals":{"kms:EncryptionContext:cluster":"c","kms:EncryptionContext:node":"1"}}}]}`)
	blobFile := func(node string) string {
		t.Helper()
		enc, err := rootKMS.Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte("key of node " + node), EncryptionContext: map[string]string{"cluster": "c", "node": node}})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "blob-"+node)
		if err := os.WriteFile(path, enc.CiphertextBlob, 0o600); err != nil {
			t.Fatal(err)
		}
		return "fileb://" + path
	}
	var dec struct{ Plaintext string }
	decodeJSON(t, c.awsCLIAs(t, node1, false, "kms", "decrypt", "--ciphertext-blob", blobFile("1"), "--encryption-context", "cluster=c,node=1"), &dec)
	if got, _ := base64.StdEncoding.DecodeString(dec.Plaintext); string(got) != "key of node 1" {
		t.Fatalf("kms decrypt of the own node's secret: %q", got)
	}
	if out := c.awsCLIAs(t, node1, true, "kms", "decrypt", "--ciphertext-blob", blobFile("2"), "--encryption-context", "cluster=c,node=2"); !strings.Contains(out, "AccessDeniedException") {
		t.Fatalf("kms decrypt of another node's secret: %s", out)
	}

	// STS: the session's identity, plainly and through a presigned URL made by botocore.
	var who struct{ Arn string }
	decodeJSON(t, c.awsCLIAs(t, node1, false, "sts", "get-caller-identity"), &who)
	if who.Arn != "arn:aws:sts::000000000000:assumed-role/broker-c-1/i-0123456789abcdef0" {
		t.Fatalf("sts get-caller-identity as the instance role: %s", who.Arn)
	}
	var token struct{ Status struct{ Token string } }
	decodeJSON(t, c.awsCLIAs(t, node1, false, "eks", "get-token", "--cluster-name", "cluster-1"), &token)
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token.Status.Token, "k8s-aws-v1."))
	if err != nil {
		t.Fatal(err)
	}
	presigned, err := url.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	if q := presigned.Query(); q.Get("X-Amz-SignedHeaders") != "host;x-k8s-aws-id" || q.Get("X-Amz-Expires") != "60" {
		t.Fatalf("botocore's presigned URL: %s", raw)
	}
	// The URL names AWS's STS host, which is signed: send it to the local cloud with that Host.
	get := func(cluster string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/?"+presigned.RawQuery, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = presigned.Host
		if cluster != "" {
			req.Header.Set("x-k8s-aws-id", cluster)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		return resp.StatusCode, b.String()
	}
	if status, body := get("cluster-1"); status != http.StatusOK || !strings.Contains(body, "<Arn>"+who.Arn+"</Arn>") {
		t.Fatalf("botocore's presigned GetCallerIdentity: %d %s", status, body)
	}
	if status, body := get("cluster-2"); status != http.StatusForbidden || !strings.Contains(body, "SignatureDoesNotMatch") {
		t.Fatalf("with another cluster's header: %d %s", status, body)
	}
}
