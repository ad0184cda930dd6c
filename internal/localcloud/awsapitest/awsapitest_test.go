package awsapitest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	awssts "github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/awsapitest"
)

func TestClockAdvance(t *testing.T) {
	var c awsapitest.Clock
	before := c.Now()
	c.Advance(2 * time.Hour)
	if got := c.Now().Sub(before); got < 2*time.Hour || got > 2*time.Hour+time.Minute {
		t.Errorf("after Advance(2h) the clock moved %v", got)
	}
}

func TestStartServesOnLoopback(t *testing.T) {
	c := awsapitest.Start(t)
	if !strings.HasPrefix(c.URL, "http://127.0.0.1:") {
		t.Errorf("URL = %s, want a 127.0.0.1 address", c.URL)
	}
	if env := c.Env("/state"); env.StateDir != "/state" || env.Credentials != c.Credentials || env.Region != awsapi.DefaultRegion {
		t.Errorf("Env = %+v", env)
	}
	// No service is registered: a signed request reaches the server and its refusal comes
	// back as an AWS error.
	_, err := awssts.NewFromConfig(c.Root()).GetCallerIdentity(context.Background(), &awssts.GetCallerIdentityInput{})
	if got := awsapitest.ErrorCode(t, err); got != "UnknownService" {
		t.Errorf("error code = %q, want UnknownService", got)
	}
}
