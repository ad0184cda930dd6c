package provider

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acmpca"
	pcatypes "github.com/aws/aws-sdk-go-v2/service/acmpca/types"

	"github.com/tributary/tributary/provider/internal/pki"
)

// fakePrivateCA answers GetCertificateAuthorityCertificate from a map, as
// Private CA does: an unknown or pending CA is an error.
type fakePrivateCA map[string]string

func (f fakePrivateCA) GetCertificateAuthorityCertificate(_ context.Context, in *acmpca.GetCertificateAuthorityCertificateInput, _ ...func(*acmpca.Options)) (*acmpca.GetCertificateAuthorityCertificateOutput, error) {
	cert, ok := f[aws.ToString(in.CertificateAuthorityArn)]
	if !ok {
		return nil, &pcatypes.InvalidStateException{Message: aws.String("the CA is PENDING_CERTIFICATE")}
	}
	return &acmpca.GetCertificateAuthorityCertificateOutput{Certificate: aws.String(cert)}, nil
}

func TestPrivateCACertificates(t *testing.T) {
	now := time.Now()
	one, err := pki.NewCA("one", "tc-1", now)
	if err != nil {
		t.Fatal(err)
	}
	two, err := pki.NewCA("two", "tc-1", now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := one.Issue(pki.Request{Subject: pkix.Name{CommonName: "app"}, NotBefore: now, Validity: time.Hour, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	const arnOne, arnTwo, arnLeaf, arnPending = "arn:aws:acm-pca:us-east-1:1:certificate-authority/1", "arn:aws:acm-pca:us-east-1:1:certificate-authority/2",
		"arn:aws:acm-pca:us-east-1:1:certificate-authority/3", "arn:aws:acm-pca:us-east-1:1:certificate-authority/4"
	pca := fakePrivateCA{arnOne: one.CertPEM, arnTwo: two.CertPEM + "\n", arnLeaf: leaf.CertPEM}
	tests := []struct {
		name    string
		arns    []string
		want    []string // the CAs' certificates, in ARN order
		wantErr string
	}{
		{name: "one", arns: []string{arnOne}, want: []string{one.CertPEM}},
		{name: "two in ARN order", arns: []string{arnTwo, arnOne}, want: []string{one.CertPEM, two.CertPEM}},
		{name: "a CA without its certificate", arns: []string{arnOne, arnPending}, wantErr: arnPending},
		{name: "a certificate that is no CA's", arns: []string{arnLeaf}, wantErr: arnLeaf},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := privateCACertificates(context.Background(), pca, tt.arns, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d certificates, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if strings.TrimSpace(got[i]) != strings.TrimSpace(tt.want[i]) {
					t.Fatalf("certificate %d is not the CA's", i)
				}
			}
		})
	}
	var invalid *pcatypes.InvalidStateException
	if _, err := privateCACertificates(context.Background(), pca, []string{arnPending}, now); !errors.As(err, &invalid) {
		t.Fatalf("the Private CA error is not wrapped: %v", err)
	}
}
