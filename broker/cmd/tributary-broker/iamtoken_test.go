package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/iam"
	"github.com/tributary/tributary/internal/localcloud/sts"
)

// TestIAMTokenCommand runs `iam-token` as a librdkafka oauth_cb would, with
// the SDK's default chain pointed at the local cloud by environment only,
// and has a verifier accept what it printed.
func TestIAMTokenCommand(t *testing.T) {
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
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_STS": c.URL, "AWS_ENDPOINT_URL": "", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
		"AWS_CONFIG_FILE": t.TempDir() + "/config", "AWS_SHARED_CREDENTIALS_FILE": t.TempDir() + "/credentials",
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	v, err := iamauth.NewVerifier(ctx, c.Root(), iamauth.VerifierOptions{ClusterID: "orders"})
	if err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	if code := iamToken(ctx, []string{"--cluster-id", "orders", "--region", "us-east-1", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var out struct {
		Token    string `json:"token"`
		ExpiryMs int64  `json:"expiry_ms"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("--json output %q: %v", stdout.String(), err)
	}
	if exp := time.UnixMilli(out.ExpiryMs); exp.Before(time.Now().Add(14*time.Minute)) || exp.After(time.Now().Add(15*time.Minute+time.Second)) {
		t.Fatalf("expiry_ms %d is not ~15 minutes from now", out.ExpiryMs)
	}
	id, err := v.Verify(ctx, out.Token)
	if err != nil || id.Principal != "arn:aws:iam::000000000000:root" {
		t.Fatalf("verify: %+v %v", id, err)
	}

	stdout.Reset()
	if code := iamToken(ctx, []string{"--cluster-id", "orders", "--region", "us-east-1"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := v.Verify(ctx, strings.TrimSpace(stdout.String())); err != nil {
		t.Fatalf("bare token: %v", err)
	}

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no cluster id", []string{"--region", "us-east-1"}, 2, "usage"},
		{"stray argument", []string{"--cluster-id", "orders", "extra"}, 2, "usage"},
		{"bad cluster id", []string{"--cluster-id", "a b", "--region", "us-east-1"}, 1, "cluster id"},
		{"no region", []string{"--cluster-id", "orders"}, 1, "region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := iamToken(ctx, tt.args, &stdout, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.want) || stdout.Len() != 0 {
				t.Fatalf("exit %d (want %d), stdout %q, stderr %q (want %q)", code, tt.code, stdout.String(), stderr.String(), tt.want)
			}
		})
	}
}
