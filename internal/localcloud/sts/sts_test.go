package sts_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	awssts "github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/iam"
	"github.com/tributary/tributary/internal/localcloud/sts"
)

// newCloud starts IAM and STS behind one awsapi server.
func newCloud(t *testing.T) *awsapitest.Cloud {
	t.Helper()
	c := awsapitest.Start(t)
	iamSvc, err := iam.New(c.Env(""))
	if err != nil {
		t.Fatal(err)
	}
	stsSvc, err := sts.New(c.Env(""), iamSvc)
	if err != nil {
		t.Fatal(err)
	}
	c.Server.Register("iam", iamSvc)
	c.Server.Register("sts", stsSvc)
	c.Server.SetAuthorizer(iamSvc)
	return c
}

func TestAssumeRoleValidation(t *testing.T) {
	c := newCloud(t)
	ctx := context.Background()
	role := awsapitest.CreateRole(t, awsiam.NewFromConfig(c.Root()), "app", awsapitest.TrustAccount)
	client := awssts.NewFromConfig(c.Root())
	tests := []struct {
		name string
		in   awssts.AssumeRoleInput
		code string
	}{
		{"bad session name", awssts.AssumeRoleInput{RoleArn: role.Arn, RoleSessionName: aws.String("a b")}, "ValidationError"},
		{"too short", awssts.AssumeRoleInput{RoleArn: role.Arn, RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(60)}, "ValidationError"},
		{"over the role maximum", awssts.AssumeRoleInput{RoleArn: role.Arn, RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(7200)}, "ValidationError"},
		{"session policy", awssts.AssumeRoleInput{RoleArn: role.Arn, RoleSessionName: aws.String("s1"), Policy: aws.String(`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`)}, "ValidationError"},
		{"missing role", awssts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/none"), RoleSessionName: aws.String("s1")}, "AccessDenied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.AssumeRole(ctx, &tt.in)
			if got := awsapitest.ErrorCode(t, err); got != tt.code {
				t.Fatalf("code %s, want %s (%v)", got, tt.code, err)
			}
		})
	}
}

func TestAssumedCredentialsWorkAndExpire(t *testing.T) {
	c := newCloud(t)
	ctx := context.Background()
	role := awsapitest.CreateRole(t, awsiam.NewFromConfig(c.Root()), "app", awsapitest.TrustAccount)
	session, out := c.AssumeRole(t, aws.ToString(role.Arn), 900)
	if exp := aws.ToTime(out.Credentials.Expiration); exp.Before(time.Now().Add(14*time.Minute)) || exp.After(time.Now().Add(16*time.Minute)) {
		t.Fatalf("expiration %v, want about 15 minutes from now", exp)
	}
	who, err := awssts.NewFromConfig(session).GetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(who.Arn) != "arn:aws:sts::000000000000:assumed-role/app/test-session" || aws.ToString(who.UserId) != aws.ToString(role.RoleId)+":test-session" {
		t.Fatalf("GetCallerIdentity %+v", who)
	}
	c.Clock.Advance(899 * time.Second)
	if _, err := awssts.NewFromConfig(session).GetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{}); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	c.Clock.Advance(2 * time.Second)
	_, err = awssts.NewFromConfig(session).GetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{})
	if got := awsapitest.ErrorCode(t, err); got != "ExpiredToken" {
		t.Fatalf("after expiry: %s", got)
	}
}

func TestPresignedGetCallerIdentity(t *testing.T) {
	c := newCloud(t)
	ctx := context.Background()
	role := awsapitest.CreateRole(t, awsiam.NewFromConfig(c.Root()), "client", awsapitest.TrustAccount)
	session, _ := c.AssumeRole(t, aws.ToString(role.Arn), 3600)
	presigned, err := awssts.NewPresignClient(awssts.NewFromConfig(session)).PresignGetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(presigned.URL, "X-Amz-Security-Token=") {
		t.Fatalf("presigned URL without the session token: %s", presigned.URL)
	}
	call := func(method, target string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range presigned.SignedHeader {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	want := "<Arn>arn:aws:sts::000000000000:assumed-role/client/test-session</Arn>"
	status, body := call(presigned.Method, presigned.URL)
	if status != http.StatusOK || !strings.Contains(body, want) {
		t.Fatalf("%s presigned: %d %s", presigned.Method, status, body)
	}
	// With "Accept: application/json" STS answers in JSON, as aws-iam-authenticator expects.
	jsonReq, err := http.NewRequestWithContext(ctx, presigned.Method, presigned.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	jsonReq.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(jsonReq)
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		GetCallerIdentityResponse struct {
			GetCallerIdentityResult struct{ Arn, Account, UserId string }
			ResponseMetadata        struct{ RequestId string }
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&decoded)
	resp.Body.Close()
	result := decoded.GetCallerIdentityResponse.GetCallerIdentityResult
	if err != nil || result.Arn != "arn:aws:sts::000000000000:assumed-role/client/test-session" || result.Account != "000000000000" ||
		decoded.GetCallerIdentityResponse.ResponseMetadata.RequestId == "" {
		t.Fatalf("JSON GetCallerIdentity: %+v %v", decoded, err)
	}
	// A URL presigned for POST verifies too (the method is part of the signature).
	creds, err := session.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	post, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Expires=60", nil)
	if err != nil {
		t.Fatal(err)
	}
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	postURL, _, err := v4.NewSigner().PresignHTTP(ctx, creds, post, emptySHA256, "sts", "us-east-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if status, body := call(http.MethodPost, postURL); status != http.StatusOK || !strings.Contains(body, want) {
		t.Fatalf("POST presigned: %d %s", status, body)
	}
	if status, _ := call(http.MethodGet, postURL); status == http.StatusOK {
		t.Fatal("a URL presigned for POST was accepted with GET")
	}
	tests := []struct {
		name, url, code string
	}{
		{"tampered action", strings.Replace(presigned.URL, "Action=GetCallerIdentity", "Action=GetCallerIdentity&x=1", 1), "SignatureDoesNotMatch"},
		{"tampered token", strings.Replace(presigned.URL, "X-Amz-Security-Token=", "X-Amz-Security-Token=AAAA", 1), "InvalidClientTokenId"},
		{"added expiry", presigned.URL + "&X-Amz-Expires=86400", "SignatureDoesNotMatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.url == presigned.URL {
				t.Fatalf("the URL was not changed: %s", tt.url)
			}
			status, body := call(http.MethodGet, tt.url)
			if status == http.StatusOK || !strings.Contains(body, "<Code>"+tt.code+"</Code>") {
				t.Fatalf("got %d %s, want %s", status, body, tt.code)
			}
		})
	}
	// Past its X-Amz-Expires (60 s) the POST URL is refused; the SDK's URL (no X-Amz-Expires:
	// the 15-minute default) still works until it too is too old.
	c.Clock.Advance(61 * time.Second)
	if status, body := call(http.MethodPost, postURL); status == http.StatusOK || !strings.Contains(body, "expired") {
		t.Fatalf("POST URL past X-Amz-Expires: %d %s", status, body)
	}
	if status, body := call(http.MethodGet, presigned.URL); status != http.StatusOK {
		t.Fatalf("GET URL within 15 minutes: %d %s", status, body)
	}
	c.Clock.Advance(840 * time.Second)
	status, body = call(http.MethodGet, presigned.URL)
	if status == http.StatusOK || !strings.Contains(body, "expired") {
		t.Fatalf("expired presigned URL: %d %s", status, body)
	}
}

func TestGetSessionToken(t *testing.T) {
	c := newCloud(t)
	ctx := context.Background()
	out, err := awssts.NewFromConfig(c.Root()).GetSessionToken(ctx, &awssts.GetSessionTokenInput{DurationSeconds: aws.Int32(7200)})
	if err != nil {
		t.Fatal(err)
	}
	cr := out.Credentials
	if exp := aws.ToTime(cr.Expiration); exp.After(time.Now().Add(61 * time.Minute)) {
		t.Fatalf("a root session lasting until %v, want at most an hour", exp)
	}
	session := c.Config(aws.ToString(cr.AccessKeyId), aws.ToString(cr.SecretAccessKey), aws.ToString(cr.SessionToken))
	who, err := awssts.NewFromConfig(session).GetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(who.Arn) != "arn:aws:iam::000000000000:root" {
		t.Fatalf("GetCallerIdentity with the session: %+v %v", who, err)
	}
	_, err = awssts.NewFromConfig(session).GetSessionToken(ctx, &awssts.GetSessionTokenInput{})
	if got := awsapitest.ErrorCode(t, err); got != "AccessDenied" {
		t.Fatalf("GetSessionToken with session credentials: %s", got)
	}
}

// TestPresignedBoundToHeader is the brokers' IAM authentication: the client presigns
// GetCallerIdentity with a signed header naming the cluster, so a token made for one cluster
// cannot be replayed to another; the broker forwards the URL and the header to STS.
func TestPresignedBoundToHeader(t *testing.T) {
	c := newCloud(t)
	ctx := context.Background()
	role := awsapitest.CreateRole(t, awsiam.NewFromConfig(c.Root()), "client", awsapitest.TrustAccount)
	session, _ := c.AssumeRole(t, aws.ToString(role.Arn), 3600)
	creds, err := session.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const header = "X-Tributary-Cluster-Id"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Expires=900", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(header, "cluster-1")
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	signed, signedHeaders, err := v4.NewSigner().PresignHTTP(ctx, creds, req, emptySHA256, "sts", "us-east-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if signedHeaders.Get(header) != "cluster-1" {
		t.Fatalf("the cluster header was not signed: %v", signedHeaders)
	}
	call := func(value string) (int, string) {
		t.Helper()
		r, err := http.NewRequestWithContext(ctx, http.MethodGet, signed, nil)
		if err != nil {
			t.Fatal(err)
		}
		if value != "" {
			r.Header.Set(header, value)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := call("cluster-1"); status != http.StatusOK || !strings.Contains(body, "assumed-role/client/test-session") {
		t.Fatalf("with the cluster header: %d %s", status, body)
	}
	for _, value := range []string{"cluster-2", ""} {
		if status, body := call(value); status == http.StatusOK || !strings.Contains(body, "SignatureDoesNotMatch") {
			t.Fatalf("with header %q: %d %s", value, status, body)
		}
	}
}

// withClusterHeader makes the SDK's STS presign client sign the cluster header and an
// X-Amz-Expires into the URL, as a token maker binding a token to a cluster does.
func withClusterHeader(cluster string, expires int) func(*awssts.PresignOptions) {
	mw := middleware.BuildMiddlewareFunc("TributaryClusterHeader", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			req.Header.Set("X-Tributary-Cluster-Id", cluster)
			q := req.URL.Query()
			q.Set("X-Amz-Expires", strconv.Itoa(expires))
			req.URL.RawQuery = q.Encode()
		}
		return next.HandleBuild(ctx, in)
	})
	return awssts.WithPresignClientFromClientOptions(func(o *awssts.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error { return s.Build.Add(mw, middleware.After) })
	})
}

// TestPresignClientBoundToCluster presigns GetCallerIdentity with the SDK's presign client, a
// signed cluster header and X-Amz-Expires, for a role session and for an IAM user, and sends
// the URL as a plain HTTP GET, as a broker verifying a client's token does.
func TestPresignClientBoundToCluster(t *testing.T) {
	c := newCloud(t)
	ctx := context.Background()
	iamClient := awsiam.NewFromConfig(c.Root())
	role := awsapitest.CreateRole(t, iamClient, "client", awsapitest.TrustAccount)
	session, _ := c.AssumeRole(t, aws.ToString(role.Arn), 3600)
	if _, err := iamClient.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("alice"), Path: aws.String("/apps/")}); err != nil {
		t.Fatal(err)
	}
	key, err := iamClient.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String("alice")})
	if err != nil {
		t.Fatal(err)
	}
	user := c.Config(aws.ToString(key.AccessKey.AccessKeyId), aws.ToString(key.AccessKey.SecretAccessKey), "")

	get := func(target, cluster string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cluster != "" {
			req.Header.Set("X-Tributary-Cluster-Id", cluster)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, tt := range []struct {
		name string
		cfg  aws.Config
		arn  string
	}{
		{"role session", session, "arn:aws:sts::000000000000:assumed-role/client/test-session"},
		{"user", user, "arn:aws:iam::000000000000:user/apps/alice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := awssts.NewPresignClient(awssts.NewFromConfig(tt.cfg), withClusterHeader("cluster-1", 900)).PresignGetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{})
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(p.URL)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			if q.Get("X-Amz-Expires") != "900" || !strings.Contains(q.Get("X-Amz-SignedHeaders"), "x-tributary-cluster-id") || p.SignedHeader.Get("X-Tributary-Cluster-Id") != "cluster-1" {
				t.Fatalf("presigned %s %v", p.URL, p.SignedHeader)
			}
			if status, body := get(p.URL, "cluster-1"); status != http.StatusOK || !strings.Contains(body, "<Arn>"+tt.arn+"</Arn>") {
				t.Fatalf("with the cluster header: %d %s", status, body)
			}
			for _, cluster := range []string{"cluster-2", ""} {
				if status, body := get(p.URL, cluster); status != http.StatusForbidden || !strings.Contains(body, "<Code>SignatureDoesNotMatch</Code>") {
					t.Fatalf("with cluster header %q: %d %s", cluster, status, body)
				}
			}
		})
	}

	// Refusals, each with STS's code and HTTP status.
	p, err := awssts.NewPresignClient(awssts.NewFromConfig(session), withClusterHeader("cluster-1", 60)).PresignGetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	signature := regexp.MustCompile(`X-Amz-Signature=[0-9a-f]+`)
	credential := regexp.MustCompile(`X-Amz-Credential=ASIA[A-Z0-9]+`)
	tests := []struct {
		name, url string
		status    int
		code      string
	}{
		{"altered signature", signature.ReplaceAllString(p.URL, "X-Amz-Signature="+strings.Repeat("0", 64)), http.StatusForbidden, "SignatureDoesNotMatch"},
		{"unknown access key", credential.ReplaceAllString(p.URL, "X-Amz-Credential=ASIAUNKNOWNKEY000000"), http.StatusForbidden, "InvalidClientTokenId"},
		{"expiry over a week", strings.Replace(p.URL, "X-Amz-Expires=60", "X-Amz-Expires=604801", 1), http.StatusForbidden, "IncompleteSignature"},
		{"expiry changed", strings.Replace(p.URL, "X-Amz-Expires=60", "X-Amz-Expires=600", 1), http.StatusForbidden, "SignatureDoesNotMatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.url == p.URL {
				t.Fatalf("the URL was not changed: %s", tt.url)
			}
			if status, body := get(tt.url, "cluster-1"); status != tt.status || !strings.Contains(body, "<Code>"+tt.code+"</Code>") {
				t.Fatalf("got %d %s, want %d %s", status, body, tt.status, tt.code)
			}
		})
	}
	if status, _ := get(p.URL, "cluster-1"); status != http.StatusOK {
		t.Fatalf("the unaltered URL: %d", status)
	}
	c.Clock.Advance(61 * time.Second)
	status, body := get(p.URL, "cluster-1")
	if status != http.StatusForbidden || !strings.Contains(body, "<Code>SignatureDoesNotMatch</Code>") || !strings.Contains(body, "Signature expired:") || !strings.Contains(body, "- 1 min.)") {
		t.Fatalf("past X-Amz-Expires: %d %s", status, body)
	}

	// STS accepts a presigned request for 15 minutes at most, whatever X-Amz-Expires says.
	long, err := awssts.NewPresignClient(awssts.NewFromConfig(session), withClusterHeader("cluster-1", 3600)).PresignGetCallerIdentity(ctx, &awssts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	c.Clock.Advance(13 * time.Minute) // 14 minutes and a second after signing: the clock is already 61 s ahead
	if status, body := get(long.URL, "cluster-1"); status != http.StatusOK {
		t.Fatalf("within 15 minutes: %d %s", status, body)
	}
	c.Clock.Advance(2 * time.Minute)
	if status, body := get(long.URL, "cluster-1"); status != http.StatusForbidden || !strings.Contains(body, "- 15 min.)") {
		t.Fatalf("past 15 minutes with X-Amz-Expires=3600: %d %s", status, body)
	}
}
