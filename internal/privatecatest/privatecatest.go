// Package privatecatest drives an AWS Private CA (ACM PCA) through the SDK for tests, in the
// steps AWS requires and every emulator that serves the API (the local cloud, moto) follows:
// a root CA is created, signs its own CSR with the RootCACertificate/V1 template, and becomes
// ACTIVE when that certificate is imported; it then issues client certificates from CSRs.
package privatecatest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acmpca"
	"github.com/aws/aws-sdk-go-v2/service/acmpca/types"
)

// Templates of AWS Private CA.
const (
	TemplateRootCA    = "arn:aws:acm-pca:::template/RootCACertificate/V1"
	TemplateEndEntity = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"
)

// CA is an ACTIVE root certificate authority.
type CA struct {
	ARN     string
	CertPEM string
}

// waitIssued bounds the wait for an issued certificate: AWS issues asynchronously and answers
// GetCertificate with RequestInProgressException meanwhile.
const waitIssued = 30 * time.Second

// ActivateRootCA creates a root CA named commonName and makes it ACTIVE.
func ActivateRootCA(ctx context.Context, client *acmpca.Client, commonName string) (*CA, error) {
	created, err := client.CreateCertificateAuthority(ctx, &acmpca.CreateCertificateAuthorityInput{
		CertificateAuthorityType: types.CertificateAuthorityTypeRoot,
		CertificateAuthorityConfiguration: &types.CertificateAuthorityConfiguration{
			KeyAlgorithm:     types.KeyAlgorithmRsa2048,
			SigningAlgorithm: types.SigningAlgorithmSha256withrsa,
			Subject:          &types.ASN1Subject{CommonName: aws.String(commonName), Organization: aws.String("Tributary tests")},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating CA %s: %w", commonName, err)
	}
	arn := aws.ToString(created.CertificateAuthorityArn)
	csr, err := client.GetCertificateAuthorityCsr(ctx, &acmpca.GetCertificateAuthorityCsrInput{CertificateAuthorityArn: aws.String(arn)})
	if err != nil {
		return nil, fmt.Errorf("reading the CSR of %s: %w", arn, err)
	}
	cert, _, err := issue(ctx, client, arn, []byte(aws.ToString(csr.Csr)), TemplateRootCA, 365)
	if err != nil {
		return nil, fmt.Errorf("signing the root certificate of %s: %w", arn, err)
	}
	if _, err := client.ImportCertificateAuthorityCertificate(ctx, &acmpca.ImportCertificateAuthorityCertificateInput{
		CertificateAuthorityArn: aws.String(arn), Certificate: []byte(cert),
	}); err != nil {
		return nil, fmt.Errorf("importing the root certificate of %s: %w", arn, err)
	}
	return &CA{ARN: arn, CertPEM: cert}, nil
}

// issue signs a CSR and waits for the certificate; it returns it and its chain.
func issue(ctx context.Context, client *acmpca.Client, caARN string, csrPEM []byte, template string, days int64) (string, string, error) {
	out, err := client.IssueCertificate(ctx, &acmpca.IssueCertificateInput{
		CertificateAuthorityArn: aws.String(caARN),
		Csr:                     csrPEM,
		SigningAlgorithm:        types.SigningAlgorithmSha256withrsa,
		TemplateArn:             aws.String(template),
		Validity:                &types.Validity{Type: types.ValidityPeriodTypeDays, Value: aws.Int64(days)},
	})
	if err != nil {
		return "", "", err
	}
	deadline := time.Now().Add(waitIssued)
	for {
		got, err := client.GetCertificate(ctx, &acmpca.GetCertificateInput{CertificateAuthorityArn: aws.String(caARN), CertificateArn: out.CertificateArn})
		var inProgress *types.RequestInProgressException
		switch {
		case err == nil:
			return aws.ToString(got.Certificate), aws.ToString(got.CertificateChain), nil
		case !errors.As(err, &inProgress) || time.Now().After(deadline):
			return "", "", fmt.Errorf("reading certificate %s: %w", aws.ToString(out.CertificateArn), err)
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// IssueClientCertificate makes a key and has the CA certify it for commonName, valid for a day;
// it returns the key pair for a TLS client.
func IssueClientCertificate(ctx context.Context, client *acmpca.Client, caARN, commonName string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	csr, err := csrPEM(key, commonName)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, _, err := issue(ctx, client, caARN, csr, TemplateEndEntity, 1)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing a client certificate for %s: %w", commonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair([]byte(cert), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

func csrPEM(key crypto.Signer, commonName string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: commonName}}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// Delete deletes the CA, disabling it first when it is ACTIVE (AWS deletes only a CA that is
// not).
func Delete(ctx context.Context, client *acmpca.Client, arn string) error {
	d, err := client.DescribeCertificateAuthority(ctx, &acmpca.DescribeCertificateAuthorityInput{CertificateAuthorityArn: aws.String(arn)})
	if err != nil {
		return fmt.Errorf("describing %s: %w", arn, err)
	}
	if d.CertificateAuthority.Status == types.CertificateAuthorityStatusActive {
		if _, err := client.UpdateCertificateAuthority(ctx, &acmpca.UpdateCertificateAuthorityInput{
			CertificateAuthorityArn: aws.String(arn), Status: types.CertificateAuthorityStatusDisabled,
		}); err != nil {
			return fmt.Errorf("disabling %s: %w", arn, err)
		}
	}
	if _, err := client.DeleteCertificateAuthority(ctx, &acmpca.DeleteCertificateAuthorityInput{
		CertificateAuthorityArn: aws.String(arn), PermanentDeletionTimeInDays: aws.Int32(7),
	}); err != nil {
		return fmt.Errorf("deleting %s: %w", arn, err)
	}
	return nil
}

// CreatePending creates a root CA and leaves it waiting for its certificate (PENDING_CERTIFICATE,
// as AWS leaves a new CA); it returns its ARN. Such a CA gives no certificate yet.
func CreatePending(ctx context.Context, client *acmpca.Client, commonName string) (string, error) {
	created, err := client.CreateCertificateAuthority(ctx, &acmpca.CreateCertificateAuthorityInput{
		CertificateAuthorityType: types.CertificateAuthorityTypeRoot,
		CertificateAuthorityConfiguration: &types.CertificateAuthorityConfiguration{
			KeyAlgorithm:     types.KeyAlgorithmRsa2048,
			SigningAlgorithm: types.SigningAlgorithmSha256withrsa,
			Subject:          &types.ASN1Subject{CommonName: aws.String(commonName)},
		},
	})
	if err != nil {
		return "", fmt.Errorf("creating CA %s: %w", commonName, err)
	}
	return aws.ToString(created.CertificateAuthorityArn), nil
}
