package sts_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	awssts "github.com/aws/aws-sdk-go-v2/service/sts"

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
