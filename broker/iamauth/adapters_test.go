package iamauth_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/broker/iamauth/saramaauth"
	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/iam"
	"github.com/tributary/tributary/internal/localcloud/sts"
)

func startCloud(t *testing.T) *awsapitest.Cloud {
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

// bearerToken takes the token out of an RFC 7628 client initial response
// ("n,,\x01auth=Bearer <token>\x01\x01").
func bearerToken(t *testing.T, msg []byte) string {
	t.Helper()
	s := string(msg)
	if !strings.HasPrefix(s, "n,,\x01auth=Bearer ") || !strings.HasSuffix(s, "\x01\x01") {
		t.Fatalf("not an OAUTHBEARER initial response: %q", s)
	}
	return strings.TrimSuffix(strings.TrimPrefix(s, "n,,\x01auth=Bearer "), "\x01\x01")
}

// TestClientAdapters: the franz-go mechanism and the sarama provider hand
// over tokens the verifier accepts.
func TestClientAdapters(t *testing.T) {
	c := startCloud(t)
	ctx := context.Background()
	role := awsapitest.CreateRole(t, awsiam.NewFromConfig(c.Root()), "producer", awsapitest.TrustAccount)
	session, _ := c.AssumeRole(t, aws.ToString(role.Arn), 3600)
	v, err := iamauth.NewVerifier(ctx, c.Root(), iamauth.VerifierOptions{ClusterID: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	const want = "arn:aws:iam::000000000000:role/producer"

	mech := iamauth.FranzGoMechanism(session, "orders")
	if mech.Name() != "OAUTHBEARER" {
		t.Fatalf("mechanism %s", mech.Name())
	}
	sess, first, err := mech.Authenticate(ctx, "127.0.0.1:9098")
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(ctx, bearerToken(t, first))
	if err != nil || id.Principal != want {
		t.Fatalf("franz-go token: %+v %v", id, err)
	}
	// An empty server answer ends the exchange successfully.
	if done, _, err := sess.Challenge(nil); !done || err != nil {
		t.Fatalf("franz-go session after success: %v %v", done, err)
	}

	tok, err := saramaauth.New(session, "orders").Token()
	if err != nil {
		t.Fatal(err)
	}
	if id, err := v.Verify(ctx, tok.Token); err != nil || id.Principal != want {
		t.Fatalf("sarama token: %+v %v", id, err)
	}
	if _, err := saramaauth.New(session, "bad id").Token(); err == nil {
		t.Fatal("sarama provider made a token for an invalid cluster id")
	}
}
