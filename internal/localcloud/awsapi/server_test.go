package awsapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

const stsXMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"

// testServer starts a Server with a minimal GetCallerIdentity service under "sts", a JSON
// service under "kms" that echoes the caller, and an EC2 service that always fails.
func testServer(t *testing.T, now func() time.Time) (*Server, string) {
	t.Helper()
	creds, err := NewCredentialStore("")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerOptions{Credentials: creds, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	srv.Register("sts", ServiceFunc(func(ctx context.Context, req *Request) (*Response, error) {
		if req.Action != "GetCallerIdentity" {
			return nil, Errorf("InvalidAction", "Could not find operation %s", req.Action)
		}
		return QueryResponse(req, stsXMLNS, struct {
			Arn     string
			UserId  string
			Account string
		}{req.Caller.ARN, req.Caller.UserID, req.Caller.Account})
	}))
	srv.Register("kms", ServiceFunc(func(ctx context.Context, req *Request) (*Response, error) {
		var in struct{ KeyId string }
		if err := req.DecodeJSON(&in); err != nil {
			return nil, err
		}
		if err := req.Authorize(ctx, "kms:DescribeKey", "arn:aws:kms:us-east-1:000000000000:key/"+in.KeyId, nil); err != nil {
			return nil, err
		}
		return nil, Errorf("NotFoundException", "Key '%s' does not exist", in.KeyId)
	}))
	srv.Register("ec2", ServiceFunc(func(ctx context.Context, req *Request) (*Response, error) {
		return nil, Errorf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", req.Params.Get("InstanceId.1"))
	}))
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return srv, hs.URL
}

func awsConfig(endpoint, key, secret, token string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, token),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
		HTTPClient:   &http.Client{Transport: drainSafeTransport{http.DefaultTransport.(*http.Transport).Clone()}},
	}
}

func apiErrorCode(t *testing.T, err error) string {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an AWS API error, got %v", err)
	}
	return ae.ErrorCode()
}

func TestSignatureVerification(t *testing.T) {
	srv, endpoint := testServer(t, nil)
	session, err := srv.Credentials().IssueSession(AssumedRoleIdentity("000000000000", "arn:aws:iam::000000000000:role/broker", "AROAEXAMPLE", "i-0abc"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key, secret, token string
		wantARN, wantCode        string
	}{
		{name: "root test/test", key: "test", secret: "test", wantARN: "arn:aws:iam::000000000000:root"},
		{name: "wrong secret", key: "test", secret: "nope", wantCode: "SignatureDoesNotMatch"},
		{name: "unknown key", key: "AKIAUNKNOWN", secret: "x", wantCode: "InvalidClientTokenId"},
		{name: "session", key: session.AccessKeyID, secret: session.SecretAccessKey, token: session.SessionToken, wantARN: "arn:aws:sts::000000000000:assumed-role/broker/i-0abc"},
		{name: "session without token", key: session.AccessKeyID, secret: session.SecretAccessKey, wantCode: "InvalidClientTokenId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := sts.NewFromConfig(awsConfig(endpoint, tt.key, tt.secret, tt.token))
			out, err := client.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
			if tt.wantCode != "" {
				if got := apiErrorCode(t, err); got != tt.wantCode {
					t.Fatalf("code %q, want %q (%v)", got, tt.wantCode, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.Arn) != tt.wantARN {
				t.Fatalf("arn %q, want %q", aws.ToString(out.Arn), tt.wantARN)
			}
		})
	}
}

func TestErrorsPerProtocol(t *testing.T) {
	_, endpoint := testServer(t, nil)
	ctx := context.Background()
	tests := []struct {
		name, wantCode string
		call           func(cfg aws.Config) error
		secret         string
	}{
		{"json service error", "NotFoundException", func(cfg aws.Config) error {
			_, err := kms.NewFromConfig(cfg).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("k1")})
			return err
		}, "test"},
		{"json bad signature", "InvalidSignatureException", func(cfg aws.Config) error {
			_, err := kms.NewFromConfig(cfg).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("k1")})
			return err
		}, "bad"},
		{"ec2 service error", "InvalidInstanceID.NotFound", func(cfg aws.Config) error {
			_, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-1"}})
			return err
		}, "test"},
		{"ec2 bad signature", "SignatureDoesNotMatch", func(cfg aws.Config) error {
			_, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			return err
		}, "bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(awsConfig(endpoint, "test", tt.secret, ""))
			if got := apiErrorCode(t, err); got != tt.wantCode {
				t.Fatalf("code %q, want %q (%v)", got, tt.wantCode, err)
			}
		})
	}
}

func TestClockSkewRefused(t *testing.T) {
	_, endpoint := testServer(t, func() time.Time { return time.Now().Add(time.Hour) })
	_, err := sts.NewFromConfig(awsConfig(endpoint, "test", "test", "")).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if got := apiErrorCode(t, err); got != "SignatureDoesNotMatch" || !strings.Contains(err.Error(), "Signature expired") {
		t.Fatalf("got %v, want SignatureDoesNotMatch: Signature expired", err)
	}
}

func TestExpiredSession(t *testing.T) {
	srv, endpoint := testServer(t, nil)
	c, err := srv.Credentials().IssueSession(RootIdentity("000000000000"), time.Second, "test")
	if err != nil {
		t.Fatal(err)
	}
	srv.now = func() time.Time { return time.Now().Add(2 * time.Second) }
	_, err = sts.NewFromConfig(awsConfig(endpoint, c.AccessKeyID, c.SecretAccessKey, c.SessionToken)).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if got := apiErrorCode(t, err); got != "ExpiredToken" {
		t.Fatalf("code %q, want ExpiredToken", got)
	}
}

func TestPresignedGetCallerIdentity(t *testing.T) {
	_, endpoint := testServer(t, nil)
	presign := sts.NewPresignClient(sts.NewFromConfig(awsConfig(endpoint, "test", "test", "")))
	req, err := presign.PresignGetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) (int, string) {
		t.Helper()
		hr, err := http.NewRequest(req.Method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range req.SignedHeader {
			hr.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	status, body := get(req.URL)
	if status != http.StatusOK || !strings.Contains(body, "<Arn>arn:aws:iam::000000000000:root</Arn>") {
		t.Fatalf("presigned call: %d %s", status, body)
	}
	// Tampering with any signed parameter breaks the signature.
	status, body = get(strings.Replace(req.URL, "Action=GetCallerIdentity", "Action=GetCallerIdentity&Extra=1", 1))
	var e errorXML
	if err := xml.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	if status != http.StatusForbidden || e.Code != "SignatureDoesNotMatch" {
		t.Fatalf("tampered presigned call: %d %s", status, body)
	}
}

type denyAll struct{}

func (denyAll) Authorize(ctx context.Context, req AuthorizationRequest) (Decision, error) {
	return Decision{}, nil
}

func TestAuthorizerDeniesNonRoot(t *testing.T) {
	srv, endpoint := testServer(t, nil)
	srv.SetAuthorizer(denyAll{})
	session, err := srv.Credentials().IssueSession(AssumedRoleIdentity("000000000000", "arn:aws:iam::000000000000:role/broker", "AROAEXAMPLE", "s"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = kms.NewFromConfig(awsConfig(endpoint, session.AccessKeyID, session.SecretAccessKey, session.SessionToken)).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("k1")})
	if got := apiErrorCode(t, err); got != "AccessDeniedException" || !strings.Contains(err.Error(), "assumed-role/broker/s is not authorized to perform: kms:DescribeKey") {
		t.Fatalf("got %v", err)
	}
	// Root is never restricted by identity policies.
	_, err = kms.NewFromConfig(awsConfig(endpoint, "test", "test", "")).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("k1")})
	if got := apiErrorCode(t, err); got != "NotFoundException" {
		t.Fatalf("root: got %v", err)
	}
}

func TestRPCv2CBORRouting(t *testing.T) {
	srv, endpoint := testServer(t, nil)
	var gotAction string
	srv.Register("monitoring", ServiceFunc(func(ctx context.Context, req *Request) (*Response, error) {
		gotAction = req.Action
		if req.Protocol != ProtocolRPCv2CBOR {
			return nil, Errorf("InvalidAction", "protocol %s", req.Protocol)
		}
		return nil, Errorf("InvalidParameterValue", "The value for parameter MetricData.member.1.Value is invalid")
	}))
	_, err := cloudwatch.NewFromConfig(awsConfig(endpoint, "test", "test", "")).PutMetricData(context.Background(), &cloudwatch.PutMetricDataInput{
		Namespace:  aws.String("Tributary"),
		MetricData: []cwtypes.MetricDatum{{MetricName: aws.String("m"), Value: aws.Float64(1)}},
	})
	if gotAction != "PutMetricData" {
		t.Fatalf("routed action %q, want PutMetricData", gotAction)
	}
	if got := apiErrorCode(t, err); got != "InvalidParameterValue" {
		t.Fatalf("got %v, want InvalidParameterValue", err)
	}
}

func TestPresignedWithSessionToken(t *testing.T) {
	srv, endpoint := testServer(t, nil)
	session, err := srv.Credentials().IssueSession(AssumedRoleIdentity("000000000000", "arn:aws:iam::000000000000:role/client", "AROACLIENT", "s1"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	presign := sts.NewPresignClient(sts.NewFromConfig(awsConfig(endpoint, session.AccessKeyID, session.SecretAccessKey, session.SessionToken)))
	req, err := presign.PresignGetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(req.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "assumed-role/client/s1") {
		t.Fatalf("presigned call with a session: %d %s", resp.StatusCode, body)
	}
	if err := srv.Credentials().RevokeSource("test"); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(req.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "<Code>InvalidClientTokenId</Code>") {
		t.Fatalf("presigned call with a revoked session: %d %s", resp.StatusCode, body)
	}
}

func TestUnsignedAndMalformedRequests(t *testing.T) {
	_, endpoint := testServer(t, nil)
	tests := []struct {
		name     string
		header   map[string]string
		wantCode string
	}{
		{"no signature", nil, "MissingAuthenticationToken"},
		{"wrong algorithm", map[string]string{"Authorization": "AWS4-HMAC-SHA1 Credential=test/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00"}, "IncompleteSignature"},
		{"no date", map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00"}, "IncompleteSignature"},
		{"bad scope", map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=test/us-east-1/sts, SignedHeaders=host, Signature=00", "X-Amz-Date": "20260101T000000Z"}, "IncompleteSignature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader("Action=GetCallerIdentity&Version=2011-06-15"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e errorXML
			body, _ := io.ReadAll(resp.Body)
			if err := xml.Unmarshal(body, &e); err != nil {
				t.Fatalf("decoding %s: %v", body, err)
			}
			if e.Code != tt.wantCode || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%d %s, want 403 %s", resp.StatusCode, e.Code, tt.wantCode)
			}
		})
	}
}

func TestCredentialStorePersists(t *testing.T) {
	path := t.TempDir() + "/creds.json"
	s, err := NewCredentialStore(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.IssueSession(RootIdentity("000000000000"), time.Hour, "x")
	if err != nil {
		t.Fatal(err)
	}
	again, err := NewCredentialStore(path)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := again.Lookup(c.AccessKeyID)
	if !ok || got.SessionToken != c.SessionToken || !got.Expiration.Equal(c.Expiration) {
		t.Fatalf("session after reopening: %+v %v", got, ok)
	}
	if _, ok := again.Lookup("test"); !ok {
		t.Fatal("the default test credentials are missing")
	}
}

// TestQueryCompatibleJSONErrors: CloudWatch's JSON protocol (newer SDKs) is awsQueryCompatible,
// so its errors carry the awsQuery code in x-amzn-query-error.
func TestQueryCompatibleJSONErrors(t *testing.T) {
	srv, endpoint := testServer(t, nil)
	srv.Register("monitoring", ServiceFunc(func(ctx context.Context, req *Request) (*Response, error) {
		return nil, Errorf("InvalidParameterValue", "bad value")
	}))
	send := func(secret string) *http.Response {
		t.Helper()
		body := `{"Namespace":"x"}`
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		req.Header.Set("X-Amz-Target", "GraniteServiceVersion20100801.PutMetricData")
		sum := sha256.Sum256([]byte(body))
		signer := v4.NewSigner()
		creds := aws.Credentials{AccessKeyID: "test", SecretAccessKey: secret}
		if err := signer.SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "monitoring", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := send("test")
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Amzn-Query-Error") != "InvalidParameterValue;Sender" {
		t.Fatalf("service error: %d %q", resp.StatusCode, resp.Header.Get("X-Amzn-Query-Error"))
	}
	resp = send("wrong")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Amzn-Query-Error") != "SignatureDoesNotMatch;Sender" {
		t.Fatalf("bad signature: %d %q", resp.StatusCode, resp.Header.Get("X-Amzn-Query-Error"))
	}
}

// drainSafeTransport hides io.WriterTo on request bodies. smithy-go closes a request body once
// the response headers arrive, and its WriteTo then returns io.EOF as an error; net/http's
// final drain of the body can run after that (a loopback server answers fast enough), fails,
// and tears the connection down under the response ("use of closed network connection"). The
// SDK's default retryer retries such errors; these tests use no retries, so they avoid the race.
type drainSafeTransport struct{ base http.RoundTripper }

func (t drainSafeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r = r.Clone(r.Context())
		r.Body = struct{ io.ReadCloser }{r.Body}
	}
	return t.base.RoundTrip(r)
}
