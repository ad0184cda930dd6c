// Package awsapitest runs local cloud services behind one awsapi.Server on a loopback
// httptest server, for the services' own tests: a credential store the services share, a
// clock the test can move forward, and AWS SDK configurations pointed at the server.
package awsapitest

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// Clock is the real time plus an offset that Advance moves forward.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the real time plus the offset.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Cloud is an awsapi.Server serving on 127.0.0.1 until the test ends. It has no services until
// the test registers them with Server.Register.
type Cloud struct {
	URL         string
	Server      *awsapi.Server
	Clock       *Clock
	Credentials *awsapi.CredentialStore
}

// Start starts a Cloud with an in-memory credential store. The server accepts requests dated
// up to 24 hours from its clock, so a test can Advance the clock past session expirations
// while the SDK keeps signing with the real time.
func Start(t testing.TB) *Cloud {
	t.Helper()
	creds, err := awsapi.NewCredentialStore("")
	if err != nil {
		t.Fatalf("creating the credential store: %v", err)
	}
	clk := &Clock{}
	srv, err := awsapi.NewServer(awsapi.ServerOptions{Credentials: creds, Now: clk.Now, MaxSkew: 24 * time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("creating the awsapi server: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &Cloud{URL: hs.URL, Server: srv, Clock: clk, Credentials: creds}
}

// Env is the environment to build a service of this cloud with: the default account and region,
// the cloud's credentials and clock, and state kept in stateDir ("" keeps it in memory).
func (c *Cloud) Env(stateDir string) awsapi.Env {
	return awsapi.Env{Account: awsapi.DefaultAccount, Region: awsapi.DefaultRegion, StateDir: stateDir, Credentials: c.Credentials, Now: c.Clock.Now}
}

// Config is an AWS SDK configuration for this cloud that signs with the given credentials and
// never retries, so a test sees every error as the server sent it.
func (c *Cloud) Config(key, secret, token string) aws.Config {
	return aws.Config{
		Region:       awsapi.DefaultRegion,
		BaseEndpoint: aws.String(c.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, token),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
}

// Root is Config for the account root (access key "test", secret "test").
func (c *Cloud) Root() aws.Config { return c.Config("test", "test", "") }

// ErrorCode returns the AWS error code of err and fails the test when err is not an AWS API
// error.
func ErrorCode(t testing.TB, err error) string {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an AWS API error, got %v", err)
	}
	return ae.ErrorCode()
}
