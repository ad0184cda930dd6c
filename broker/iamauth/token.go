package iamauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

const (
	// ClusterIDHeader is the signed header that binds a token to one
	// cluster. SigV4 signs header names in lower case.
	ClusterIDHeader = "X-Tributary-Cluster-Id"

	// MaxValidity is the longest a token is valid: Amazon MSK's and
	// aws-iam-authenticator's 15 minutes. A stolen token is useful for
	// no longer than this.
	MaxValidity = 900 * time.Second

	stsAction      = "GetCallerIdentity"
	stsVersion     = "2011-06-15"
	signingService = "sts"
	signedHeaders  = "host;x-tributary-cluster-id"
	fragmentKey    = "cluster"
	// emptyPayloadHash is SHA-256(""): a GET carries no body.
	emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// clusterIDPattern bounds what a cluster id may be: it travels as an HTTP
// header value and in a URL fragment, and a broker compares it byte-wise.
var clusterIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// ValidateClusterID reports whether id can bind a token: 1-128 letters,
// digits, '.', '_' or '-'.
func ValidateClusterID(id string) error {
	if !clusterIDPattern.MatchString(id) {
		return fmt.Errorf("cluster id %q: must be 1-128 letters, digits, '.', '_' or '-'", id)
	}
	return nil
}

// Token is an OAUTHBEARER token for one cluster.
type Token struct {
	// Value is the token: base64url, no padding, of the presigned URL.
	Value string
	// Expiry is when STS stops accepting it.
	Expiry time.Time
}

// String hides the token, so that printing a Token by mistake logs nothing
// usable.
func (t Token) String() string {
	return fmt.Sprintf("iamauth.Token{expiry: %s}", t.Expiry.UTC().Format(time.RFC3339))
}

// NewToken makes a token for clusterID signed with cfg's credentials, for
// the STS endpoint cfg resolves to (see STSEndpoint). It sends nothing: a
// presign is local computation, plus whatever cfg's credential provider
// does to produce credentials.
//
// The token is valid for MaxValidity, or until the credentials expire when
// that is sooner (a presigned request is only as good as its credentials).
func NewToken(ctx context.Context, cfg aws.Config, clusterID string) (Token, error) {
	return newToken(ctx, cfg, clusterID, time.Now())
}

func newToken(ctx context.Context, cfg aws.Config, clusterID string, now time.Time) (Token, error) {
	if err := ValidateClusterID(clusterID); err != nil {
		return Token{}, fmt.Errorf("making an IAM token: %w", err)
	}
	endpoint, err := STSEndpoint(ctx, cfg)
	if err != nil {
		return Token{}, fmt.Errorf("making an IAM token: %w", err)
	}
	if cfg.Credentials == nil {
		return Token{}, errors.New("making an IAM token: the AWS configuration has no credentials")
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return Token{}, fmt.Errorf("making an IAM token: retrieving AWS credentials: %w", err)
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return Token{}, errors.New("making an IAM token: the AWS credentials are anonymous or empty")
	}
	// SigV4 dates have whole seconds; Expiry must be what a verifier
	// computes from X-Amz-Date.
	now = now.UTC().Truncate(time.Second)
	validity := MaxValidity
	if creds.CanExpire {
		left := creds.Expires.Sub(now).Truncate(time.Second)
		if left < time.Second {
			return Token{}, fmt.Errorf("making an IAM token: the AWS credentials expired at %s", creds.Expires.UTC().Format(time.RFC3339))
		}
		validity = min(validity, left)
	}

	u := *endpoint
	if u.Path == "" {
		u.Path = "/"
	}
	q := url.Values{}
	q.Set("Action", stsAction)
	q.Set("Version", stsVersion)
	q.Set("X-Amz-Expires", fmt.Sprint(int(validity/time.Second)))
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Token{}, fmt.Errorf("making an IAM token: %w", err)
	}
	// Only the cluster header besides host: the verifier must be able to
	// rebuild every signed header, and it knows no others.
	req.Header = http.Header{ClusterIDHeader: {clusterID}}
	signed, _, err := v4.NewSigner().PresignHTTP(ctx, creds, req, emptyPayloadHash, signingService, cfg.Region, now)
	if err != nil {
		return Token{}, fmt.Errorf("making an IAM token: presigning GetCallerIdentity: %w", err)
	}
	signed += "#" + fragmentKey + "=" + clusterID
	return Token{
		Value:  base64.RawURLEncoding.EncodeToString([]byte(signed)),
		Expiry: now.Add(validity),
	}, nil
}

// STSEndpoint is the STS endpoint the AWS SDK resolves for cfg, in the
// SDK's order: AWS_ENDPOINT_URL_STS or the shared config's services
// section, then cfg.BaseEndpoint (which AWS_ENDPOINT_URL fills), then the
// region's endpoint with its FIPS and dual-stack settings. Tokens are
// presigned for it and verifiers send them to it.
func STSEndpoint(ctx context.Context, cfg aws.Config) (*url.URL, error) {
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set it with --region, AWS_REGION or the profile's region")
	}
	o := sts.NewFromConfig(cfg).Options()
	params := sts.EndpointParameters{
		Region:       aws.String(o.Region),
		UseDualStack: aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		UseFIPS:      aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		Endpoint:     o.BaseEndpoint,
	}
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("resolving the STS endpoint for %s: %w", o.Region, err)
	}
	u := ep.URI
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("the STS endpoint %q is not an http(s) URL with a host", u.String())
	}
	u.RawQuery, u.Fragment, u.RawFragment, u.User = "", "", "", nil
	return &u, nil
}
