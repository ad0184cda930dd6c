package iamauth

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

func staticConfig(region, endpoint string) aws.Config {
	cfg := aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")}
	if endpoint != "" {
		cfg.BaseEndpoint = aws.String(endpoint)
	}
	return cfg
}

func decodeToken(t *testing.T, tok Token) *url.URL {
	t.Helper()
	raw, err := base64.RawURLEncoding.Strict().DecodeString(tok.Value)
	if err != nil {
		t.Fatalf("token is not base64url without padding: %v", err)
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestNewTokenShape(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 800, time.UTC)
	tok, err := newToken(context.Background(), staticConfig("eu-west-1", ""), clusterA, now)
	if err != nil {
		t.Fatal(err)
	}
	u := decodeToken(t, tok)
	q := u.Query()
	checks := map[string]string{
		"scheme":              u.Scheme,
		"host":                u.Host,
		"path":                u.Path,
		"fragment":            u.Fragment,
		"Action":              q.Get("Action"),
		"Version":             q.Get("Version"),
		"X-Amz-Algorithm":     q.Get("X-Amz-Algorithm"),
		"X-Amz-Credential":    q.Get("X-Amz-Credential"),
		"X-Amz-Date":          q.Get("X-Amz-Date"),
		"X-Amz-Expires":       q.Get("X-Amz-Expires"),
		"X-Amz-SignedHeaders": q.Get("X-Amz-SignedHeaders"),
	}
	want := map[string]string{
		"scheme":              "https",
		"host":                "sts.eu-west-1.amazonaws.com",
		"path":                "/",
		"fragment":            "cluster=" + clusterA,
		"Action":              "GetCallerIdentity",
		"Version":             "2011-06-15",
		"X-Amz-Algorithm":     "AWS4-HMAC-SHA256",
		"X-Amz-Credential":    "AKIDEXAMPLE/20260304/eu-west-1/sts/aws4_request",
		"X-Amz-Date":          "20260304T050607Z",
		"X-Amz-Expires":       "900",
		"X-Amz-SignedHeaders": "host;x-tributary-cluster-id",
	}
	for k, w := range want {
		if checks[k] != w {
			t.Errorf("%s = %q, want %q", k, checks[k], w)
		}
	}
	if got := tok.Expiry; !got.Equal(time.Date(2026, 3, 4, 5, 21, 7, 0, time.UTC)) {
		t.Errorf("expiry %v, want X-Amz-Date + 900 s", got)
	}
	if len(q.Get("X-Amz-Signature")) != 64 || q.Has("X-Amz-Security-Token") {
		t.Errorf("signature %q, security token present %v", q.Get("X-Amz-Signature"), q.Has("X-Amz-Security-Token"))
	}
	if strings.Contains(tok.String(), tok.Value) || strings.Contains(tok.String(), q.Get("X-Amz-Signature")) {
		t.Errorf("Token.String shows the token: %s", tok.String())
	}
	// The token the verifier parses is the one made.
	p, err := parseToken(tok.Value)
	if err != nil || !p.expiry().Equal(tok.Expiry) || p.clusterHint != clusterA || p.accessKeyID != "AKIDEXAMPLE" {
		t.Fatalf("parse %+v %v", p, err)
	}
	// Same inputs, same token: nothing random goes in.
	again, err := newToken(context.Background(), staticConfig("eu-west-1", ""), clusterA, now)
	if err != nil || again.Value != tok.Value {
		t.Fatalf("a second token for the same second differs: %v", err)
	}
	other, err := newToken(context.Background(), staticConfig("eu-west-1", ""), clusterB, now)
	if err != nil || decodeToken(t, other).Query().Get("X-Amz-Signature") == q.Get("X-Amz-Signature") {
		t.Fatalf("the cluster id does not change the signature: %v", err)
	}
}

func TestNewTokenFollowsExpiringCredentials(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	tests := []struct {
		name    string
		expires time.Time
		want    string // X-Amz-Expires
		wantErr bool
	}{
		{"far", now.Add(time.Hour), "900", false},
		{"five minutes", now.Add(5*time.Minute + 500*time.Millisecond), "300", false},
		{"expired", now.Add(-time.Second), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := aws.Config{Region: "us-east-1", Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "s", SessionToken: "tok", CanExpire: true, Expires: tt.expires}, nil
			})}
			tok, err := newToken(context.Background(), cfg, clusterA, now)
			if tt.wantErr {
				if err == nil {
					t.Fatal("a token from expired credentials")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			q := decodeToken(t, tok).Query()
			if q.Get("X-Amz-Expires") != tt.want || q.Get("X-Amz-Security-Token") != "tok" {
				t.Fatalf("X-Amz-Expires %s (want %s), security token %q", q.Get("X-Amz-Expires"), tt.want, q.Get("X-Amz-Security-Token"))
			}
			if tok.Expiry.After(tt.expires) {
				t.Fatalf("token expiry %v after the credentials' %v", tok.Expiry, tt.expires)
			}
		})
	}
}

func TestNewTokenRefusals(t *testing.T) {
	ctx := context.Background()
	failing := aws.Config{Region: "us-east-1", Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{}, errors.New("no credentials here")
	})}
	tests := []struct {
		name, cluster string
		cfg           aws.Config
		want          string
	}{
		{"bad cluster id", "a b", staticConfig("us-east-1", ""), "cluster id"},
		{"empty cluster id", "", staticConfig("us-east-1", ""), "cluster id"},
		{"no region", clusterA, staticConfig("", ""), "region"},
		{"no credentials", clusterA, aws.Config{Region: "us-east-1"}, "no credentials"},
		{"anonymous", clusterA, aws.Config{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}}, "anonymous"},
		{"provider fails", clusterA, failing, "no credentials here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewToken(ctx, tt.cfg, tt.cluster)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.want)) {
				t.Fatalf("err %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// TestSTSEndpointResolution pins that the SDK's endpoint settings decide
// where tokens point: AWS_ENDPOINT_URL_STS over BaseEndpoint (which
// AWS_ENDPOINT_URL fills) over the region's endpoint.
func TestSTSEndpointResolution(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		base string
		want string
	}{
		{"region", nil, "", "https://sts.ap-southeast-2.amazonaws.com"},
		{"AWS_ENDPOINT_URL", map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, "", "http://127.0.0.1:4566"},
		{"AWS_ENDPOINT_URL_STS wins", map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ENDPOINT_URL_STS": "http://127.0.0.2:4000"}, "", "http://127.0.0.2:4000"},
		{"BaseEndpoint", map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, "http://127.0.0.3:5000", "http://127.0.0.3:5000"},
		// The SDK ranks the service's own variable above BaseEndpoint.
		{"AWS_ENDPOINT_URL_STS over BaseEndpoint", map[string]string{"AWS_ENDPOINT_URL_STS": "http://127.0.0.2:4000"}, "http://127.0.0.3:5000", "http://127.0.0.2:4000"},
		{"FIPS", map[string]string{"AWS_USE_FIPS_ENDPOINT": "true"}, "", "https://sts-fips.ap-southeast-2.amazonaws.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_USE_FIPS_ENDPOINT", "AWS_CONFIG_FILE", "AWS_PROFILE"} {
				t.Setenv(k, "")
			}
			t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("ap-southeast-2"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.base != "" {
				cfg.BaseEndpoint = aws.String(tt.base)
			}
			u, err := STSEndpoint(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSuffix(u.String(), "/"); got != tt.want {
				t.Fatalf("endpoint %s, want %s", got, tt.want)
			}
		})
	}
}
