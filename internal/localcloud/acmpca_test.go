package localcloud_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acmpca"
	pcatypes "github.com/aws/aws-sdk-go-v2/service/acmpca/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/privatecatest"
)

// TestPrivateCASDK drives the local cloud's Private CA through the SDK in AWS's steps: a root
// CA is created (PENDING_CERTIFICATE, no certificate to give yet), signs its own CSR and
// becomes ACTIVE with it; its certificate verifies a client certificate it issues; its key is
// nowhere in clear in the state directory; a restarted cloud still has it; an ACTIVE CA cannot
// be deleted, a disabled one can, and then has no certificate to give.
func TestPrivateCASDK(t *testing.T) {
	dir := t.TempDir()
	c := startCloud(t, dir)
	ctx := context.Background()
	pca := acmpca.NewFromConfig(sdkConfig(c))

	created, err := pca.CreateCertificateAuthority(ctx, &acmpca.CreateCertificateAuthorityInput{
		CertificateAuthorityType: pcatypes.CertificateAuthorityTypeRoot,
		CertificateAuthorityConfiguration: &pcatypes.CertificateAuthorityConfiguration{
			KeyAlgorithm: pcatypes.KeyAlgorithmEcPrime256v1, SigningAlgorithm: pcatypes.SigningAlgorithmSha256withecdsa,
			Subject: &pcatypes.ASN1Subject{CommonName: aws.String("pending")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = pca.GetCertificateAuthorityCertificate(ctx, &acmpca.GetCertificateAuthorityCertificateInput{CertificateAuthorityArn: created.CertificateAuthorityArn})
	var invalidState *pcatypes.InvalidStateException
	if !errors.As(err, &invalidState) {
		t.Fatalf("the certificate of a CA waiting for one: %v, want InvalidStateException", err)
	}

	ca, err := privatecatest.ActivateRootCA(ctx, pca, "clients")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ca.ARN, "arn:aws:acm-pca:us-east-1:"+awsapi.DefaultAccount+":certificate-authority/") {
		t.Fatalf("ARN %s", ca.ARN)
	}
	d, err := pca.DescribeCertificateAuthority(ctx, &acmpca.DescribeCertificateAuthorityInput{CertificateAuthorityArn: aws.String(ca.ARN)})
	if err != nil {
		t.Fatal(err)
	}
	if d.CertificateAuthority.Status != pcatypes.CertificateAuthorityStatusActive || d.CertificateAuthority.NotAfter == nil {
		t.Fatalf("described: %+v", d.CertificateAuthority)
	}
	got, err := pca.GetCertificateAuthorityCertificate(ctx, &acmpca.GetCertificateAuthorityCertificateInput{CertificateAuthorityArn: aws.String(ca.ARN)})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(aws.ToString(got.Certificate)))
	if block == nil {
		t.Fatalf("CA certificate %q", aws.ToString(got.Certificate))
	}
	caCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !caCert.IsCA || caCert.Subject.CommonName != "clients" || caCert.CheckSignatureFrom(caCert) != nil {
		t.Fatalf("CA certificate: IsCA %v, subject %v", caCert.IsCA, caCert.Subject)
	}
	client, err := privatecatest.IssueClientCertificate(ctx, pca, ca.ARN, "app")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(client.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("the client certificate does not verify against its CA: %v", err)
	}
	if leaf.Subject.CommonName != "app" || leaf.NotAfter.After(time.Now().Add(25*time.Hour)) {
		t.Fatalf("client certificate: subject %v, not after %v", leaf.Subject, leaf.NotAfter)
	}
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(data), "PRIVATE KEY") {
			t.Errorf("%s holds a private key in clear", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = startCloud(t, dir)
	pca = acmpca.NewFromConfig(sdkConfig(c))
	again, err := pca.GetCertificateAuthorityCertificate(ctx, &acmpca.GetCertificateAuthorityCertificateInput{CertificateAuthorityArn: aws.String(ca.ARN)})
	if err != nil || aws.ToString(again.Certificate) != aws.ToString(got.Certificate) {
		t.Fatalf("after a restart: %v (certificate changed: %v)", err, err == nil)
	}
	if _, err := privatecatest.IssueClientCertificate(ctx, pca, ca.ARN, "app-2"); err != nil {
		t.Fatalf("issuing after a restart: %v", err)
	}

	_, err = pca.DeleteCertificateAuthority(ctx, &acmpca.DeleteCertificateAuthorityInput{CertificateAuthorityArn: aws.String(ca.ARN)})
	if !errors.As(err, &invalidState) {
		t.Fatalf("deleting an ACTIVE CA: %v, want InvalidStateException", err)
	}
	if err := privatecatest.Delete(ctx, pca, ca.ARN); err != nil {
		t.Fatal(err)
	}
	if _, err := pca.GetCertificateAuthorityCertificate(ctx, &acmpca.GetCertificateAuthorityCertificateInput{CertificateAuthorityArn: aws.String(ca.ARN)}); !errors.As(err, &invalidState) {
		t.Fatalf("the certificate of a deleted CA: %v, want InvalidStateException", err)
	}
}

// TestPrivateCAIsAuthorizedByIAM: a role may read a CA's certificate only once a policy allows
// it acm-pca:GetCertificateAuthorityCertificate on that CA; another CA, and issuing, stay
// refused.
func TestPrivateCAIsAuthorizedByIAM(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	cfg := sdkConfig(c)
	pca := acmpca.NewFromConfig(cfg)
	mine, err := privatecatest.ActivateRootCA(ctx, pca, "mine")
	if err != nil {
		t.Fatal(err)
	}
	other, err := privatecatest.ActivateRootCA(ctx, pca, "other")
	if err != nil {
		t.Fatal(err)
	}
	admin := iam.NewFromConfig(cfg)
	role, err := admin.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("reader"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	session, err := c.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(role.Role.Arn), aws.ToString(role.Role.RoleId), "test"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	creds := []string{"AWS_ACCESS_KEY_ID=" + session.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + session.SecretAccessKey, "AWS_SESSION_TOKEN=" + session.SessionToken}
	get := func(arn string) error {
		_, err := awsCLIAs(t, c.Endpoint(), creds, "acm-pca", "get-certificate-authority-certificate", "--certificate-authority-arn", arn)
		return err
	}
	if err := get(mine.ARN); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("reading without a policy: %v", err)
	}
	if _, err := admin.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("reader"), PolicyName: aws.String("read-mine"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"acm-pca:GetCertificateAuthorityCertificate","Resource":"` + mine.ARN + `"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if err := get(mine.ARN); err != nil {
		t.Fatalf("reading with acm-pca:GetCertificateAuthorityCertificate on %s: %v", mine.ARN, err)
	}
	if err := get(other.ARN); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("reading another CA: %v", err)
	}
	as := cfg.Copy()
	as.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: session.AccessKeyID, SecretAccessKey: session.SecretAccessKey, SessionToken: session.SessionToken}, nil
	})
	_, err = privatecatest.IssueClientCertificate(ctx, acmpca.NewFromConfig(as), mine.ARN, "intruder")
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "AccessDeniedException" {
		t.Fatalf("issuing without acm-pca:IssueCertificate: %v", err)
	}
}

// TestPrivateCACLI drives the whole life of a root CA through Debian's aws CLI, as a user who
// sets one up by hand for tributary_cluster's certificate_authority_arns.
func TestPrivateCACLI(t *testing.T) {
	c := startCloud(t, "")
	cli := func(args ...string) map[string]any {
		t.Helper()
		out, err := awsCLI(t, c.Endpoint(), append([]string{"acm-pca"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		v := map[string]any{}
		if len(strings.TrimSpace(string(out))) > 0 {
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("decoding %s: %v", out, err)
			}
		}
		return v
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conf := write("ca.json", `{"KeyAlgorithm":"RSA_2048","SigningAlgorithm":"SHA256WITHRSA","Subject":{"CommonName":"cli-ca","Country":"DE"}}`)
	arn, _ := cli("create-certificate-authority", "--certificate-authority-type", "ROOT",
		"--certificate-authority-configuration", "file://"+conf)["CertificateAuthorityArn"].(string)
	if arn == "" {
		t.Fatal("create-certificate-authority gave no ARN")
	}
	if s := cli("describe-certificate-authority", "--certificate-authority-arn", arn)["CertificateAuthority"].(map[string]any)["Status"]; s != "PENDING_CERTIFICATE" {
		t.Fatalf("a new CA is %v", s)
	}
	csr := write("ca.csr", cli("get-certificate-authority-csr", "--certificate-authority-arn", arn)["Csr"].(string))
	certARN := cli("issue-certificate", "--certificate-authority-arn", arn, "--csr", "fileb://"+csr, "--signing-algorithm", "SHA256WITHRSA",
		"--template-arn", "arn:aws:acm-pca:::template/RootCACertificate/V1", "--validity", "Value=365,Type=DAYS")["CertificateArn"].(string)
	cert := write("ca.pem", cli("get-certificate", "--certificate-authority-arn", arn, "--certificate-arn", certARN)["Certificate"].(string))
	cli("import-certificate-authority-certificate", "--certificate-authority-arn", arn, "--certificate", "fileb://"+cert)
	if s := cli("describe-certificate-authority", "--certificate-authority-arn", arn)["CertificateAuthority"].(map[string]any)["Status"]; s != "ACTIVE" {
		t.Fatalf("after the import the CA is %v", s)
	}
	got := cli("get-certificate-authority-certificate", "--certificate-authority-arn", arn)["Certificate"].(string)
	if block, _ := pem.Decode([]byte(got)); block == nil {
		t.Fatalf("get-certificate-authority-certificate: %q", got)
	} else if parsed, err := x509.ParseCertificate(block.Bytes); err != nil || parsed.Subject.CommonName != "cli-ca" {
		t.Fatalf("the CA certificate: %v %v", err, parsed)
	}
	cli("update-certificate-authority", "--certificate-authority-arn", arn, "--status", "DISABLED")
	cli("delete-certificate-authority", "--certificate-authority-arn", arn, "--permanent-deletion-time-in-days", "7")
	if s := cli("describe-certificate-authority", "--certificate-authority-arn", arn)["CertificateAuthority"].(map[string]any)["Status"]; s != "DELETED" {
		t.Fatalf("after delete-certificate-authority the CA is %v", s)
	}
}
