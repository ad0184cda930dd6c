package provider

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/acmpca"

	"github.com/tributary/tributary/provider/internal/pki"
)

// privateCAReader is the one AWS Private CA call the provider makes:
// *acmpca.Client has it. The provider only reads each CA's certificate, so
// the user's role needs acm-pca:GetCertificateAuthorityCertificate on the
// CAs and nothing that issues.
type privateCAReader interface {
	GetCertificateAuthorityCertificate(ctx context.Context, in *acmpca.GetCertificateAuthorityCertificateInput, optFns ...func(*acmpca.Options)) (*acmpca.GetCertificateAuthorityCertificateOutput, error)
}

// checkPrivateCAARN says what is wrong with a certificate_authority_arns
// entry, before anything is called: it must name a certificate authority
// of AWS Private CA.
func checkPrivateCAARN(s string) error {
	a, err := arn.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not an ARN: %w", s, err)
	}
	if a.Service != "acm-pca" || !strings.HasPrefix(a.Resource, "certificate-authority/") || strings.Contains(strings.TrimPrefix(a.Resource, "certificate-authority/"), "/") {
		return fmt.Errorf("%q is not the ARN of an AWS Private CA certificate authority (arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID)", s)
	}
	return nil
}

// privateCACertificates reads the certificate of each CA, in the order of
// arns: what the brokers trust for client certificates, as Amazon MSK
// trusts the certificate authorities it is given. Only the CA's own
// certificate is trusted, not its chain: for a subordinate CA, trusting its
// root would admit the certificates of the root's other subordinates too.
// A CA that gives no certificate (not yet ACTIVE, deleted), or one that is
// not a CA certificate or has expired, is an error naming the CA.
func privateCACertificates(ctx context.Context, client privateCAReader, arns []string, now time.Time) ([]string, error) {
	out := make([]string, 0, len(arns))
	for _, a := range slices.Sorted(slices.Values(arns)) {
		got, err := client.GetCertificateAuthorityCertificate(ctx, &acmpca.GetCertificateAuthorityCertificateInput{CertificateAuthorityArn: aws.String(a)})
		if err != nil {
			return nil, fmt.Errorf("reading the certificate of %s (acm-pca:GetCertificateAuthorityCertificate; the CA must be ACTIVE): %w", a, err)
		}
		text := aws.ToString(got.Certificate)
		certs, err := pki.ParseTrustBundle(text, now)
		if err != nil {
			return nil, fmt.Errorf("the certificate of %s: %w", a, err)
		}
		if len(certs) != 1 {
			return nil, fmt.Errorf("%s gave %d certificates, not its own one", a, len(certs))
		}
		out = append(out, pki.Bundle(certs[0]))
	}
	return out, nil
}

// sameARNs compares two sets of ARNs.
func sameARNs(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
